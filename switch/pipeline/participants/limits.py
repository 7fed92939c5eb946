"""Rule 8 (the parts that need no card state): zero amount → ``13``; purchase above the per-transaction
limit → ``61``; top-up during the settlement window → ``90``.

The daily amount/count limits (``61``/``65``), the balance cap (``61``) and the balance itself (rule 9,
``51``) are checked by the ledger inside the commit transaction, against the rows it locks, so concurrent
requests of one card cannot both pass them.
"""

from __future__ import annotations

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.results import Result


class LimitsCheck:
    name = "limits"
    bucket = "checks"

    def __init__(self, deps: Deps) -> None:
        self._max_txn = deps.program.max_txn_amount
        self._clock = deps.clock

    async def prepare(self, ctx: TxnContext) -> Vote:
        route = ctx.route
        assert route is not None
        if ctx.amount <= 0:
            ctx.decline(Result.AMOUNT_INVALID)
            return Vote.STOP
        name = route.name
        if name == "purchase" and ctx.amount > self._max_txn:
            ctx.decline(Result.OVER_TXN_LIMIT)
            return Vote.STOP
        if name == "topup" and self._clock.in_settlement_window():
            ctx.decline(Result.SETTLEMENT_WINDOW)
            return Vote.STOP
        return Vote.CONTINUE
