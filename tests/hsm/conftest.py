"""HSM fixtures: the simulator on an ephemeral loopback port (real TCP), a client pool, and a test-side key
ceremony (clear test keys under the test LMK, as ``hsm-sim keys import-clear`` would print them)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from hsm_sim.config import HsmSimConfig, PinSection, ServerSection
from hsm_sim.lmk import Lmk
from hsm_sim.server import HsmSimServer
from switch.hsm.client import HsmClient

VECTORS = Path(__file__).resolve().parents[1] / "iso" / "vectors"
SPEC = json.loads((VECTORS / "spec_examples.json").read_text())
CRYPTO = json.loads((VECTORS / "public_samples.json").read_text())["crypto"]

TEST_LMK = Lmk.test_set()


def under_lmk(key_type: str, clear_hex: str, scheme: str | None = None) -> str:
    """A clear test key under the test LMK (the test plays the key ceremony)."""
    clear = bytes.fromhex(clear_hex)
    return TEST_LMK.encrypt_key(key_type, clear, scheme or {8: "Z", 16: "U", 24: "T"}[len(clear)])


def sim_config(tmp_path: Path, **server: object) -> HsmSimConfig:
    cfg = HsmSimConfig()
    return replace(
        cfg,
        server=replace(ServerSection(listen="127.0.0.1:0"), **server),  # type: ignore[arg-type]
        pin=PinSection(mailer_file=str(tmp_path / "mailers" / "pin_mailers.jsonl")),
    )


@pytest.fixture
async def hsm(tmp_path: Path) -> AsyncIterator[HsmSimServer]:
    server = HsmSimServer(sim_config(tmp_path))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(hsm: HsmSimServer) -> AsyncIterator[HsmClient]:
    assert hsm.address is not None
    c = HsmClient(*hsm.address, pool_size=2, timeout_s=2.0)
    await c.start()
    yield c
    await c.close()
