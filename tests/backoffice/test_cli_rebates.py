"""``switch rebates run --month YYYY-MM`` through the real CLI, on both ledgers, after POS traffic through the
real switch: Σ over merchants of floor(net spend × rebate bps / 10000) per card, one REBATE credit dated in M+1
from the rebate expense account with its SMS, idempotent by (card, month)."""

from __future__ import annotations

from datetime import date

import pytest

from tests.backoffice.conftest import C1, C2, NOMOBILE, TID_A, TID_B, World, ymd

pytestmark = pytest.mark.asyncio

REBATE_EXPENSE = 3  # house account of the first migration


async def _advance_into_next_month(world: World, month_of: date) -> date:
    """``switch day close`` until the open business date is in the month after ``month_of``'s."""
    for _ in range(32):
        opened = await world.open_date()
        if (opened.year, opened.month) != (month_of.year, month_of.month):
            return opened
        await world.close_day()
    raise AssertionError("the business date did not move on")


async def test_monthly_cashback(world: World) -> None:
    d0 = await world.open_date()
    month = d0.strftime("%Y-%m")
    a = await world.pos(TID_A)
    b = await world.pos(TID_B)
    # C1 at A (5 %): 100.00 + 50.00 - refund 9.88 + a voided 30.00 = 140.12 -> 700.6 fen -> 700
    p1 = await a.purchase(C1.pan, C1.pin, 10000)
    assert (await a.purchase(C1.pan, C1.pin, 5000)).rc == "00"
    assert (await a.refund(C1.pan, 988, p1)).rc == "00"
    voided = await a.purchase(C1.pan, C1.pin, 3000)
    assert (await a.void(C1.pan, 3000, voided)).rc == "00"
    # C1 at B (10 %): 12.36 -> 123.6 fen -> 123; the card earns 823, not floor(824.2) = 824
    assert (await b.purchase(C1.pan, C1.pin, 1236)).rc == "00"
    # C2: a reversed purchase and 0.19 at A (0.95 fen -> 0): nothing
    f = b.purchase_fields(C2.pan, C2.pin, 500)
    assert (await b.send("0200", f)).rc == "00" and (await b.reverse(f)).rc == "00"
    assert (await a.purchase(C2.pan, C2.pin, 19)).rc == "00"
    # NOMOBILE at A: 20.00 -> 100 fen, credited without an SMS
    assert (await a.purchase(NOMOBILE.pan, NOMOBILE.pin, 2000)).rc == "00"

    early = await world.cli("rebates", "run", "--month", month)
    assert early.code == 1 and "not over" in early.err
    assert (await world.cli("rebates", "run", "--month", "2026-13")).code == 2
    assert (await world.cli("rebates", "run")).code == 2

    opened = await _advance_into_next_month(world, d0)
    assert (await a.purchase(C1.pan, C1.pin, 10000)).rc == "00"  # next month: not part of this month's cashback
    before = {c: await world.balance(c) for c in (C1, C2, NOMOBILE)}
    r = await world.ok("rebates", "run", "--month", month)
    assert r.out.strip() == (f"rebates {month}: 2 cards earned cashback, 2 credited now (9.23), 0 already credited")
    assert await world.balance(C1) == before[C1] + 823
    assert await world.balance(NOMOBILE) == before[NOMOBILE] + 100
    assert await world.balance(C2) == before[C2]

    rows = await world.fetch(
        "SELECT j.id, j.idem_key, j.kind, j.amount, j.business_date, j.card_token FROM journal j "
        "WHERE j.kind = 'rebate' ORDER BY j.card_token"
    )
    assert sorted((r[5], r[3]) for r in rows) == sorted([(C1.token, 823), (NOMOBILE.token, 100)])
    for jid, key, _kind, amount, bdate, token in rows:
        assert key == f"rebate|{token}|{month}"
        assert str(bdate) == ymd(opened) and (opened.year, opened.month) != (d0.year, d0.month)  # dated in M+1
        legs = await world.fetch("SELECT account_id, amount FROM postings WHERE journal_id = $1 ORDER BY amount", jid)
        assert legs[0] == (REBATE_EXPENSE, -amount) and legs[1][1] == amount and len(legs) == 2
    notices = await world.fetch(
        "SELECT n.kind, n.mobile, n.text FROM notices n JOIN journal j ON j.id = n.journal_id WHERE j.kind = 'rebate'"
    )
    assert len(notices) == 1 and notices[0][:2] == ("rebate", C1.mobile)
    assert f"您尾号{C1.last4}的工会会员服务卡" in notices[0][2]
    assert notices[0][2].endswith(f"返现8.23元，余额{(before[C1] + 823) // 100}.{(before[C1] + 823) % 100:02d}元。")

    # idempotent: a re-run (even after more traffic) credits nothing again
    again = await world.ok("rebates", "run", "--month", month)
    assert again.out.strip() == f"rebates {month}: 2 cards earned cashback, 0 credited now (0.00), 2 already credited"
    assert await world.balance(C1) == before[C1] + 823
    assert len(await world.fetch("SELECT id FROM journal WHERE kind = 'rebate'")) == 2
