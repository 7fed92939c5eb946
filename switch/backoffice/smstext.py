"""SMS notice texts (SPEC §8), pure.

``您尾号0019的工会会员服务卡11月22日14:03消费100.00元，余额400.00元。`` — the card is named by the last four
PAN digits only; month, day, hour and minute are zero-padded two digits in the program's time zone (as bank
notices print them); amounts are yuan with two decimals.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from switch.backoffice.money import format_yuan

CARD_NAME = "工会会员服务卡"


class NoticeKind(StrEnum):
    TOPUP = "topup"
    PURCHASE = "purchase"
    VOID = "void"
    REFUND = "refund"
    REBATE = "rebate"


#: the verb of each notice
VERBS: dict[NoticeKind, str] = {
    NoticeKind.TOPUP: "充值",
    NoticeKind.PURCHASE: "消费",
    NoticeKind.VOID: "消费撤销",
    NoticeKind.REFUND: "退货",
    NoticeKind.REBATE: "返现",
}


def render_sms(kind: NoticeKind | str, last4: str, local_time: datetime, amount_fen: int, balance_fen: int) -> str:
    """The notice text; ``local_time`` must already be in the program's time zone."""
    verb = VERBS[NoticeKind(kind)]
    if len(last4) != 4 or not last4.isdigit():
        raise ValueError("last4 must be the last four PAN digits")
    when = f"{local_time.month:02d}月{local_time.day:02d}日{local_time.hour:02d}:{local_time.minute:02d}"
    return f"您尾号{last4}的{CARD_NAME}{when}{verb}{format_yuan(amount_fen)}元，余额{format_yuan(balance_fen)}元。"
