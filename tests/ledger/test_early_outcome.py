"""``execute_early`` (SQLite): the outcome comes before the batch's COMMIT, its durability after; a COMMIT
that fails makes the durability future raise and leaves no effect."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from switch.ledger import LedgerStore
from switch.ledger.errors import StoreUnavailable
from tests.ledger.reqs import request
from tests.support.ledger_db import CARD, open_test_store, seed, sqlite_ledger


class _FailingCommit:
    """The writer's connection, with COMMIT failing as on a full disk."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Any:
    store = await open_test_store(sqlite_ledger(tmp_path))
    await seed(store)
    try:
        yield store
    finally:
        await store.close()


async def test_outcome_then_durable(sqlite_store: LedgerStore) -> None:
    before = await sqlite_store.balance(CARD.token)
    out, durable = await sqlite_store.execute_early(request("purchase", 1, card=CARD, amount=500))
    assert out.rc == "00" and durable is not None
    await durable
    assert await sqlite_store.balance(CARD.token) == before - 500  # type: ignore[operator]


async def test_failed_commit_raises_on_durable_and_leaves_no_effect(sqlite_store: LedgerStore) -> None:
    before = await sqlite_store.balance(CARD.token)
    writer = sqlite_store.backend.writer  # type: ignore[attr-defined]
    real = writer._con
    writer._con = _FailingCommit(real)
    try:
        out, durable = await sqlite_store.execute_early(request("purchase", 2, card=CARD, amount=500))
        assert out.rc == "00" and durable is not None  # as it would have been...
        with pytest.raises(StoreUnavailable):
            await durable  # ...but it never took effect
    finally:
        writer._con = real
    assert await sqlite_store.balance(CARD.token) == before
    again = await sqlite_store.execute(request("purchase", 2, card=CARD, amount=500))  # processed afresh
    assert again.rc == "00"
    assert await sqlite_store.balance(CARD.token) == before - 500  # type: ignore[operator]
    assert await sqlite_store.check_invariants() == []
