"""Concurrency: requests on one card at once never overdraw it; a duplicate key racing with itself has one
effect and every caller gets the same stored answer; a void racing a reversal of the same purchase has one
effect. On PostgreSQL also across two stores (two pools: what two switch processes look like)."""

from __future__ import annotations

import asyncio
from collections import Counter

from switch.ledger import LedgerStore
from tests.ledger.reqs import request
from tests.support.ledger_db import CARD, LOW, ManualClock, open_test_store


async def test_concurrent_debits_on_one_card_never_overdraw(store: LedgerStore) -> None:
    outs = await asyncio.gather(*(store.execute(request("purchase", i, card=LOW, amount=100)) for i in range(1, 31)))
    assert Counter(o.rc for o in outs) == {"00": 10, "51": 20}
    assert await store.balance(LOW.token) == 0
    assert len({o.fields["37"] for o in outs}) == 30  # every request its own RRN


async def test_duplicate_key_racing_has_one_effect(store: LedgerStore) -> None:
    req = request("purchase", 42, card=CARD, amount=1234)
    outs = await asyncio.gather(*(store.execute(req) for _ in range(12)))
    assert all(o == outs[0] for o in outs) and outs[0].rc == "00"
    assert await store.balance(CARD.token) == 50000 - 1234
    rows = await store.read(lambda tx: tx.fetch("SELECT COUNT(*) FROM journal WHERE stan = '000042'"))
    assert rows[0][0] == 1


async def test_void_racing_reversal_of_the_same_purchase(store: LedgerStore) -> None:
    p = await store.execute(request("purchase", 1, card=CARD, amount=5000))
    void = request("void", 2, card=CARD, amount=5000, orig_rrn=p.fields["37"], orig_stan="000001", orig_batch="000001")
    rev = request("reversal", 1, card=CARD, amount=5000, orig_kind="purchase")
    outs = await asyncio.gather(store.execute(void), store.execute(rev))
    assert outs[1].rc == "00"
    # whichever ran first undid the purchase; the other one found nothing left to undo
    assert await store.balance(CARD.token) == 50000
    assert outs[0].rc in ("00", "12")


async def test_two_stores_share_one_postgres_ledger(backend: str, ledger_dsn: str, store: LedgerStore) -> None:
    if backend != "postgres":
        return  # SQLite: one process owns the ledger (its single writer serializes everything)
    other = await open_test_store(ledger_dsn, clock=ManualClock())
    try:
        reqs = [request("purchase", i, card=LOW, amount=100) for i in range(1, 41)]
        dup = request("purchase", 99, card=CARD, amount=777)
        outs = await asyncio.gather(
            *((store if i % 2 else other).execute(r) for i, r in enumerate(reqs)),
            *((store if i % 2 else other).execute(dup) for i in range(6)),
        )
        assert Counter(o.rc for o in outs[:40]) == {"00": 10, "51": 30}
        assert len({o.fields["37"] for o in outs}) == 41  # RRNs unique across both "processes"
        assert all(o == outs[40] for o in outs[40:])
        assert await store.balance(LOW.token) == 0
        assert await store.balance(CARD.token) == 50000 - 777
    finally:
        await other.close()
