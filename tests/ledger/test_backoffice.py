"""The back office's store on both backends, over the same tables as the POS money rules: business date and
manual cut-over, cards, bulk top-ups, clearing rows, rebates, SMS outbox, statements; and the back-office
services (top-up import, clearing run, rebates, notices) driven end to end on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from switch.backoffice.gateway import FileGateway
from switch.backoffice.ports import NewCard, TopupItem
from switch.backoffice.services import run_rebates, send_notices
from switch.backoffice.topup import import_topups
from switch.clearing.records import verify_clearing_text
from switch.clearing.run import run_clearing
from switch.errors import HandledError
from switch.ledger import LedgerStore
from switch.ledger.backoffice import SqlBackofficeStore, open_backoffice_store
from tests.ledger.reqs import request
from tests.support.ledger_db import (
    CARD,
    CARD2,
    HALL_TID,
    INACTIVE,
    LOST,
    LOW,
    MID,
    NEARCAP,
    NOMOBILE,
    TOKEN_KEY,
    ManualClock,
)
from tests.support.secrets import allow_card_data


@pytest.fixture
async def bo(store: LedgerStore, ledger_dsn: str, clock: ManualClock) -> AsyncIterator[SqlBackofficeStore]:
    s = await open_backoffice_store(ledger_dsn, calendar=clock.calendar)
    try:
        yield s
    finally:
        await s.close()


def _item(line: int, order: str, card: Any, amount: int, digest: str = "d", employer: str = "E001") -> TopupItem:
    return TopupItem(line, order, employer, card.token, amount, "福利", "note", digest + order)


async def _purchase(store: LedgerStore, stan: int, amount: int, card: Any = CARD) -> Any:
    return await store.execute(request("purchase", stan, card=card, amount=amount))


# ------------------------------------------------------------------------------------------------ business date
async def test_day_close_moves_the_open_business_date(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock
) -> None:
    now = clock.now()
    day = await bo.business_day(now)
    assert (day.open_date, day.last_closed) == (date(2026, 11, 22), None)
    assert await bo.close_business_day(now) == (date(2026, 11, 22), date(2026, 11, 23))
    assert (await _purchase(store, 1, 100)).fields["15"] == "1123"  # the POS side follows at once
    assert await bo.close_business_day(now) == (date(2026, 11, 23), date(2026, 11, 24))
    day = await bo.business_day(now)
    assert (day.open_date, day.last_closed) == (date(2026, 11, 24), date(2026, 11, 23))
    # the clock catches up and passes the manual close
    later = now + timedelta(days=3)
    assert (await bo.business_day(later)).open_date == date(2026, 11, 25)


# ------------------------------------------------------------------------------------------------ cards
async def test_issue_show_and_operate_cards(store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock) -> None:
    assert [await bo.next_card_sequence("990001") for _ in range(2)] == [8, 9]  # after the provisioned ones
    assert await bo.next_card_sequence("990002") == 1
    new = NewCard("ab" * 32, "990001", "0093", 9, "3111", "123456", "M9", "新会员", "13900000000", "E002")
    await bo.insert_card(new, clock.now())
    with pytest.raises(HandledError):
        await bo.insert_card(new, clock.now())
    view = await bo.card_by_token(new.token)
    assert view is not None and (view.status, view.balance, view.masked_pan) == ("inactive", 0, "990001******0093")
    assert (await bo.card_by_member("M9")) == view
    assert await bo.card_by_member("nobody") is None

    await store.pin_result(CARD.token, False, 3)
    assert await bo.card_action(CARD.token, "unlock-pin", "op", clock.now()) == ("active", "active")
    assert await store.pin_tries(CARD.token) == 0
    assert await bo.card_action(CARD.token, "freeze", "op", clock.now()) == ("active", "frozen")
    assert (await _purchase(store, 1, 100)).rc == "62"
    assert await bo.card_action(CARD.token, "close", "op", clock.now()) == ("frozen", "closed")
    with pytest.raises(HandledError, match="closed"):
        await bo.card_action(CARD.token, "lost", "op", clock.now())
    with pytest.raises(HandledError, match="unknown card"):
        await bo.card_action("00" * 32, "lost", "op", clock.now())
    rows = await store.read(
        lambda tx: tx.fetch("SELECT kind, detail FROM journal WHERE source = 'operator' ORDER BY id")
    )
    assert [r[0] for r in rows] == ["card_issue", "card_action", "card_action", "card_action"]
    assert "freeze by op: active->frozen" in rows[2][1]


# ------------------------------------------------------------------------------------------------ bulk top-ups
async def test_bulk_topups_apply_reject_and_are_idempotent(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock
) -> None:
    items = [
        _item(2, "O1", CARD, 1000),
        _item(3, "O2", LOW, 2000),
        _item(4, "O3", LOST, 100),
        _item(5, "O4", NEARCAP, 1001),
        _item(6, "O5", INACTIVE, 500),  # issued, not activated yet: employers may load it
        TopupItem(7, "O6", "E001", "ff" * 32, 100, "", "", "x"),
        _item(8, "O1", CARD, 1000),  # the same order twice in one file
        _item(9, "O2", LOW, 9999, digest="other"),  # same id, different content
        _item(10, "O7", CARD, 1000),
    ]
    out = await bo.apply_topups(items, now=clock.now(), business_date=date(2026, 11, 22), balance_cap=500000)
    assert [o.result for o in out] == [
        "applied",
        "applied",
        "rejected:card_lost",
        "rejected:cap",
        "applied",
        "rejected:unknown_card",
        "duplicate",
        "rejected:conflict",
        "applied",
    ]
    assert [o.balance for o in out][:2] == [51000, 3000] and out[-1].balance == 52000
    assert await store.balance(CARD.token) == 52000
    again = await bo.apply_topups(items, now=clock.now(), business_date=date(2026, 11, 22), balance_cap=500000)
    assert [o.result for o in again] == [
        "duplicate",
        "duplicate",
        "rejected:card_lost",
        "rejected:cap",
        "duplicate",
        "rejected:unknown_card",
        "duplicate",
        "rejected:conflict",
        "duplicate",
    ]
    assert await store.balance(CARD.token) == 52000
    notices = await bo.pending_notices(100)
    assert [n.kind for n in notices].count("topup") == 4
    assert all(CARD.pan not in n.text for n in notices)
    lines = await bo.employer_statement("E001", date(2026, 11, 1), date(2026, 12, 1))
    assert [(x.order_id, x.amount) for x in lines] == [("O1", 1000), ("O2", 2000), ("O5", 500), ("O7", 1000)]


# ------------------------------------------------------------------------------------------------ clearing
async def _rows(bo: SqlBackofficeStore, d: date) -> list[Any]:
    return [row async for batch in bo.clearing_rows(d, 2) for row in batch]


async def test_clearing_rows_of_a_closed_date_and_late_reversals(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock
) -> None:
    p1 = await _purchase(store, 1, 10000)
    await _purchase(store, 2, 999999, card=LOW)  # declined: absent
    await _purchase(store, 3, 500)
    await store.execute(request("reversal", 3, card=CARD, amount=500, orig_kind="purchase"))  # same day: absent
    await store.execute(request("refund", 4, card=CARD, amount=100, orig_rrn=p1.fields["37"]))
    await store.execute(request("topup", 5, card=CARD2, amount=700, tid=HALL_TID))
    p6 = await _purchase(store, 6, 2000, card=CARD2)
    d1, d2 = await bo.close_business_day(clock.now())
    rev = await store.execute(request("reversal", 6, card=CARD2, amount=2000, orig_kind="purchase"))
    assert rev.fields["37"] != p6.fields["37"]
    rows = await _rows(bo, d1)
    # the provisioning loads are the day's first top-ups
    pos_rows = [r for r in rows if r.rrn >= p1.fields["37"]]
    assert [(r.kind, r.amount) for r in pos_rows] == [
        ("purchase", 10000),
        ("refund", 100),
        ("topup", 700),
        ("purchase", 2000),
    ]
    refund = pos_rows[1]
    assert (refund.orig_rrn, refund.orig_business_date, refund.first6, refund.last4) == (
        p1.fields["37"],
        d1,
        CARD.pan[:6],
        CARD.pan[-4:],
    )
    assert pos_rows[0].fee == 38 and pos_rows[0].mid == MID and pos_rows[0].card_token == CARD.token
    late = await _rows(bo, d2)
    assert [(r.kind, r.orig_kind, r.amount, r.orig_rrn, r.orig_business_date) for r in late] == [
        ("reversal", "purchase", 2000, p6.fields["37"], d1)
    ]


async def test_clearing_run_writes_the_file_once(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock, tmp_path: Path
) -> None:
    await _purchase(store, 1, 10000)
    await bo.close_business_day(clock.now())
    kw: dict[str, Any] = {
        "clearing_dir": tmp_path,
        "program_id": "UNIONCARD",
        "calendar": clock.calendar,
        "now": clock.now,
        "progress": False,
    }
    first = await run_clearing(bo, **kw)
    assert first.status == "written"
    text = first.path.read_text(encoding="utf-8")
    assert verify_clearing_text(text) and "|PURCHASE|DR|" in text and CARD.pan not in text
    assert (await run_clearing(bo, **kw)).status == "unchanged"
    first.path.unlink()  # lost from disk: regenerated byte for byte from the journal and the record
    again = await run_clearing(bo, **kw)
    assert again.status == "regenerated" and again.path.read_text(encoding="utf-8") == text
    rec = await bo.clearing_file(date(2026, 11, 22))
    assert rec is not None and rec.created_at.utcoffset() == timedelta(hours=8)


# ------------------------------------------------------------------------------------------------ rebates, SMS
async def test_rebates_are_credited_once_per_card_and_month(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock
) -> None:
    p = await _purchase(store, 1, 10000)  # 5 % at MID
    await _purchase(store, 2, 3000, card=CARD2)
    await store.execute(
        request(
            "refund", 3, card=CARD2, amount=1000, orig_rrn=(await _purchase(store, 4, 1000, card=CARD2)).fields["37"]
        )
    )
    await _purchase(store, 5, 400, card=NOMOBILE)
    await store.execute(request("reversal", 5, card=NOMOBILE, amount=400, orig_kind="purchase"))
    spend = await bo.rebate_spend(date(2026, 11, 1), date(2026, 12, 1))
    assert sorted((tok, net) for tok, _mid, net, _bps in spend) == sorted([(CARD.token, 10000), (CARD2.token, 3000)])
    clock.set(datetime(2026, 12, 2, 10, 0, tzinfo=clock.tz))
    summary = await run_rebates(bo, month="2026-11", now=clock.now())
    assert (summary.cards, summary.credited, summary.total_fen) == (2, 2, 500 + 150)
    assert await store.balance(CARD.token) == 50000 - 10000 + 500
    again = await run_rebates(bo, month="2026-11", now=clock.now())
    assert (again.credited, again.already) == (0, 2)
    assert await store.balance(CARD.token) == 50000 - 10000 + 500
    lines = (await bo.card_statement(CARD.token, date(2026, 11, 1), date(2026, 12, 31)))[1]
    assert [(x.kind, x.amount, x.reference) for x in lines][-1] == ("rebate", 500, "2026-11")
    assert p.fields["37"] in [x.reference for x in lines]


async def test_notices_are_delivered_once_with_stable_ids(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock, tmp_path: Path
) -> None:
    await _purchase(store, 1, 100)
    await _purchase(store, 2, 200)
    await store.execute(request("reversal", 2, card=CARD, amount=200, orig_kind="purchase"))  # cancelled
    pending = await bo.pending_notices(10)
    assert len(pending) == 1 and pending[0].id.startswith("sms-")
    gw = FileGateway(tmp_path / "sms.jsonl")
    sent, left = await send_notices(bo, gw, now=clock.now)
    assert (sent, left) == (1, 0)
    assert await bo.pending_notices(10) == []
    delivered = [json.loads(x) for x in (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["id"] for d in delivered] == [pending[0].id]
    assert "消费1.00元，余额499.00元" in delivered[0]["text"]


# ------------------------------------------------------------------------------------------------ statements
async def test_card_statement_running_balance(store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock) -> None:
    await _purchase(store, 1, 1000)
    clock.advance(days=1)
    await _purchase(store, 2, 2000)
    await store.execute(request("topup", 3, card=CARD, amount=500, tid=HALL_TID))
    opening, lines = await bo.card_statement(CARD.token, date(2026, 11, 23), date(2026, 11, 23))
    assert opening == 49000
    assert [(x.kind, x.amount, x.balance_after) for x in lines] == [("purchase", -2000, 47000), ("topup", 500, 47500)]
    assert lines[0].merchant == "羊城西饼" and lines[0].business_date == date(2026, 11, 23)
    assert await bo.card_statement("00" * 32, date(2026, 11, 1), date(2026, 11, 30)) == (0, [])


# ------------------------------------------------------------------------------------------------ services end to end
async def test_topup_import_service_on_the_store(
    store: LedgerStore, bo: SqlBackofficeStore, clock: ManualClock, tmp_path: Path
) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,employer_id,pan,amount,item,note\n"
        f"A1,E001,{CARD.pan},100.00,福利,十一月\n"
        f"A2,E001,{LOW.pan},1.5,福利,\n"
        f"A3,E001,{LOST.pan},1.00,福利,\n"
        "A4,E001,123,1.00,福利,\n",
        encoding="utf-8",
    )
    allow_card_data(orders)
    out = tmp_path / "results.csv"
    kw: dict[str, Any] = {
        "orders_path": orders,
        "out_path": out,
        "token_key": TOKEN_KEY,
        "balance_cap": 500000,
        "calendar": clock.calendar,
        "now": clock.now,
        "progress": False,
    }
    summary = await import_topups(bo, **kw)
    assert (summary.applied, summary.rejected, summary.applied_fen) == (2, 2, 10150)
    assert await store.balance(CARD.token) == 60000
    again = await import_topups(bo, **kw)
    assert (again.applied, again.duplicate) == (0, 2)
    assert CARD.pan not in out.read_text(encoding="utf-8")
