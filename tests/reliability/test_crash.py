"""Crash: ``switch serve`` (a real process) killed with SIGKILL under load at random moments, restarted on the
same ports, the terminals (``terminal_sim``'s own) reversing what went unanswered; then every approval they
accepted is in the ledger exactly once with its postings, nothing else is in force, reversals are honoured,
money is conserved, RRNs never repeat and every batch settles balanced. On SQLite (synchronous=FULL) and
PostgreSQL. ``make soak`` runs the same with more kills (``--crashes``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.crash import run_crashes
from tests.reliability.world import open_world


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_sigkill_under_load_loses_nothing(tmp_path: Path, backend: str) -> None:
    async with open_world(tmp_path, backend) as world:
        result = await run_crashes(world, tmp_path, crashes=3, seed=8583)
    r = result.report
    assert r.problems == [], r.problems
    assert result.crashes == 3
    assert result.exit_code == 0
    assert result.owed_at_end == 0, "a reversal or advice was never answered"
    assert r.money_lost == 0
    assert r.approvals_checked >= 50, result.counts
    assert result.cut_by_crash >= 1, "no request was in flight at any kill"
    assert r.reversals_honoured >= 1, result.counts
    assert r.settled_balanced == 7
    assert result.secrets_in_logs == 0
