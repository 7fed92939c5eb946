#!/usr/bin/env python3
"""Soak: a large hostile-input run against the real code, printing the reliability figures (``make soak``).

Parts (each also runs alone with ``--only PART``):

- ``framing``  byte streams with good and bad length prefixes, cut at random points, against a reference parser;
- ``codec``    ``--inputs`` fuzz inputs per wire profile through ``decode_message`` (structure-aware valid
               messages, twelve kinds of mutation, garbage), checked by the codec oracle;
- ``tcp``      fuzz inputs over real TCP to the switch (foundation handler) and to the authorization
               pipeline on fakes, each checked against SPEC §5.1 (answered / RC 30 / counted close), with a
               healthy terminal answered throughout; plus business-level fuzz from a signed-on terminal;
- ``hsm``      fuzzed payShield commands to the HSM simulator's host port (every one answered, in order);
- ``abuse``    slowloris, idle floods, a connection flood from one address, oversize length prefixes and
               peers that never read, against a switch with tight limits, while a terminal keeps paying;
- ``crash``    ``switch serve`` (a process) under load from recording terminals, killed with SIGKILL
               ``--crashes`` times per ledger backend and restarted on the same ports; then the audit: every
               approval a terminal accepted journaled once, nothing else in force, reversals honoured, money
               conserved, RRNs unique, batches balanced (``tests/reliability``);
- ``faults``   HSM slow / erroring / gone, PostgreSQL outage (backends terminated) or SQLite disk full, a slow
               database, SQLite locked past its bound, SIGTERM under load: ``--fault-rounds`` rounds per
               backend, each answered (96 / 91) and recovered from without a restart; audit and log checks;
- ``atheris``  optional (``--atheris SECONDS``, needs ``pip install atheris``): coverage-guided fuzzing of
               ``decode_message`` for each profile, seeded with valid messages, under the same oracle.

The switch's own logs go to a sink that is scanned for card data at the end. Exit 0 only if every check
held: no crash, no hang, no unanswered well-framed request, no internal error, no secret in any log.
The fuzz helpers are the test suite's (``tests/hostile``), so CI and the soak fuzz the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import random
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from switch.app import BasicHandler, run_async, start_switch  # noqa: E402
from switch.iso.framing import FrameDecoder, FrameError  # noqa: E402
from switch.iso.profiles import CUP, ISO87  # noqa: E402
from switch.server.connection import ConnectionInfo, ConnectionLimits  # noqa: E402
from switch.server.listener import ListenerSpec, SwitchServer  # noqa: E402
from switch.telemetry.logs import configure_logging  # noqa: E402
from switch.telemetry.metrics import Metrics  # noqa: E402
from tests.hostile.fuzzgen import (  # noqa: E402
    OracleFailure,
    check_decode,
    frame_stream,
    fuzz_body,
    reference_frames,
    split_points,
)
from tests.support.secrets import find_secrets  # noqa: E402

PARTS = ("framing", "codec", "tcp", "hsm", "abuse", "crash", "faults", "atheris")

if TYPE_CHECKING:
    from tests.reliability.audit import AuditReport


@dataclass
class Figures:
    inputs: Counter[str] = field(default_factory=Counter)
    malformed_survived: int = 0
    connections_abused: int = 0
    refused: int = 0
    cut: Counter[str] = field(default_factory=Counter)
    healthy_answered: int = 0
    unanswered: int = 0
    crashes: int = 0
    internal_errors: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # crash and fault parts (terminals' audit against the ledger)
    crashes_survived: int = 0
    cut_by_crash: int = 0
    faults_injected: int = 0
    approvals_checked: int = 0
    reversals_honoured: int = 0
    rrns_checked: int = 0
    settled_balanced: int = 0
    money_lost: int = 0

    def account_audit(self, part: str, report: AuditReport) -> None:
        self.approvals_checked += report.approvals_checked
        self.reversals_honoured += report.reversals_honoured
        self.rrns_checked += report.rrns_checked
        self.settled_balanced += report.settled_balanced
        self.money_lost += report.money_lost

    def fail(self, part: str, what: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(f"{part}: {what}")


def progress(msg: str) -> None:
    print(f"  {msg}", flush=True)


# ------------------------------------------------------------------------------------------- framing, codec


def soak_framing(fig: Figures, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        max_frame = rng.choice((16, 300, 2048))
        stream = frame_stream(rng, max_frame)
        expected = reference_frames(stream, max_frame)
        dec = FrameDecoder(max_frame)
        frames: list[bytes] = []
        failed = False
        cuts = split_points(rng, len(stream))
        for a, b in itertools.pairwise(cuts):
            try:
                frames += dec.feed(stream[a:b])
            except FrameError as exc:
                frames += exc.frames
                failed = True
                break
            except Exception as exc:
                fig.crashes += 1
                fig.fail("framing", f"decoder raised {type(exc).__name__}")
                break
        got = (frames, failed, 0 if failed else dec.buffered)
        if got != expected:
            fig.fail("framing", "frames differ from the reference parser")
        fig.malformed_survived += failed
    fig.inputs["framing streams"] += n


def soak_codec(fig: Figures, n: int, seed: int) -> None:
    for profile in (CUP, ISO87):
        rng = random.Random(f"{seed}/{profile.name}")
        kinds: Counter[str] = Counter()
        t0 = time.perf_counter()
        for i in range(n):
            kind, body = fuzz_body(rng, profile)
            kinds[kind] += 1
            try:
                outcome = check_decode(body, profile)
            except OracleFailure as exc:
                fig.crashes += "raised" in str(exc)
                fig.fail(f"codec/{profile.name}", str(exc))
                continue
            fig.malformed_survived += not outcome.ok
            if i and i % 25000 == 0:
                progress(f"codec {profile.name}: {i} inputs, {i / (time.perf_counter() - t0):.0f}/s")
        fig.inputs[f"codec {profile.name}"] += n
        progress(f"codec {profile.name}: {n} inputs ({kinds['valid']} valid, {kinds['random']} garbage, rest mutated)")


# ---------------------------------------------------------------------------------------------------- tcp


async def soak_tcp(fig: Figures, n: int, seed: int) -> None:
    from tests.hostile.tcpfuzz import TcpFuzzStats, fuzz_business, fuzz_switch
    from tests.support.stack import CARDS, Stack, base_config

    def account(label: str, stats: TcpFuzzStats) -> None:
        fig.inputs[label] += stats.sent
        fig.malformed_survived += stats.rc30 + stats.closed
        fig.healthy_answered += stats.healthy_answered
        fig.unanswered += sum("no reply" in f or "unanswered" in f for f in stats.failures)
        for f in stats.failures:
            fig.fail(label, f)
        progress(f"{label}: {stats.sent} sent, {stats.answered} answered ({stats.rc30} RC 30), {stats.closed} closed")

    app = await start_switch(base_config(), handler=BasicHandler(Metrics()))
    try:
        for profile in ("cup", "iso87"):
            stats = await fuzz_switch("127.0.0.1", app.server.address(profile)[1], profile, n // 4, seed)
            account(f"tcp switch {profile}", stats)
    finally:
        await app.stop(2.0)
    with tempfile.TemporaryDirectory() as tmp:
        async with Stack.start(Path(tmp), backend="fake") as stack:
            for profile in ("cup", "iso87"):
                stats = await fuzz_switch("127.0.0.1", stack.port(profile), profile, n // 4, seed + 1)
                account(f"tcp pipeline {profile}", stats)
                pos = await stack.pos(profile)
                stats = await fuzz_business(pos, [(c.pan, c.pin) for c in CARDS], n // 4, seed + 2)
                account(f"business {profile}", stats)
            await stack.check_invariants()


# ---------------------------------------------------------------------------------------------------- hsm


async def soak_hsm(fig: Figures, n: int, seed: int) -> None:
    from hsm_sim.lmk import Lmk
    from hsm_sim.server import HsmSimServer
    from tests.hostile.hsmfuzz import fuzz_hsm
    from tests.hsm.conftest import sim_config

    with tempfile.TemporaryDirectory() as tmp:
        server = HsmSimServer(sim_config(Path(tmp)))
        host, port = await server.start()
        try:
            stats = await fuzz_hsm(host, port, Lmk.test_set(), n, seed)
        finally:
            await server.stop()
    fig.inputs["hsm commands"] += stats.sent
    fig.malformed_survived += sum(v for k, v in stats.errors.items() if k != "00")
    fig.internal_errors += server.stats.internal_errors
    fig.unanswered += stats.sent - stats.answered
    for f in stats.failures:
        fig.fail("hsm", f)
    if server.stats.internal_errors:
        fig.fail("hsm", f"{server.stats.internal_errors} commands reached the simulator's internal-error path")
    if stats.seeds < 12:
        fig.fail("hsm", f"only {stats.seeds} seed commands recorded from the client session")
    progress(f"hsm: {stats.sent} commands from {stats.seeds} seeds, error codes {dict(stats.errors.most_common())}")


# -------------------------------------------------------------------------------------------------- abuse


async def soak_abuse(fig: Figures, scale: int) -> None:
    """Connection abuse while a healthy terminal keeps asking; every abuse is cut and counted."""
    from tests.hostile.tcpfuzz import echo_body

    metrics = Metrics()
    limits = ConnectionLimits(
        idle_timeout_s=1.0,
        frame_timeout_s=0.5,
        write_timeout_s=0.5,
        max_connections=4 * scale,
        max_connections_per_ip=scale,
    )
    server = SwitchServer(
        [ListenerSpec("cup", "127.0.0.1", 0)], BasicHandler(metrics), metrics, limits, max_inflight=256
    )
    await server.start()
    addr = server.address("cup")
    stop = asyncio.Event()
    healthy = {"asked": 0, "answered": 0}

    async def terminal() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            reader, writer = await asyncio.open_connection(*addr)  # short connections, as POS terminals dial
            body = echo_body(CUP, f"{n % 1000000:06d}")
            writer.write(struct.pack(">H", len(body)) + body)
            healthy["asked"] += 1
            try:
                head = await asyncio.wait_for(reader.readexactly(2), 5)
                await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head)[0]), 5)
                healthy["answered"] += 1
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                fig.fail("abuse", "the healthy terminal was not answered")
            writer.transport.abort()
            await asyncio.sleep(0.01)

    async def open_from(source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.open_connection(*addr, local_addr=(source, 0))
        except OSError:
            return None

    async def wait_closed(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], timeout: float) -> int:
        async def one(r: asyncio.StreamReader) -> bool:
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(r.read(), timeout)
                return True
            return True

        done = 0
        for ok in await asyncio.gather(*(one(r) for r, _w in conns), return_exceptions=True):
            done += ok is True
        return done

    async def slowloris() -> None:
        request = echo_body(CUP, "000001")
        conns = [c for c in [await open_from(f"127.0.1.{i % 200 + 1}") for i in range(scale)] if c]

        async def drip(w: asyncio.StreamWriter) -> None:
            for b in struct.pack(">H", len(request)) + request:
                if w.is_closing():
                    return
                with contextlib.suppress(ConnectionError):
                    w.write(bytes([b]))
                await asyncio.sleep(0.2)

        drips = [asyncio.create_task(drip(w)) for _r, w in conns]
        closed = await wait_closed(conns, 10)
        for d in drips:
            d.cancel()
        await asyncio.gather(*drips, return_exceptions=True)
        fig.connections_abused += len(conns)
        if closed != len(conns):
            fig.fail("abuse", f"slowloris: {len(conns) - closed} sockets not cut")

    async def idle_flood() -> None:
        conns = [c for c in [await open_from(f"127.0.2.{i % 200 + 1}") for i in range(scale)] if c]
        closed = await wait_closed(conns, 10)
        fig.connections_abused += len(conns)
        if closed != len(conns):
            fig.fail("abuse", f"idle flood: {len(conns) - closed} sockets not closed")

    async def one_address_flood() -> None:
        conns = [c for c in [await open_from("127.0.3.1") for _ in range(4 * scale)] if c]
        fig.connections_abused += len(conns)
        await wait_closed(conns, 10)

    async def oversize() -> None:
        for i in range(scale):
            c = await open_from(f"127.0.4.{i % 200 + 1}")
            if c is None:
                continue
            r, w = c
            w.write(random.choice((b"\xff\xff", b"\x08\x01", b"\x00\x00")) + bytes(16))
            fig.connections_abused += 1
            with contextlib.suppress(ConnectionError, TimeoutError):
                if await asyncio.wait_for(r.read(), 5):
                    fig.fail("abuse", "an oversize/zero length prefix got an answer")

    async def never_reads() -> None:
        # POS replies are small enough for the kernel's socket buffers to swallow thousands, so this part
        # uses a transport with bulky replies (30 kB each): the peer's window fills at once, as it would
        # with real replies after a longer wait.
        async def bulky(body: bytes, info: ConnectionInfo) -> bytes | None:
            return b"R" * 30000

        bulk_metrics = Metrics()
        bulk = SwitchServer([ListenerSpec("cup", "127.0.0.1", 0)], bulky, bulk_metrics, limits)
        await bulk.start()
        writers = []
        for i in range(max(1, scale // 10)):
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection(*bulk.address("cup"), local_addr=(f"127.0.5.{i + 1}", 0))
                w.write((struct.pack(">H", 1) + b"x") * 500)  # 15 MB of replies asked for, none read
                writers.append(w)
        fig.connections_abused += len(writers)
        deadline = time.monotonic() + 10
        while bulk_metrics.connections_closed.get(reason="write_timeout") < len(writers):
            if time.monotonic() > deadline:
                fig.fail("abuse", "a peer that never reads was not cut by the write timeout")
                break
            await asyncio.sleep(0.1)
        for w in writers:
            w.transport.abort()
        await bulk.shutdown(1.0)
        fig.cut["write_timeout"] += int(bulk_metrics.connections_closed.get(reason="write_timeout"))

    term = asyncio.create_task(terminal())
    try:
        for name, part in (
            ("slowloris", slowloris),
            ("idle flood", idle_flood),
            ("one-address flood", one_address_flood),
            ("oversize prefixes", oversize),
            ("never-reading peers", never_reads),
        ):
            t0 = time.perf_counter()
            await part()
            progress(f"abuse {name}: done in {time.perf_counter() - t0:.1f} s")
    finally:
        stop.set()
        await term
        await server.shutdown(2.0)
    fig.refused += int(sum(metrics.connections_refused.values.values()))
    for key, value in metrics.connections_closed.values.items():
        fig.cut[dict(key).get("reason", "?")] += int(value)
    fig.healthy_answered += healthy["answered"]
    fig.unanswered += healthy["asked"] - healthy["answered"]
    progress(f"abuse: refused {fig.refused}, closed by reason {dict(fig.cut)}")


# ------------------------------------------------------------------------------------------- crash, faults


async def _ledger_backends() -> list[str]:
    from tests.support.ledger_db import PG_BASE, postgres_available

    if await postgres_available():
        return ["sqlite", "postgres"]
    progress(f"no PostgreSQL server at {PG_BASE}: the crash and fault parts run on SQLite only")
    return ["sqlite"]


async def soak_crash(fig: Figures, crashes: int, seed: int) -> None:
    """``switch serve`` killed with SIGKILL ``crashes`` times per backend under load, restarted on the same
    ports; then the terminals' audit (tests/reliability/audit.py)."""
    from tests.reliability.crash import run_crashes
    from tests.reliability.world import open_world

    for backend in await _ledger_backends():
        with tempfile.TemporaryDirectory() as tmp:
            async with open_world(Path(tmp), backend) as world:
                r = await run_crashes(
                    world, Path(tmp), crashes=crashes, seed=seed, n_pos=8, n_hall=2,
                    uptime_s=(0.5, 2.5), downtime_s=(0.0, 0.5),
                )  # fmt: skip
        part = f"crash/{backend}"
        fig.crashes_survived += r.crashes if r.exit_code == 0 and not r.report.problems else 0
        fig.account_audit(part, r.report)
        fig.cut_by_crash += r.cut_by_crash
        for p in r.report.problems:
            fig.fail(part, p)
        if r.exit_code != 0:
            fig.fail(part, f"switch exited {r.exit_code} on SIGTERM after the crashes")
        if r.owed_at_end:
            fig.fail(part, f"{r.owed_at_end} reversals or advices never answered")
        if r.secrets_in_logs:
            fig.fail(part, f"{r.secrets_in_logs} card data hits in the switch's log")
        progress(
            f"{part}: {r.crashes} kills survived, {r.report.approvals_checked} approvals checked, "
            f"{r.cut_by_crash} requests cut by a kill, {r.report.reversals_honoured} reversals honoured, "
            f"money lost {r.report.money_lost}"
        )


