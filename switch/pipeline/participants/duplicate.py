"""Rule 5: duplicates, keyed by (MID, TID, batch, STAN, MTI class, processing code).

- an identical retransmission of a completed request gets the stored reply again (same 37, 38, 39, 54) and
  has no second ledger effect;
- one that arrives while the first is still in progress waits for it and gets its reply;
- the same key with different content → ``94``.

"Identical" means the same business content: every field but the MAC (``validate.fingerprint``).
In-progress requests are tracked in process (:class:`~switch.pipeline.deps.InflightRegistry`); completed
ones are looked up in the ledger, which stores the reply fields of every journaled request.
"""

from __future__ import annotations

import asyncio

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.participants.keys_mac import mac_gate
from switch.pipeline.results import Result, rc_from_code


def replay(ctx: TxnContext, rc: str, fields: dict[str, str]) -> None:
    """Answer with a stored reply: same response code and stored fields, no ledger effect."""
    ctx.rc = rc_from_code(rc)
    ctx.result = None
    ctx.reply_fields.update(fields)
    ctx.journaled = True
    ctx.rrn = fields.get("37", "")
    ctx.auth_code = fields.get("38", "")
    ctx.log_extra["replay"] = True


class DuplicateCheck:
    name = "duplicate"
    bucket = "ledger"

    def __init__(self, deps: Deps) -> None:
        self._ledger = deps.store
        self._inflight = deps.inflight

    async def prepare(self, ctx: TxnContext) -> Vote:
        route = ctx.route
        req = ctx.request
        assert route is not None and req is not None
        if not route.dedupe:
            return Vote.CONTINUE
        key = (ctx.mid, ctx.tid, ctx.batch, ctx.stan, ctx.mti[:2], req.fields.get("3", ""))
        while True:
            owner, fp, fut = self._inflight.claim(key, ctx.fingerprint)
            if owner:
                break
            if fp != ctx.fingerprint:
                ctx.decline(Result.DUPLICATE_CONFLICT)
                return Vote.STOP
            stored = await asyncio.shield(fut)
            if stored is not None:
                if not await mac_gate(ctx):
                    return Vote.STOP
                replay(ctx, stored["39"], stored)
                return Vote.STOP
            # the first one ended without a stored reply (e.g. the HSM failed): process this one afresh
        ctx.dup_key = key
        ctx.dup_owner = True
        if ctx.pan and "card" in route.steps:
            found, ctx.card, ctx.card_read = await self._ledger.find_reply_card(key, ctx.pan)
        else:
            found = await self._ledger.find_reply(key)
        if found is None:
            return Vote.CONTINUE
        if found.fingerprint != ctx.fingerprint:
            ctx.decline(Result.DUPLICATE_CONFLICT)
            return Vote.STOP
        if not await mac_gate(ctx):
            return Vote.STOP
        replay(ctx, found.rc, found.fields)
        return Vote.STOP

    async def finish(self, ctx: TxnContext) -> None:
        if ctx.dup_owner and ctx.dup_key is not None:
            stored = None
            if ctx.journaled and ctx.rc is not None:
                stored = {**ctx.reply_fields, "39": ctx.rc.value}
            self._inflight.release(ctx.dup_key, stored)
