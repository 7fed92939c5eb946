"""Test card numbers: a BIN, a 9-digit sequence number and the Luhn check digit of ``switch.crypto.luhn``.

pan(1)                      # 990001 000000001 + check digit: the program's first test card
luhn_complete("622202000000001")   # any body, completed with its check digit
"""

from __future__ import annotations

from switch.crypto.luhn import luhn_check_digit

#: the program's BIN (``program.bins[0]`` of the default configuration)
PROGRAM_BIN = "990001"


def luhn_complete(body: str) -> str:
    """``body`` followed by its Luhn check digit."""
    return body + luhn_check_digit(body)


def pan(seq: int, bin_prefix: str = PROGRAM_BIN) -> str:
    """The test PAN number ``seq`` of ``bin_prefix``: BIN + 9-digit sequence + check digit."""
    return luhn_complete(f"{bin_prefix}{seq:09d}")
