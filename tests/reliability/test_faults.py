"""Faults under load, against ``switch serve`` as a process, with the terminals' audit after each run:

- HSM slow (latency beyond the client timeout), erroring (every command answered with an error code) and
  gone (the simulator stopped, then started again on its port): answered ``96`` while it lasts, approvals
  again as soon as it is back, without a restart;
- database unavailable: PostgreSQL's backends of the switch terminated again and again (a real outage of its
  connections), SQLite's disk full: ``91`` (or a normal answer), no partial effect, recovery by itself;
- database slow (another process holds the write lock / the table locks for a while): slow answers, all
  correct, none lost.

In every run no request goes unanswered while the switch is up, the switch exits 0 on SIGTERM, and the
audit (``tests/reliability/audit.py``) finds every approval in the ledger exactly once and nothing else.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.reliability.faults import HSM_FAULTS, hold_pg_journal_lock, hold_sqlite_write_lock, terminate_backends
from tests.reliability.live import LiveRun
from tests.reliability.logcheck import error_lines
from tests.reliability.smallfs import small_filesystem
from tests.reliability.world import open_world


async def test_hsm_slow_erroring_gone_is_96_and_recovers_by_itself(tmp_path: Path) -> None:
    async with open_world(tmp_path, "sqlite", hsm={"timeout_ms": 400}) as world:
        async with LiveRun(world, tmp_path, name="hsm") as run:
            start = run.mark()
            for name, inject, clear in HSM_FAULTS:
                mark = run.mark()
                await inject(world)
                # any request: terminals that owe a reversal (a reply that lost its MAC) send nothing else first
                await run.wait_for(lambda s: s.rc == "96", mark, what=f"HSM {name}: 96")
                await asyncio.sleep(0.3)  # the fault lasts: every request meanwhile is answered 96
                await clear(world)
                await run.recovered()  # without a restart of anything
            answers = run.since(start)
            assert not [s for s in answers if s.status == "timeout"], "a request went unanswered"
            code, report = await run.finish()
            assert run.secrets_in_log() == []
            assert error_lines(run.proc.events, "hsm_error", {"hsm_unavailable", "hsm_error"}) == []
    assert code == 0
    assert report.problems == [], report.problems
    assert report.money_lost == 0


# --------------------------------------------------------------------------------------------------- database


@pytest.mark.postgres
async def test_postgres_outage_is_91_without_partial_effects_and_recovers(tmp_path: Path) -> None:
    app = f"reliability-{uuid.uuid4().hex[:8]}"
    async with open_world(tmp_path, "postgres") as world:
        world.config_path.write_text(world.switch_toml(database={"dsn": f"{world.dsn}&application_name={app}"}))
        async with LiveRun(world, tmp_path, name="pg-outage") as run:
            mark = run.mark()
            outage = asyncio.create_task(terminate_backends(app, 1.5))
            await run.wait_for(lambda s: s.rc == "91", mark, what="91 during the outage")
            killed = await outage
            await run.recovered()
            answers = run.since(mark)
            code, report = await run.finish()
            assert error_lines(run.proc.events, "ledger_error", {"ledger_unavailable"}) == []
    assert killed >= 1
    assert not [s for s in answers if s.status == "timeout"], "a request went unanswered"
    assert code == 0
    assert report.problems == [], report.problems
    assert report.money_lost == 0


async def test_sqlite_disk_full_is_91_without_partial_effects_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "ledger-fs", "16m") as fs:
        async with open_world(fs.path, "sqlite") as world:
            async with LiveRun(world, tmp_path, name="disk-full") as run:
                mark = run.mark()
                fs.fill()
                await run.wait_for(lambda s: s.rc == "91", mark, what="91 on a full disk")
                await asyncio.sleep(0.3)
                fs.free()
                await run.recovered()
                answers = run.since(mark)
                code, report = await run.finish()
                assert error_lines(run.proc.events, "ledger_error", {"ledger_unavailable"}) == []
    assert not [s for s in answers if s.status == "timeout"], "a request went unanswered"
    assert code == 0
    assert report.problems == [], report.problems
    assert report.money_lost == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_slow_database_answers_late_but_right(tmp_path: Path, backend: str) -> None:
    hold = hold_sqlite_write_lock if backend == "sqlite" else hold_pg_journal_lock
    async with open_world(tmp_path, backend) as world:
        async with LiveRun(world, tmp_path, name=f"slow-{backend}") as run:
            mark = run.mark()
            held = asyncio.Event()
            task = asyncio.create_task(hold(world, 1.2, held))
            await asyncio.wait([task, asyncio.create_task(held.wait())], timeout=30, return_when="FIRST_COMPLETED")
            assert held.is_set(), task.exception() if task.done() else "the lock was not taken in 30 s"
            t_held = time.monotonic()
            await task
            t_freed = time.monotonic()
            await run.recovered()
            answers = run.since(mark)
            code, report = await run.finish()
    # nothing that writes could be answered while the lock was held (margins for replies already on their way)
    during = [s for s in answers if t_held + 0.2 < s.at < t_freed - 0.05 and s.status != "not_sent"]
    assert during == [], during[:3]
    assert not [s for s in answers if s.status == "timeout"], "a request went unanswered"
    assert not [s for s in answers if s.rc == "91"], "a slow database is not an unavailable one"
    assert code == 0
    assert report.problems == [], report.problems
