"""Rule 2: unknown terminal → ``97``; terminal/merchant mismatch or merchant not active → ``03``.

Also loads what later rules need from the terminal: its working keys (none → the reply asks the terminal
to sign on again) and its consecutive-MAC-failure count.

Refs may come from the engine's short-lived cache: a decline here (and a terminal without usable keys) is
decided on a fresh read, and sign-on always reads fresh (it needs the current TMK and batch).
"""

from __future__ import annotations

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.ports import TerminalRef
from switch.pipeline.results import Result


class TerminalCheck:
    name = "terminal"
    bucket = "refdata"

    def __init__(self, deps: Deps) -> None:
        self._ledger = deps.store
        self._mac_max = deps.program.mac_max_failures

    def _usable(self, term: TerminalRef) -> bool:
        return bool(term.pik_lmk and term.mak_lmk) and term.mac_failures < self._mac_max

    async def prepare(self, ctx: TxnContext) -> Vote:
        signon = ctx.route is not None and ctx.route.name == "signon"
        ledger = self._ledger
        term = await ledger.terminal(ctx.tid, fresh=signon)
        stale_doubt = term is None or term.mid != ctx.mid or term.status not in ("active", "") or not self._usable(term)
        if stale_doubt and not signon:
            term = await ledger.terminal(ctx.tid, fresh=True)  # a decline is decided on a fresh read
        if term is None:
            ctx.no_reply_mac = True
            ctx.decline(Result.TERMINAL_UNKNOWN)
            return Vote.STOP
        ctx.terminal = term
        if self._usable(term):
            ctx.mak_lmk = term.mak_lmk
            ctx.pik_lmk = term.pik_lmk
        elif not signon:
            ctx.require_signon = True
        if term.mid != ctx.mid:
            ctx.decline(Result.TERMINAL_MERCHANT_MISMATCH)
            return Vote.STOP
        merchant = await ledger.merchant(term.mid)
        if merchant is None or merchant.status != "active":
            ctx.decline(Result.MERCHANT_NOT_ACTIVE)
            return Vote.STOP
        if term.status not in ("active", ""):
            ctx.decline(Result.TERMINAL_NOT_ACTIVE)
            return Vote.STOP
        ctx.merchant = merchant
        return Vote.CONTINUE
