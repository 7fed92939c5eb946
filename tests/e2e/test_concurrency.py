"""Many terminals at once, short and long connections: the answers stay exact and the ledger consistent."""

from __future__ import annotations

import asyncio

from tests.support.stack import CARD, LOW, POS2_TID, POS_TID, RICH, Stack


async def test_concurrent_purchases_never_overdraw(stack: Stack) -> None:
    a = await stack.pos(tid=POS_TID)
    b = await stack.pos(tid=POS2_TID)

    async def buy(pos: object, n: int) -> list[str]:
        return [(await pos.purchase(LOW.pan, LOW.pin, 100)).rc for _ in range(n)]  # type: ignore[attr-defined]

    ra, rb = await asyncio.gather(buy(a, 8), buy(b, 8))
    rcs = ra + rb
    assert rcs.count("00") == LOW.balance // 100 and rcs.count("51") == 16 - LOW.balance // 100
    assert await stack.balance(LOW.pan) == 0


async def test_short_connections_one_transaction_each(stack: Stack) -> None:
    first = await stack.pos()
    keys, batch = first.keys, first.batch
    await first.close()
    for i in range(3):
        pos = await stack.pos(signon=False)
        pos.keys, pos.batch, pos.stan = keys, batch, 10 + i
        assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
        await pos.close()
    assert await stack.balance(CARD.pan) == CARD.balance - 300


async def test_pipelined_requests_on_one_connection_are_all_answered(stack: Stack) -> None:
    pos = await stack.pos()
    bodies = [pos.encode("0200", pos.purchase_fields(RICH.pan, RICH.pin, 100 + i)) for i in range(20)]
    import struct

    pos.writer.write(b"".join(struct.pack(">H", len(b)) + b for b in bodies))
    await pos.writer.drain()
    stans = set()
    for _ in bodies:
        head = await asyncio.wait_for(pos.reader.readexactly(2), 10)
        ans = pos.read_answer(await pos.reader.readexactly(struct.unpack(">H", head)[0]))
        assert ans.rc == "00" and ans.mac_ok
        stans.add(ans.f["11"])
    assert len(stans) == 20
    assert await stack.balance(RICH.pan) == RICH.balance - sum(100 + i for i in range(20))
