"""Rule 7: the PIN (when the type requires it). Wrong → ``55``; the ``pin_max_tries``-th consecutive wrong
PIN locks the card and answers ``75``; a right PIN resets the counter; counter changes are committed at once
(even when the request is declined later). A PIN block the HSM cannot decipher → ``99`` (no count).

The PIN is verified in the HSM (``DA``; PIN change: ``DU``, which also yields the new PIN's offset) while
the request MAC verification may still be running; the counter is only touched once the MAC is known good.

The PIK and the PIN offset may come from refs read up to ``database.refdata_ttl_ms`` earlier: a PIN that
fails is verified again against fresh ones (if they changed) before the failure counts. A right PIN sets
``ctx.pin_ok``: the ledger then also clears a try count it finds on the locked card row.
"""

from __future__ import annotations

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.participants.keys_mac import mac_gate
from switch.pipeline.ports import PinBlockError
from switch.pipeline.results import Result


class PinCheck:
    name = "pin"
    bucket = "hsm_pin"

    def __init__(self, deps: Deps) -> None:
        self._hsm = deps.hsm
        self._ledger = deps.store
        self._max_tries = deps.program.pin_max_tries
        self._pvk = deps.pvk_lmk

    async def prepare(self, ctx: TxnContext) -> Vote:
        route = ctx.route
        req = ctx.request
        assert route is not None and req is not None
        fields = req.fields
        if route.pin == "none" or (route.pin == "optional" and "52" not in fields):
            return Vote.CONTINUE
        card = ctx.card
        change = route.pin == "change"
        used = (ctx.pik_lmk, card.pin_offset)  # what this attempt used (the MAC recheck may move ctx.pik_lmk)
        ok, block_error = await self._attempt(ctx, change, *used)
        if not ok:
            again = await self._recheck(ctx, change, used)
            if again is not None:
                ok, block_error = again
                card = ctx.card
        if block_error:
            if await mac_gate(ctx):
                ctx.decline(Result.PIN_BLOCK_INVALID)
            return Vote.STOP
        if not await mac_gate(ctx):
            return Vote.STOP
        if ok:
            ctx.pin_ok = True
            if card.pin_tries:
                await self._ledger.pin_result(card.token, True, self._max_tries)
            return Vote.CONTINUE
        tries = await self._ledger.pin_result(card.token, False, self._max_tries)
        ctx.decline(Result.PIN_TRIES_EXCEEDED if tries >= self._max_tries else Result.PIN_WRONG)
        return Vote.STOP

    async def _verify(self, ctx: TxnContext, change: bool, pik_lmk: str, offset: str) -> bool:
        assert ctx.request is not None
        fields = ctx.request.fields
        if not change:
            ok: bool = await self._hsm.verify_pin(pik_lmk, fields["52"], ctx.pan, offset, self._pvk)
            return ok
        new_offset = await self._hsm.change_pin(pik_lmk, fields["52"], fields["62"], ctx.pan, offset, self._pvk)
        if new_offset is None:
            return False
        ctx.log_extra["pin_changed"] = True
        ctx.reply_fields.pop("62", None)
        ctx.new_pin_offset = new_offset
        return True

    async def _attempt(self, ctx: TxnContext, change: bool, pik_lmk: str, offset: str) -> tuple[bool, bool]:
        """``(right, block_error)``: a PIN block the HSM cannot use is not a wrong PIN (RC 99, not counted)."""
        try:
            return await self._verify(ctx, change, pik_lmk, offset), False
        except PinBlockError:
            return False, True

    async def _recheck(self, ctx: TxnContext, change: bool, used: tuple[str, str]) -> tuple[bool, bool] | None:
        """A PIN that failed (wrong, or a block the key cannot decipher), tried again if the terminal's PIK or
        the card's offset changed since their refs were read (a sign-on or PIN change through another process
        within the cache bound); ``None`` when nothing changed (the first verdict stands)."""
        term = await self._ledger.terminal(ctx.tid, fresh=True)
        card = await self._ledger.card(ctx.pan, fresh=True)
        if term is None or card is None:
            return None
        ctx.card = card
        pik = term.pik_lmk or used[0]  # the MAC verdict (same sign-on's MAK) still decides acceptance
        if (pik, card.pin_offset) == used:
            return None
        ctx.pik_lmk = pik
        return await self._attempt(ctx, change, pik, card.pin_offset)
