"""``make bench``: the SPEC §11 benchmarks in one go, on this machine, each figure next to the baseline of the
same run.

Scenarios (each a function; run a subset with ``--only echo,full``):

- ``echo``     (a) the baseline: ``bench/echo_server.py`` (length-prefixed pyiso8583 decode/encode) driven by
               the same load generator (``terminal-sim load --echo-baseline``: same requests, same MACing);
- ``full``     (b) switch (SQLite ``synchronous=FULL``, group commit) + HSM simulator + load generator,
               purchases with PIN and MAC, as fast as ``--terminals`` closed-loop terminals go;
- ``normal``   (c) the same with ``synchronous=NORMAL``;
- ``postgres`` (d) the same on PostgreSQL (``SWITCH_BENCH_PG``, default ``postgresql://127.0.0.1:5432/test``;
               a fresh schema, dropped after);
- ``latency``  (e) SQLite FULL at fixed offered loads (25/50/75/90 % of the ``full`` maximum): p50/p99/max,
               SPEC: p99 <= 10 ms and nothing above 1 s at 50 %; an SVG plot of percentiles vs load;
- ``workers``  ``switch serve --workers 1`` vs ``2`` on PostgreSQL (SO_REUSEPORT);
- ``batch``    (f) clearing of 1,000,000 transactions and a 100,000-line top-up import
               (``bench/bench_ledger.py --bulk``: the real back-office code on both backends).

Every figure comes with the CPU each process spent per request (switch, HSM simulator, generator): on a shared
2-core machine that is the steadier number. The report is printed and written as JSON (``--json``, default
``var/bench/report.json``) with the machine it came from. Nothing here is collected by pytest, and no figure is
asserted anywhere: the ratios are printed with the SPEC targets next to them.

    python bench/run_all.py [--only LIST] [--duration 15] [--terminals 20] [--procs 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import (
    PY,
    ROOT,
    BenchError,
    Stack,
    cpu_seconds,
    echo_server,
    machine,
    postmaster_of,
    run_load,
    switch_stack,
)
from svgplot import latency_plot

#: host steal above this (cores, averaged over a run) marks the run's latency figures as disturbed
STEAL_WARN_CORES = 0.05
PG_BASE = os.environ.get("SWITCH_BENCH_PG", os.environ.get("SWITCH_TEST_PG", "postgresql://127.0.0.1:5432/test"))


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        d = self.workdir / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d


def summarize(r: dict[str, Any], *, procs: Mapping[str, object]) -> dict[str, Any]:
    """The figures of one load run: TPS, latency, RCs, and CPU per request of every process."""
    n = max(int(r["requests"]), 1)
    lat = r["latency_ms"]
    out: dict[str, Any] = {
        "tps": r["tps"],
        "requests": r["requests"],
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "max_ms": lat["max"],
        "rc": r["rc"],
        "timeouts": r["timeouts"],
        "cpu_us_per_request": {"generator": r["client"]["cpu_us_per_message"]},
        # the whole machine (every process, neighbours too): shows which runs saturate the cores
        "machine_busy_cores": r.get("_busy_cores"),
        "machine_steal_cores": r.get("_steal_cores"),
    }
    for name in procs:
        out["cpu_us_per_request"][name] = round(r["_cpu_s"][name] * 1e6 / n, 1)
    warnings = []
    bad = {rc: k for rc, k in r["rc"].items() if rc != "00"}
    if bad or r["timeouts"]:
        warnings.append(f"non-approved answers {bad}, timeouts {r['timeouts']}")
    if (out["machine_steal_cores"] or 0) > STEAL_WARN_CORES:
        warnings.append(
            f"the hypervisor took {out['machine_steal_cores']:.2f} cores (steal): latency figures disturbed"
        )
    if warnings:
        out["warning"] = "; ".join(warnings)
    return out


def show(label: str, s: dict[str, Any]) -> None:
    """Print a run's line and, under it, what disturbed it."""
    print("  " + line(label, s), flush=True)
    if "warning" in s:
        print(f"   warning: {s['warning']}", flush=True)


