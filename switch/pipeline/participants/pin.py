"""Rule 7: the PIN (when the type requires it). Wrong → ``55``; the ``pin_max_tries``-th consecutive wrong
PIN locks the card and answers ``75``; a right PIN resets the counter; counter changes are committed at once
(even when the request is declined later). A PIN block the HSM cannot decipher → ``99`` (no count).

The PIN is verified in the HSM (``DA``; PIN change: ``DU``, which also yields the new PIN's offset) while
the request MAC verification may still be running; the counter is only touched once the MAC is known good.
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
        try:
            if route.pin == "change":
                new_offset = await self._hsm.change_pin(
                    ctx.pik_lmk, fields["52"], fields["62"], ctx.pan, card.pin_offset, self._pvk
                )
                ok = new_offset is not None
                if ok:
                    ctx.log_extra["pin_changed"] = True
                    ctx.reply_fields.pop("62", None)
                    ctx.new_pin_offset = new_offset or ""
            else:
                ok = await self._hsm.verify_pin(ctx.pik_lmk, fields["52"], ctx.pan, card.pin_offset, self._pvk)
        except PinBlockError:
            if await mac_gate(ctx):
                ctx.decline(Result.PIN_BLOCK_INVALID)
            return Vote.STOP
        if not await mac_gate(ctx):
            return Vote.STOP
        if ok:
            if card.pin_tries:
                await self._ledger.pin_result(card.token, True, self._max_tries)
            return Vote.CONTINUE
        tries = await self._ledger.pin_result(card.token, False, self._max_tries)
        ctx.decline(Result.PIN_TRIES_EXCEEDED if tries >= self._max_tries else Result.PIN_WRONG)
        return Vote.STOP
