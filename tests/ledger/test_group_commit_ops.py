"""Many POS operations in one group commit (both backends; PostgreSQL's batches read and write card rows in
memory): several purchases of one card, a decline in the middle, a void and a retransmission among them —
each gets the answer it would get alone, and the money adds up."""

from __future__ import annotations

import asyncio

from switch.ledger import LedgerStore
from tests.ledger.reqs import request
from tests.support.ledger_db import CARD


async def test_one_card_many_operations_in_one_batch(store: LedgerStore) -> None:
    start = await store.balance(CARD.token)
    assert start is not None
    amounts = [start // 4, start // 4, start // 4, start // 2, 1]  # the 4th cannot be paid any more
    reqs = [request("purchase", 100 + i, card=CARD, amount=a) for i, a in enumerate(amounts)]
    outs = await asyncio.gather(*(store.execute(r) for r in reqs), store.execute(reqs[0]))
    rcs = [o.rc for o in outs]
    assert rcs[:5] == ["00", "00", "00", "51", "00"], rcs
    assert outs[5] == outs[0]  # the retransmission: the stored answer, no second effect
    paid = sum(a for a, o in zip(amounts, outs[:5], strict=True) if o.rc == "00")
    assert await store.balance(CARD.token) == start - paid
    assert outs[3].fields["54"].endswith(f"{start - 3 * (start // 4):012d}")  # 51 shows the balance then
    # balances reported by the approvals follow each other within the batch
    assert [int(o.fields["54"][-12:]) for o in outs[:3]] == [start - k * (start // 4) for k in (1, 2, 3)]
    void = request(
        "void",
        200,
        card=CARD,
        amount=amounts[4],
        orig_rrn=outs[4].fields["37"],
        orig_auth=outs[4].fields["38"],
        orig_batch="000001",
        orig_stan=reqs[4].stan,
    )
    again = request("purchase", 201, card=CARD, amount=1)
    v, p = await asyncio.gather(store.execute(void), store.execute(again))
    assert (v.rc, p.rc) == ("00", "00")
    assert await store.balance(CARD.token) == start - paid + amounts[4] - 1