async def soak_faults(fig: Figures, rounds: int, seed: int) -> None:
    """HSM slow/erroring/gone, database outage/full disk/slow/locked past its bound, SIGTERM under load, each
    ``rounds`` times per backend, against a switch process under load; then the audit and the log checks."""
    from tests.reliability.smallfs import CannotMount, small_filesystem

    for backend in await _ledger_backends():
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                try:
                    with small_filesystem(Path(tmp) / "ledger-fs", "256m", skip=False) as fs:
                        await _fault_run(fig, Path(tmp), fs.path, backend, rounds, seed, fs)
                    continue
                except CannotMount as exc:
                    progress(f"faults/sqlite: {exc}; no disk-full fault")
            await _fault_run(fig, Path(tmp), Path(tmp), backend, rounds, seed, None)


async def _fault_run(
    fig: Figures, tmp: Path, world_dir: Path, backend: str, rounds: int, seed: int, fs: Any
) -> None:  # fmt: skip
    import uuid

    from tests.reliability.faults import (
        HSM_FAULTS,
        hold_pg_journal_lock,
        hold_sqlite_write_lock,
        terminate_backends,
    )
    from tests.reliability.live import LiveRun
    from tests.reliability.logcheck import error_lines
    from tests.reliability.world import open_world

    rng = random.Random(f"{seed}/faults/{backend}")
    part = f"faults/{backend}"
    app = f"soak-{uuid.uuid4().hex[:8]}"
    counts: Counter[str] = Counter()
    lost: list[Any] = []
    cut_by_sigterm = 0
    async with open_world(world_dir, backend, hsm={"timeout_ms": 400}) as world:
        if backend == "postgres":
            world.config_path.write_text(
                world.switch_toml(hsm={"timeout_ms": 400}, database={"dsn": f"{world.dsn}&application_name={app}"})
            )
        async with LiveRun(world, tmp, name=part.replace("/", "-"), n_pos=6, n_hall=1, timeout_s=15.0) as run:

            async def fault(name: str, rc: str, inject: Callable[[], Awaitable[Any]],
                            clear: Callable[[], Awaitable[Any]] | None) -> None:  # fmt: skip
                mark = run.mark()
                task = asyncio.ensure_future(inject())
                await run.wait_for(lambda s: s.rc == rc, mark, timeout_s=30, what=f"{part} {name}: {rc}")
                if clear is not None:
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    await clear()
                await task
                await run.recovered()
                counts[name] += 1
                fig.faults_injected += 1

            for _ in range(rounds):
                for name, inject, clear in HSM_FAULTS:
                    await fault(f"HSM {name}", "96", lambda i=inject: i(world), lambda c=clear: c(world))  # type: ignore[misc]
                if backend == "postgres":
                    await fault("database outage", "91", lambda: terminate_backends(app, rng.uniform(0.5, 2.0)), None)
                elif fs is not None:
                    await fault(
                        "disk full", "91", lambda: asyncio.to_thread(fs.fill), lambda: asyncio.to_thread(fs.free)
                    )
                held = asyncio.Event()
                hold = hold_pg_journal_lock if backend == "postgres" else hold_sqlite_write_lock
                await asyncio.sleep(1.5)  # answers of the fault before (91 after a commit check) have all come
                mark = run.mark()
                await hold(world, rng.uniform(0.5, 2.0), held)
                await run.recovered(mark)
                counts["slow database"] += 1
                fig.faults_injected += 1
                if [s for s in run.since(mark) if s.rc == "91"]:
                    fig.fail(part, "a slow database was answered 91")
                # SIGTERM under load, then a restart on the same ports: what the switch processed was answered
                mark = run.mark()
                exit_code = await run.proc.terminate()
                if exit_code != 0:
                    fig.fail(part, f"SIGTERM under load: exit {exit_code}")
                processed = {(e["tid"], e["mti"], e["stan"]) for e in run.proc.events if e.get("event") == "txn"}
                cut = [s for s in run.since(mark) if s.status == "timeout"]
                cut_by_sigterm += len(cut)
                lost += [s for s in cut if (s.tid, s.mti, s.stan) in processed]
                await run.proc.start()
                await run.recovered()
                counts["SIGTERM under load"] += 1
                fig.faults_injected += 1
            if backend == "sqlite":  # the write lock held past the switch's bound (10 s): 91, then recovery
                held = asyncio.Event()
                await fault(
                    "database locked past its bound", "91", lambda: hold_sqlite_write_lock(world, 11.0, held), None
                )
            unanswered = sum(s.status == "timeout" for s in run.seen) - cut_by_sigterm
            code, report = await run.finish()
            events = run.proc.events
            problems = error_lines(events, "hsm_error", {"hsm_unavailable", "hsm_error"})
            problems += error_lines(events, "ledger_error", {"ledger_unavailable"})
            shutdowns = [e for e in events if e.get("event") == "shutdown" and e.get("component") == "pos"]
            secrets = run.secrets_in_log()
    fig.unanswered += len(lost) + unanswered
    if unanswered:
        fig.fail(part, f"{unanswered} requests unanswered while the switch was up")
    fig.account_audit(part, report)
    for p in report.problems + problems[:20]:
        fig.fail(part, p)
    if lost:
        fig.fail(part, f"{len(lost)} requests processed by the switch went unanswered at SIGTERM")
    if code != 0 or any(e.get("cancelled") for e in shutdowns):
        fig.fail(part, f"graceful stop: exit {code}, cancelled {[e.get('cancelled') for e in shutdowns]}")
    if secrets:
        fig.fail(part, f"{len(secrets)} card data hits in the switch's log")
    answered = Counter(s.rc for s in run.seen if s.status == "ok")
    progress(f"{part}: faults {dict(counts)}; answers by RC {dict(answered.most_common(6))}; "
             f"{report.approvals_checked} approvals checked, money lost {report.money_lost}")  # fmt: skip


