"""Cashback arithmetic (SPEC §8), pure.

For month M each card earns Σ over merchants of floor(net spend at that merchant in M × rebate bps / 10000).
Net spend at a merchant = purchases − voids − refunds of that card there whose business date is in M (reversed
transactions are not in the input at all); a merchant where the card's net spend is not positive earns 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from switch.backoffice.money import rebate_amount


def month_bounds(month: str) -> tuple[date, date]:
    """``"2026-11"`` → (2026-11-01, 2026-12-01) (end exclusive). Raises ValueError on a bad month."""
    year_s, sep, mon_s = month.partition("-")
    if not sep or len(year_s) != 4 or len(mon_s) != 2 or not (year_s + mon_s).isdigit():
        raise ValueError("month must be YYYY-MM")
    year, mon = int(year_s), int(mon_s)
    start = date(year, mon, 1)
    end = date(year + (mon == 12), mon % 12 + 1, 1)
    return start, end


def card_rebates(spend: Iterable[tuple[str, str, int, int]]) -> dict[str, int]:
    """``spend`` rows ``(card_key, mid, net_spend_fen, rebate_bps)`` (one per card and merchant) → card → fen.

    Cards whose total is 0 are left out.
    """
    out: dict[str, int] = {}
    for card, _mid, net, bps in spend:
        amount = rebate_amount(net, bps)
        if amount:
            out[card] = out.get(card, 0) + amount
    return out
