"""Rules 9-10: the ledger. One call, one database transaction: the money rules that need the card's locked
rows (daily limits, balance cap, available balance, void/refund/reversal matching) and, when they pass, the
journal row, double-entry postings, balance, limit counters and notification row, committed durably
*before* this step returns (so a ``00`` is never written ahead of its commit).

Also journals declines decided by earlier rules once the request owns its duplicate key (``journal_decline``)
so that a retransmission gets the same answer and RRN.
"""

from __future__ import annotations

from collections.abc import Callable

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.participants.keys_mac import mac_gate
from switch.pipeline.ports import Outcome, Request
from switch.pipeline.results import Result, rc_from_code
from switch.rc import RC

#: results that must not be journaled: the request may be retried and then succeed
_NOT_JOURNALED = frozenset(
    {
        Result.HSM_UNAVAILABLE,
        Result.HSM_ERROR,
        Result.LEDGER_UNAVAILABLE,
        Result.INTERNAL_ERROR,
        Result.MAC_WRONG,
        Result.MAC_MISSING,
        Result.NO_WORKING_KEYS,
        Result.DUPLICATE_CONFLICT,
    }
)

_RESULTS = {r.value: r for r in Result}

RequestBuilder = Callable[[TxnContext], Request]


def base_request(ctx: TxnContext, kind: str) -> Request:
    req = ctx.request
    assert req is not None and ctx.dup_key is not None
    card = ctx.card
    return Request(
        kind=kind,
        dup_key=ctx.dup_key,
        fingerprint=ctx.fingerprint,
        tid=ctx.tid,
        mid=ctx.mid,
        batch=ctx.batch,
        stan=ctx.stan,
        mti=ctx.mti,
        pcode=req.fields.get("3", ""),
        amount=ctx.amount,
        card_token=card.token if card is not None else "",
        pan=ctx.pan,
        pin_ok=ctx.pin_ok,
    )


def apply_outcome(ctx: TxnContext, out: Outcome) -> None:
    ctx.journaled = True
    ctx.reply_fields.update(out.fields)
    ctx.rrn = out.fields.get("37", ctx.rrn)
    ctx.auth_code = out.fields.get("38", "")
    ctx.rc = rc_from_code(out.rc)
    if ctx.rc is RC.APPROVED:
        ctx.result = Result.APPROVED
    else:
        ctx.result = _RESULTS.get(out.reason)
        if ctx.result is None:
            ctx.log_extra["ledger_reason"] = out.reason


class Post:
    name = "post"
    bucket = "ledger"

    def __init__(self, deps: Deps, builder: RequestBuilder | None = None, name: str = "post") -> None:
        self._ledger = deps.store
        self._metrics = deps.metrics
        self._builder = builder
        self.name = name
        #: the ledger's execute with an early outcome (the real store has it; test fakes may not)
        self._early = getattr(deps.store, "execute_early", None)

    def build(self, ctx: TxnContext) -> Request:
        if self._builder is not None:
            return self._builder(ctx)
        assert ctx.route is not None
        r = base_request(ctx, ctx.route.name)
        if ctx.new_pin_offset:
            from dataclasses import replace

            r = replace(r, new_pin_offset=ctx.new_pin_offset, activate=ctx.card.status == "inactive")
        return r

    async def prepare(self, ctx: TxnContext) -> Vote:
        request = self.build(ctx)
        if not await mac_gate(ctx):
            return Vote.STOP
        if self._early is not None:
            # the outcome before the commit's fsync: the reply is MACed while the disk works; the manager lets
            # it out only once the commit is durable (ctx.durable), and answers 91 if it failed
            out, ctx.durable = await self._early(request)
            ctx.ledger_fields = out.fields
        else:
            out = await self._ledger.execute(request)
        apply_outcome(ctx, out)
        return Vote.STOP

    async def journal_decline(self, ctx: TxnContext) -> None:
        """Store a decline decided before the ledger so that a retransmission is answered the same."""
        if not ctx.dup_owner or ctx.journaled or ctx.rc is None or ctx.rc is RC.APPROVED:
            return
        if ctx.result is None or ctx.result in _NOT_JOURNALED or ctx.mac_ok is False:
            return
        from dataclasses import replace

        request = replace(base_request(ctx, "declined"), rc=ctx.rc.value, reason=ctx.result.value)
        out = await self._ledger.execute(request)
        ctx.journaled = True
        ctx.reply_fields.update(out.fields)
        ctx.rrn = out.fields.get("37", "")
