"""The ledger contract, identical on SQLite and PostgreSQL: the money rules the engine relies on (the in-memory
``FakeLedger`` is their executable reference), journaling, idempotency, reply fields, business date."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from switch.iso.fields import parse_balance54
from switch.ledger import LedgerStore, StoreUnavailable
from switch.ledger.keys import FEE_INCOME_ACCOUNT, FLOAT_ACCOUNT
from switch.pipeline.ports import WorkingKeys
from tests.ledger.reqs import request
from tests.support.ledger_db import (
    CARD,
    CARD2,
    HALL_TID,
    INACTIVE,
    LOST,
    LOW,
    MID2,
    NEARCAP,
    NOMOBILE,
    OTHER_TID,
    POS2_TID,
    POS_TID,
    ManualClock,
)


def bal54(fields: dict[str, str]) -> int:
    return parse_balance54(fields["54"]).amount_fen


async def q(store: LedgerStore, sql: str, *args: Any) -> list[Any]:
    return await store.read(lambda tx: tx.fetch(sql, *args))


async def purchase(store: LedgerStore, stan: int, amount: int, card: Any = CARD, **kw: Any) -> Any:
    return await store.execute(request("purchase", stan, card=card, amount=amount, **kw))


# ------------------------------------------------------------------------------------------------ purchase
async def test_purchase_approved_moves_money_with_double_entry_and_reply_fields(store: LedgerStore) -> None:
    out = await purchase(store, 1, 10000)
    assert out.rc == "00"
    assert re.fullmatch(r"\d{12}", out.fields["37"])
    assert re.fullmatch(r"\d{6}", out.fields["38"])
    assert bal54(out.fields) == 40000
    assert out.fields["15"] == "1122"  # business date of 2026-11-22 14:03
    assert await store.balance(CARD.token) == 40000
    rows = await q(
        store,
        "SELECT p.account_id, p.amount FROM postings p JOIN journal j ON j.id = p.journal_id "
        "WHERE j.rrn = $1 ORDER BY p.amount",
        out.fields["37"],
    )
    fee = (10000 * 38 + 5000) // 10000  # 0.38 % rounded half up = 38 fen
    assert [r[1] for r in rows] == [-10000, fee, 10000 - fee]
    assert FEE_INCOME_ACCOUNT in [r[0] for r in rows]
    j = (
        await q(store, "SELECT kind, rc, business_date, fee, auth_code FROM journal WHERE rrn = $1", out.fields["37"])
    )[0]
    assert (j[0], j[1], j[2], j[3], j[4]) == ("purchase", "00", 20261122, fee, out.fields["38"])


async def test_insufficient_funds_is_51_with_balance_and_no_effect(store: LedgerStore) -> None:
    out = await purchase(store, 1, 1001, card=LOW)
    assert out.rc == "51" and out.reason == "insufficient_funds"
    assert bal54(out.fields) == 1000
    assert await store.balance(LOW.token) == 1000
    assert await purchase(store, 2, 1000, card=LOW) == await store.execute(
        request("purchase", 2, card=LOW, amount=1000)
    )
    assert await store.balance(LOW.token) == 0


async def test_retransmission_returns_stored_outcome_without_second_effect(store: LedgerStore) -> None:
    req = request("purchase", 7, card=CARD, amount=2500)
    first = await store.execute(req)
    again = await store.execute(req)
    assert again == first
    assert await store.balance(CARD.token) == 47500
    found = await store.find_reply(req.dup_key)
    assert found is not None
    assert (found.fingerprint, found.rc, found.fields) == (req.fingerprint, "00", first.fields)
    assert await store.find_reply(request("purchase", 8, card=CARD).dup_key) is None


async def test_daily_amount_and_count_limits(store: LedgerStore, clock: ManualClock) -> None:
    program = dataclasses.replace(store.env.program, daily_count_limit=2, daily_amount_limit=3000)
    store.env = dataclasses.replace(store.env, program=program)
    assert (await purchase(store, 1, 1000)).rc == "00"
    assert (await purchase(store, 2, 2001)).reason == "over_daily_amount"
    assert (await purchase(store, 3, 2001)).rc == "61"
    assert (await purchase(store, 4, 1000)).rc == "00"
    out = await purchase(store, 5, 1)
    assert (out.rc, out.reason) == ("65", "over_daily_count")
    clock.advance(days=1)  # a new business date resets the counters
    assert (await purchase(store, 6, 1000)).rc == "00"


async def test_card_status_rechecked_under_lock(store: LedgerStore) -> None:
    assert (await purchase(store, 1, 100, card=LOST)).rc == "41"
    assert (await purchase(store, 2, 100, card=INACTIVE)).rc == "21"
    assert await store.balance(LOST.token) == 10000


# ------------------------------------------------------------------------------------------------ top-up
async def test_topup_credits_from_float_and_respects_the_cap(store: LedgerStore) -> None:
    out = await store.execute(request("topup", 1, card=NEARCAP, amount=1000, tid=HALL_TID))
    assert out.rc == "00" and bal54(out.fields) == 500000 and out.fields["38"]
    over = await store.execute(request("topup", 2, card=NEARCAP, amount=1, tid=HALL_TID))
    assert (over.rc, over.reason) == ("61", "over_balance_cap")
    assert await store.balance(NEARCAP.token) == 500000
    legs = await q(
        store,
        "SELECT p.account_id, p.amount FROM postings p JOIN journal j ON j.id = p.journal_id "
        "WHERE j.rrn = $1 ORDER BY p.amount",
        out.fields["37"],
    )
    assert (legs[0][0], legs[0][1]) == (FLOAT_ACCOUNT, -1000)


# ------------------------------------------------------------------------------------------------ void
async def _void(store: LedgerStore, stan: int, orig: Any, orig_stan: int, amount: int, **kw: Any) -> Any:
    return await store.execute(
        request(
            "void",
            stan,
            card=kw.pop("card", CARD),
            amount=amount,
            orig_rrn=orig.fields["37"],
            orig_auth=orig.fields["38"],
            orig_stan=f"{orig_stan:06d}",
            orig_batch=kw.pop("orig_batch", "000001"),
            **kw,
        )
    )


async def test_void_restores_card_merchant_fee_and_daily_counters(store: LedgerStore) -> None:
    p = await purchase(store, 1, 10000)
    v = await _void(store, 2, p, 1, 10000)
    assert v.rc == "00" and bal54(v.fields) == 50000 and v.fields["38"] == p.fields["38"]
    assert v.fields["37"] != p.fields["37"]
    assert await store.balance(CARD.token) == 50000
    net = await q(
        store,
        "SELECT account_id, SUM(amount) FROM postings WHERE account_id = $1 GROUP BY account_id",
        FEE_INCOME_ACCOUNT,
    )
    assert net == [] or net[0][1] == 0
    daily = await q(store, "SELECT daily_amount, daily_count FROM cards WHERE token = $1", CARD.token)
    assert (daily[0][0], daily[0][1]) == (0, 0)
    assert (await _void(store, 3, p, 1, 10000)).rc == "12"  # already voided


async def test_void_rules(store: LedgerStore) -> None:
    p = await purchase(store, 1, 10000)
    assert (await _void(store, 2, p, 1, 9999)).rc == "64"
    assert (await _void(store, 3, p, 99, 10000)).rc == "25"  # 61 does not match
    assert (await _void(store, 4, p, 1, 10000, card=CARD2)).rc == "25"  # another card
    assert (await _void(store, 5, p, 1, 10000, tid=POS2_TID)).rc == "12"  # another terminal
    assert (await _void(store, 6, p, 1, 10000, batch="000002", orig_batch="000001")).rc == "12"  # not this batch
    await store.execute(request("refund", 7, card=CARD, amount=100, orig_rrn=p.fields["37"]))
    assert (await _void(store, 8, p, 1, 10000)).rc == "12"  # partly refunded
    assert await store.balance(CARD.token) == 40100


async def test_void_after_settlement_is_12(store: LedgerStore) -> None:
    await store.signon(POS_TID, _keys())  # batch 000001 open
    p = await purchase(store, 1, 10000)
    await store.execute(request("settlement", 2, totals48="0" * 62))
    assert (await _void(store, 3, p, 1, 10000)).rc == "12"


# ------------------------------------------------------------------------------------------------ refund
async def test_refunds_partial_cumulative_and_limits(store: LedgerStore, clock: ManualClock) -> None:
    p = await purchase(store, 1, 10000)
    r1 = await store.execute(request("refund", 2, card=CARD, amount=4000, orig_rrn=p.fields["37"], tid=POS2_TID))
    assert r1.rc == "00" and set(r1.fields) == {"37", "15"}
    r2 = await store.execute(request("refund", 3, card=CARD, amount=6001, orig_rrn=p.fields["37"]))
    assert (r2.rc, r2.reason) == ("13", "refund_exceeds_original")
    assert (await store.execute(request("refund", 4, card=CARD, amount=6000, orig_rrn=p.fields["37"]))).rc == "00"
    assert await store.balance(CARD.token) == 50000
    assert (await store.execute(request("refund", 5, card=CARD, amount=1, orig_rrn="000000999999"))).rc == "25"
    assert (await store.execute(request("refund", 6, card=CARD2, amount=1, orig_rrn=p.fields["37"]))).rc == "25"
    fees = await q(
        store, "SELECT kind, fee FROM journal WHERE rc = '00' AND kind IN ('purchase', 'refund') ORDER BY id"
    )
    assert sum(f[1] for f in fees if f[0] == "refund") <= fees[0][1]


async def test_refund_of_old_or_other_merchant_purchase_is_25(store: LedgerStore, clock: ManualClock) -> None:
    p = await purchase(store, 1, 10000)
    other = await store.execute(
        request("refund", 2, card=CARD, amount=10, orig_rrn=p.fields["37"], tid=OTHER_TID, mid=MID2)
    )
    assert other.rc == "25"
    clock.advance(days=31)
    assert (await store.execute(request("refund", 3, card=CARD, amount=10, orig_rrn=p.fields["37"]))).rc == "25"


# ------------------------------------------------------------------------------------------------ reversal
async def test_reversal_undoes_purchase_once(store: LedgerStore) -> None:
    p = await purchase(store, 5, 10000)
    r = await store.execute(request("reversal", 5, card=CARD, amount=10000, orig_kind="purchase"))
    assert r.rc == "00" and set(r.fields) == {"37"}
    assert await store.balance(CARD.token) == 50000
    # the terminal re-sends the reversal (same key): the stored answer, no second credit
    again = await store.execute(request("reversal", 5, card=CARD, amount=10000, orig_kind="purchase"))
    assert again == r
    assert await store.balance(CARD.token) == 50000
    status = await q(store, "SELECT status, reversed_date FROM journal WHERE rrn = $1", p.fields["37"])
    assert (status[0][0], status[0][1]) == ("reversed", 20261122)
    daily = await q(store, "SELECT daily_amount, daily_count FROM cards WHERE token = $1", CARD.token)
    assert (daily[0][0], daily[0][1]) == (0, 0)


async def test_reversal_unknown_declined_or_mismatched(store: LedgerStore) -> None:
    unknown = await store.execute(request("reversal", 9, amount=100, orig_kind="purchase"))
    assert unknown.rc == "00"
    await purchase(store, 3, 2000, card=LOW)  # declined 51
    assert (await store.execute(request("reversal", 3, amount=2000, orig_kind="purchase"))).rc == "00"
    assert await store.balance(LOW.token) == 1000
    await purchase(store, 4, 500, card=LOW)
    mismatch = await store.execute(request("reversal", 4, amount=499, orig_kind="purchase"))
    assert (mismatch.rc, mismatch.reason) == ("25", "reversal_amount_mismatch")
    assert await store.balance(LOW.token) == 500


async def test_reversal_of_void_restores_the_purchase(store: LedgerStore) -> None:
    p = await purchase(store, 1, 10000)
    await _void(store, 2, p, 1, 10000)
    r = await store.execute(request("reversal", 2, card=CARD, amount=10000, orig_kind="void"))
    assert r.rc == "00"
    assert await store.balance(CARD.token) == 40000
    status = await q(store, "SELECT status FROM journal WHERE rrn = $1", p.fields["37"])
    assert status[0][0] == "ok"
    assert (await _void(store, 3, p, 1, 10000)).rc == "00"  # voidable again
    assert await store.balance(CARD.token) == 50000


async def test_reversal_of_topup_and_of_a_spent_topup(store: LedgerStore) -> None:
    await store.execute(request("topup", 1, card=LOW, amount=5000, tid=HALL_TID))
    r = await store.execute(request("reversal", 1, card=LOW, amount=5000, orig_kind="topup", tid=HALL_TID))
    assert r.rc == "00" and await store.balance(LOW.token) == 1000
    await store.execute(request("topup", 2, card=LOW, amount=5000, tid=HALL_TID))
    await purchase(store, 3, 5500, card=LOW)
    spent = await store.execute(request("reversal", 2, card=LOW, amount=5000, orig_kind="topup", tid=HALL_TID))
    assert spent.rc == "51"
    assert await store.balance(LOW.token) == 500


# ------------------------------------------------------------------------------------------------ settlement
async def test_settlement_totals_balanced_and_not(store: LedgerStore) -> None:
    p1 = await purchase(store, 1, 10000)
    await purchase(store, 2, 2000)
    p3 = await purchase(store, 3, 3000, card=CARD2)
    await _void(store, 4, p1, 1, 10000)
    await store.execute(request("reversal", 3, card=CARD2, amount=3000, orig_kind="purchase"))
    await store.execute(request("refund", 5, card=CARD2, amount=100, orig_rrn=p3.fields["37"]))  # reversed: 25
    await store.execute(request("topup", 6, card=LOW, amount=700, tid=HALL_TID))  # other terminal
    ours = f"{2000:012d}{1:03d}{0:012d}{0:03d}"
    ok = await store.execute(request("settlement", 7, totals48=ours + "0" + "0" * 31))
    assert ok.rc == "00" and ok.fields["48"] == ours + "1" + "0" * 30 + "1" and ok.fields["15"] == "1122"
    assert "37" not in ok.fields
    hall = await store.execute(request("settlement", 8, tid=HALL_TID, totals48="0" * 62))
    assert hall.fields["48"] == f"{0:012d}{0:03d}{700:012d}{1:03d}" + "2" + "0" * 30 + "2"


# ------------------------------------------------------------------------------------------------ terminal / PIN
def _keys(n: int = 1) -> WorkingKeys:
    return WorkingKeys(f"UPIK{n}", b"p", b"k", f"MAK{n}", b"m", b"k", f"UTDK{n}", b"t", b"k")


async def test_signon_opens_next_batch_stores_keys_and_resets_mac_failures(store: LedgerStore) -> None:
    await store.mac_failure(POS_TID)
    batch, rrn = await store.signon(POS_TID, _keys(1))
    assert batch == "000001" and re.fullmatch(r"\d{12}", rrn)
    t = await store.terminal(POS_TID)
    assert t is not None and (t.pik_lmk, t.mak_lmk, t.batch, t.mac_failures) == ("UPIK1", "MAK1", "000001", 0)
    batch2, rrn2 = await store.signon(POS_TID, _keys(2))
    assert batch2 == "000002" and rrn2 != rrn


async def test_mac_failures_drop_keys_at_the_limit(store: LedgerStore) -> None:
    await store.signon(POS_TID, _keys())
    assert await store.mac_failure(POS_TID) == 1
    await store.mac_success(POS_TID)
    assert [await store.mac_failure(POS_TID) for _ in range(3)] == [1, 2, 3]
    t = await store.terminal(POS_TID)
    assert t is not None and (t.pik_lmk, t.mak_lmk, t.mac_failures) == ("", "", 3)
    assert await store.mac_failure("99999999") == 0


async def test_pin_tries_count_lock_and_reset(store: LedgerStore) -> None:
    assert [await store.pin_result(CARD.token, False, 3) for _ in range(4)] == [1, 2, 3, 3]
    assert await store.pin_tries(CARD.token) == 3
    card = await store.card(CARD.pan)
    assert card is not None and card.pin_tries == 3
    assert await store.pin_result(CARD.token, True, 3) == 0


async def test_pinchange_sets_offset_and_activates(store: LedgerStore) -> None:
    out = await store.execute(request("pinchange", 1, card=INACTIVE, new_pin_offset="123456", activate=True))
    assert out.rc == "00" and set(out.fields) == {"37"}
    card = await store.card(INACTIVE.pan)
    assert card is not None and (card.status, card.pin_offset) == ("active", "123456")


async def test_reference_data(store: LedgerStore) -> None:
    m = await store.merchant("898520154110002")
    assert m is not None and m.status == "suspended"
    assert await store.merchant("000000000000000") is None
    assert await store.terminal("99999999") is None
    assert await store.card("9900010000009999") is None
    hall = await store.terminal(HALL_TID)
    assert hall is not None and hall.kind == "service_hall" and hall.batch == "000000"


# ------------------------------------------------------------------------------------------------ declines, notices
async def test_declines_are_journaled_with_rrn_and_replayed(store: LedgerStore) -> None:
    req = request("declined", 11, card=CARD, amount=100, rc="55", reason="pin_wrong")
    out = await store.execute(req)
    assert out.rc == "55" and set(out.fields) == {"37", "15"}
    found = await store.find_reply(req.dup_key)
    assert found is not None and found.rc == "55" and found.fields == out.fields
    kinds = await q(store, "SELECT kind, reason FROM journal WHERE rrn = $1", out.fields["37"])
    assert (kinds[0][0], kinds[0][1]) == ("purchase", "pin_wrong")


async def test_sms_outbox_rows(store: LedgerStore) -> None:
    p = await purchase(store, 1, 10000)
    await _void(store, 2, p, 1, 10000)
    p2 = await purchase(store, 3, 2000)
    await store.execute(request("refund", 4, card=CARD, amount=500, orig_rrn=p2.fields["37"]))
    await store.execute(request("topup", 5, card=CARD2, amount=300, tid=HALL_TID))
    await purchase(store, 6, 100, card=NOMOBILE)  # no mobile: no notice
    await purchase(store, 7, 99999999)  # declined: no notice
    p8 = await purchase(store, 8, 100)
    await store.execute(request("reversal", 8, card=CARD, amount=100, orig_kind="purchase"))
    rows = await q(
        store,
        "SELECT n.id, n.kind, n.text, n.status, j.rrn FROM notices n JOIN journal j "
        "ON j.id = n.journal_id ORDER BY n.journal_id",
    )
    assert [(r[1], r[3]) for r in rows] == [
        ("purchase", "pending"),
        ("void", "pending"),
        ("purchase", "pending"),
        ("refund", "pending"),
        ("topup", "pending"),
        ("purchase", "cancelled"),
    ]
    assert rows[0][2] == f"您尾号{CARD.pan[-4:]}的工会会员服务卡11月22日14:03消费100.00元，余额400.00元。"
    assert all(r[0] == f"sms-{r[4]}" for r in rows)
    assert rows[-1][4] == p8.fields["37"]


# ------------------------------------------------------------------------------------------------ business date
async def test_business_date_follows_cutover_and_manual_close(store: LedgerStore, clock: ManualClock) -> None:
    clock.set(clock.now().replace(hour=23, minute=25))
    assert (await purchase(store, 1, 100)).fields["15"] == "1123"
    await store.write(lambda tx: tx.execute("UPDATE business_day SET last_closed = 20261123 WHERE id = 1"))
    out = await purchase(store, 2, 100)
    assert out.fields["15"] == "1124"
    dates = await q(store, "SELECT business_date FROM journal WHERE rrn = $1", out.fields["37"])
    assert dates[0][0] == 20261124


# ------------------------------------------------------------------------------------------------ robustness
async def test_unavailable_hook_raises_store_unavailable(store: LedgerStore) -> None:
    store.set_unavailable(True)
    with pytest.raises(StoreUnavailable):
        await store.terminal(POS_TID)
    with pytest.raises(StoreUnavailable):
        await purchase(store, 1, 100)
    store.set_unavailable(False)
    assert (await purchase(store, 1, 100)).rc == "00"


async def test_invariant_check_reports_a_tampered_ledger(store: LedgerStore) -> None:
    await purchase(store, 1, 100)
    assert await store.check_invariants() == []
    await store.write(
        lambda tx: tx.execute(
            "UPDATE postings SET amount = amount + 1 "
            "WHERE journal_id = (SELECT MAX(journal_id) FROM postings) AND amount < 0"
        )
    )
    await store.write(
        lambda tx: tx.execute("UPDATE accounts SET balance = balance + 5 WHERE kind = 'card' AND ref = $1", CARD2.token)
    )
    problems = await store.check_invariants()
    assert any("sum to 1" in p for p in problems)
    assert any("differs from the sum of its postings" in p for p in problems)
    # put it back so the fixture's final check passes
    await store.write(
        lambda tx: tx.execute(
            "UPDATE postings SET amount = amount - 1 "
            "WHERE journal_id = (SELECT MAX(journal_id) FROM postings) AND amount < 0"
        )
    )
    await store.write(
        lambda tx: tx.execute("UPDATE accounts SET balance = balance - 5 WHERE kind = 'card' AND ref = $1", CARD2.token)
    )


async def test_unknown_request_kind_is_an_error_not_a_silent_success(store: LedgerStore) -> None:
    with pytest.raises(ValueError):
        await store.execute(dataclasses.replace(request("purchase", 1, card=CARD, amount=1), kind="teleport"))
    assert await store.balance(CARD.token) == 50000
