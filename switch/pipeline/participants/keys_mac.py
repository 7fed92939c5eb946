"""Rule 3: working keys and the request MAC (``A0``).

No valid working keys (never signed on, keys rotated, or invalidated after ``mac_max_failures``
consecutive MAC failures) → ``A0`` and the header asks for a new sign-on. Otherwise the MAC is verified in
the HSM *concurrently* with the next rules (type, duplicate, card, PIN verification): every step with a
durable side effect (PIN try counter, ledger) first passes :func:`mac_gate`, and a decline decided
meanwhile waits for the verdict in the manager, so the answer is exactly as if rule 3 had run to the end
first. A wrong or absent MAC counts a consecutive failure on the terminal; the ``mac_max_failures``-th
also sets header processing requirement ``3`` (and the ledger drops the keys).
"""

from __future__ import annotations

import asyncio
import time

from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.pipeline.results import Result
from switch.telemetry import logs


async def mac_gate(ctx: TxnContext) -> bool:
    """Wait for the request MAC verdict; on a wrong MAC record ``A0`` (replacing any decline) and say no."""
    if ctx.mac_ok is None:
        task = ctx.mac_task
        if task is None:
            return True
        ctx.mac_ok = await task
    if not ctx.mac_ok:
        ctx.rc = None
        ctx.result = None
        ctx.no_reply_mac = True
        ctx.decline(Result.MAC_WRONG)
    return ctx.mac_ok


def _chain(done: asyncio.Future[bool], outcome: asyncio.Future[bool]) -> None:
    if outcome.done():
        if not done.cancelled():
            done.exception()  # retrieved: the request no longer waits for it
        return
    if done.cancelled():
        outcome.cancel()
    elif done.exception() is not None:
        outcome.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        outcome.set_result(done.result())


class KeysMac:
    name = "keys_mac"
    bucket = "mac"

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._hsm = deps.hsm
        #: the HSM's task-free M8 (the real adapter has it; test fakes may not)
        self._nowait = getattr(deps.hsm, "verify_mac_nowait", None)
        self._tasks: set[asyncio.Future[bool]] = set()
        self._ledger = deps.store
        self._mac_max = deps.program.mac_max_failures
        self._log = logs.get_logger("switch.txn")

    async def prepare(self, ctx: TxnContext) -> Vote:
        req = ctx.request
        assert req is not None
        route = ctx.route
        has_mac = "64" in req.fields
        if not (route.mac if route is not None else has_mac):
            return Vote.CONTINUE
        if not ctx.mak_lmk:
            ctx.require_signon = True
            ctx.no_reply_mac = True
            ctx.decline(Result.NO_WORKING_KEYS)
            return Vote.STOP
        if not has_mac or not req.mac_data:
            await self._failed(ctx)
            ctx.no_reply_mac = True
            ctx.decline(Result.MAC_MISSING)
            return Vote.STOP
        mac = bytes.fromhex(req.fields["64"])
        verdict = self._nowait(ctx.mak_lmk, req.mac_data, mac) if self._nowait is not None else None
        if verdict is None:
            ctx.mac_task = asyncio.ensure_future(self._verify(ctx, mac))
            return Vote.CONTINUE
        # the common case needs no task: the HSM's verdict resolves ctx.mac_task from a callback; a wrong MAC
        # (recheck, failure count) or a right one after failures (count reset) continues in a task
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        ctx.mac_task = outcome
        t = time.perf_counter()

        def on_verdict(f: asyncio.Future[bool]) -> None:
            ctx.add_time("mac", time.perf_counter() - t)
            if outcome.done():
                return
            if f.cancelled():
                outcome.cancel()
            elif f.exception() is not None:
                outcome.set_exception(f.exception())  # type: ignore[arg-type]
            elif f.result() and not ctx.terminal.mac_failures:
                outcome.set_result(True)
            else:
                task = asyncio.ensure_future(self._after(ctx, mac, f.result()))
                self._tasks.add(task)  # held until done (the loop keeps only weak references to tasks)
                task.add_done_callback(self._tasks.discard)
                task.add_done_callback(lambda done: _chain(done, outcome))

        verdict.add_done_callback(on_verdict)
        return Vote.CONTINUE

    async def _after(self, ctx: TxnContext, mac: bytes, ok: bool) -> bool:
        """What follows a verdict besides "right, no failures counted": see :meth:`_verify`."""
        if not ok:
            ok = await self._recheck(ctx, mac)
        if ok:
            if ctx.terminal.mac_failures:
                await self._ledger.mac_success(ctx.tid)
        else:
            await self._failed(ctx)
        return ok

    async def _verify(self, ctx: TxnContext, mac: bytes) -> bool:
        assert ctx.request is not None
        t = time.perf_counter()
        try:
            ok: bool = await self._hsm.verify_mac(ctx.mak_lmk, ctx.request.mac_data, mac)
            if not ok:
                ok = await self._recheck(ctx, mac)
        finally:
            ctx.add_time("mac", time.perf_counter() - t)
        if ok:
            if ctx.terminal.mac_failures:
                await self._ledger.mac_success(ctx.tid)
        else:
            await self._failed(ctx)
        return ok

    async def _recheck(self, ctx: TxnContext, mac: bytes) -> bool:
        """Before a failure counts: the terminal's keys as the ledger has them now. The ref used may be up to
        ``database.refdata_ttl_ms`` old, and the terminal may have signed on meanwhile (e.g. through another
        worker): a MAC under its new MAK is right."""
        assert ctx.request is not None
        term = await self._ledger.terminal(ctx.tid, fresh=True)
        if term is None:
            return False
        ctx.terminal = term
        if not (term.mak_lmk and term.pik_lmk) or term.mak_lmk == ctx.mak_lmk:
            return False
        ctx.mak_lmk, ctx.pik_lmk = term.mak_lmk, term.pik_lmk
        ok: bool = await self._hsm.verify_mac(ctx.mak_lmk, ctx.request.mac_data, mac)
        return ok

    async def _failed(self, ctx: TxnContext) -> None:
        count = await self._ledger.mac_failure(ctx.tid)
        self._deps.metrics.mac_errors.inc()
        if count >= self._mac_max:
            ctx.require_signon = True
        self._log.warning(
            logs.MAC_ERROR, tid=ctx.tid, mid=ctx.mid, stan=ctx.stan, mti=ctx.mti, consecutive=count, peer=ctx.info.peer
        )
