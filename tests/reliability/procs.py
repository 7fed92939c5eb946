"""``switch serve`` as a real subprocess: started, killed with SIGKILL, restarted on the same ports, stopped with
SIGTERM. Its stdout (JSON log lines) goes to a log file that survives restarts and is scanned for card data.

    proc = SwitchProcess(world.config_path, tmp_path / "switch.log")
    await proc.start()                  # first start: ephemeral ports, read from the `listening` lines
    proc.cup_port, proc.http_port
    await proc.kill9()                  # SIGKILL, reaped
    await proc.start()                  # the same ports again
    assert await proc.terminate() == 0  # SIGTERM: graceful stop, exit code
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


class SwitchProcessError(Exception):
    pass


class SwitchProcess:
    def __init__(self, config_path: Path, log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCH_")}
        self.env["PYTHONPATH"] = str(ROOT)
        self.env.update(env or {})
        self.proc: asyncio.subprocess.Process | None = None
        self.cup_port = 0
        self.http_port = 0
        self.starts = 0
        self.kills = 0
        self._pump: asyncio.Task[None] | None = None
        self._listening: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: every log line of every run, parsed
        self.events: list[dict[str, Any]] = []

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        argv = [sys.executable, "-m", "switch", "serve", "--config", str(self.config_path)]
        if self.cup_port:
            argv += ["--listen", f"cup=127.0.0.1:{self.cup_port}", "--http", f"127.0.0.1:{self.http_port}"]
        self._listening = asyncio.Queue()
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.starts += 1
        self._pump = asyncio.create_task(self._read(self.proc))
        ports: dict[str, int] = {}
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while len(ports) < 2:
                    event = await self._listening.get()
                    if event.get("event") == "exited":
                        raise SwitchProcessError(f"switch exited with {self.proc.returncode} before listening")
                    ports[str(event.get("profile"))] = int(event["port"])
        except TimeoutError:
            raise SwitchProcessError("switch did not report listening in time") from None
        self.cup_port, self.http_port = ports["cup"], ports["http"]

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        with self.log_path.open("ab") as log:
            while line := await proc.stdout.readline():
                log.write(line)
                log.flush()
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict):
                        self.events.append(event)
                        if event.get("event") == "listening":
                            self._listening.put_nowait(event)
        await proc.wait()
        self._listening.put_nowait({"event": "exited"})

    async def kill9(self) -> None:
        """SIGKILL, then reap (the kernel closes every socket of the process at once)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self._reap()
        if self.proc.returncode != -signal.SIGKILL:
            raise SwitchProcessError(f"switch exited with {self.proc.returncode}, not by SIGKILL")
        self.kills += 1

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (a hang is killed and reported as -9)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout_s):
                await self._reap()
        except TimeoutError:
            self.proc.kill()
            await self._reap()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def _reap(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        if self._pump is not None:
            await self._pump
            self._pump = None

    async def close(self) -> None:
        """Kill whatever still runs (test teardown)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
        if self.proc is not None:
            await self._reap()

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]
