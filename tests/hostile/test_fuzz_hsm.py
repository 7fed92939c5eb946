"""Fuzzing the HSM simulator's host port over real TCP (``tests/hostile/hsmfuzz.py``): every command, valid,
mutated or garbage, is answered in order with its response code and a 2-digit error code; the connection
is never dropped and the simulator never reaches its internal-error path."""

from __future__ import annotations

import stat
from pathlib import Path

from hsm_sim.lmk import Lmk
from hsm_sim.server import HsmSimServer
from tests.hostile.hsmfuzz import fuzz_hsm
from tests.hsm.conftest import sim_config


async def test_fuzz_the_hsm_host_port(tmp_path: Path) -> None:
    server = HsmSimServer(sim_config(tmp_path))
    host, port = await server.start()
    try:
        stats = await fuzz_hsm(host, port, Lmk.test_set(), 3000, seed=9)
    finally:
        await server.stop()
    assert stats.failures == [], stats.failures[:5]
    assert stats.seeds >= 12  # the honest session was recorded (else the fuzz only scratches the parsers)
    assert stats.answered == stats.sent == 3000
    assert server.stats.internal_errors == 0
    assert server.stats.connections == 2  # the seed recorder's and the fuzzer's: never dropped, never redialled
    # not only parser rejections: the seeds reach the cryptography (successes and verification failures)
    assert stats.errors["00"] > 50 and stats.errors["68"] > 0 and len(stats.errors) >= 6, stats.errors
    mailers = tmp_path / "mailers" / "pin_mailers.jsonl"
    if mailers.exists():
        assert stat.S_IMODE(mailers.stat().st_mode) == 0o600
