"""Printed receipts (签购单), as a UnionPay POS prints them, in Chinese and English.

Merchant, masked PAN (first 6, last 4), type, batch and trace, date and time, RRN, auth code, amount, RC with
its meaning, balance. Never a full PAN, track data, PIN block or key: the receipt is built from the
:class:`~terminal_sim.terminal.Answer` and the masked card only.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from switch.rc import RC
from switch.telemetry.masking import mask_pan
from terminal_sim.money import format_yuan
from terminal_sim.terminal import Answer

TYPE_NAMES: dict[str, tuple[str, str]] = {
    "signon": ("签到", "SIGN-ON"),
    "signoff": ("签退", "SIGN-OFF"),
    "echo": ("回响测试", "ECHO TEST"),
    "balance": ("余额查询", "BALANCE INQUIRY"),
    "purchase": ("消费", "SALE"),
    "void": ("消费撤销", "VOID"),
    "refund": ("退货", "REFUND"),
    "topup": ("充值", "TOP-UP"),
    "pinchange": ("修改密码", "PIN CHANGE"),
    "reversal": ("冲正", "REVERSAL"),
    "settle": ("结算", "SETTLEMENT"),
}
WIDTH = 48
#: the program's terminals are in China; replies carry the switch's local date and time (12, 13)
TERMINAL_TZ = ZoneInfo("Asia/Shanghai")
_NO_AMOUNT = frozenset({"signon", "signoff", "echo", "balance", "pinchange", "settle"})


def rc_text(code: str) -> str:
    """``"00 交易成功 Approved"``."""
    en, zh = RC.describe(code)
    return f"{code} {zh} {en}"


def _when(answer: Answer, now: datetime) -> str:
    f = answer.fields
    mmdd, hhmmss = f.get("13", ""), f.get("12", "")
    if len(mmdd) == 4 and len(hhmmss) == 6:
        return f"{now.year}-{mmdd[:2]}-{mmdd[2:]} {hhmmss[:2]}:{hhmmss[2:4]}:{hhmmss[4:]}"
    return now.strftime("%Y-%m-%d %H:%M:%S")


def _line(zh: str, en: str, value: str) -> str:
    return f"{zh} {en}:".ljust(20) + f" {value}"


def format_receipt(answer: Answer, *, merchant_name: str = "", now: datetime | None = None, outcome: str = "") -> str:
    """The receipt of one answer; ``outcome`` replaces the RC line when there was no usable reply."""
    now = now or datetime.now(TERMINAL_TZ)
    req = answer.request
    f = req.fields
    zh, en = TYPE_NAMES.get(req.type.name, (req.type.name, req.type.name.upper()))
    title = f" 签购单 POS RECEIPT: {zh} {en} "
    lines = [title.center(WIDTH, "=")]
    if merchant_name:
        lines.append(_line("商户名称", "MERCHANT", merchant_name))
    lines.append(_line("商户编号", "MID", f.get("42", "")))
    lines.append(_line("终端编号", "TID", f.get("41", "")))
    card = req.card
    if card is not None:
        lines.append(_line("卡号", "CARD NO.", mask_pan(card.pan)))
        if card.expiry:
            lines.append(_line("有效期", "EXP. DATE", f"{card.expiry[2:]}/{card.expiry[:2]}"))
    # a sign-on reply carries the batch the switch opened
    batch = (answer.fields.get("60") if req.type.name == "signon" and answer.approved else None) or f.get("60", "")
    batch = batch[2:8]
    lines.append(_line("批次号", "BATCH NO.", batch))
    lines.append(_line("凭证号", "TRACE NO.", req.stan))
    lines.append(_line("日期时间", "DATE/TIME", _when(answer, now)))
    r = answer.fields
    if r.get("37"):
        lines.append(_line("参考号", "REF. NO.", r["37"]))
    if r.get("38"):
        lines.append(_line("授权码", "AUTH NO.", r["38"]))
    if req.original is not None:
        lines.append(_line("原参考号", "ORIG. REF.", req.original.rrn))
        lines.append(_line("原凭证号", "ORIG. TRACE", req.original.stan))
    if req.type.name not in _NO_AMOUNT:
        sign = "-" if req.type.name in ("void", "refund") else ""
        lines.append(_line("金额", "AMOUNT", f"RMB {sign}{format_yuan(req.amount)}"))
    balance = answer.balance
    if balance is not None:
        lines.append(_line("余额", "BALANCE", f"RMB {format_yuan(balance)}"))
    lines.extend(_settlement_lines(answer))
    if req.type.name == "signon" and answer.approved:
        lines.append(_line("工作密钥", "WORKING KEYS", "loaded, KCVs checked (已校验)"))
    if outcome:
        lines.append(_line("结果", "RESULT", outcome))
    elif answer.rc:
        lines.append(_line("应答码", "RESPONSE", rc_text(answer.rc)))
    if answer.sign_on_required:
        lines.append(_line("提示", "NOTE", "请重新签到 sign on again"))
    lines.append("=" * WIDTH)
    return "\n".join(lines)


def _settlement_lines(answer: Answer) -> list[str]:
    req = answer.request
    if req.type.name != "settle" or req.totals is None:
        return []
    mine = req.totals
    out = [
        _line("借记 终端", "DEBITS (POS)", f"{mine.debit_count} / RMB {format_yuan(mine.debit_amount)}"),
        _line("贷记 终端", "CREDITS (POS)", f"{mine.credit_count} / RMB {format_yuan(mine.credit_amount)}"),
    ]
    theirs = answer.settlement
    if theirs is not None:
        out.append(
            _line("借记 主机", "DEBITS (HOST)", f"{theirs.debit_count} / RMB {format_yuan(theirs.debit_amount)}")
        )
        out.append(
            _line("贷记 主机", "CREDITS (HOST)", f"{theirs.credit_count} / RMB {format_yuan(theirs.credit_amount)}")
        )
        verdict = {"1": "对账平 BALANCED", "2": "对账不平 NOT BALANCED"}.get(theirs.code, f"code {theirs.code}")
        out.append(_line("对账结果", "RECONCILIATION", verdict))
    return out
