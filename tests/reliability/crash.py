"""The crash run shared by the test suite and ``make soak``: terminals under load, the switch killed with
SIGKILL at random moments and restarted on the same ports, then the audit.

``run_crashes(world, tmp, crashes=3, seed=1)`` returns a :class:`CrashResult` (the audit report, the number of
kills survived, what the terminals saw); the caller asserts on it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.audit import AuditReport, audit
from tests.reliability.fleet import Fleet, Seen
from tests.reliability.procs import SwitchProcess
from tests.reliability.world import World
from tests.support.secrets import find_secrets


@dataclass
class CrashResult:
    report: AuditReport
    crashes: int = 0
    exit_code: int | None = None
    cut_by_crash: int = 0
    owed_at_end: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    secrets_in_logs: int = 0
    seen: list[Seen] = field(default_factory=list)
    settlements: dict[str, Seen | None] = field(default_factory=dict)


async def run_crashes(
    world: World, tmp: Path, *, crashes: int = 3, seed: int = 1, n_pos: int = 6, n_hall: int = 1,
    uptime_s: tuple[float, float] = (0.4, 1.2), downtime_s: tuple[float, float] = (0.0, 0.3),
) -> CrashResult:  # fmt: skip
    rng = random.Random(seed)
    proc = SwitchProcess(world.config_path, tmp / f"switch-crash-{seed}.log")
    result = CrashResult(AuditReport())
    fleet: Fleet | None = None
    try:
        await proc.start()
        fleet = Fleet(world, "127.0.0.1", proc.cup_port, n_pos=n_pos, n_hall=n_hall, seed=seed)
        stop = asyncio.Event()
        load = asyncio.create_task(fleet.run(stop))
        try:
            for _ in range(crashes):
                await asyncio.sleep(rng.uniform(*uptime_s))
                await proc.kill9()
                result.crashes += 1
                await asyncio.sleep(rng.uniform(*downtime_s))
                await proc.start()
            await asyncio.sleep(uptime_s[0])  # the terminals reverse what went unanswered, then go on
        finally:
            stop.set()
            await load
        await fleet.finish()
        result.owed_at_end = sum((t.terminal.state.pending is not None) + len(t.owed_advices) for t in fleet.terminals)
        result.exit_code = await proc.terminate()
        store = await world.open_store()
        try:
            result.report = await audit(store, fleet.seen, world.cards, fleet.settlements)
        finally:
            await store.close()
        result.cut_by_crash = sum(s.status == "timeout" for s in fleet.seen)
        result.counts = dict(fleet.counts())
        result.seen, result.settlements = fleet.seen, fleet.settlements
    finally:
        if fleet is not None:
            await fleet.close()
        await proc.close()
    result.secrets_in_logs = len(find_secrets(proc.log_path.read_text(errors="replace")))
    return result
