"""SQLite group commit: operations queued together share one durable commit, nobody learns a result before
the commit that made it durable, one failing operation does not spoil its batch, FULL is FULL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from switch.ledger import LedgerStore, StoreUnavailable
from switch.ledger.tx import Tx
from tests.ledger.reqs import request
from tests.support.ledger_db import CARD, CARD2, open_test_store, seed, sqlite_ledger


async def _store(tmp_path: Path, **opts: Any) -> tuple[LedgerStore, list[int], Path]:
    sizes: list[int] = []
    dsn = sqlite_ledger(tmp_path)
    store = await open_test_store(dsn, on_commit=lambda _s, size, _r: sizes.append(size), **opts)
    store.backend.writer.batch_budget_s = 60.0  # type: ignore[attr-defined]  # batch by count only here
    await seed(store)
    return store, sizes, Path(dsn.removeprefix("sqlite:///"))


class _OtherProcess:
    """Holds the database's write lock from another connection, as a back-office CLI would."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.con.execute("ROLLBACK")
        self.con.close()


def _durable(path: Path, rrn: str) -> bool:
    """Is the row visible to an independent connection (i.e. committed)?"""
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT 1 FROM journal WHERE rrn = ?", (rrn,)).fetchone() is not None
    finally:
        con.close()


async def test_queued_requests_share_one_commit_and_none_answers_before_it(tmp_path: Path) -> None:
    store, sizes, path = await _store(tmp_path)
    try:
        lock = _OtherProcess(path)
        committed_at_reply: list[bool] = []

        async def one(i: int) -> None:
            out = await store.execute(request("purchase", i, card=CARD, amount=10))
            committed_at_reply.append(_durable(path, out.fields["37"]))

        tasks = [asyncio.ensure_future(one(i)) for i in range(1, 41)]
        await asyncio.sleep(0.1)
        assert not any(t.done() for t in tasks)  # the writer waits for the lock (off the loop): nobody answered
        assert await store.balance(CARD.token) == 50000  # and reads still work meanwhile
        lock.release()
        await asyncio.gather(*tasks)
        assert committed_at_reply == [True] * 40
        assert sizes[-1] == 40  # all forty shared one commit
        assert await store.balance(CARD.token) == 50000 - 400
    finally:
        await store.close()


async def test_group_commit_max_bounds_a_batch(tmp_path: Path) -> None:
    store, sizes, path = await _store(tmp_path, group_commit_max=8)
    try:
        lock = _OtherProcess(path)
        tasks = [asyncio.ensure_future(store.execute(request("purchase", i, card=CARD, amount=1))) for i in range(20)]
        await asyncio.sleep(0.05)
        lock.release()
        await asyncio.gather(*tasks)
        assert sizes[-3:] == [8, 8, 4]
    finally:
        await store.close()


async def test_a_failing_operation_does_not_spoil_its_batch(tmp_path: Path) -> None:
    store, sizes, path = await _store(tmp_path)
    try:
        lock = _OtherProcess(path)

        async def broken(tx: Tx) -> None:
            await tx.execute("UPDATE accounts SET balance = balance + 999 WHERE kind = 'card'")
            raise RuntimeError("boom")

        good1 = asyncio.ensure_future(store.execute(request("purchase", 1, card=CARD, amount=100)))
        bad = asyncio.ensure_future(store.write(broken))
        good2 = asyncio.ensure_future(store.execute(request("purchase", 2, card=CARD2, amount=200)))
        await asyncio.sleep(0.05)
        lock.release()
        assert (await good1).rc == "00" and (await good2).rc == "00"
        with pytest.raises(RuntimeError):
            await bad
        assert sizes[-1] == 3
        assert await store.balance(CARD.token) == 49900
        assert await store.balance(CARD2.token) == 49800
    finally:
        await store.close()


async def test_ledger_locked_too_long_is_store_unavailable(tmp_path: Path) -> None:
    store, _, path = await _store(tmp_path)
    try:
        writer = store.backend.writer  # type: ignore[attr-defined]
        lock = _OtherProcess(path)
        writer._begin_waiting_timeout_ms = 200
        with pytest.raises(StoreUnavailable):
            await store.execute(request("purchase", 1, card=CARD, amount=100))
        lock.release()
        assert (await store.execute(request("purchase", 1, card=CARD, amount=100))).rc == "00"
    finally:
        await store.close()


@pytest.mark.parametrize(("mode", "value"), [("FULL", 2), ("NORMAL", 1)])
async def test_synchronous_mode_is_applied(tmp_path: Path, mode: str, value: int) -> None:
    store = await open_test_store(sqlite_ledger(tmp_path), synchronous=mode)
    try:
        writer = store.backend.writer  # type: ignore[attr-defined]
        assert writer.synchronous == value
        journal_mode = await store.read(lambda tx: tx.fetchval("PRAGMA journal_mode"))
        assert journal_mode == "wal"
    finally:
        await store.close()


async def test_opening_an_uninitialised_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="switch db init"):
        await open_test_store(f"sqlite:///{tmp_path / 'none.db'}")
