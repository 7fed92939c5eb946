"""``hsm-sim`` as a process: the test-device warning, one ``listening`` line, real TCP, graceful SIGTERM;
configuration errors in one line naming the key; usage errors exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from switch.hsm.client import HsmClient
from tests.support.secrets import find_secrets

HSM_SIM = [sys.executable, "-m", "hsm_sim"]


def _toml(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "hsm.toml"
    path.write_text(f'[pin]\nmailer_file = "{tmp_path / "mailers.jsonl"}"\n{extra}')
    return path


async def test_serve_logs_listening_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *HSM_SIM, "serve", "--config", str(_toml(tmp_path)), "--listen", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[dict[str, object]] = []
    try:
        while not any(e.get("event") == "listening" for e in lines):
            raw = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert raw, "hsm-sim exited before listening"
            lines.append(json.loads(raw))
        listening = lines[-1]
        assert listening["host"] == "127.0.0.1" and isinstance(listening["port"], int) and listening["port"] > 0
        assert any(e.get("event") == "test_device" and e.get("level") == "warning" for e in lines)
        async with HsmClient("127.0.0.1", int(listening["port"]), pool_size=1) as client:
            assert len((await client.diagnostics()).lmk_check_value) == 16
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    text = out.decode() + err.decode()
    assert '"event":"shutdown"' in text and not find_secrets(text)


def test_invalid_configuration_is_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = _toml(tmp_path, "[server]\nheader_len = 0\n")
    r = subprocess.run([*HSM_SIM, "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "hsm-sim: invalid configuration server.header_len: must be between 1 and 16"
    ]
    r = subprocess.run(
        [*HSM_SIM, "serve"], capture_output=True, text=True, timeout=30, env={**os.environ, "HSM_SERVER_LISTN": "x"}
    )
    assert r.returncode == 1 and "HSM_SERVER_LISTN" in r.stderr
    r = subprocess.run([*HSM_SIM, "serve", "--listen", "nowhere"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--listen" in r.stderr


def test_usage_error_exits_2() -> None:
    r = subprocess.run([*HSM_SIM, "frobnicate"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2


def test_import_clear_reads_stdin_only(tmp_path: Path) -> None:
    keys = (
        '{"type": "TMK", "clear": "0123456789ABCDEFFEDCBA9876543210"}\n\n{"type": "TAK", "clear": "3232323232323232"}\n'
    )
    r = subprocess.run([*HSM_SIM, "keys", "import-clear"], input=keys, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["type"] for o in out] == ["TMK", "TAK"]
    assert out[0]["key_lmk"] == "U1750CDFB0757D3B3994430636DBB281B" and len(out[1]["key_lmk"]) == 16
    r = subprocess.run(
        [*HSM_SIM, "keys", "import-clear"], input="not json\n", capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 1 and r.stderr.strip() == "hsm-sim: line 1: not a JSON object"


def test_shipped_config_is_valid_and_at_the_defaults() -> None:
    from hsm_sim.config import HsmSimConfig, load_config

    root = Path(__file__).resolve().parents[2]
    assert load_config(root / "config" / "hsm.toml", {}) == HsmSimConfig()
