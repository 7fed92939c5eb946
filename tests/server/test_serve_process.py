"""`switch serve` as a real process: listening lines with bound ports, echo over TCP, SIGTERM → exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.server.wire import echo_request, read_reply
from tests.support.ledger_db import postgres_ledger
from tests.support.secrets import find_secrets

ROOT = Path(__file__).resolve().parents[2]


async def read_listening(proc: subprocess.Popen[bytes], count: int, timeout: float = 20.0) -> list[dict[str, object]]:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    found: list[dict[str, object]] = []
    deadline = loop.time() + timeout
    while len(found) < count:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), deadline - loop.time())
        if not line:
            raise AssertionError(
                "process exited before listening: " + (proc.stderr.read() if proc.stderr else b"").decode()[-1500:]
            )
        event = json.loads(line)
        if event.get("event") == "listening":
            found.append(event)
    return found


async def test_serve_logs_bound_addresses_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    db = [sys.executable, "-m", "switch", "db", "init", "--db", f"sqlite:///{tmp_path}/s.db"]
    subprocess.run(db, check=True, cwd=ROOT, env=env, capture_output=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "switch",
            "serve",
            "--listen",
            "cup=127.0.0.1:0",
            "--listen",
            "iso87=127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--db",
            f"sqlite:///{tmp_path}/s.db",
            "--hsm",
            "127.0.0.1:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        events = await read_listening(proc, 3)
        by_profile = {e["profile"]: e for e in events}
        assert set(by_profile) == {"cup", "iso87", "http"}
        assert all(int(e["port"]) > 0 and e["host"] == "127.0.0.1" for e in events)  # type: ignore[call-overload]
        for profile in ("cup", "iso87"):
            reader, writer = await asyncio.open_connection("127.0.0.1", by_profile[profile]["port"])
            writer.write(echo_request("000001", profile))
            reply = await read_reply(reader, profile)
            assert reply.fields["39"] == "97"  # answered by the engine: the ledger knows no terminal yet
            writer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    assert any(e["event"] == "shutdown" for e in lines)
    assert not find_secrets(out.decode() + err.decode())


async def test_workers_share_the_port_and_stop_together() -> None:
    async with postgres_ledger() as dsn:
        await _workers_share_the_port(dsn)


async def _workers_share_the_port(dsn: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "switch",
            "serve",
            "--workers",
            "2",
            "--listen",
            "cup=127.0.0.1:0",
            "--http",
            "",
            "--db",
            dsn,
            "--hsm",
            "127.0.0.1:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        events = await read_listening(proc, 2)
        assert len({e["port"] for e in events}) == 1 and len({e["pid"] for e in events}) == 2
        port = int(events[0]["port"])  # type: ignore[call-overload]
        for i in range(1, 21):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(echo_request(f"{i:06d}"))
            assert (await read_reply(reader)).fields["11"] == f"{i:06d}"
            writer.close()
            await writer.wait_closed()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_serve_on_a_database_without_schema_fails_in_one_line(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "switch",
        "serve",
        "--listen",
        "cup=127.0.0.1:0",
        "--http",
        "",
        "--db",
        f"sqlite:///{tmp_path}/none.db",
        "--hsm",
        "127.0.0.1:1",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=30)
    assert proc.returncode == 1
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "switch db init" in err[0], err


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "switch",
        "serve",
        "--workers",
        "2",
        "--listen",
        "cup=127.0.0.1:0",
        "--http",
        "",
        "--db",
        f"sqlite:///{tmp_path}/w.db",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=30)
    assert proc.returncode == 1 and b"server.workers" in proc.stderr
