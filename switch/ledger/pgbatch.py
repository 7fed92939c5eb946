"""PostgreSQL group commit: the POS operations queued meanwhile run in one transaction with few round trips.

Every statement through asyncpg is a round trip (~10 per purchase before, plus BEGIN/COMMIT): client and
server CPU per purchase grew with it. :class:`PgWriter` takes the queued operations (up to
``group_commit_max``), and runs them back to back in one transaction through a :class:`PgBatchTx`:

- the card rows of the whole batch are read and locked in one statement, in token order (concurrent
  batches of other workers lock in the same order: no deadlock between them), and the money rules read
  them from memory;
- the rules' writes to those rows and their inserts (balance, daily counters, PIN-try reset, journal rows
  with ids taken from the sequence up front, postings, SMS notices) are applied to the rows in memory and
  queued; they go out as one ``executemany`` per statement (one round trip each) before the COMMIT, or
  before any other statement a rule runs (so every read sees every earlier write: void, refund, reversal
  and settlement read the journal and write what the shortcut does not cover);
- the results are handed out only after the COMMIT.

The rules themselves (:mod:`switch.ledger.operations`) are the same code as on every other path. If
anything fails in a batch (an operation raises, a queued insert hits the idempotency key of a concurrent
retransmission, a conflict), the transaction is rolled back and each operation of the batch is run again
in its own transaction (the path without batching), which gives each its own answer. Deadlocks and
serialization failures are retried there as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from switch.ledger import operations
from switch.ledger.errors import DuplicateKey, StoreUnavailable
from switch.ledger.journal import INSERT_JOURNAL, INSERT_JOURNAL_WITH_ID
from switch.ledger.tx import Row, TxFn

BUSINESS_DAY_LOCK = 0x4C45444745524459  # = postgres.BUSINESS_DAY_LOCK (imported there from here)

T = TypeVar("T")

#: the statements whose effect on the prefetched card rows is applied in memory, and that are then queued
_ACCOUNT_DELTA = "UPDATE accounts SET balance = balance + $1 WHERE id = $2"
_CARD_DAILY = "UPDATE cards SET daily_date = $1, daily_amount = $2, daily_count = $3 WHERE token = $4"
_CARD_PIN_RESET = "UPDATE cards SET pin_tries = 0 WHERE token = $1"
#: plain inserts that nothing in the same batch reads back
_QUEUED_INSERTS = ("INSERT INTO postings ", "INSERT INTO notices ")
#: what a batch needs besides its card rows, in one round trip: ids for its journal rows, the business day's
#: last closed date under the shared day-close lock (open_business_date), and which of its idempotency keys
#: are journaled already (those operations are answered from the journal, not run)
_SCALARS = (
    "(SELECT array_agg(nextval(pg_get_serial_sequence('journal', 'id'))) FROM generate_series(1, $2::int)) AS ids, "
    "(SELECT last_closed FROM business_day, pg_advisory_xact_lock_shared($3) WHERE id = 1) AS last_closed, "
    "(SELECT array_agg(idem_key) FROM journal WHERE idem_key = ANY($4::text[])) AS journaled, "
    "(SELECT array_agg(ARRAY[mid, account_id::text, mdr_bps::text, fee_cap::text, status]) FROM merchants "
    "WHERE mid = ANY($5::text[])) AS merchants"
)
#: ... with the batch's card rows, locked in token order (concurrent batches lock in the same order)
_PREFETCH = (
    operations.CARD_ROW_SQL.replace(" FROM cards c", f", {_SCALARS} FROM cards c", 1)
    + " WHERE c.token = ANY($1::text[]) ORDER BY c.token FOR UPDATE OF c, a"
)
_SCALARS_ONLY = f"SELECT $1::text[] IS NULL, {_SCALARS}"
# the card row's columns (operations.card_row reads them by position)
_BALANCE, _DAILY_DATE, _DAILY_AMOUNT, _DAILY_COUNT, _PIN_TRIES = 3, 4, 5, 6, 11


class PgBatchTx:
    """:class:`~switch.ledger.tx.Tx` of one batch (see the module docstring)."""

    dialect = "postgres"

    def __init__(self, con: Any, rrns: Any, tx: Any) -> None:
        self._con = con
        self._rrns = rrns
        self._tx = tx  # the plain PgTx on the same connection: everything not shortcut goes through it
        self.memo: dict[Any, Any] = {}
        #: token -> the card row (a list, updated in place by the shortcut writes)
        self._cards: dict[str, list[Any]] = {}
        #: card account id -> the same row
        self._accounts: dict[int, list[Any]] = {}
        #: statement -> argument tuples, in the order statements first appeared (journal before postings)
        self._queued: dict[str, list[Sequence[Any]]] = {}
        self._ids: deque[int] = deque()

    async def prepare(self, tokens: Iterable[str], keys: Sequence[str], mids: Iterable[str]) -> set[str]:
        """Lock and read the batch's cards (token order), take ids for its journal rows, read its merchants'
        terms (as ``operations.merchant_terms`` would); the keys of ``keys`` that are journaled already."""
        wanted = sorted({t for t in tokens if t})
        args = (wanted, len(keys), BUSINESS_DAY_LOCK, list(keys), sorted({m for m in mids if m}))
        rows = await self._con.fetch(_PREFETCH, *args) if wanted else []
        for r in rows:
            row = list(r)[:-4]
            self._cards[row[0]] = row
            self._accounts[int(row[2])] = row
        scalars = rows[0][-4:] if rows else tuple((await self._con.fetchrow(_SCALARS_ONLY, *args))[1:])
        ids, last_closed, journaled, merchants = scalars
        self._ids.extend(int(i) for i in ids or ())
        self._tx.known_last_closed(last_closed)
        for mid, account_id, mdr_bps, fee_cap, status in merchants or ():
            self.memo[("merchant", mid)] = (int(account_id), int(mdr_bps), int(fee_cap), status)
        return set(journaled or ())

    async def _take_ids(self, n: int) -> None:
        if n > 0:
            rows = await self._con.fetch(
                "SELECT nextval(pg_get_serial_sequence('journal', 'id')) FROM generate_series(1, $1::int)", n
            )
            self._ids.extend(int(r[0]) for r in rows)

    # -- Tx ------------------------------------------------------------------------------------------------
    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        if sql in (operations.CARD_ROW_SQL_BY_TOKEN, operations.CARD_ROW_SQL_BY_TOKEN_LOCK):
            row = self._cards.get(args[0])
            if row is not None:
                return tuple(row)  # type: ignore[return-value]  # positional like the drivers' rows
        await self.flush()
        row2: Row | None = await self._tx.fetchrow(sql, *args)
        return row2

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        await self.flush()
        return await self._tx.fetch(sql, *args)  # type: ignore[no-any-return]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        if sql == INSERT_JOURNAL:
            if not self._ids:
                await self._take_ids(8)
            jid = self._ids.popleft()
            self._queue(INSERT_JOURNAL_WITH_ID, (jid, *args))
            return jid
        await self.flush()
        return await self._tx.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        if sql == _ACCOUNT_DELTA:
            row = self._accounts.get(args[1])
            if row is not None:
                row[_BALANCE] += args[0]
                self._queue(sql, args)
                return 1
        elif sql == _CARD_DAILY:
            row = self._cards.get(args[3])
            if row is not None:
                row[_DAILY_DATE], row[_DAILY_AMOUNT], row[_DAILY_COUNT] = args[0], args[1], args[2]
                self._queue(sql, args)
                return 1
        elif sql == _CARD_PIN_RESET:
            row = self._cards.get(args[0])
            if row is not None:
                row[_PIN_TRIES] = 0
                self._queue(sql, args)
                return 1
        elif sql.startswith(_QUEUED_INSERTS):
            self._queue(sql, args)
            return 1
        await self.flush()
        n: int = await self._tx.execute(sql, *args)
        return n

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.flush()
        await self._tx.executemany(sql, rows)

    async def next_rrn(self) -> int:
        n: int = await self._tx.next_rrn()
        return n

    async def last_closed(self) -> int | None:
        value: int | None = await self._tx.last_closed()
        return value

    def ts(self, value: datetime) -> Any:
        return value

    # -- queue ---------------------------------------------------------------------------------------------
    def _queue(self, sql: str, args: Sequence[Any]) -> None:
        rows = self._queued.get(sql)
        if rows is None:
            rows = self._queued[sql] = []
        rows.append(args)

    async def flush(self) -> None:
        """Send the queued writes: one ``executemany`` (one round trip) per statement, in first-seen order."""
        queued, self._queued = self._queued, {}
        for sql, rows in queued.items():
            if len(rows) == 1:
                await self._tx.execute(sql, *rows[0])  # one row: a plain execute is cheaper
            else:
                await self._tx.executemany(sql, rows)


#: (operation, its future, card token to lock, idempotency key, merchant id)
_Item = tuple[TxFn[Any], "asyncio.Future[Any]", str, str, str]
Transaction = Callable[[TxFn[Any]], Awaitable[Any]]


class PgWriter:
    """The batch runner (see the module docstring). ``submit(fn, card_token)`` -> awaitable result.

    ``begin`` opens a connection and transaction (an async context manager yielding ``(connection, PgTx)``);
    ``single`` runs one operation in its own transaction (the path without batching, with its retries).
    """

    def __init__(
        self,
        begin: Callable[[], Any],
        single: Transaction,
        rrns: Any,
        *,
        group_commit_max: int = 64,
    ) -> None:
        self._begin = begin
        self._single = single
        self._rrns = rrns
        self._max = max(1, group_commit_max)
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._replays: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.operations = 0
        self.replayed = 0

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._main(), name="ledger-pg-writer")

    def submit(self, fn: TxFn[T], card_token: str, key: str, mid: str = "") -> asyncio.Future[T]:
        if self._closing or self._wakeup is None:
            raise StoreUnavailable("PostgreSQL ledger is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut, card_token, key, mid))
        self._wakeup.set()
        return fut

    async def stop(self) -> None:
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._replays:
            await asyncio.gather(*self._replays, return_exceptions=True)

    async def _main(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max))]
            try:
                await self._run(batch)
            except Exception:  # a batch that failed as a whole: each operation again on its own
                self.replayed += len(batch)
                self._replay(batch)

    async def _run(self, batch: list[_Item]) -> None:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        async with self._begin() as (con, tx):
            btx = PgBatchTx(con, self._rrns, tx)
            keys = [item[3] for item in batch]
            journaled = await btx.prepare((item[2] for item in batch), keys, (item[4] for item in batch))
            for fn, fut, _token, key, _mid in batch:
                if key in journaled:  # a retransmission: answered from the journal by the caller
                    results.append((fut, False, DuplicateKey("")))
                    continue
                if key:
                    journaled.add(key)  # the same key again in this batch is a retransmission too
                results.append((fut, True, await fn(btx)))
            await btx.flush()
        # committed: hand out the results
        self.batches += 1
        self.operations += len(batch)
        for fut, ok, value in results:
            if fut.done():  # the caller gave up (cancelled); the effect is committed all the same
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _replay(self, batch: list[_Item]) -> None:
        """Each operation of a failed batch in its own transaction, in the batch's order."""
        task = asyncio.get_running_loop().create_task(self._one_by_one(batch))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _one_by_one(self, batch: list[_Item]) -> None:
        for fn, fut, *_rest in batch:
            if fut.done():
                continue
            try:
                value = await self._single(fn)
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(value)


