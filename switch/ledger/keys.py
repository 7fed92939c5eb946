"""Identifiers the ledger hands out or keys by: idempotency keys, RRNs, auth codes, SMS notice ids. Pure."""

from __future__ import annotations

from collections.abc import Sequence

#: house accounts created by the first migration
FLOAT_ACCOUNT = 1
FEE_INCOME_ACCOUNT = 2
REBATE_EXPENSE_ACCOUNT = 3


def pos_key(dup_key: Sequence[str]) -> str:
    """Idempotency key of a POS request: SPEC §5 rule 5's (MID, TID, batch, STAN, MTI class, processing code)."""
    return "pos|" + "|".join(dup_key)


def topup_key(order_id: str) -> str:
    return f"topup|{order_id}"


def rebate_key(card_token: str, month: str) -> str:
    return f"rebate|{card_token}|{month}"


def format_rrn(n: int) -> str:
    """Field 37: 12 digits of the ledger's never-repeating counter."""
    if not 0 < n < 10**12:
        raise ValueError("RRN counter out of range")
    return f"{n:012d}"


def auth_code_of(n: int) -> str:
    """Field 38 of an approval: 6 digits derived from its RRN number (``000001``..``999999``, never ``000000``)."""
    return f"{n % 999_999 + 1:06d}"


def notice_id(rrn: str) -> str:
    """Stable SMS notice id: one notice per journal row, named after its RRN."""
    return f"sms-{rrn}"