# ------------------------------------------------------------------------------------------------ atheris


#: the coverage-guided harness, run as ``python -c`` so that only ``switch.iso`` is instrumented (at import)
ATHERIS_HARNESS = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import atheris
with atheris.instrument_imports(include=["switch.iso"]):
    import switch.iso.codec, switch.iso.framing, switch.iso.layout, switch.iso.fields
    from switch.iso.profiles import PROFILES
from tests.hostile.fuzzgen import check_decode
profile = PROFILES[sys.argv[1]]
atheris.Setup([sys.argv[0], *sys.argv[2:]], lambda data: check_decode(data, profile))
atheris.Fuzz()
"""


def soak_atheris(fig: Figures, seconds: int, seed: int) -> None:
    import subprocess

    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        progress("atheris: not installed (pip install atheris), skipped")
        return
    from tests.hostile.fuzzgen import encode_with_spans, valid_message

    for profile in (CUP, ISO87):
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            rng = random.Random(seed)
            for i in range(200):
                (corpus / f"seed{i}").write_bytes(encode_with_spans(valid_message(rng, profile), profile).body)
            argv = [
                sys.executable,
                "-c",
                ATHERIS_HARNESS,
                profile.name,
                str(corpus),
                f"-max_total_time={seconds}",
                "-max_len=2048",
                "-print_final_stats=1",
                f"-seed={seed}",
                f"-artifact_prefix={tmp}/",
            ]
            proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=seconds + 120)
            runs = 0
            for line in proc.stderr.splitlines():
                if line.startswith("stat::number_of_executed_units:"):
                    runs = int(line.split(":")[-1])
            fig.inputs[f"atheris {profile.name}"] += runs
            if proc.returncode != 0:
                fig.crashes += 1
                fig.fail(f"atheris/{profile.name}", "finding: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200])
            progress(f"atheris {profile.name}: {runs} executions in {seconds} s, exit {proc.returncode}")


# --------------------------------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, fig: Figures) -> None:
    loop = asyncio.get_running_loop()

    def on_loop_error(_loop: asyncio.AbstractEventLoop, ctx: dict[str, object]) -> None:
        fig.crashes += 1
        exc = ctx.get("exception")
        fig.fail("loop", f"unhandled: {ctx.get('message')} {type(exc).__name__ if exc else ''}")

    loop.set_exception_handler(on_loop_error)
    parts: dict[str, Callable[[], Awaitable[None]]] = {
        "tcp": lambda: soak_tcp(fig, args.tcp, args.seed),
        "hsm": lambda: soak_hsm(fig, args.hsm, args.seed),
        "abuse": lambda: soak_abuse(fig, args.abuse),
        "crash": lambda: soak_crash(fig, args.crashes, args.seed),
        "faults": lambda: soak_faults(fig, args.fault_rounds, args.seed),
    }
    for name in PARTS:
        if name not in args.only or (name == "atheris" and not args.atheris):
            continue
        if (name == "crash" and not args.crashes) or (name == "faults" and not args.fault_rounds):
            continue
        t0 = time.perf_counter()
        print(f"[{name}]", flush=True)
        if name == "framing":
            soak_framing(fig, max(1000, args.inputs // 10), args.seed)
        elif name == "atheris":
            if args.atheris:
                soak_atheris(fig, args.atheris, args.seed)
        elif name == "codec":
            soak_codec(fig, args.inputs // 2, args.seed)
        else:
            await parts[name]()
        fig.seconds[name] = round(time.perf_counter() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=100_000, help="codec fuzz inputs, split over both profiles")
    p.add_argument("--tcp", type=int, default=8_000, help="fuzz inputs over TCP (switch, pipeline, business)")
    p.add_argument("--hsm", type=int, default=20_000, help="fuzzed HSM commands")
    p.add_argument("--abuse", type=int, default=200, help="sockets per abuse kind")
    p.add_argument("--crashes", type=int, default=10, help="SIGKILLs of the switch under load, per ledger backend")
    p.add_argument("--fault-rounds", type=int, default=2, help="rounds of every fault, per ledger backend")
    p.add_argument(
        "--atheris", type=int, default=0, metavar="SECONDS", help="coverage-guided codec fuzzing per profile"
    )
    p.add_argument("--seed", type=int, default=8583)
    p.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--json", type=Path, help="write the figures as JSON")
    args = p.parse_args(argv)

    sink = io.StringIO()
    configure_logging("info", stream=sink)
    fig = Figures()
    t0 = time.perf_counter()
    print(f"soak: seed {args.seed}, parts {' '.join(args.only)}", flush=True)
    try:
        run_async(_wrap(run(args, fig)))
    except Exception as exc:  # the soak itself must report, not die
        fig.crashes += 1
        fig.fail("soak", f"aborted: {type(exc).__name__}")
    logs = sink.getvalue()
    secrets = find_secrets(logs)
    for line in logs.splitlines():
        if '"handler_error"' in line or '"request_task_error"' in line:
            fig.internal_errors += 1
    total = sum(fig.inputs.values())
    report = {
        "seed": args.seed,
        "inputs_fuzzed": total,
        "inputs_by_part": dict(fig.inputs),
        "malformed_inputs_survived": fig.malformed_survived,
        "connections_abused": fig.connections_abused,
        "connections_refused_by_caps": fig.refused,
        "connections_cut_by_reason": dict(fig.cut),
        "healthy_requests_answered": fig.healthy_answered,
        "unanswered": fig.unanswered,
        "crashes": fig.crashes,
        "internal_errors": fig.internal_errors,
        "log_lines": logs.count("\n"),
        "secrets_in_logs": len(secrets),
        "crashes_survived": fig.crashes_survived,
        "requests_cut_by_crashes": fig.cut_by_crash,
        "faults_injected": fig.faults_injected,
        "approvals_checked": fig.approvals_checked,
        "reversals_honoured": fig.reversals_honoured,
        "rrns_checked": fig.rrns_checked,
        "batches_settled_balanced": fig.settled_balanced,
        "money_lost": fig.money_lost,
        "seconds": {**fig.seconds, "total": round(time.perf_counter() - t0, 1)},
        "failures": fig.failures,
    }
    print("\nsoak figures")
    for key in (
        "inputs_fuzzed",
        "malformed_inputs_survived",
        "connections_abused",
        "connections_refused_by_caps",
        "healthy_requests_answered",
        "unanswered",
        "crashes",
        "internal_errors",
        "secrets_in_logs",
        "crashes_survived",
        "requests_cut_by_crashes",
        "faults_injected",
        "approvals_checked",
        "reversals_honoured",
        "rrns_checked",
        "batches_settled_balanced",
        "money_lost",
    ):
        print(f"  {key.replace('_', ' '):32} {report[key]:>10}")
    print(f"  {'inputs by part':32} {json.dumps(report['inputs_by_part'])}")
    print(f"  {'seconds':32} {json.dumps(report['seconds'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = (
        not fig.failures
        and not fig.crashes
        and not fig.unanswered
        and not fig.internal_errors
        and not secrets
        and not fig.money_lost
    )
    for f in fig.failures[:20]:
        print(f"  FAIL {f}")
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


async def _wrap(coro: Awaitable[None]) -> int:
    await coro
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
