"""Ledger fixtures: every contract test runs on SQLite and on PostgreSQL (a fresh schema per test; skipped
with a reason when no server answers), and the ledger invariants are checked after every test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.ledger import LedgerStore
from tests.support.ledger_db import ManualClock, fresh_ledger, open_test_store, seed

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ledger_dsn(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_ledger(backend, tmp_path) as dsn:
        yield dsn


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(ledger_dsn: str, clock: ManualClock) -> AsyncIterator[LedgerStore]:
    s = await open_test_store(ledger_dsn, clock=clock)
    await seed(s)
    try:
        yield s
        problems = await s.check_invariants()
        assert problems == [], problems
    finally:
        await s.close()
