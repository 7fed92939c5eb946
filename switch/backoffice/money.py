"""Yuan text ↔ fen integers, exactly (no floats anywhere).

Human-facing CSV uses yuan with two decimals (``100.00``); everything else is integer fen (SPEC preamble).
"""

from __future__ import annotations

import re

_YUAN = re.compile(r"^(0|[1-9]\d{0,11})(?:\.(\d{1,2}))?$")


class AmountError(ValueError):
    """A yuan amount that is not a plain positive decimal with at most two decimals."""


def parse_yuan(text: str) -> int:
    """``"100.00"`` → ``10000``; ``"0.5"`` → ``50``; ``"12"`` → ``1200``.

    Rejects signs, exponents, thousands separators, more than two decimals and more than 12 integer digits.
    Zero is returned as 0 (callers decide whether zero is acceptable).
    """
    m = _YUAN.match(text.strip())
    if m is None:
        raise AmountError("amount must be yuan with at most two decimals")
    whole, frac = m.group(1), m.group(2) or ""
    return int(whole) * 100 + int((frac + "00")[:2])


def format_yuan(fen: int) -> str:
    """``10000`` → ``"100.00"``; ``-5`` → ``"-0.05"``."""
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), 100)
    return f"{sign}{q}.{r:02d}"


def round_half_up_div(numerator: int, denominator: int) -> int:
    """Integer ``numerator / denominator`` rounded half up (both non-negative)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up_div expects a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def mdr_fee(amount_fen: int, mdr_bps: int, fee_cap_fen: int) -> int:
    """SPEC §8: round-half-up(amount × MDR bps / 10000), capped at the merchant's fee cap (0 = no cap)."""
    fee = round_half_up_div(amount_fen * mdr_bps, 10000)
    if fee_cap_fen > 0:
        fee = min(fee, fee_cap_fen)
    return fee


def rebate_amount(net_spend_fen: int, rebate_bps: int) -> int:
    """SPEC §8: floor(net spend × rebate bps / 10000); a non-positive net spend earns nothing."""
    if net_spend_fen <= 0 or rebate_bps <= 0:
        return 0
    return net_spend_fen * rebate_bps // 10000
