"""SQLite backend: WAL, ``synchronous=FULL`` by default, one writer with group commit.

Writes: every operation is queued to one writer (a task on the event loop) that owns the write connection.
It takes whatever is queued (up to ``group_commit_max``, and for at most a few milliseconds), runs the
operations back to back in one transaction, each inside a SAVEPOINT (one failing operation does not spoil
the others), commits once (the fsync runs on a helper thread while new operations queue up), and only then
resolves each caller's future: no caller learns its result before the commit that made it durable. Reads
run on a second connection, inline as well (WAL readers never wait for the writer, and a read takes
microseconds, far less than a hop to a thread and back).

The money rules are ``async`` functions over :class:`~switch.ledger.tx.Tx`; here every ``Tx`` method is
synchronous underneath, so they are driven to completion with :func:`run_sync` without suspending.
One process owns an SQLite ledger (other processes, e.g. the back-office CLI, take the write lock briefly;
the writer then waits for it off the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from switch.ledger.errors import DuplicateKey, StoreUnavailable
from switch.ledger.migrate import connect_sqlite, latest_version, sqlite_version
from switch.ledger.tx import Row, TxFn

T = TypeVar("T")

_PARAM = re.compile(r"\$(\d+)")
_UNAVAILABLE_HINTS = ("locked", "busy", "disk i/o", "full", "readonly", "unable to open", "not a database")


def run_sync(aw: Awaitable[T]) -> T:
    """Run an awaitable that never suspends (our SQLite ``Tx`` never does) to completion."""
    it = aw.__await__()
    try:
        next(it)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    close = getattr(it, "close", None)
    if close is not None:
        close()
    raise RuntimeError("an SQLite ledger operation tried to suspend")


def translate_error(exc: sqlite3.Error) -> Exception:
    """sqlite3 errors → the ledger's: duplicate idempotency key, store unavailable, or the error itself."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.IntegrityError) and "journal.idem_key" in text:
        return DuplicateKey("")
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and any(h in text for h in _UNAVAILABLE_HINTS):
        return StoreUnavailable(f"SQLite ledger unavailable: {type(exc).__name__}")
    return exc


