"""PostgreSQL backend (asyncpg): a connection pool, one transaction per operation.

Concurrency: the money rules lock the card row they change (``SELECT ... FOR UPDATE``; several cards in
sorted token order), so two requests on one card serialize and never overdraw it; house accounts carry no
stored balance, so nothing else is a hot row. A duplicate idempotency key hits the journal's unique index
and the caller gets the stored outcome. Deadlocks and serialization failures are retried; a lost
connection or an unreachable server is :class:`StoreUnavailable` (RC 91).

RRNs come from the sequence ``rrn_seq`` (step 100): each process takes a block of 100 numbers at a time, so
RRNs are unique across processes and restarts without a round trip per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from switch.ledger.errors import DuplicateKey, StoreUnavailable
from switch.ledger.migrate import latest_version, pg_version
from switch.ledger.pgbatch import BUSINESS_DAY_LOCK as _BUSINESS_DAY_LOCK
from switch.ledger.pgbatch import PgLookups, PgWriter
from switch.ledger.tx import Row, TxFn

T = TypeVar("T")

#: must match ``INCREMENT BY`` of ``rrn_seq`` (migrations/postgres/0001_init.sql)
RRN_BLOCK = 100
#: shared advisory lock held by every money transaction, exclusive by ``day close`` ("LEDGERDY")
BUSINESS_DAY_LOCK = _BUSINESS_DAY_LOCK
_RETRIES = 5

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # asyncpg's own state errors when a connection is terminated in the middle of an operation
    asyncpg.InternalClientError,
)
_RETRYABLE: tuple[type[BaseException], ...] = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class LedgerConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset statement (a round trip per release, on every
    request's read): the ledger keeps no session state (no SET, no LISTEN, advisory locks are transaction
    scoped, cursors live in transactions); an open transaction is still rolled back by the pool."""

    def get_reset_query(self) -> str:
        return ""


class RrnBlocks:
    """In-process allocator over ``rrn_seq`` blocks."""

    def __init__(self) -> None:
        self._next = 0
        self._end = 0

    async def next(self, con: Any) -> int:
        if self._next >= self._end:
            start = int(await con.fetchval("SELECT nextval('rrn_seq')"))
            # another coroutine may have refilled meanwhile: the older block's rest is skipped, never reused
            self._next, self._end = start, start + RRN_BLOCK
        value = self._next
        self._next += 1
        return value


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncpg.UniqueViolationError) and getattr(exc, "constraint_name", "") == "journal_idem_key_key":
        return DuplicateKey("")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"PostgreSQL ledger unavailable: {type(exc).__name__}")
    return exc


class PgTx:
    """:class:`~switch.ledger.tx.Tx` over one asyncpg connection."""

    dialect = "postgres"

    def __init__(self, con: Any, rrns: RrnBlocks) -> None:
        self._con = con
        self._rrns = rrns
        self.memo: dict[Any, Any] = {}
        self._last_closed: tuple[int | None] | None = None

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            row: Row | None = await self._con.fetchrow(sql, *args)
        except Exception as exc:
            raise _translate(exc) from None
        return row

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self._con.fetch(sql, *args))
        except Exception as exc:
            raise _translate(exc) from None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._con.fetchval(sql, *args)
        except Exception as exc:
            raise _translate(exc) from None

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            status = await self._con.execute(sql, *args)
        except Exception as exc:
            raise _translate(exc) from None
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._con.executemany(sql, list(rows))
        except Exception as exc:
            raise _translate(exc) from None

    async def next_rrn(self) -> int:
        try:
            return await self._rrns.next(self._con)
        except Exception as exc:
            raise _translate(exc) from None

    def known_last_closed(self, value: int | None) -> None:
        """The last closed date as read under the shared day-close lock by a statement of this transaction."""
        self._last_closed = (None if value is None else int(value),)

    async def last_closed(self) -> int | None:
        if self._last_closed is None:
            value = await self.fetchval(
                "SELECT last_closed FROM business_day, pg_advisory_xact_lock_shared($1) WHERE id = 1",
                BUSINESS_DAY_LOCK,
            )
            self._last_closed = (None if value is None else int(value),)
        return self._last_closed[0]

    def ts(self, value: datetime) -> Any:
        return value


