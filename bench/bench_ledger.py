"""Ledger throughput.

Default: commits, i.e. purchases per second through ``LedgerStore.execute`` (journal + double-entry
postings + balance + daily counters + SMS outbox row, durable before the result is returned).

    python bench/bench_ledger.py [--ops 20000] [--concurrency 1,64] [--backends sqlite-full,sqlite-normal,postgres]
    python bench/bench_ledger.py --bulk [--topup-lines 100000] [--clearing-rows 1000000]

Each configuration gets a fresh ledger (SQLite file in a temp dir; a fresh PostgreSQL schema) with
``--cards`` funded cards; ``--concurrency`` coroutines issue purchases of 1 fen on random cards. Reported:
purchases/s, mean group-commit size (SQLite), and the FULL/NORMAL ratio at each concurrency (SPEC §11 asks
>= 0.80 with group commit). ``--bulk``: the top-up import and the clearing run through the real back-office
code on both backends (SPEC §11: 100,000 lines / 1,000,000 rows in <= 60 s each). Figures vary +-20-30 % on a
noisy 2-core machine: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.ledger import LedgerStore
from switch.ledger.provision import parse_provisioning, provision
from tests.ledger.reqs import request
from tests.support.cards import pan
from tests.support.ledger_db import (
    SeedCard,
    open_test_store,
    postgres_available,
    postgres_ledger,
    seed_document,
    sqlite_ledger,
)


async def _seeded(dsn: str, cards: int, **opts: Any) -> tuple[LedgerStore, list[SeedCard]]:
    store = await open_test_store(dsn, **opts)
    seeds = [SeedCard(pan(1000 + i), "active", 500000) for i in range(cards)]
    await provision(store, parse_provisioning(seed_document(tuple(seeds))), bins=["990001"], hsm=None)
    return store, seeds


async def _drive(store: LedgerStore, cards: list[SeedCard], ops: int, concurrency: int) -> tuple[float, float]:
    """(purchases/s, CPU µs of this process per purchase)."""
    rng = random.Random(7)
    stans = iter(range(1, ops + 1))
    approved = 0

    async def worker() -> None:
        nonlocal approved
        for stan in stans:
            card = cards[rng.randrange(len(cards))]
            out = await store.execute(request("purchase", stan, card=card, amount=1, batch=f"{stan // 999999 + 1:06d}"))
            approved += out.rc == "00"

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if approved != ops:
        raise SystemExit(f"only {approved} of {ops} purchases approved")
    return ops / elapsed, cpu / ops * 1e6


async def run_one(backend: str, ops: int, concurrency: int, cards: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if backend.startswith("sqlite"):
            sync = "FULL" if backend == "sqlite-full" else "NORMAL"
            store, seeds = await _seeded(sqlite_ledger(Path(tmp)), cards, synchronous=sync)
            try:
                rate, cpu_us = await _drive(store, seeds, ops, concurrency)
                stats = store.stats()
                problems = await store.check_invariants()
            finally:
                await store.close()
            batch = stats["operations"] / max(stats["batches"], 1)
            return {
                "backend": backend,
                "concurrency": concurrency,
                "per_s": round(rate),
                "cpu_us_per_op": round(cpu_us, 1),
                "mean_batch": round(batch, 1),
                "invariants_ok": not problems,
            }
        async with postgres_ledger() as dsn:
            store, seeds = await _seeded(dsn, cards, pool_size=8)
            try:
                rate, cpu_us = await _drive(store, seeds, ops, concurrency)
                problems = await store.check_invariants()
            finally:
                await store.close()
            return {
                "backend": backend,
                "concurrency": concurrency,
                "per_s": round(rate),
                "cpu_us_per_op": round(cpu_us, 1),
                "invariants_ok": not problems,
            }


# ------------------------------------------------------------------------------------------------ bulk work
async def bench_topups(backend: str, lines: int, cards: int) -> dict[str, Any]:
    """SPEC §11: a 100,000-line top-up import in <= 60 s (the real ``switch topup import`` code path)."""
    from switch.backoffice.topup import import_topups
    from switch.ledger.backoffice import open_backoffice_store
    from tests.support.ledger_db import TOKEN_KEY, ManualClock

    with tempfile.TemporaryDirectory() as tmp:
        async with _ledger(backend, Path(tmp)) as dsn:
            store, seeds = await _seeded(dsn, cards)
            await store.close()
            orders = Path(tmp) / "orders.csv"
            with orders.open("w", encoding="utf-8") as fh:
                fh.write("order_id,employer_id,pan,amount,item,note\n")
                for n in range(lines):
                    fh.write(f"O{n:07d},E{n % 50:03d},{seeds[n % len(seeds)].pan},0.01,welfare,bench\n")
            clock = ManualClock()
            bo = await open_backoffice_store(dsn, calendar=clock.calendar)
            try:
                kw: dict[str, Any] = {
                    "orders_path": orders,
                    "out_path": Path(tmp) / "out.csv",
                    "token_key": TOKEN_KEY,
                    "balance_cap": 10**12,
                    "calendar": clock.calendar,
                    "now": clock.now,
                    "progress": False,
                }
                t0 = time.perf_counter()
                first = await import_topups(bo, **kw)
                t1 = time.perf_counter()
                again = await import_topups(bo, **kw)
                t2 = time.perf_counter()
            finally:
                await bo.close()
            assert first.applied == lines and again.duplicate == lines
            return {
                "bench": "topup_import",
                "backend": backend,
                "lines": lines,
                "seconds": round(t1 - t0, 1),
                "rerun_seconds": round(t2 - t1, 1),
            }


async def bench_clearing(backend: str, rows: int) -> dict[str, Any]:
    """SPEC §11: the clearing file of 1,000,000 transactions in <= 60 s (the real ``switch clearing run``)."""
    from switch.clearing.run import run_clearing
    from switch.ledger.backoffice import open_backoffice_store
    from switch.ledger.journal import INSERT_JOURNAL_WITH_ID, Entry, entry_row
    from tests.support.ledger_db import ManualClock

    with tempfile.TemporaryDirectory() as tmp:
        async with _ledger(backend, Path(tmp)) as dsn:
            store, seeds = await _seeded(dsn, 200)
            clock = ManualClock()
            ts = clock.now()

            def rows_of(start: int, n: int, tx: Any) -> list[tuple[Any, ...]]:
                out = []
                for i in range(start, start + n):
                    e = Entry(
                        idem_key=f"bench|{i}",
                        kind="purchase",
                        source="pos",
                        rc="00",
                        business_date=20261122,
                        created_at=tx.ts(ts),
                        rrn=f"{500_000_000 + i:012d}",
                        tid="10000001",
                        mid="898520154110001",
                        batch="000001",
                        stan=f"{i % 1000000:06d}",
                        card_token=seeds[i % len(seeds)].token,
                        amount=100 + i % 900,
                        fee=1,
                        auth_code=f"{i % 999999 + 1:06d}",
                    )
                    out.append(entry_row(10_000_000 + i, e))
                return out

            t0 = time.perf_counter()
            for start in range(0, rows, 50_000):
                n = min(50_000, rows - start)

                async def load(tx: Any, start: int = start, n: int = n) -> None:
                    await tx.executemany(INSERT_JOURNAL_WITH_ID, rows_of(start, n, tx))

                await store.write(load)
            load_s = time.perf_counter() - t0
            await store.close()
            bo = await open_backoffice_store(dsn, calendar=clock.calendar)
            try:
                await bo.close_business_day(ts)
                t1 = time.perf_counter()
                out = await run_clearing(
                    bo,
                    clearing_dir=Path(tmp),
                    program_id="UNIONCARD",
                    calendar=clock.calendar,
                    now=clock.now,
                    progress=False,
                )
                t2 = time.perf_counter()
            finally:
                await bo.close()
            assert out.summary is not None and out.summary.d_count >= rows
            return {
                "bench": "clearing_run",
                "backend": backend,
                "rows": out.summary.d_count,
                "seconds": round(t2 - t1, 1),
                "load_seconds": round(load_s, 1),
            }


@contextlib.asynccontextmanager
async def _ledger(backend: str, tmp: Path) -> AsyncIterator[str]:
    if backend.startswith("sqlite"):
        yield sqlite_ledger(tmp)
    else:
        async with postgres_ledger() as dsn:
            yield dsn


async def main() -> tuple[list[dict[str, Any]], str | None]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--cards", type=int, default=500)
    ap.add_argument("--concurrency", default="1,64")
    ap.add_argument("--backends", default="sqlite-full,sqlite-normal,postgres")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--bulk", action="store_true", help="measure the bulk work instead (top-up import, clearing)")
    ap.add_argument("--topup-lines", type=int, default=100_000)
    ap.add_argument("--clearing-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    results = []
    if args.bulk:
        for backend in ("sqlite", "postgres"):
            if backend == "postgres" and not await postgres_available():
                print("postgres: skipped (no server answers)")
                continue
            for r in (
                await bench_topups(backend, args.topup_lines, 1000),
                await bench_clearing(backend, args.clearing_rows),
            ):
                results.append(r)
                print(json.dumps(r))
        return results, args.json
    for conc in (int(c) for c in args.concurrency.split(",")):
        for backend in args.backends.split(","):
            if backend == "postgres" and not await postgres_available():
                print("postgres: skipped (no server answers)")
                continue
            r = await run_one(backend, args.ops, conc, args.cards)
            results.append(r)
            print(json.dumps(r))
    by = {(r["backend"], r["concurrency"]): r["per_s"] for r in results}
    for conc in {r["concurrency"] for r in results}:
        full, normal = by.get(("sqlite-full", conc)), by.get(("sqlite-normal", conc))
        if full and normal:
            print(f"concurrency {conc}: FULL/NORMAL = {full / normal:.2f}")
    return results, args.json


if __name__ == "__main__":
    out, json_path = asyncio.run(main())
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2))
