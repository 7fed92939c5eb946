"""Reversal (0400): matched by (MID, TID, batch, original STAN = field 11).

Unknown original, already reversed, or declined → ``00`` with no effect; amount differs → ``25``; otherwise
every effect of the original is undone and the answer is ``00``. Never declined for card status, PIN lock,
limits, key age or cut-over: the route runs no card, PIN or limits step, and the ledger applies it whatever
the business date (a reversal of an already-cleared date becomes an adjustment of the next clearing file).
"""

from __future__ import annotations

from dataclasses import replace

from switch.pipeline.context import TxnContext
from switch.pipeline.participants.post import base_request
from switch.pipeline.ports import Request
from switch.pipeline.routes import reversed_type


def reversal_request(ctx: TxnContext) -> Request:
    assert ctx.request is not None
    f = ctx.request.fields
    return replace(
        base_request(ctx, "reversal"),
        orig_stan=ctx.stan,
        orig_batch=ctx.batch,
        reversal_reason=f.get("39", ""),
        orig_kind=reversed_type(f),
    )
