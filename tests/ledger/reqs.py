"""Build :class:`switch.pipeline.ports.Request` objects the way the engine's participants do."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from switch.pipeline.ports import Request
from tests.support.ledger_db import MID, POS_TID, SeedCard

_PCODE = {
    "balance": ("0200", "310000"),
    "purchase": ("0200", "000000"),
    "void": ("0200", "200000"),
    "refund": ("0220", "200000"),
    "topup": ("0200", "630000"),
    "pinchange": ("0200", "700000"),
    "settlement": ("0500", ""),
}


def request(
    kind: str,
    stan: int,
    *,
    card: SeedCard | None = None,
    amount: int = 0,
    tid: str = POS_TID,
    mid: str = MID,
    batch: str = "000001",
    **extra: Any,
) -> Request:
    """A request of ``kind`` (``reversal`` needs ``orig_kind``; ``declined`` needs ``rc``/``reason``)."""
    if kind == "reversal":
        mti, pcode = "0400", _PCODE[extra.get("orig_kind", "purchase")][1]
    elif kind == "declined":
        mti, pcode = _PCODE[extra.pop("as_kind", "purchase")]
    else:
        mti, pcode = _PCODE[kind]
    s = f"{stan:06d}"
    key = (mid, tid, batch, s, mti[:2], pcode)
    fp = hashlib.sha256(repr((key, amount, card.pan if card else "", sorted(extra.items()))).encode()).hexdigest()
    r = Request(
        kind=kind,
        dup_key=key,
        fingerprint=fp,
        tid=tid,
        mid=mid,
        batch=batch,
        stan=s,
        mti=mti,
        pcode=pcode,
        amount=amount,
        card_token=card.token if card else "",
        pan=card.pan if card else "",
    )
    if kind == "reversal":
        extra.setdefault("orig_stan", s)
        extra.setdefault("orig_batch", batch)
    return replace(r, **extra)
