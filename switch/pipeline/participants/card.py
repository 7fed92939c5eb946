"""Rule 6: the card. Luhn fails or unknown → ``14``; BIN outside the program's ranges → ``15``; expired
(field 14 or track 2 YYMM) → ``54``; INACTIVE → ``21`` (only PIN change allowed); LOST → ``41``; CLOSED or
FROZEN → ``62``; PIN locked → ``75``.

Order inside the rule: check digit, then BIN, then lookup (an out-of-program BIN is "no such issuer", not an
unknown card of ours). Expiry is compared with the current month in the program's time zone.

The card ref may come from the engine's short-lived cache: a status or PIN-lock decline is decided on a fresh
read (an unfreeze or PIN unlock by the CLI counts at once), and an approval is safe anyway because the
ledger re-checks status and PIN lock on the locked card row.
"""

from __future__ import annotations

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.results import Result
from switch.telemetry.masking import luhn_ok

_STATUS_RESULT = {
    "lost": Result.CARD_LOST,
    "closed": Result.CARD_RESTRICTED,
    "frozen": Result.CARD_RESTRICTED,
}


class CardCheck:
    name = "card"
    bucket = "refdata"

    def __init__(self, deps: Deps) -> None:
        self._ledger = deps.store
        self._bins = tuple(deps.program.bins)
        self._clock = deps.clock
        self._max_tries = deps.program.pin_max_tries

    async def prepare(self, ctx: TxnContext) -> Vote:
        pan = ctx.pan
        if not (pan.isdigit() and luhn_ok(pan)):
            ctx.decline(Result.CARD_LUHN)
            return Vote.STOP
        if not pan.startswith(self._bins):
            ctx.decline(Result.BIN_OUTSIDE_PROGRAM)
            return Vote.STOP
        if ctx.card_read:
            card = ctx.card  # read with the duplicate lookup: fresh
        else:
            card = await self._ledger.card(pan)
            if card is not None and (card.status != "active" or card.pin_tries >= self._max_tries):
                card = await self._ledger.card(pan, fresh=True)
        if card is None:
            ctx.decline(Result.CARD_UNKNOWN)
            return Vote.STOP
        ctx.card = card
        expiry = ctx.expiry or card.expiry
        if expiry < self._clock.now().strftime("%y%m"):
            ctx.decline(Result.CARD_EXPIRED)
            return Vote.STOP
        status = card.status
        if status != "active":
            if status == "inactive":
                route = ctx.route
                if route is None or not route.inactive_ok:
                    ctx.decline(Result.CARD_INACTIVE)
                    return Vote.STOP
            else:
                ctx.decline(_STATUS_RESULT.get(status, Result.CARD_RESTRICTED))
                return Vote.STOP
        if card.pin_tries >= self._max_tries:
            ctx.decline(Result.PIN_LOCKED)
            return Vote.STOP
        return Vote.CONTINUE
