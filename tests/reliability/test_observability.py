"""SPEC §9 on a running ``switch serve``: ``/metrics`` (scraped over HTTP, parsed strictly) has every family
(requests by MTI and RC, latency histogram, open connections, in-flight requests, HSM latency and errors,
ledger commit latency) and each one moves with traffic; HSM errors are counted once per failed command (the
simulator's own count of error replies); and every error path logs exactly one line with its reason:
``hsm_error``, ``mac_error``, ``frame_error`` + ``conn_close`` (reason), ``shutdown``."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from tests.reliability.live import LiveRun
from tests.reliability.logcheck import error_lines
from tests.reliability.promtext import Family, parse, scrape
from tests.reliability.world import open_world
from tests.support.pos import PosTerminal

FAMILIES = {
    "switch_requests_total": "counter",
    "switch_request_latency_seconds": "histogram",
    "switch_connections_open": "gauge",
    "switch_inflight_requests": "gauge",
    "switch_hsm_latency_seconds": "histogram",
    "switch_hsm_errors_total": "counter",
    "switch_ledger_commit_seconds": "histogram",
}


async def _metrics(port: int) -> dict[str, Family]:
    return parse(await scrape(port))


async def test_metrics_families_move_and_error_paths_log_once(tmp_path: Path) -> None:
    async with asyncio.timeout(120), open_world(tmp_path, "sqlite", hsm={"timeout_ms": 400}) as world:
        async with LiveRun(world, tmp_path, name="observability", n_pos=6, pause_s=0.0) as run:
            http = run.proc.http_port
            before = await _metrics(http)
            # gauges: sampled under load until both were seen above zero (bounded)
            open_max = inflight_max = 0.0
            for _ in range(200):
                m = await _metrics(http)
                open_max = max(open_max, m["switch_connections_open"].total())
                inflight_max = max(inflight_max, m["switch_inflight_requests"].total())
                if open_max and inflight_max:
                    break
                await asyncio.sleep(0.01)

            # HSM errors: every command answered with error 13 for a while
            errors_before = world.hsm.stats.errors["13"]
            mark = run.mark()
            world.hsm.faults.error_rate = 1.0
            await run.wait_for(lambda s: s.rc == "96", mark, what="96 from an erroring HSM")
            await asyncio.sleep(0.2)
            world.hsm.faults.clear()
            await run.recovered()
            hsm_error_replies = world.hsm.stats.errors["13"] - errors_before

            # a MAC error (A0) from a signed-on terminal with the wrong MAK
            spare = world.terminals[12]
            pos = await PosTerminal.connect("127.0.0.1", run.proc.cup_port, profile="cup", tid=spare.tid,
                                            mid=spare.mid, tmk=world.tmk)  # fmt: skip
            try:
                assert (await pos.signon()).rc == "00"
                pos.keys["mak"] = bytes(8)
                card = world.cards[0]
                assert (await pos.purchase(card.pan, card.pin, 100)).rc == "A0"
            finally:
                await pos.close()

            # a frame that cannot be honoured: the connection is closed (frame_error, conn_close)
            reader, writer = await asyncio.open_connection("127.0.0.1", run.proc.cup_port)
            writer.write(struct.pack(">H", 65535) + bytes(16))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()

            after = await _metrics(http)
            code, report = await run.finish()
    assert code == 0 and report.problems == [], report.problems

    for name, typ in FAMILIES.items():
        assert name in after, f"/metrics lacks {name}"
        assert after[name].type == typ, (name, after[name].type)
    req = after["switch_requests_total"]
    assert {"0200", "0220", "0400", "0800"} <= req.label_values("mti")
    assert {"00", "96", "A0"} <= req.label_values("rc")
    assert req.total() > before["switch_requests_total"].total()
    for hist in ("switch_request_latency_seconds", "switch_hsm_latency_seconds", "switch_ledger_commit_seconds"):
        assert after[hist].total("_count") > before[hist].total("_count"), hist
        assert after[hist].total("_sum") > before[hist].total("_sum"), hist
    assert {"DA", "M8", "M6"} <= after["switch_hsm_latency_seconds"].label_values("command")
    assert open_max >= 1 and inflight_max >= 1
    # one count per HSM command that failed: exactly the simulator's error replies
    hsm_errors = after["switch_hsm_errors_total"].total() - before["switch_hsm_errors_total"].total()
    assert hsm_error_replies > 0
    assert hsm_errors == hsm_error_replies

    events = run.proc.events
    assert error_lines(events, "hsm_error", {"hsm_unavailable", "hsm_error"}) == []
    assert error_lines(events, "mac_error", {"mac_wrong", "mac_missing"}) == []
    frame_errors = [e for e in events if e.get("event") == "frame_error"]
    assert len(frame_errors) == 1 and frame_errors[0]["reason"], frame_errors
    closes = [e for e in events if e.get("event") == "conn_close" and e.get("peer") == frame_errors[0]["peer"]]
    assert [e["reason"] for e in closes] == ["frame_error"], closes
    assert all(e.get("reason") for e in events if e.get("event") == "conn_close")
    shutdowns = [e for e in events if e.get("event") == "shutdown"]
    assert [e.get("component") for e in shutdowns] == ["pos"], shutdowns
    assert after["switch_frame_errors_total"].total() == 1
