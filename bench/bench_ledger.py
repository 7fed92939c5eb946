"""Ledger commit throughput: purchases per second through ``LedgerStore.execute`` (journal + double-entry
postings + balance + daily counters + SMS outbox row, durable before the result is returned).

    python bench/bench_ledger.py [--ops 20000] [--concurrency 1,64] [--backends sqlite-full,sqlite-normal,postgres]

Each configuration gets a fresh ledger (SQLite file in a temp dir; a fresh PostgreSQL schema) with
``--cards`` funded cards; ``--concurrency`` coroutines issue purchases of 1 fen on random cards. Reported:
purchases/s, mean group-commit size (SQLite), and the FULL/NORMAL ratio at each concurrency (SPEC §11 asks
>= 0.80 with group commit). Figures vary +-20-30 % on a noisy 2-core machine: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.ledger import LedgerStore
from switch.ledger.provision import parse_provisioning, provision
from tests.ledger.reqs import request
from tests.support.ledger_db import (
    SeedCard,
    open_test_store,
    pan,
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


async def _drive(store: LedgerStore, cards: list[SeedCard], ops: int, concurrency: int) -> float:
    rng = random.Random(7)
    stans = iter(range(1, ops + 1))
    approved = 0

    async def worker() -> None:
        nonlocal approved
        for stan in stans:
            card = cards[rng.randrange(len(cards))]
            out = await store.execute(request("purchase", stan, card=card, amount=1, batch=f"{stan // 999999 + 1:06d}"))
            approved += out.rc == "00"

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    if approved != ops:
        raise SystemExit(f"only {approved} of {ops} purchases approved")
    return ops / elapsed


async def run_one(backend: str, ops: int, concurrency: int, cards: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if backend.startswith("sqlite"):
            sync = "FULL" if backend == "sqlite-full" else "NORMAL"
            store, seeds = await _seeded(sqlite_ledger(Path(tmp)), cards, synchronous=sync)
            try:
                rate = await _drive(store, seeds, ops, concurrency)
                stats = store.stats()
                problems = await store.check_invariants()
            finally:
                await store.close()
            batch = stats["operations"] / max(stats["batches"], 1)
            return {
                "backend": backend,
                "concurrency": concurrency,
                "per_s": round(rate),
                "mean_batch": round(batch, 1),
                "invariants_ok": not problems,
            }
        async with postgres_ledger() as dsn:
            store, seeds = await _seeded(dsn, cards, pool_size=8)
            try:
                rate = await _drive(store, seeds, ops, concurrency)
                problems = await store.check_invariants()
            finally:
                await store.close()
            return {"backend": backend, "concurrency": concurrency, "per_s": round(rate), "invariants_ok": not problems}


async def main() -> tuple[list[dict[str, Any]], str | None]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--cards", type=int, default=500)
    ap.add_argument("--concurrency", default="1,64")
    ap.add_argument("--backends", default="sqlite-full,sqlite-normal,postgres")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    results = []
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
