"""SIGTERM under load (SPEC §1): ``switch serve`` stops accepting, answers every request it had taken, exits 0.
The terminals' view and the switch's agree: no request the switch processed (its ``txn`` line) went
unanswered; what the terminals sent meanwhile was never processed, and after a restart on the same ports the
terminals reverse it and carry on; the audit finds the ledger exactly as the terminals were told."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.reliability.live import LiveRun
from tests.reliability.world import open_world


async def test_sigterm_under_load_answers_in_flight_then_exits_0(tmp_path: Path) -> None:
    async with asyncio.timeout(120), open_world(tmp_path, "sqlite") as world:
        async with LiveRun(world, tmp_path, name="sigterm", n_pos=8, n_hall=1, pause_s=0.0) as run:
            await run.wait_for(lambda s: s.accepted_approval, run.mark() + 200, what="load")
            exit_code = await run.proc.terminate()
            events = list(run.proc.events)
            unanswered = [s for s in run.seen if s.status == "timeout"]
            await run.proc.start()  # the same ports: terminals reverse what went unanswered, then go on
            await run.recovered()
            code, report = await run.finish()
    assert exit_code == 0
    shutdown = [e for e in events if e.get("event") == "shutdown" and e.get("component") == "pos"]
    assert len(shutdown) == 1 and shutdown[0]["cancelled"] == 0, shutdown
    assert shutdown[0]["inflight"] >= 1, "SIGTERM came while nothing was in flight"
    processed = {(e["tid"], e["mti"], e["stan"]) for e in events if e.get("event") == "txn"}
    lost = [s for s in unanswered if (s.tid, s.mti, s.stan) in processed]
    assert lost == [], f"processed by the switch, never answered: {lost[:3]}"
    assert code == 0
    assert report.problems == [], report.problems