class SqliteTx:
    """:class:`~switch.ledger.tx.Tx` over one sqlite3 connection (inside the caller's transaction)."""

    dialect = "sqlite"
    _sql_cache: dict[str, str] = {}  # noqa: RUF012 - shared translation cache, append-only

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con
        #: one cursor for every statement of this transaction (results are always read before the next one)
        self._cur = con.cursor()
        self.memo: dict[Any, Any] = {}
        self._ts: tuple[datetime | None, str] = (None, "")
        self._rrn: int | None = None
        self._rrn_stored: int | None = None
        self._last_closed: tuple[int | None] | None = None

    @classmethod
    def _sql(cls, sql: str) -> str:
        out = cls._sql_cache.get(sql)
        if out is None:
            out = _PARAM.sub(r"?\1", sql).replace(" FOR UPDATE", "")
            cls._sql_cache[sql] = out
        return out

    def _run(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._cur.execute(self._sql(sql), args)
        except sqlite3.Error as exc:
            raise translate_error(exc) from None

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self._run(sql, args).fetchone()
        return row

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self._run(sql, args).fetchall()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = self._run(sql, args).fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> int:
        return self._run(sql, args).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._con.executemany(self._sql(sql), rows)
        except sqlite3.Error as exc:
            raise translate_error(exc) from None

    async def next_rrn(self) -> int:
        if self._rrn is None:
            self._rrn = int(self._run("SELECT value FROM counters WHERE name = 'rrn'", ()).fetchone()[0])
            self._rrn_stored = self._rrn
        self._rrn += 1
        return self._rrn

    async def last_closed(self) -> int | None:
        if self._last_closed is None:
            row = self._run("SELECT last_closed FROM business_day WHERE id = 1", ()).fetchone()
            self._last_closed = (None if row is None or row[0] is None else int(row[0]),)
        return self._last_closed[0]

    def ts(self, value: datetime) -> Any:
        last, text = self._ts
        if value is not last:  # the operations of a transaction share one clock reading: format it once
            text = value.isoformat()
            self._ts = (value, text)
        return text

    def flush(self) -> None:
        """Write back what this transaction keeps in memory (the RRN counter); call before COMMIT."""
        if self._rrn is not None and self._rrn != self._rrn_stored:
            self._run("UPDATE counters SET value = $1 WHERE name = 'rrn'", (self._rrn,))
            self._rrn_stored = self._rrn


_Item = tuple[TxFn[Any], "asyncio.Future[Any]"]
CommitObserver = Callable[[float, int, list[Any]], None]
#: a batch stops taking more operations once it has run this long (keeps the event loop responsive)
BATCH_BUDGET_S = 0.004


class SqliteWriter:
    """The single writer (see module docstring). ``submit(fn)`` → awaitable result of ``fn(tx)``.

    It runs as a task on the event loop: the operations of a batch execute inline (microseconds each, no
    thread hop, no GIL ping-pong with the loop), while the two steps that may wait on the disk or on another
    process's lock run on a dedicated thread: ``COMMIT`` (the fsync of ``synchronous=FULL``) and, only if the
    write lock is busy, ``BEGIN IMMEDIATE``. New operations queue meanwhile and form the next batch.
    """

    def __init__(
        self, path: Path, *, synchronous: str, group_commit_max: int, on_commit: CommitObserver | None = None
    ) -> None:
        self._con = connect_sqlite(path, synchronous=synchronous)
        self._con.execute("PRAGMA busy_timeout = 0")  # never wait for a lock on the event loop's thread
        # checkpoints run on the Checkpointer's thread; this one only if the WAL ever grows far (safety net)
        self._con.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}")
        self._fsync = self.synchronous >= 2  # FULL/EXTRA: COMMIT waits for the disk
        self._max = max(1, group_commit_max)
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-commit")
        self._on_commit = on_commit
        self._closing = False
        #: how long BEGIN waits for another process's write lock before giving up (StoreUnavailable)
        self._begin_waiting_timeout_ms = 10000
        #: a batch stops taking more operations once it has run this long (seconds)
        self.batch_budget_s = BATCH_BUDGET_S
        self.batches = 0
        self.operations = 0
        #: result future -> its "durable" future, for operations submitted with :meth:`submit_early`
        self._durable: dict[asyncio.Future[Any], asyncio.Future[None]] = {}

    @property
    def synchronous(self) -> int:
        return int(self._con.execute("PRAGMA synchronous").fetchone()[0])

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._main(), name="ledger-writer")

    def submit(self, fn: TxFn[T]) -> asyncio.Future[T]:
        if self._closing or self._wakeup is None:
            raise StoreUnavailable("SQLite ledger is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut))
        self._wakeup.set()
        return fut

    def submit_early(self, fn: TxFn[T]) -> tuple[asyncio.Future[T], asyncio.Future[None]]:
        """Like :meth:`submit`, but the result comes as soon as the operation has run in its batch, before the
        batch's COMMIT; the second future completes once that COMMIT is durable (``StoreUnavailable`` if it
        failed: then the result never took effect). The caller may prepare its answer meanwhile but must not
        let it out before the second future is done."""
        fut = self.submit(fn)
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._durable[fut] = durable
        return fut, durable

    def _settle_durable(self, futs: Iterable[asyncio.Future[Any]], err: BaseException | None) -> None:
        for fut in futs:
            durable = self._durable.pop(fut, None)
            if durable is not None and not durable.done():
                if err is None:
                    durable.set_result(None)
                else:
                    durable.set_exception(err)

    async def stop(self) -> None:
        """Finish what is queued, then stop and close the connection."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)
        self._con.close()

    # -- the writer task -----------------------------------------------------------------------------------
    async def _main(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Item] = []
            try:
                await self._run_batch(batch)
            except Exception as exc:  # pragma: no cover - a bug in the writer itself: fail the batch, go on
                err = StoreUnavailable(f"SQLite ledger writer failed ({type(exc).__name__})")
                _resolve([(fut, False, err) for _fn, fut in batch])
                self._settle_durable((fut for _fn, fut in batch), err)

    async def _begin(self) -> None:
        try:
            self._con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            # another process holds the write lock (e.g. a bulk import): wait for it off the loop
            await asyncio.get_running_loop().run_in_executor(self._pool, self._begin_waiting)

    def _begin_waiting(self) -> None:
        self._con.execute(f"PRAGMA busy_timeout = {int(self._begin_waiting_timeout_ms)}")
        try:
            self._con.execute("BEGIN IMMEDIATE")
        finally:
            self._con.execute("PRAGMA busy_timeout = 0")

    async def _run_batch(self, batch: list[_Item]) -> None:
        con = self._con
        try:
            await self._begin()
        except sqlite3.Error as exc:
            err = translate_error(exc)
            unavailable = err if isinstance(err, StoreUnavailable) else StoreUnavailable("SQLite ledger: BEGIN failed")
            taken = [self._queue.popleft() for _ in range(min(len(self._queue), self._max))]
            _resolve([(fut, False, unavailable) for _fn, fut in taken])
            self._settle_durable((fut for _fn, fut in taken), unavailable)
            return
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            tx = SqliteTx(con)
            # Operations run back to back without a SAVEPOINT each (two statements fewer per operation) until
            # one fails; then the batch so far is rolled back and replayed with one SAVEPOINT per operation,
            # so the failing one is isolated exactly as before (operations are pure functions of the database).
            guarded = False
            deadline = time.perf_counter() + self.batch_budget_s
            while self._queue and len(batch) < self._max:
                item = self._queue.popleft()
                batch.append(item)
                if guarded:
                    results.append(_guarded(con, tx, *item))
                else:
                    try:
                        results.append((item[1], True, run_sync(item[0](tx))))
                    except Exception:
                        con.execute("ROLLBACK")
                        await self._begin()
                        tx = SqliteTx(con)
                        guarded = True
                        results = [_guarded(con, tx, fn, fut) for fn, fut in batch]
                if time.perf_counter() > deadline:
                    break
            tx.flush()
            if self._durable:
                # answers may be prepared while the commit runs (submit_early); they are let out on `durable`
                early = [r for r in results if r[0] in self._durable]
                _resolve(early)
            t0 = time.perf_counter()
            if self._fsync:
                await asyncio.get_running_loop().run_in_executor(self._pool, con.execute, "COMMIT")
            else:
                con.execute("COMMIT")
            elapsed = time.perf_counter() - t0
        except Exception as exc:
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            err = translate_error(exc) if isinstance(exc, sqlite3.Error) else exc
            if not isinstance(err, StoreUnavailable):
                err = StoreUnavailable(f"SQLite ledger: commit failed ({type(exc).__name__})")
            _resolve([(fut, False, err) for _fn, fut in batch])
            self._settle_durable((fut for _fn, fut in batch), err)
            return
        self.batches += 1
        self.operations += len(batch)
        if self._on_commit is not None:
            self._on_commit(elapsed, len(batch), [v for _f, ok, v in results if ok])
        _resolve(results)
        if self._durable:
            self._settle_durable((fut for _fn, fut in batch), None)


def _guarded(
    con: sqlite3.Connection, tx: SqliteTx, fn: TxFn[Any], fut: asyncio.Future[Any]
) -> tuple[asyncio.Future[Any], bool, Any]:
    """Run one operation inside its own SAVEPOINT: a failure undoes only its own effects."""
    con.execute("SAVEPOINT op")
    try:
        value = run_sync(fn(tx))
    except Exception as exc:
        con.execute("ROLLBACK TO op")
        con.execute("RELEASE op")
        return fut, False, exc
    con.execute("RELEASE op")
    return fut, True, value


def _resolve(done: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in done:
        if fut.done():  # the caller gave up (cancelled); the effect is committed all the same
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


#: how often the background checkpointer copies the WAL into the database file
CHECKPOINT_PERIOD_S = 0.25
#: the writer's own automatic checkpoint, kept only as a safety net (the background one keeps the WAL short)
WRITER_AUTOCHECKPOINT_PAGES = 20000


class Checkpointer:
    """WAL checkpoints on a thread of their own, off the writer's path.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL pages: copying pages and
    fsyncing the database file there held the group commit (and every reply waiting for it) for milliseconds,
    several times a second under load. Here a ``PASSIVE`` checkpoint (never blocks the writer) runs every
    ``period_s`` on a connection of its own, with the GIL released in SQLite; the WAL restarts from its
    beginning after each complete one. Durability is unchanged: a checkpoint copies committed frames only, and
    its connection syncs the database file as the configured ``synchronous`` says.
    """

    def __init__(self, path: Path, *, synchronous: str, period_s: float = CHECKPOINT_PERIOD_S) -> None:
        self._con = connect_sqlite(path, synchronous=synchronous)
        self._period = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self.checkpoints = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except sqlite3.Error:
                self.errors += 1  # e.g. disk full: the writer reports it; the next round tries again

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._con.close()


class SqliteBackend:
    """Writer thread + read connection for one database file."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        group_commit_max: int = 64,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._group_commit_max = group_commit_max
        self._on_commit = on_commit
        self.writer: SqliteWriter | None = None
        self.checkpointer: Checkpointer | None = None
        self._reader: sqlite3.Connection | None = None

    def open(self) -> None:
        if not self.path.exists():
            raise StoreUnavailable("SQLite ledger file does not exist: run `switch db init`")
        reader = connect_sqlite(self.path, synchronous=self._synchronous)
        have, need = sqlite_version(reader), latest_version("sqlite")
        if have != need:
            reader.close()
            raise StoreUnavailable(
                f"ledger schema is at version {have}, this switch needs {need}: run `switch db init`"
            )
        reader.execute("PRAGMA query_only = ON")
        self._reader = reader
        self.writer = SqliteWriter(
            self.path, synchronous=self._synchronous, group_commit_max=self._group_commit_max, on_commit=self._on_commit
        )
        self.writer.start()
        self.checkpointer = Checkpointer(self.path, synchronous=self._synchronous)
        self.checkpointer.start()

    async def write(self, fn: TxFn[T]) -> T:
        assert self.writer is not None, "store not open"
        return await self.writer.submit(fn)

    def write_early(self, fn: TxFn[T]) -> tuple[asyncio.Future[T], asyncio.Future[None]]:
        """:meth:`SqliteWriter.submit_early`: the result before the commit, and the commit's durability."""
        assert self.writer is not None, "store not open"
        return self.writer.submit_early(fn)

    async def read(self, fn: TxFn[T], *, snapshot: bool = False) -> T:
        """Run ``fn`` on the read connection; ``snapshot``: all its statements see one consistent state."""
        con = self._reader
        assert con is not None, "store not open"
        if not snapshot:
            return run_sync(fn(SqliteTx(con)))
        try:
            con.execute("BEGIN")
        except sqlite3.Error as exc:
            raise translate_error(exc) from None
        try:
            return run_sync(fn(SqliteTx(con)))
        finally:
            con.execute("COMMIT")

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """One row of ``sql`` on the read connection, inline (no ``Tx``, no coroutine driving: the hot path)."""
        con = self._reader
        assert con is not None, "store not open"
        try:
            row: Row | None = con.execute(SqliteTx._sql(sql), args).fetchone()
        except sqlite3.Error as exc:
            raise translate_error(exc) from None
        return row

    async def stream(self, sql: str, args: Sequence[Any], batch_size: int) -> AsyncIterator[list[Row]]:
        """Rows of a long query in batches, on a connection of its own (one consistent snapshot)."""
        con = connect_sqlite(self.path, synchronous=self._synchronous)
        try:
            con.execute("BEGIN")
            cur = con.execute(SqliteTx._sql(sql), args)
            while True:
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield rows
                await asyncio.sleep(0)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate_error(exc) from None
        finally:
            con.close()

    async def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None
        if self.writer is not None:
            await self.writer.stop()
            self.writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
