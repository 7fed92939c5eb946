"""Disk full on the clearing directory, for real (a full tmpfs), with the back office as a process: ``switch
clearing run`` exits 1 with one clear line, leaves nothing in the directory (no file, no temporary), records
nothing; once there is room the same command writes the file, whose trailer checks out and which holds one
line per approval the terminals accepted (and per opening load)."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

from tests.reliability.live import LiveRun
from tests.reliability.procs import ROOT
from tests.reliability.smallfs import small_filesystem
from tests.reliability.world import open_world
from tests.support.secrets import find_secrets


async def _switch(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch", *args, "--config", str(config), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_clearing_on_a_full_disk_writes_nothing_then_succeeds(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "clearing", "1m") as fs:
        async with asyncio.timeout(120), open_world(tmp_path, "sqlite", files={"clearing_dir": str(fs.path)}) as world:
            async with LiveRun(world, tmp_path, name="clearing") as run:
                await run.wait_for(lambda s: s.accepted_approval, run.mark() + 100, what="some business")
                code, report = await run.finish()
            assert code == 0 and report.problems == []
            rc, date, _ = await _switch(world.config_path, "day", "close")
            assert rc == 0, date
            date = date.strip()

            fs.fill()
            rc, out, err = await _switch(world.config_path, "clearing", "run", "--date", date)
            assert rc == 1
            message = [line for line in err.splitlines() if not line.startswith("{")]
            assert len(message) == 1 and "No space left on device" in message[0] and "nothing written" in message[0]
            assert sorted(p.name for p in fs.path.iterdir()) == [fs.filler.name]

            fs.free()
            rc, out, err = await _switch(world.config_path, "clearing", "run", "--date", date)
            assert rc == 0, err
            files = sorted(p.name for p in fs.path.iterdir())
            assert files == [f"CLR_{date}.txt"], files
            text = (fs.path / files[0]).read_text()
            assert not find_secrets(text + out + err)
    lines = text.splitlines(keepends=True)
    body, trailer = "".join(lines[:-1]), lines[-1].rstrip("\n").split("|")
    assert trailer[0] == "T" and trailer[-1] == hashlib.sha256(body.encode()).hexdigest()
    # every approval the terminals accepted is a line of the file, and so is each card's opening load
    assert int(trailer[1]) == sum(1 for line in lines if line.startswith("D|"))
    assert int(trailer[1]) == report.approvals_checked + len(world.cards)
