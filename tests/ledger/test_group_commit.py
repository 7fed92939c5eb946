"""SQLite group commit: operations queued together share one durable commit, nobody learns a result before
the commit that made it durable, one failing operation does not spoil its batch, FULL is FULL."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from switch.ledger import LedgerStore
from switch.ledger.tx import Tx
from tests.ledger.reqs import request
from tests.support.ledger_db import CARD, CARD2, open_test_store, seed, sqlite_ledger


async def _store(tmp_path: Path, **opts: Any) -> tuple[LedgerStore, list[tuple[int, set[str]]]]:
    commits: list[tuple[int, set[str]]] = []

    def on_commit(_seconds: float, size: int, results: list[Any]) -> None:
        rrns = {r.fields["37"] for r in results if hasattr(r, "fields") and "37" in r.fields}
        commits.append((size, rrns))

    store = await open_test_store(sqlite_ledger(tmp_path), on_commit=on_commit, **opts)
    await seed(store)
    return store, commits


def _block_writer(store: LedgerStore) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Occupy the writer thread until the event is set (so that the next submissions queue up)."""
    gate = threading.Event()

    async def wait(_tx: Tx) -> None:
        gate.wait(10)

    return gate, asyncio.ensure_future(store.write(wait))


async def test_queued_requests_share_one_commit_and_none_answers_before_it(tmp_path: Path) -> None:
    store, commits = await _store(tmp_path)
    try:
        gate, blocker = _block_writer(store)
        await asyncio.sleep(0.05)
        committed_at_reply: list[bool] = []

        async def one(i: int) -> None:
            out = await store.execute(request("purchase", i, card=CARD, amount=10))
            committed_at_reply.append(any(out.fields["37"] in rrns for _, rrns in commits))

        tasks = [asyncio.ensure_future(one(i)) for i in range(1, 41)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in tasks)  # queued behind the blocked writer: nobody answered
        gate.set()
        await asyncio.gather(blocker, *tasks)
        assert committed_at_reply == [True] * 40
        assert max(size for size, _ in commits) == 40  # all forty shared one commit
        assert await store.balance(CARD.token) == 50000 - 400
    finally:
        await store.close()


async def test_group_commit_max_bounds_a_batch(tmp_path: Path) -> None:
    store, commits = await _store(tmp_path, group_commit_max=8)
    try:
        gate, blocker = _block_writer(store)
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(store.execute(request("purchase", i, card=CARD, amount=1))) for i in range(20)]
        await asyncio.sleep(0.02)
        gate.set()
        await asyncio.gather(blocker, *tasks)
        assert [size for size, _ in commits[-3:]] == [8, 8, 4]
    finally:
        await store.close()


async def test_a_failing_operation_does_not_spoil_its_batch(tmp_path: Path) -> None:
    store, _ = await _store(tmp_path)
    try:
        gate, blocker = _block_writer(store)
        await asyncio.sleep(0.05)

        async def broken(tx: Tx) -> None:
            await tx.execute("UPDATE accounts SET balance = balance + 999 WHERE kind = 'card'")
            raise RuntimeError("boom")

        good1 = asyncio.ensure_future(store.execute(request("purchase", 1, card=CARD, amount=100)))
        bad = asyncio.ensure_future(store.write(broken))
        good2 = asyncio.ensure_future(store.execute(request("purchase", 2, card=CARD2, amount=200)))
        await asyncio.sleep(0.02)
        gate.set()
        await blocker
        assert (await good1).rc == "00" and (await good2).rc == "00"
        with pytest.raises(RuntimeError):
            await bad
        assert await store.balance(CARD.token) == 49900
        assert await store.balance(CARD2.token) == 49800
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
    from switch.ledger import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="switch db init"):
        await open_test_store(f"sqlite:///{tmp_path / 'none.db'}")