#: the duplicate lookup and the card ref of many requests in one statement (row ``i`` answers request ``i``)
_LOOKUP_MANY = (
    "SELECT q.i, j.fingerprint, j.rc, j.reply, c.token, c.expiry, c.status, c.pin_offset, c.pin_tries, c.pvk_ref "
    "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(k, t, i) "
    "LEFT JOIN journal j ON j.idem_key = q.k LEFT JOIN cards c ON c.token = q.t"
)


class PgLookups:
    """Coalesces the per-request read (``operations.FIND_REPLY_AND_CARD_SQL``: duplicate lookup and card ref)
    of the requests that arrive while one read is on its way into the next one statement: under load one
    round trip serves many requests; alone, a request costs the one round trip it did before. The rows have the
    single statement's columns, so ``operations.reply_and_card_of`` reads them unchanged."""

    def __init__(self, fetch: Callable[[str, list[str], list[str]], Awaitable[list[Any]]], max_batch: int = 64) -> None:
        self._fetch = fetch
        self._max = max_batch
        self._queue: deque[tuple[str, str, asyncio.Future[Any]]] = deque()
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.statements = 0
        self.lookups = 0

    def lookup(self, key: str, token: str) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((key, token, fut))
        if not self._running:
            self._running = True
            self._task = asyncio.get_running_loop().create_task(self._drain())  # held: the loop holds tasks weakly
        return fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max))]
                try:
                    rows = await self._fetch(_LOOKUP_MANY, [k for k, _t, _f in batch], [t for _k, t, _f in batch])
                except Exception as exc:
                    for _k, _t, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.statements += 1
                self.lookups += len(batch)
                by_index = {int(r[0]): tuple(r)[1:] for r in rows}
                for i, (_k, _t, fut) in enumerate(batch, 1):
                    if not fut.done():
                        fut.set_result(by_index.get(i))
        finally:
            self._running = False