def line(label: str, s: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_us_per_request"].items())
    busy, steal = s.get("machine_busy_cores"), s.get("machine_steal_cores")
    return (
        f"{label:<28}{s['tps']:>9,.0f} TPS  p50 {s['p50_ms']:6.2f}  p99 {s['p99_ms']:7.2f}  max {s['max_ms']:7.1f} ms"
        f"  | CPU µs/req: {cpu}"
        + (f" | machine busy {busy:.2f}/{os.cpu_count()} cores" if busy is not None else "")
        + (f", steal {steal:.2f}" if steal is not None else "")
    )


def load_on(
    b: Bench,
    st: Stack,
    name: str,
    *,
    rate: float | None = None,
    duration: float | None = None,
    terminals: int | None = None,
    also_watch: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    watch = {"switch": st.switch.pid, "hsm": st.hsm.pid, **(also_watch or {})}
    r = run_load(
        st.cup_port,
        st.keys,
        st.dir,
        terminals=terminals or b.args.terminals,
        duration_s=duration or b.args.duration,
        rate=rate,
        procs=b.args.procs,
        watch=watch,
        name=name,
    )
    return summarize(r, procs=watch)


# --------------------------------------------------------------------------------------------- scenarios
def bench_echo(b: Bench) -> dict[str, Any]:
    d = b.dir("echo")
    from stack import write_provisioning

    keys = d / "keys.toml"
    write_provisioning(keys, terminals=max(64, b.args.terminals), cards=200)
    with echo_server(d) as srv:
        r = run_load(
            srv.port(),
            keys,
            d,
            terminals=b.args.terminals,
            duration_s=b.args.duration,
            procs=b.args.procs,
            echo=True,
            watch={"echo": srv.pid},
            name="echo",
        )
    return summarize(r, procs={"echo": ""})


def _sqlite(b: Bench, sync: str) -> dict[str, Any]:
    with switch_stack(b.dir(f"sqlite-{sync.lower()}"), synchronous=sync, terminals=max(64, b.args.terminals)) as st:
        return load_on(b, st, "max")


def bench_full(b: Bench) -> dict[str, Any]:
    return _sqlite(b, "FULL")


def bench_normal(b: Bench) -> dict[str, Any]:
    return _sqlite(b, "NORMAL")


class PgSchema:
    """A fresh schema in the benchmark database, dropped afterwards."""

    def __init__(self) -> None:
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        sep = "&" if "?" in PG_BASE else "?"
        self.dsn = f"{PG_BASE}{sep}search_path={self.schema}"

        #: the server's postmaster when it runs on this machine (its CPU is reported), else None
        self.postmaster: int | None = None

    def _sql(self, sql: str) -> int | None:
        """Run ``sql``; the postmaster of the backend that ran it, if the server is on this machine."""
        import asyncio

        import asyncpg

        async def go() -> int | None:
            con = await asyncio.wait_for(asyncpg.connect(PG_BASE), 5)
            try:
                await con.execute(sql)
                return postmaster_of(con.get_server_pid())  # while the backend lives
            finally:
                await con.close()

        return asyncio.run(go())

    def __enter__(self) -> str:
        self.postmaster = self._sql(f"CREATE SCHEMA {self.schema}")
        return self.dsn

    def __exit__(self, *exc: object) -> None:
        self._sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def _postgres(b: Bench, workers: int, name: str) -> dict[str, Any]:
    pg = PgSchema()
    with pg as dsn, switch_stack(b.dir(name), dsn=dsn, workers=workers, terminals=max(64, b.args.terminals)) as st:
        also = {"postgres": pg.postmaster} if pg.postmaster is not None else {}
        return load_on(b, st, "max", terminals=b.args.terminals * (2 if workers > 1 else 1), also_watch=also)


def bench_postgres(b: Bench) -> dict[str, Any]:
    return _postgres(b, 1, "postgres")


def bench_workers(b: Bench) -> dict[str, Any]:
    one = _postgres(b, 1, "workers-1")
    two = _postgres(b, 2, "workers-2")
    return {"workers_1": one, "workers_2": two, "ratio_2_to_1": round(two["tps"] / one["tps"], 2)}


def bench_latency(b: Bench) -> dict[str, Any]:
    """Fixed offered loads as shares of the maximum measured just before (same stack, same run)."""
    points = []
    with switch_stack(b.dir("latency"), synchronous="FULL", terminals=max(64, b.args.terminals)) as st:
        top = b.results.get("full", {}).get("tps") or load_on(b, st, "max-probe")["tps"]
        for share in (0.25, 0.5, 0.75, 0.9):
            s = load_on(b, st, f"rate{int(share * 100)}", rate=round(top * share), terminals=b.args.terminals)
            s["offered_tps"] = round(top * share)
            s["share"] = share
            points.append(s)
            show(f"offered {share:.0%} ({s['offered_tps']} TPS)", s)
    half = next(p for p in points if p["share"] == 0.5)
    svg = b.workdir / "latency.svg"
    svg.write_text(latency_plot(points, title=f"Purchases, SQLite FULL, {b.args.terminals} terminals"))
    return {"max_tps": top, "points": points, "half": half, "plot": str(svg)}


def bench_batch(b: Bench) -> dict[str, Any]:
    out = b.dir("batch") / "bulk.json"
    argv = [PY, "bench/bench_ledger.py", "--bulk", "--json", str(out)]
    if b.args.clearing_rows:
        argv += ["--clearing-rows", str(b.args.clearing_rows)]
    done = subprocess.run(argv, check=False, cwd=ROOT, text=True, capture_output=True, timeout=1800)
    if done.returncode != 0:
        raise BenchError(f"bench_ledger --bulk failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return {f"{r['bench']}_{r['backend']}": r for r in rows}


SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "echo": bench_echo,
    "full": bench_full,
    "normal": bench_normal,
    "postgres": bench_postgres,
    "latency": bench_latency,
    "workers": bench_workers,
    "batch": bench_batch,
}


# --------------------------------------------------------------------------------------------- report
def cpu_budget(res: dict[str, Any], cores: int) -> list[tuple[str, str, str, bool | None]]:
    """What the throughput target leaves the switch on this machine, from the CPU each process spent in this run.

    Here the load generator, the HSM simulator and the switch share the machine's cores. Reaching
    ``full / echo >= 0.50`` means serving ``0.5 * echo_tps`` purchases per second, which needs both
    (i) all processes together within the cores: ``0.5 * echo_tps * (generator + hsm + switch) <= cores``, and
    (ii) the switch's one event loop within one core: ``0.5 * echo_tps * switch <= 1``.
    The smaller bound is the switch's CPU budget per purchase; the ratio a switch costing nothing could reach
    is ``cores / (echo_tps * (generator + hsm))``. Both are printed as information next to the measured figure.
    """
    echo, full = res.get("echo"), res.get("full")
    if not echo or not full or not echo.get("tps"):
        return []
    f = full["cpu_us_per_request"]
    others_us = f["generator"] + f["hsm"]
    half_rate = 0.5 * echo["tps"]
    budget_us = min(cores * 1e6 / half_rate - others_us, 1e6 / half_rate)
    ceiling = cores * 1e6 / (echo["tps"] * others_us) if others_us > 0 else float("inf")
    return [
        (
            "switch CPU budget for 0.50 here",
            f"{max(budget_us, 0):.0f} µs",
            f"(info: measured {f['switch']:.0f} µs/purchase)",
            None,
        ),
        ("full / echo with a zero-cost switch", f"{ceiling:.2f}", f"(info: generator + HSM on {cores} cores)", None),
    ]


def ratios(res: dict[str, Any], cores: int) -> list[tuple[str, str, str, bool | None]]:
    """(what, value, SPEC target, met) for each §11 figure that this run measured on ``cores`` cores."""
    out: list[tuple[str, str, str, bool | None]] = []
    echo = res.get("echo", {}).get("tps")
    for key, label in (
        ("full", "full FULL / echo"),
        ("normal", "full NORMAL / echo"),
        ("postgres", "PostgreSQL / echo"),
    ):
        if echo and key in res:
            r = res[key]["tps"] / echo
            out.append(
                (label, f"{r:.2f}", ">= 0.50" if key == "full" else "(info)", r >= 0.5 if key == "full" else None)
            )
    out += cpu_budget(res, cores)
    if "full" in res and "normal" in res:
        r = res["full"]["tps"] / res["normal"]["tps"]
        out.append(("FULL / NORMAL", f"{r:.2f}", ">= 0.80", r >= 0.8))
    if "half" in res.get("latency", {}):  # absent when the latency scenario failed part-way
        h = res["latency"]["half"]
        out.append(("p99 at half load", f"{h['p99_ms']:.2f} ms", "<= 10 ms", h["p99_ms"] <= 10))
        out.append(("max at half load", f"{h['max_ms']:.1f} ms", "<= 1000 ms", h["max_ms"] <= 1000))
    if "workers" in res:
        out.append(("2 workers / 1 (PostgreSQL)", f"{res['workers']['ratio_2_to_1']:.2f}", "(2 cores shared)", None))
    for r in res.get("batch", {}).values():
        label = f"{r['bench']} ({r['backend']}, {r.get('rows') or r.get('lines'):,})"
        out.append((label, f"{r['seconds']:.1f} s", "<= 60 s", r["seconds"] <= 60))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per load run (default 15)")
    ap.add_argument("--terminals", type=int, default=20, help="closed-loop terminals (default 20)")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes (default 1)")
    ap.add_argument("--clearing-rows", type=int, default=0, help="rows for the clearing run (default 1,000,000)")
    ap.add_argument("--workdir", default="var/bench", help="scratch directory (default var/bench)")
    ap.add_argument("--json", default="", help="report file (default WORKDIR/report.json)")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}")
    workdir = (ROOT / args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    b = Bench(args, workdir)
    report: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: v for k, v in vars(args).items()},
        "results": b.results,
    }
    cpu0 = cpu_seconds(os.getpid())
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            b.results[name] = SCENARIOS[name](b)
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"   {name}: FAILED: {exc}", flush=True)
            b.results[name] = {"error": str(exc)}
            failed.append(name)
            continue
        r = b.results[name]
        if "tps" in r:
            show(name, r)
        elif name == "workers":
            for k in ("workers_1", "workers_2"):
                show(k, r[k])
        elif name == "batch":
            for k, v in r.items():
                print(f"   {k}: {v['seconds']} s", flush=True)
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    b.results = {k: v for k, v in b.results.items() if "error" not in v} | {
        k: v for k, v in b.results.items() if "error" in v
    }
    report["results"] = b.results
    spec = ratios(b.results, os.cpu_count() or 1)
    report["ratios"] = [{"what": w, "value": v, "target": t, "met": m} for w, v, t, m in spec]
    report["bench_cpu_s"] = round(cpu_seconds(os.getpid()) - cpu0, 1)
    print("\n== SPEC §11")
    for w, v, t, m in spec:
        mark = "" if m is None else ("  ok" if m else "  NOT MET")
        print(f"   {w:<40}{v:>12}   target {t}{mark}")
    out = Path(args.json) if args.json else workdir / "report.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nreport: {out}" + (f"; plot: {b.results['latency']['plot']}" if "latency" in b.results else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
