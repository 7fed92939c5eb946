"""A switch process under a recording load, for fault injection: inject, watch the answers, clear, watch the
recovery, then finish and audit.

    async with LiveRun(world, tmp_path) as run:
        mark = run.mark()
        world.hsm.faults.error_rate = 1.0
        await run.wait_for(lambda s: s.rc == "96", mark)        # the fault is answered 96
        world.hsm.faults.clear()
        await run.recovered()                                    # a new approval, without a restart
        exit_code, report = await run.finish()                  # SIGTERM, then the audit
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from tests.reliability.audit import AuditReport, audit
from tests.reliability.fleet import Fleet, Seen
from tests.reliability.procs import SwitchProcess
from tests.reliability.world import World
from tests.support.secrets import find_secrets


class LiveRun:
    def __init__(
        self, world: World, tmp: Path, *, name: str = "live", n_pos: int = 4, n_hall: int = 1, pause_s: float = 0.01,
        seed: int = 1, timeout_s: float = 5.0,
    ) -> None:  # fmt: skip
        self.world = world
        self.proc = SwitchProcess(world.config_path, tmp / f"switch-{name}.log")
        self._fleet_args = {"n_pos": n_pos, "n_hall": n_hall, "seed": seed, "timeout_s": timeout_s}
        self.pause_s = pause_s
        self.fleet: Fleet | None = None
        self._stop = asyncio.Event()
        self._load: asyncio.Task[None] | None = None
        self.faults_injected = 0

    async def __aenter__(self) -> LiveRun:
        await self.proc.start()
        self.fleet = Fleet(self.world, "127.0.0.1", self.proc.cup_port, **self._fleet_args)  # type: ignore[arg-type]
        self._load = asyncio.create_task(self.fleet.run(self._stop, self.pause_s))
        await self.wait_for(lambda s: s.accepted_approval, 0)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop_load()
        if self.fleet is not None:
            await self.fleet.close()
        await self.proc.close()

    @property
    def seen(self) -> list[Seen]:
        assert self.fleet is not None
        return self.fleet.seen

    def mark(self) -> int:
        return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        return self.seen[mark:]

    async def wait_for(
        self, pred: Callable[[Seen], bool], mark: int, timeout_s: float = 20.0, what: str = "the answer"
    ) -> Seen:
        """The first answer seen after ``mark`` that satisfies ``pred`` (AssertionError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for s in self.seen[mark:]:
                if pred(s):
                    return s
            if time.monotonic() > deadline:
                counts: dict[str, int] = {}
                for s in self.seen[mark:]:
                    counts[f"{s.kind}:{s.status}:{s.rc}"] = counts.get(f"{s.kind}:{s.status}:{s.rc}", 0) + 1
                raise AssertionError(f"{what}: not seen in {timeout_s:.0f} s; saw {counts}")
            await asyncio.sleep(0.02)

    async def recovered(self, mark: int | None = None) -> Seen:
        """A purchase approved after ``mark`` (default: now): the switch is back without a restart."""
        start = self.mark() if mark is None else mark
        return await self.wait_for(lambda s: s.kind == "purchase" and s.accepted_approval, start, what="recovery")

    async def stop_load(self) -> None:
        self._stop.set()
        if self._load is not None:
            await self._load
            self._load = None

    async def finish(self) -> tuple[int, AuditReport]:
        """Stop the load, pay what is owed, settle, SIGTERM the switch (its exit code), audit the ledger."""
        await self.stop_load()
        assert self.fleet is not None
        await self.fleet.finish()
        code = await self.proc.terminate()
        store = await self.world.open_store()
        try:
            report = await audit(store, self.fleet.seen, self.world.cards, self.fleet.settlements)
        finally:
            await store.close()
        return code, report

    def secrets_in_log(self) -> list[str]:
        return find_secrets(self.proc.log_path.read_text(errors="replace"))
