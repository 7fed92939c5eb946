"""Fuzzing the running switch over real TCP (``tests/hostile/tcpfuzz.py``): every well-framed request whose
MTI, 11, 41 and 42 are readable is answered (RC 30 when it does not decode), every other one closes that
connection only (logged, counted), and a healthy terminal on its own connection is answered throughout.

Three targets: ``start_switch`` with the foundation handler; the authorization pipeline on fakes
(``Stack.start(backend="fake")``) with byte-level fuzz; and the same pipeline with business-level fuzz from a
signed-on terminal (mutated SPEC §4 requests, correctly MACed), which reaches the authorization rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from switch.app import BasicHandler, start_switch
from switch.telemetry.metrics import Metrics
from tests.hostile.conftest import wait_for
from tests.hostile.tcpfuzz import TcpFuzzStats, fuzz_business, fuzz_switch
from tests.support.stack import CARDS, Stack, base_config

PROFILES = pytest.mark.parametrize("profile", ["cup", "iso87"])


def assert_clean(stats: TcpFuzzStats) -> None:
    assert stats.failures == [], stats.failures[:5]
    assert stats.answered > 0 and stats.closed > 0 and stats.rc30 > 0
    assert stats.healthy_answered > 0


@PROFILES
async def test_fuzz_the_switch_over_tcp(profile: str) -> None:
    app = await start_switch(base_config(), handler=BasicHandler(Metrics()))
    try:
        with capture_logs() as logs:
            stats = await fuzz_switch("127.0.0.1", app.server.address(profile)[1], profile, 500, seed=1)
        assert_clean(stats)
        assert stats.rcs.keys() <= {"00", "30", "40"}
        closed = app.metrics.connections_closed
        # every close counted (the last one lands when the server sees the client's reset) ...
        await wait_for(lambda: closed.get(reason="undecodable") == stats.closed)
        logged = [e for e in logs if e["event"] == "frame_error" and e.get("reason") == "undecodable"]
        assert len(logged) == stats.closed  # ... and logged
    finally:
        await app.stop(1.0)


@PROFILES
async def test_fuzz_the_pipeline_over_tcp(tmp_path: Path, profile: str) -> None:
    async with Stack.start(tmp_path, backend="fake") as stack:
        stats = await fuzz_switch("127.0.0.1", stack.port(profile), profile, 400, seed=2)
        assert_clean(stats)
        closed = stack.app.metrics.connections_closed
        await wait_for(lambda: closed.get(reason="undecodable") == stats.closed)
        await stack.check_invariants()


@PROFILES
async def test_business_level_fuzz_reaches_the_rules_and_is_always_answered(tmp_path: Path, profile: str) -> None:
    async with Stack.start(tmp_path, backend="fake") as stack:
        pos = await stack.pos(profile)
        stats = await fuzz_business(pos, [(c.pan, c.pin) for c in CARDS], 400, seed=3)
        assert stats.failures == [], stats.failures[:5]
        assert stats.answered >= stats.sent > 300
        # past parsing: approvals and declines of the later rules, not only format errors
        assert stats.rcs["00"] > 20 and len(stats.rcs) >= 8, stats.rcs
        await stack.check_invariants()
