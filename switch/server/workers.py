"""``switch serve --workers N``: N processes sharing the POS ports through SO_REUSEPORT.

The parent resolves ephemeral ports by binding each listener once with SO_REUSEPORT, starts the workers on
those exact ports (each worker is ``switch serve`` with one event loop, the same configuration and
``--workers 1``), waits until every worker has logged its ``listening`` lines, then releases its own
placeholder sockets so the kernel spreads new connections over the workers only. Worker 0 also serves the
HTTP endpoint. SIGTERM/SIGINT to the parent is forwarded; the parent exits 0 when every worker did.

With SQLite the ledger has a single writer (see docs/PERFORMANCE.md): use workers with PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from switch.config import SwitchConfig, parse_hostport


def _placeholder(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_workers(cfg: SwitchConfig, base_argv: Sequence[str]) -> int:
    """Start ``cfg.server.workers`` worker processes and supervise them until they all exit."""
    placeholders: list[socket.socket] = []
    listen_args: list[str] = []
    for profile, addr in cfg.server.listen.items():
        host, port = parse_hostport(addr, f"server.listen.{profile}")
        sock = _placeholder(host, port)
        placeholders.append(sock)
        listen_args += ["--listen", f"{profile}={host}:{sock.getsockname()[1]}"]
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ, SWITCH_SERVER_WORKERS="1", PYTHONUNBUFFERED="1")
    for i in range(cfg.server.workers):
        http = cfg.server.http if i == 0 else ""
        argv = [sys.executable, "-m", "switch", "serve", *base_argv, *listen_args, "--http", http, "--reuse-port"]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, env=env))
    ready = threading.Barrier(len(procs) + 1)
    expected = len(cfg.server.listen)

    def pump(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        seen = 0
        for line in iter(proc.stdout.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
            if seen < expected:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "listening" and event.get("profile") != "http":
                    seen += 1
                    if seen == expected:
                        ready.wait()
        if seen < expected:
            ready.abort()

    threads = [threading.Thread(target=pump, args=(p,), daemon=True) for p in procs]
    for t in threads:
        t.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        ready.wait(timeout=60)
    except threading.BrokenBarrierError:
        forward(signal.SIGTERM, None)
    finally:
        for sock in placeholders:
            sock.close()
    codes = [p.wait() for p in procs]
    for t in threads:
        t.join(timeout=5)
    return 0 if all(c == 0 for c in codes) else 1
