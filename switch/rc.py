"""Response codes (field 39): the single source of truth for codes and their receipt texts (SPEC §5)."""

from __future__ import annotations

from enum import StrEnum


class RC(StrEnum):
    """ISO 8583 field 39 values used by the program, with receipt texts in English and Chinese."""

    meaning_en: str
    meaning_zh: str

    def __new__(cls, code: str, meaning_en: str, meaning_zh: str) -> RC:
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.meaning_en = meaning_en
        obj.meaning_zh = meaning_zh
        return obj

    APPROVED = "00", "Approved", "交易成功"
    REFER_TO_ISSUER = "01", "Refer to issuer", "请持卡人与发卡行联系"
    INVALID_MERCHANT = "03", "Invalid merchant", "无效商户"
    OTHER_ERROR = "06", "Error", "出错"
    INVALID_TRANSACTION = "12", "Invalid transaction", "无效交易"
    INVALID_AMOUNT = "13", "Invalid amount", "无效金额"
    INVALID_CARD = "14", "Invalid card number", "无效卡号"
    NO_SUCH_ISSUER = "15", "No such issuer", "无此发卡方"
    INACTIVE_CARD = "21", "Card not activated", "卡未初始化"
    ORIGINAL_NOT_FOUND = "25", "Original transaction not found", "找不到原始交易"
    FORMAT_ERROR = "30", "Format error", "报文格式错误"
    UNSUPPORTED = "40", "Function not supported", "请求的功能尚不支持"
    LOST_CARD = "41", "Lost card, pick up", "挂失卡"
    INSUFFICIENT_FUNDS = "51", "Insufficient funds", "余额不足"
    EXPIRED_CARD = "54", "Expired card", "过期的卡"
    INCORRECT_PIN = "55", "Incorrect PIN", "密码错"
    NOT_PERMITTED_TERMINAL = "58", "Transaction not permitted at this terminal", "不允许终端进行此交易"
    EXCEEDS_AMOUNT_LIMIT = "61", "Exceeds amount limit", "超出金额限制"
    RESTRICTED_CARD = "62", "Restricted card", "受限制的卡"
    AMOUNT_MISMATCH = "64", "Original amount incorrect", "原始金额错误"
    EXCEEDS_COUNT_LIMIT = "65", "Exceeds frequency limit", "超出消费次数限制"
    PIN_TRIES_EXCEEDED = "75", "PIN tries exceeded", "密码错误次数超限"
    CUTOVER_IN_PROGRESS = "90", "Cut-over in progress, try later", "日切处理中"
    ISSUER_UNAVAILABLE = "91", "Issuer or switch inoperative", "发卡方不能操作"
    DUPLICATE = "94", "Duplicate transmission", "重复交易"
    SYSTEM_MALFUNCTION = "96", "System malfunction", "系统故障"
    UNKNOWN_TERMINAL = "97", "Terminal not registered", "终端未登记"
    NO_REPLY = "98", "No reply from issuer", "接收不到发卡方应答"
    PIN_FORMAT_ERROR = "99", "PIN format error", "PIN格式错"
    MAC_ERROR = "A0", "MAC verification failed, sign on again", "MAC校验错，请重新签到"

    @classmethod
    def describe(cls, code: str) -> tuple[str, str]:
        """Receipt texts for any code, including ones the program never sends."""
        try:
            member = cls(code)  # type: ignore[call-arg]  # lookup by value, not construction
        except ValueError:
            return ("Unknown response code", "未知应答码")
        return member.meaning_en, member.meaning_zh
