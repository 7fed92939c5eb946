"""Batch settlement (0500, 60.3 ``201``): the terminal's totals in field 48 are compared with the switch's
for the batch (debits: approved purchases not voided or reversed; credits: refunds and top-ups); the reply
carries the switch's totals with code ``1`` (balanced) or ``2`` (not balanced), RC ``00`` either way, and
the batch is closed (the next sign-on opens the next one). Field 48 that does not parse → ``30``.
"""

from __future__ import annotations

from dataclasses import replace

from switch.iso.fields import FieldFormatError, parse_settlement48
from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.participants.post import apply_outcome, base_request
from switch.pipeline.results import Result


class Settlement:
    name = "settlement"
    bucket = "ledger"

    def __init__(self, deps: Deps) -> None:
        self._ledger = deps.store

    async def prepare(self, ctx: TxnContext) -> Vote:
        req = ctx.request
        assert req is not None
        f48 = req.fields["48"]
        try:
            parse_settlement48(f48)
        except FieldFormatError:
            ctx.log_extra["field"] = "48"
            ctx.decline(Result.BAD_FIELD)
            return Vote.STOP
        out = await self._ledger.execute(replace(base_request(ctx, "settlement"), totals48=f48))
        apply_outcome(ctx, out)
        return Vote.STOP
