"""The back-office commands as separate processes (``python -m switch ...``): what a script sees on stdout, on
stderr and in the exit code."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from tests.backoffice.conftest import C1, UNKNOWN_PAN, World, ymd

pytestmark = pytest.mark.asyncio


async def _run(world: World, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCH_") or k.startswith("SWITCH_PROGRAM_")}
    cmd = [sys.executable, "-m", "switch", *argv, "--config", str(world.cfg_path)]
    return await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_stdout_is_the_result_logs_go_to_stderr(world: World) -> None:
    d0 = await world.open_date()
    closed = await _run(world, "day", "close")
    assert (closed.returncode, closed.stdout) == (0, f"{ymd(d0)}\n")  # usable as $(switch day close)
    events = [json.loads(x) for x in closed.stderr.splitlines() if x.startswith("{")]
    assert [e["event"] for e in events] == ["day_closed"] and events[0]["closed"] == ymd(d0)

    clearing = await _run(world, "clearing", "run", "--date", closed.stdout.strip())
    assert clearing.returncode == 0 and clearing.stdout.startswith(f"clearing {ymd(d0)}: written ")
    written = [json.loads(x) for x in clearing.stderr.splitlines() if x.startswith("{")]
    assert [e["event"] for e in written] == ["clearing_written"] and written[0]["business_date"] == ymd(d0)
    assert f"clearing {ymd(d0)}: " in clearing.stderr  # the progress display

    unknown = await _run(world, "cards", "show", UNKNOWN_PAN)
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (1, "", "switch: unknown card\n")
    usage = await _run(world, "clearing", "run", "--date", "2026")
    assert usage.returncode == 2 and usage.stdout == "" and "YYYYMMDD" in usage.stderr
    for out in (closed, clearing, unknown, usage):
        assert C1.pan not in out.stdout + out.stderr and UNKNOWN_PAN not in out.stdout + out.stderr
