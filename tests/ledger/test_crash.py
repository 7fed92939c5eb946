"""Crash safety: a process killed with SIGKILL in the middle of a load leaves a consistent ledger; every reply
it had given is in the ledger (replies only after the commit); a restart continues with RRNs that never
repeat. Runs on both backends (the SQLite run uses synchronous=FULL, the default)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from switch.ledger import LedgerStore
from switch.pipeline.ports import WorkingKeys
from tests.ledger.reqs import request
from tests.support.ledger_db import CARD, POS_TID, open_test_store

ROOT = Path(__file__).resolve().parents[2]


async def _run_and_kill(dsn: str, start: int, replies: int) -> list[dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ledger.crash_worker",
        dsn,
        str(start),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    seen: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(60):
            while len(seen) < replies:
                line = await proc.stdout.readline()
                assert line, "worker ended early"
                item = json.loads(line)
                if "rrn" in item:
                    seen.append(item)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return seen


async def _journal(store: LedgerStore) -> dict[str, tuple[str, str]]:
    rows = await store.read(lambda tx: tx.fetch("SELECT idem_key, rc, rrn FROM journal"), snapshot=True)
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_sigkill_mid_load_leaves_a_consistent_ledger_and_rrns_never_repeat(
    store: LedgerStore, ledger_dsn: str
) -> None:
    before = set((await _journal(store)).values())
    replied = await _run_and_kill(ledger_dsn, 1, 400)
    replied += await _run_and_kill(ledger_dsn, 200_000, 200)  # crash twice: the restart resumes cleanly

    after = await _journal(store)
    assert await store.check_invariants() == []
    for item in replied:  # every answer given was durable before it was given
        assert after.get("pos|" + item["key"]) == (item["rc"], item["rrn"])
    rrns = [rrn for _, rrn in after.values()]
    assert len(rrns) == len(set(rrns))
    assert any(o["rc"] == "00" for o in replied), "the load approved something"

    # the reopened ledger (this store is a fresh process-equivalent) continues without repeating an RRN
    fresh = await open_test_store(ledger_dsn)
    try:
        new = [await fresh.execute(request("purchase", 900_000 + i, card=CARD, amount=1)) for i in range(5)]
        _, signon_rrn = await fresh.signon(POS_TID, WorkingKeys("U1", b"", b"", "M", b"", b""))
    finally:
        await fresh.close()
    new_rrns = [o.fields["37"] for o in new] + [signon_rrn]
    assert not set(new_rrns) & set(rrns)
    assert min(new_rrns) > max(rrns)
    assert before <= set(after.values())
