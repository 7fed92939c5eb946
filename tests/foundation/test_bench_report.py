"""The arithmetic of ``make bench``'s SPEC §11 report (no timing: fixed figures in, the printed verdicts out)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import run_all
from stack import postmaster_of

from tests.support.ledger_db import PG_BASE, require_postgres


def _run(tps: float, **cpu: float) -> dict[str, Any]:
    return {"tps": tps, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0, "cpu_us_per_request": cpu}


#: run A of docs/PERFORMANCE.md (2026-12-03)
RUN_A: dict[str, Any] = {
    "echo": _run(8541.0, generator=110.0, echo=93.0),
    "full": _run(1434.0, generator=219.9, switch=718.4, hsm=112.5),
    "normal": _run(1659.0, generator=221.0, switch=599.0, hsm=110.0),
}


def test_budget_and_zero_cost_ceiling_of_run_a() -> None:
    # half the echo rate = 4,270.5/s; 2 cores / 4,270.5 = 468.3 us, less generator + HSM 332.4 = 135.9 us,
    # below the one-core bound 234.2 us; a free switch: 2e6 / (8,541 * 332.4) = 0.704
    assert run_all.cpu_budget(RUN_A, 2) == [
        ("switch CPU budget for 0.50 here", "136 µs", "(info: measured 718 µs/purchase)", None),
        ("full / echo with a zero-cost switch", "0.70", "(info: generator + HSM on 2 cores)", None),
    ]


def test_one_core_bound_wins_when_the_others_cost_little() -> None:
    res = {**RUN_A, "full": _run(1434.0, generator=10.0, switch=718.4, hsm=10.0)}
    (budget, _ceiling) = run_all.cpu_budget(res, 8)
    assert budget[1] == "234 µs"  # 1e6 / 4,270.5: one event loop is one core, however many cores there are


def test_ratios_verdicts() -> None:
    res = {
        **RUN_A,
        "latency": {"points": []},  # failed part-way: no half-load point, no latency verdict
        "batch": {"x": {"bench": "clearing_run", "backend": "sqlite", "rows": 1_000_200, "seconds": 61.0}},
    }
    got = {w: (v, m) for w, v, _t, m in run_all.ratios(res, 2)}
    assert got["full FULL / echo"] == ("0.17", False)
    assert got["full NORMAL / echo"] == ("0.19", None)
    assert got["FULL / NORMAL"] == ("0.86", True)
    assert got["clearing_run (sqlite, 1,000,200)"] == ("61.0 s", False)
    assert not any(w.startswith(("p99", "max at")) for w in got)
    res["latency"] = {"half": {"p99_ms": 10.0, "max_ms": 1000.1}}
    got = {w: (v, m) for w, v, _t, m in run_all.ratios(res, 2)}
    assert got["p99 at half load"] == ("10.00 ms", True)
    assert got["max at half load"] == ("1000.1 ms", False)


def _load_report(steal: float, rc: dict[str, int], timeouts: int = 0) -> dict[str, Any]:
    return {
        "tps": 100.0,
        "requests": 1000,
        "latency_ms": {"p50": 1.0, "p99": 2.0, "max": 3.0},
        "rc": rc,
        "timeouts": timeouts,
        "client": {"cpu_us_per_message": 200.0},
        "_cpu_s": {"switch": 0.5},
        "_busy_cores": 1.5,
        "_steal_cores": steal,
    }


def test_summary_flags_steal_and_declines() -> None:
    quiet = run_all.summarize(_load_report(0.05, {"00": 1000}), procs={"switch": 1})
    assert quiet["cpu_us_per_request"] == {"generator": 200.0, "switch": 500.0}
    assert "warning" not in quiet
    noisy = run_all.summarize(_load_report(0.06, {"00": 990, "51": 10}, timeouts=2), procs={"switch": 1})
    assert noisy["warning"] == (
        "non-approved answers {'51': 10}, timeouts 2; the hypervisor took 0.06 cores (steal): latency figures disturbed"
    )


def test_postmaster_of_a_process_that_is_not_postgres() -> None:
    assert postmaster_of(os.getpid()) is None
    assert postmaster_of(2**22 + 12345) is None  # no such process


@pytest.mark.postgres
def test_postmaster_of_a_local_backend() -> None:
    import asyncio

    import asyncpg

    async def backend_and_postmaster() -> tuple[int, int | None, bool]:
        await require_postgres()
        con = await asyncpg.connect(PG_BASE)
        try:
            backend: int = await con.fetchval("SELECT pg_backend_pid()")
            # read while the backend lives (a sync look at /proc, nothing to wait for)
            return backend, postmaster_of(backend), os.path.exists(f"/proc/{backend}")  # noqa: ASYNC240
        finally:
            await con.close()

    backend, postmaster, local = asyncio.run(backend_and_postmaster())
    if not local:
        pytest.skip(f"the PostgreSQL server at {PG_BASE} runs on another host")
    assert postmaster is not None and postmaster != backend
    assert Path(f"/proc/{postmaster}/comm").read_text().strip() == "postgres"
