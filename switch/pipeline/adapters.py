"""The engine's ports (:mod:`switch.pipeline.ports`) over the real services, plus what the engine adds on top:
HSM and ledger latency metrics, and the reference-data cache (:mod:`switch.pipeline.refcache`).

- :class:`HsmAdapter` over :class:`switch.hsm.client.HsmClient`;
- :class:`LedgerAdapter` over the ``switch.ledger`` store;
- :func:`open_services` builds both (and the clock) from a :class:`SwitchConfig` for
  :func:`switch.pipeline.factory.build_pipeline_handler`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from switch.config import SwitchConfig
from switch.hsm.connect import hsm_client
from switch.hsm.dev import DEV_PVK_LMK
from switch.hsm.errors import HsmError, HsmUnavailable
from switch.ledger import StoreUnavailable, open_store
from switch.ledger.clock import CalendarClock
from switch.pipeline.deps import Deps
from switch.pipeline.ports import CardRef, MerchantRef, PinBlockError, StoredReply, TerminalRef, WorkingKeys
from switch.pipeline.refcache import RefCache
from switch.telemetry.metrics import Metrics

_perf = time.perf_counter

#: payShield error codes meaning "the PIN block cannot be used" (RC 99 rather than 96)
PIN_BLOCK_ERRORS = frozenset({"20", "23", "24"})


class HsmAdapter:
    """HSM commands the engine uses, timed into ``switch_hsm_latency_seconds{command}``."""

    def __init__(self, client: Any, metrics: Metrics, hsm_error: type[BaseException]) -> None:
        self._c = client
        self._latency = metrics.hsm_latency
        self._errors = metrics.hsm_errors
        self._hsm_error = hsm_error

    async def _timed(self, command: str, aw: Awaitable[Any]) -> Any:
        t = _perf()
        try:
            return await aw
        except BaseException as exc:
            self._errors.inc(command=command, kind=type(exc).__name__)
            raise
        finally:
            self._latency.observe(_perf() - t, command=command)

    # the three commands of every purchase: timed inline (no wrapping coroutine per call)
    async def verify_mac(self, mak_lmk: str, data: bytes, mac: bytes) -> bool:
        t = _perf()
        try:
            ok: bool = await self._c.verify_mac(mak_lmk, data, mac)
        except BaseException as exc:
            self._errors.inc(command="M8", kind=type(exc).__name__)
            raise
        finally:
            self._latency.observe(_perf() - t, command="M8")
        return ok

    def verify_mac_nowait(self, mak_lmk: str, data: bytes, mac: bytes) -> asyncio.Future[bool] | None:
        """M8 sent now; the verdict as a future (``None``: use :meth:`verify_mac`). Timed like the others."""
        fut: asyncio.Future[bool] | None = self._c.verify_mac_nowait(mak_lmk, data, mac)
        if fut is None:
            return None
        t = _perf()

        def observe(f: asyncio.Future[bool]) -> None:
            self._latency.observe(_perf() - t, command="M8")
            if not f.cancelled() and f.exception() is not None:
                self._errors.inc(command="M8", kind=type(f.exception()).__name__)

        fut.add_done_callback(observe)
        return fut

    async def generate_mac(self, mak_lmk: str, data: bytes) -> bytes:
        t = _perf()
        try:
            mac: bytes = await self._c.generate_mac(mak_lmk, data)
        except BaseException as exc:
            self._errors.inc(command="M6", kind=type(exc).__name__)
            raise
        finally:
            self._latency.observe(_perf() - t, command="M6")
        return mac

    def _pin_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._hsm_error) and str(getattr(exc, "code", "")) in PIN_BLOCK_ERRORS

    async def verify_pin(self, pik_lmk: str, pin_block: str, pan: str, offset: str, pvk: str) -> bool:
        t = _perf()
        try:
            ok: bool = await self._c.verify_pin_ibm(pik_lmk, pvk, pin_block, pan, offset)
        except BaseException as exc:
            self._errors.inc(command="DA", kind=type(exc).__name__)
            if isinstance(exc, Exception) and self._pin_error(exc):
                raise PinBlockError("PIN block") from None
            raise
        finally:
            self._latency.observe(_perf() - t, command="DA")
        return ok

    async def change_pin(
        self, pik_lmk: str, pin_block: str, new_pin_block: str, pan: str, offset: str, pvk: str
    ) -> str | None:
        try:
            new_offset: str | None = await self._timed(
                "DU", self._c.pin_change_ibm(pik_lmk, pvk, pin_block, new_pin_block, pan, offset)
            )
        except Exception as exc:
            if self._pin_error(exc):
                raise PinBlockError("PIN block") from None
            raise
        return new_offset

    async def working_keys(self, tmk_lmk: str, with_tdk: bool) -> WorkingKeys:
        gen = self._c.generate_key_under_tmk
        jobs = [
            self._timed("A0", gen("TPK", "U", tmk_lmk)),
            self._timed("A0", gen("TAK", "Z", tmk_lmk)),
        ]
        if with_tdk:
            jobs.append(self._timed("A0", gen("TDK", "U", tmk_lmk)))
        keys = await asyncio.gather(*jobs)
        pik, mak = keys[0], keys[1]
        tdk = keys[2] if with_tdk else None
        return WorkingKeys(
            pik.key_lmk,
            bytes.fromhex(pik.key_tmk),
            bytes.fromhex(pik.kcv)[:4],
            mak.key_lmk,
            bytes.fromhex(mak.key_tmk),
            bytes.fromhex(mak.kcv)[:4],
            tdk.key_lmk if tdk else "",
            bytes.fromhex(tdk.key_tmk) if tdk else b"",
            bytes.fromhex(tdk.kcv)[:4] if tdk else b"",
        )


class LedgerAdapter:
    """The ledger store with its durable operations timed into ``switch_ledger_commit_seconds{op}``, and the
    reference reads served from a :class:`~switch.pipeline.refcache.RefCache` (``fresh=True`` reads through).

    Every durable operation of this process that changes a ref drops it from the cache *after* the write
    (sign-on, MAC-failure counter, PIN tries, PIN change), so a later request never sees this process's own
    change late. Other reads go straight through (``__getattr__``).
    """

    def __init__(self, store: Any, metrics: Metrics, cache: RefCache | None = None) -> None:
        self._store = store
        self._commit = metrics.ledger_commit
        self.cache = cache if cache is not None else RefCache(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _timed(self, op: str, aw: Awaitable[Any]) -> Any:
        t = _perf()
        try:
            return await aw
        finally:
            self._commit.observe(_perf() - t, op=op)

    # -- reference data ----------------------------------------------------------------------------------
    async def terminal(self, tid: str, *, fresh: bool = False) -> TerminalRef | None:
        if fresh:
            self.cache.terminals.drop(tid)
        ref: TerminalRef | None = await self.cache.terminals.get(tid, self._store.terminal)
        return ref

    async def merchant(self, mid: str) -> MerchantRef | None:
        ref: MerchantRef | None = await self.cache.merchants.get(mid, self._store.merchant)
        return ref

    async def card(self, pan: str, *, fresh: bool = False) -> CardRef | None:
        token = self._store.token(pan)
        if fresh:
            self.cache.cards.drop(token)
        ref: CardRef | None = await self.cache.cards.get(token, self._store.card_by_token)
        return ref

    async def find_reply_card(
        self, dup_key: tuple[str, ...], pan: str
    ) -> tuple[StoredReply | None, CardRef | None, bool]:
        """The duplicate lookup, and the card ref when it is not cached: ``(stored, card, card_read)``;
        ``card_read`` says the ref was read with it (fresh, one statement for both), else ``card`` is None."""
        cards = self.cache.cards
        token = self._store.token(pan)
        if cards.peek(token) is not None:
            return await self._store.find_reply(dup_key), None, False
        gen = cards.generation()
        stored, card = await self._store.find_reply_and_card(dup_key, token)
        if card is not None:
            cards.put(token, card, gen)
        return stored, card, True

    # -- durable updates -----------------------------------------------------------------------------------
    async def execute(self, req: Any) -> Any:
        try:
            return await self._timed(req.kind, self._store.execute(req))
        finally:
            if req.card_token and (req.kind == "pinchange" or req.pin_ok):
                self.cache.cards.drop(req.card_token)  # offset, status or PIN tries may have changed

    async def execute_early(self, req: Any) -> tuple[Any, Awaitable[None] | None]:
        """:meth:`execute` with the outcome possibly before its commit is durable (see the store)."""
        t = _perf()
        drop = bool(req.card_token) and (req.kind == "pinchange" or req.pin_ok)
        try:
            out, durable = await self._store.execute_early(req)
        except BaseException:
            self._commit.observe(_perf() - t, op=req.kind)
            if drop:
                self.cache.cards.drop(req.card_token)
            raise
        if durable is None:
            self._commit.observe(_perf() - t, op=req.kind)
            if drop:
                self.cache.cards.drop(req.card_token)
            return out, None

        def committed(f: Any) -> None:
            if not f.cancelled():
                f.exception()  # retrieved here: the request may be gone (cancelled) before it waits for it
            self._commit.observe(_perf() - t, op=req.kind)
            if drop:
                self.cache.cards.drop(req.card_token)  # again: a read between outcome and commit saw the old row

        if drop:
            self.cache.cards.drop(req.card_token)
        durable.add_done_callback(committed)
        return out, durable

    async def signon(self, tid: str, keys: WorkingKeys) -> tuple[str, str]:
        try:
            out: tuple[str, str] = await self._timed("signon", self._store.signon(tid, keys))
        finally:
            self.cache.terminals.drop(tid)
        return out

    async def pin_result(self, card_token: str, ok: bool, max_tries: int) -> int:
        try:
            n: int = await self._timed("pin_result", self._store.pin_result(card_token, ok, max_tries))
        finally:
            self.cache.cards.drop(card_token)
        return n

    async def mac_failure(self, tid: str) -> int:
        try:
            n: int = await self._timed("mac_failure", self._store.mac_failure(tid))
        finally:
            self.cache.terminals.drop(tid)
        return n

    async def mac_success(self, tid: str) -> None:
        try:
            await self._timed("mac_success", self._store.mac_success(tid))
        finally:
            self.cache.terminals.drop(tid)


async def open_services(config: SwitchConfig, metrics: Metrics, closers: list[Callable[[], Awaitable[Any]]]) -> Deps:
    """Open the ledger store and the HSM client configured in ``config``; register their closers.

    An unreachable HSM does not stop start-up (requests answer 96 until it is back; the client reconnects
    with backoff); an unusable database does (``switch db init`` first).
    """
    program = config.program
    clock = CalendarClock.from_config(program)
    db = config.database
    store = await open_store(
        db.dsn,
        token_key=config.security.pan_token_key,
        program=program,
        clock=clock,
        synchronous=db.sqlite_synchronous.upper(),
        group_commit_max=db.group_commit_max,
        pool_size=db.pool_size,
    )
    closers.append(store.close)
    hsm_cfg = config.hsm
    client = hsm_client(hsm_cfg)  # plain TCP, or TLS with the [hsm] tls_* keys
    await client.start()
    closers.append(client.close)
    return Deps(
        program,
        LedgerAdapter(store, metrics, RefCache(db.refdata_ttl_ms / 1000.0)),
        HsmAdapter(client, metrics, HsmError),
        clock,
        metrics,
        pvk_lmk=hsm_cfg.pvk_lmk or DEV_PVK_LMK,
        acquirer_id=program.bins[0],
        hsm_unavailable_errors=(HsmUnavailable,),
        hsm_errors=(HsmError,),
        ledger_unavailable_errors=(StoreUnavailable,),
    )
