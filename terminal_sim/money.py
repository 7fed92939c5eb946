"""Amounts for humans: the wire and the files carry integer fen; people type and read yuan.

``parse_amount("100.00") == 10000`` (a decimal point means yuan), ``parse_amount("10000") == 10000`` (an
integer is fen, as everywhere else in the program); ``format_yuan(10000) == "100.00"``.
"""

from __future__ import annotations

import re

_YUAN = re.compile(r"([0-9]{1,10})\.([0-9]{1,2})")
_FEN = re.compile(r"[0-9]{1,12}")
#: field 4 holds 12 digits
MAX_AMOUNT_FEN = 999_999_999_999


def parse_amount(text: str) -> int:
    """Fen from ``"123"`` (fen) or ``"1.23"`` (yuan); ``ValueError`` for anything else."""
    text = text.strip()
    m = _YUAN.fullmatch(text)
    if m is not None:
        return int(m[1]) * 100 + int(m[2].ljust(2, "0"))
    if _FEN.fullmatch(text):
        return int(text)
    raise ValueError("amount must be fen (digits) or yuan with a decimal point, e.g. 10000 or 100.00")


def format_yuan(fen: int) -> str:
    """``12345 -> "123.45"``, ``-5 -> "-0.05"``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