class PostgresBackend:
    """Pool + transaction runner with retries (see module docstring)."""

    def __init__(
        self, dsn: str, *, pool_size: int = 8, acquire_timeout_s: float = 5.0, group_commit_max: int = 64
    ) -> None:
        self._dsn = dsn
        self._pool_size = max(1, pool_size)
        self._acquire_timeout_s = acquire_timeout_s
        self._pool: Any = None
        self._rrns = RrnBlocks()
        self._group_commit_max = group_commit_max
        #: POS operations in group commits (switch.ledger.pgbatch); None: one transaction each
        self.writer: PgWriter | None = None
        #: the per-request duplicate/card reads of concurrent requests coalesced (switch.ledger.pgbatch)
        self.lookups = PgLookups(self._fetch_all)

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=30,
                connection_class=LedgerConnection,
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL ledger: {type(exc).__name__}") from None
        async with self._pool.acquire() as con:
            have, need = await pg_version(con), latest_version("postgres")
        if have != need:
            await self.close()
            raise StoreUnavailable(
                f"ledger schema is at version {have}, this switch needs {need}: run `switch db init`"
            )
        if self._group_commit_max > 1:
            self.writer = PgWriter(self._batch, self.write, self._rrns, group_commit_max=self._group_commit_max)
            self.writer.start()

    async def write_op(self, fn: TxFn[T], card_token: str = "", key: str = "", mid: str = "") -> T:
        """A POS operation with idempotency key ``key``: in the next group commit (locking ``card_token``'s row
        and reading merchant ``mid``'s terms up front with the others'); :class:`DuplicateKey` if ``key`` is
        journaled already."""
        if self.writer is None:
            return await self.write(fn)
        return await self.writer.submit(fn, card_token, key, mid)

    @contextlib.asynccontextmanager
    async def _batch(self) -> AsyncIterator[tuple[Any, PgTx]]:
        """One connection and transaction for a group commit (released quietly once committed, as in
        :meth:`_transaction`)."""
        con = await self._pool.acquire(timeout=self._acquire_timeout_s)
        try:
            async with con.transaction():
                yield con, PgTx(con, self._rrns)
        finally:
            with contextlib.suppress(Exception):
                await self._pool.release(con)

    async def write(self, fn: TxFn[T]) -> T:
        for attempt in range(_RETRIES):
            try:
                return await self._transaction(fn)
            except _RETRYABLE:
                await asyncio.sleep(0.001 * (attempt + 1))
                continue
            except (DuplicateKey, StoreUnavailable):
                raise
            except Exception as exc:
                err = _translate(exc)
                if err is exc:
                    raise
                raise err from None
        raise StoreUnavailable("PostgreSQL ledger: too many conflicts, giving up")

    async def _transaction(self, fn: TxFn[T]) -> T:
        """One transaction. Its result stands once committed: a connection lost while it goes back to the pool
        (terminated backend, network) changes nothing (the pool replaces it), so it must not turn a committed
        approval into an error answer."""
        con = await self._pool.acquire(timeout=self._acquire_timeout_s)
        try:
            async with con.transaction():
                return await fn(PgTx(con, self._rrns))
        finally:
            with contextlib.suppress(Exception):
                await self._pool.release(con)

    async def read(self, fn: TxFn[T], *, snapshot: bool = False) -> T:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout_s) as con:
                if not snapshot:
                    return await fn(PgTx(con, self._rrns))
                async with con.transaction(isolation="repeatable_read", readonly=True):
                    return await fn(PgTx(con, self._rrns))
        except (DuplicateKey, StoreUnavailable):
            raise
        except Exception as exc:
            err = _translate(exc)
            if err is exc:
                raise
            raise err from None

    async def _fetch_all(self, sql: str, *args: Any) -> list[Any]:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout_s) as con:
                return list(await con.fetch(sql, *args))
        except Exception as exc:
            err = _translate(exc)
            if err is exc:
                raise
            raise err from None

    async def find_reply_and_card(self, key: str, token: str) -> Row | None:
        """The row of ``operations.FIND_REPLY_AND_CARD_SQL`` for ``key``/``token``, read together with those of
        other requests waiting at the same time (:class:`~switch.ledger.pgbatch.PgLookups`)."""
        row: Row | None = await self.lookups.lookup(key, token)
        return row

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """One row of a single read statement (acquire, query, release)."""
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout_s) as con:
                row: Row | None = await con.fetchrow(sql, *args)
        except Exception as exc:
            err = _translate(exc)
            if err is exc:
                raise
            raise err from None
        return row

    async def stream(self, sql: str, args: Sequence[Any], batch_size: int) -> AsyncIterator[list[Row]]:
        """Rows of a long query in batches through a server-side cursor (one consistent snapshot)."""
        try:
            async with (
                self._pool.acquire(timeout=self._acquire_timeout_s) as con,
                con.transaction(isolation="repeatable_read", readonly=True),
            ):
                cur = await con.cursor(sql, *args)
                while True:
                    rows = await cur.fetch(batch_size)
                    if not rows:
                        break
                    yield list(rows)
        except Exception as exc:
            err = _translate(exc)
            if err is exc:
                raise
            raise err from None

    async def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await writer.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except _UNAVAILABLE:
                pool.terminate()
