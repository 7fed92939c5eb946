"""Rule 4: transaction type not supported → ``40`` (``12`` when it exists but not in this state); not
allowed at this terminal (e.g. a top-up outside a service hall) → ``58``."""

from __future__ import annotations

from switch.pipeline.context import TxnContext
from switch.pipeline.participant import Vote
from switch.pipeline.results import Result


class TypeCheck:
    name = "type"
    bucket = "checks"

    async def prepare(self, ctx: TxnContext) -> Vote:
        route = ctx.route
        if route is None:
            why = ctx.log_extra.pop("type_result", None)
            ctx.decline(why if isinstance(why, Result) else Result.TYPE_UNKNOWN)
            return Vote.STOP
        if route.kinds and ctx.terminal is not None and ctx.terminal.kind not in route.kinds:
            ctx.decline(Result.NOT_AT_THIS_TERMINAL)
            return Vote.STOP
        return Vote.CONTINUE
