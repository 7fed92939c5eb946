"""Processes for the benchmarks: the HSM simulator, the switch (SQLite or PostgreSQL), the echo baseline and the
load generator, each a real subprocess on loopback, plus the CPU time each one spends (from ``/proc``).

Used by ``bench/run_all.py``; nothing here is collected by pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
BIN = "990001"
PIN = "123456"


class BenchError(Exception):
    """A step failed; the text says which (and which log to read)."""


# --------------------------------------------------------------------------------------------- CPU time
def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in task.read_text().split()]
    return out


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """``(comm, the fields after it)`` of ``/proc/PID/stat`` (field 3, state, comes first), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (worker processes)."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        stat = _stat(p)
        if stat is None:
            continue
        fields = stat[1]
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
        stack += _children(p)
    return total


def postmaster_of(backend_pid: int) -> int | None:
    """The postmaster of a PostgreSQL backend on this machine (its parent, if that is a ``postgres`` process): its
    CPU and its backends' is the database's share of a run. None when the server runs elsewhere."""
    stat = _stat(backend_pid)
    if stat is None or stat[0] != "postgres":
        return None
    parent = int(stat[1][1])  # ppid (field 4)
    up = _stat(parent)
    return parent if up is not None and up[0] == "postgres" else None


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal): CPU seconds the whole machine has spent busy (all cores, every process: ours and any
    neighbour's; user, nice, system, irq, softirq) and those the hypervisor took from this VM (steal: time our
    processes were ready to run but the host ran someone else, which shows as latency, not as busy)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (f[0] + f[1] + f[2] + f[5] + f[6]) / CLK_TCK, f[7] / CLK_TCK
    return 0.0, 0.0


def machine() -> dict[str, Any]:
    """What the figures came from."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    import platform

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------------------------- servers
class Server:
    """A server subprocess whose stdout (JSON log lines) goes straight to a file (no pump in this process, which
    would compete for the same 2 cores); ``listening`` events are read back from that file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self.listening: list[dict[str, Any]] = []
        with self.log_path.open("w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_listening(self, count: int = 1, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            events = []
            with self.log_path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    if '"listening"' in line:
                        with contextlib.suppress(ValueError):
                            events.append(json.loads(line))
            if len(events) >= count:
                self.listening = events
                return events
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} (see {self.log_path})")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not listen in {timeout_s:.0f} s (see {self.log_path})")
            time.sleep(0.1)

    def port(self, profile: str | None = None) -> int:
        for ev in self.listening:
            if profile is None or ev.get("profile") == profile:
                return int(ev["port"])
        raise BenchError(f"{self.name}: no listener for {profile}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def run(step: str, argv: list[str], env: dict[str, str], timeout_s: float = 900) -> str:
    done = subprocess.run(argv, check=False, env=env, text=True, capture_output=True, timeout=timeout_s, cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise BenchError(f"{step} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done.stdout


# --------------------------------------------------------------------------------------------- test data
def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _odd_parity_key(rng: random.Random, n: int = 16) -> str:
    out = bytearray()
    for _ in range(n):
        b = rng.randrange(256) & 0xFE
        out.append(b | (bin(b).count("1") % 2 == 0))
    return out.hex().upper()


def write_provisioning(path: Path, *, terminals: int, cards: int, seed: int = 11) -> None:
    """Merchants, ``terminals`` POS terminals with clear dev TMKs, ``cards`` funded cards with PIN 123456 and
    daily limits high enough for a benchmark (SPEC §7 format; also the load generator's keys file)."""
    rng = random.Random(seed)
    mids = [f"89852015411{i:04d}" for i in range(1, 5)]
    out = []
    for i, mid in enumerate(mids):
        out.append(
            f'[[merchant]]\nmid = "{mid}"\nname = "bench merchant {i}"\nmdr_bps = 38\nfee_cap = 2000\n'
            f'rebate_bps = 100\nstatus = "active"\n'
        )
    for i in range(terminals):
        out.append(
            f'[[terminal]]\ntid = "{20000000 + i}"\nmid = "{mids[i % len(mids)]}"\nkind = "pos"\n'
            f'tmk = "{_odd_parity_key(rng)}"\n'
        )
    for i in range(cards):
        body = f"{BIN}{i:09d}"
        out.append(
            f'[[card]]\npan = "{body}{luhn_digit(body)}"\nexpiry = "3012"\npin = "{PIN}"\n'
            f'status = "active"\nbalance = 500000\nmobile = "138{i:08d}"\nmember_id = "B{i:06d}"\n'
            f"daily_count_limit = 100000000\ndaily_amount_limit = 100000000000\n"
        )
    path.write_text("\n".join(out), encoding="utf-8")


# --------------------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    """HSM simulator + ledger + switch (started by :func:`switch_stack`)."""

    dir: Path
    env: dict[str, str]
    keys: Path
    hsm: Server
    switch: Server
    servers: list[Server] = field(default_factory=list)

    @property
    def cup_port(self) -> int:
        return self.switch.port("cup")


def base_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        SWITCH_FILES_VAR_DIR=str(workdir),
        SWITCH_FILES_CLEARING_DIR=str(workdir / "clearing"),
        SWITCH_NOTIFY_SMS_FILE=str(workdir / "sms.jsonl"),
        HSM_PIN_MAILER_FILE=str(workdir / "pin_mailers.jsonl"),
        HSM_LOGGING_LEVEL="info",
    )
    return env


def start_hsm(workdir: Path, env: dict[str, str]) -> Server:
    hsm = Server("hsm", [PY, "-m", "hsm_sim", "serve", "--config", "config/hsm.toml", "--listen", "127.0.0.1:0"],
                 env, workdir)  # fmt: skip
    try:
        hsm.wait_listening(1)
    except BaseException:
        hsm.stop()  # never leave a simulator behind
        raise
    return hsm


@contextlib.contextmanager
def switch_stack(
    workdir: Path,
    *,
    dsn: str | None = None,
    synchronous: str = "FULL",
    workers: int = 1,
    terminals: int = 64,
    cards: int = 1000,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A fresh ledger (SQLite file in ``workdir`` unless ``dsn``), provisioned, with the HSM and the switch."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = base_env(workdir)
    env.update(
        SWITCH_DATABASE_DSN=dsn or f"sqlite:///{workdir / 'switch.db'}",
        SWITCH_DATABASE_SQLITE_SYNCHRONOUS=synchronous,
    )
    env.update(extra_env or {})
    keys = workdir / "bench_keys.toml"
    write_provisioning(keys, terminals=terminals, cards=cards)
    servers: list[Server] = []
    try:
        hsm = start_hsm(workdir, env)
        servers.append(hsm)
        env["SWITCH_HSM_ADDRESS"] = f"127.0.0.1:{hsm.port()}"
        run("switch db init", [PY, "-m", "switch", "db", "init"], env)
        run("switch provision", [PY, "-m", "switch", "provision", str(keys)], env)
        argv = [PY, "-m", "switch", "serve", "--listen", "cup=127.0.0.1:0", "--http", ""]
        if workers > 1:
            # SO_REUSEPORT needs one fixed port shared by all workers
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            argv = [
                PY,
                "-m",
                "switch",
                "serve",
                "--listen",
                f"cup=127.0.0.1:{port}",
                "--http",
                "",
                "--workers",
                str(workers),
            ]
        sw = Server("switch", argv, env, workdir)
        servers.append(sw)
        sw.wait_listening(workers)
        yield Stack(workdir, env, keys, hsm, sw, servers)
    finally:
        for server in reversed(servers):
            server.stop()


@contextlib.contextmanager
def echo_server(workdir: Path) -> Iterator[Server]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = base_env(workdir)
    srv = Server("echo", [PY, "bench/echo_server.py", "--listen", "127.0.0.1:0", "--profile", "cup"], env, workdir)
    try:
        srv.wait_listening(1)
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------------- load
def run_load(
    port: int,
    keys: Path,
    workdir: Path,
    *,
    terminals: int,
    duration_s: float,
    rate: float | None = None,
    procs: int = 1,
    echo: bool = False,
    watch: dict[str, int] | None = None,
    name: str = "load",
) -> dict[str, Any]:
    """Run ``terminal-sim load`` (purchases only) against ``port``; its JSON report plus the CPU seconds each
    watched process (``name -> pid``) spent during the run."""
    out = workdir / f"{name}.json"
    argv = [
        PY,
        "-m",
        "terminal_sim",
        "--switch",
        f"127.0.0.1:{port}",
        "--keys",
        str(keys),
        "--state",
        str(workdir / f"state-{name}"),
        "load",
        "--terminals",
        str(terminals),
        "--duration",
        str(duration_s),
        "--mix",
        "purchase=100",
        "--procs",
        str(procs),
        "--amount",
        "100-1000",
        "--progress",
        "never",
        "--json",
        str(out),
    ]
    if rate:
        argv += ["--rate", str(rate)]
    if echo:
        argv.append("--echo-baseline")
    watch = watch or {}
    cpu0 = {k: cpu_seconds(p) for k, p in watch.items()}
    busy0, steal0 = machine_cpu_s()
    t0 = time.monotonic()
    run(f"terminal-sim load ({name})", argv, base_env(workdir), timeout_s=duration_s + 300)
    wall = time.monotonic() - t0
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in watch.items()}
    busy1, steal1 = machine_cpu_s()
    report: dict[str, Any] = json.loads(out.read_text())
    report["_cpu_s"] = cpu
    report["_busy_cores"] = round((busy1 - busy0) / wall, 2) if wall > 0 else 0.0
    report["_steal_cores"] = round((steal1 - steal0) / wall, 3) if wall > 0 else 0.0
    report["_wall_s"] = wall
    return report
