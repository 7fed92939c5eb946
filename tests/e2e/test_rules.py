"""SPEC §5, one test per rule and response code, written as a terminal sees them (real TCP, real crypto)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from switch.iso.codec import decode_message
from switch.iso.profiles import CUP
from tests.support.pos import Answer, PosTerminal
from tests.support.stack import (
    BAD_LUHN_PAN,
    CARD,
    CARD2,
    CLOSED,
    EXPIRED,
    FOREIGN_PAN,
    FROZEN,
    HALL_TID,
    INACTIVE,
    LOST,
    LOW,
    MID_OTHER,
    MID_SUSPENDED,
    NEARCAP,
    PINCARD,
    POS2_TID,
    RICH,
    SUSPENDED_TID,
    UNKNOWN_PAN,
    UNKNOWN_TID,
    Stack,
    window_around_now,
)

# ------------------------------------------------------------------------------------ 1. format


async def test_missing_mandatory_field_is_30(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 100)
    del f["22"]
    ans = await pos.send("0200", f)
    assert ans.rc == "30" and ans.msg.mti == "0210"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_bad_field_content_with_readable_keys_is_30(stack: Stack) -> None:
    pos = await stack.pos()
    body = bytearray(pos.encode("0200", pos.purchase_fields(CARD.pan, CARD.pin, 100)))
    # corrupt field 49 (ASCII "156" -> "1X6"): decoding fails after 11/41/42 are readable
    i = body.find(b"156")
    body[i + 1] = ord("X")
    ans = await pos.send_body(bytes(body))
    assert ans.rc == "30" and ans.f["11"] and ans.f["41"] == pos.tid


async def test_unreadable_frame_closes_the_connection(stack: Stack) -> None:
    pos = await stack.pos()
    pos.writer.write(struct.pack(">H", 7) + b"\x60\x00\x03\x00\x00\x01\x02")
    await pos.writer.drain()
    assert await asyncio.wait_for(pos.reader.read(), 5) == b""


# ------------------------------------------------------------------------------ 2. terminal/merchant


async def test_unknown_terminal_is_97(stack: Stack) -> None:
    pos = await stack.pos(tid=UNKNOWN_TID, signon=False)
    pos.keys = {"pik": bytes(16), "mak": bytes(8)}
    ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert ans.rc == "97" and "64" not in ans.f


async def test_terminal_merchant_mismatch_is_03(stack: Stack) -> None:
    pos = await stack.pos()
    pos.mid = MID_OTHER
    ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert ans.rc == "03"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_suspended_merchant_is_03(stack: Stack) -> None:
    pos = await stack.pos(tid=SUSPENDED_TID, mid=MID_SUSPENDED, signon=False)
    ans = await pos.signon()
    assert ans.rc == "03"


# ------------------------------------------------------------------------------------ 3. keys / MAC


async def test_never_signed_on_is_a0_with_sign_on_requirement(stack: Stack) -> None:
    pos = await stack.pos(tid=POS2_TID, signon=False)
    pos.keys = {"pik": bytes(16), "mak": bytes(8)}
    ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert ans.rc == "A0" and ans.header_requirement == "3" and "64" not in ans.f


async def test_wrong_mac_is_a0_and_third_consecutive_failure_requires_sign_on(stack: Stack) -> None:
    pos = await stack.pos()
    good_mak = pos.keys["mak"]
    pos.keys["mak"] = bytes(8)
    a1 = await pos.purchase(CARD.pan, CARD.pin, 100)
    a2 = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert (a1.rc, a1.header_requirement) == ("A0", "0")
    assert (a2.rc, a2.header_requirement) == ("A0", "0")
    a3 = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert (a3.rc, a3.header_requirement) == ("A0", "3")
    pos.keys["mak"] = good_mak  # even with the right MAC the terminal must sign on first
    a4 = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert (a4.rc, a4.header_requirement) == ("A0", "3")
    assert (await pos.signon()).rc == "00"
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance - 100


async def test_a_good_mac_resets_the_consecutive_failure_count(stack: Stack) -> None:
    pos = await stack.pos()
    good = pos.keys["mak"]
    for _ in range(2):
        pos.keys["mak"] = bytes(8)
        assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "A0"
        pos.keys["mak"] = good
        assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    pos.keys["mak"] = bytes(8)
    ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert ans.rc == "A0" and ans.header_requirement == "0"


async def test_absent_mac_is_a0(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.send("0200", pos.purchase_fields(CARD.pan, CARD.pin, 100), mac=False)
    assert ans.rc == "A0"


async def test_wrong_mac_beats_later_rules(stack: Stack) -> None:
    pos = await stack.pos()
    pos.keys["mak"] = bytes(8)
    ans = await pos.purchase(UNKNOWN_PAN, "000000", 100)  # would be 14
    assert ans.rc == "A0"
    ans = await pos.purchase(CARD.pan, "999999", 100)  # wrong PIN: must not count
    assert ans.rc == "A0"
    assert await stack.pin_tries(CARD.pan) == 0


# --------------------------------------------------------------------------------------- 4. type


async def test_unknown_processing_code_is_40(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 100)
    f["3"] = "990000"
    assert (await pos.send("0200", f)).rc == "40"


async def test_unknown_mti_is_40(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 100)
    assert (await pos.send("0100", f)).rc == "40"


async def test_known_type_in_wrong_state_is_12(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 100)
    f["60"] = "23" + f["60"][2:]  # purchase processing code with the void type code
    assert (await pos.send("0200", f)).rc == "12"


async def test_topup_outside_service_hall_is_58(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.topup(CARD.pan, 1000)
    assert ans.rc == "58" and ans.mac_ok
    assert await stack.balance(CARD.pan) == CARD.balance


# ---------------------------------------------------------------------------------- 5. duplicates


async def test_retransmission_gets_the_stored_reply_without_second_debit(stack: Stack) -> None:
    pos = await stack.pos()
    body = pos.encode("0200", pos.purchase_fields(CARD.pan, CARD.pin, 1500))
    first = await pos.send_body(body)
    second = await pos.send_body(body)
    assert first.rc == second.rc == "00"
    for k in ("37", "38", "39", "54"):
        assert first.f[k] == second.f[k], k
    assert second.mac_ok
    assert await stack.balance(CARD.pan) == CARD.balance - 1500


async def test_retransmission_of_a_decline_gets_the_same_decline(stack: Stack) -> None:
    pos = await stack.pos()
    body = pos.encode("0200", pos.purchase_fields(LOW.pan, LOW.pin, 5000))
    first = await pos.send_body(body)
    second = await pos.send_body(body)
    assert first.rc == second.rc == "51"
    assert first.f.get("37") == second.f.get("37")


async def test_in_flight_duplicate_waits_for_the_first_and_gets_its_reply(stack: Stack) -> None:
    pos = await stack.pos()
    body = pos.encode("0200", pos.purchase_fields(CARD.pan, CARD.pin, 700))
    frame = struct.pack(">H", len(body)) + body
    pos.writer.write(frame + frame)  # pipelined: the second arrives while the first is in progress
    await pos.writer.drain()
    answers = []
    for _ in range(2):
        head = await asyncio.wait_for(pos.reader.readexactly(2), 10)
        answers.append(pos.read_answer(await pos.reader.readexactly(struct.unpack(">H", head)[0])))
    assert [a.rc for a in answers] == ["00", "00"]
    assert answers[0].f["37"] == answers[1].f["37"] and answers[0].f["38"] == answers[1].f["38"]
    assert await stack.balance(CARD.pan) == CARD.balance - 700


async def test_same_key_different_content_is_94(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 1000)
    assert (await pos.send("0200", f)).rc == "00"
    f2 = dict(f, **{"4": f"{2000:012d}"})
    ans = await pos.send("0200", f2)
    assert ans.rc == "94"
    assert await stack.balance(CARD.pan) == CARD.balance - 1000


# --------------------------------------------------------------------------------------- 6. card


@pytest.mark.parametrize(
    ("pan", "pin", "rc"),
    [
        (BAD_LUHN_PAN, "123456", "14"),
        (UNKNOWN_PAN, "123456", "14"),
        (FOREIGN_PAN, "123456", "15"),
        (INACTIVE.pan, INACTIVE.pin, "21"),
        (LOST.pan, LOST.pin, "41"),
        (FROZEN.pan, FROZEN.pin, "62"),
        (CLOSED.pan, CLOSED.pin, "62"),
    ],
    ids=["luhn-14", "unknown-14", "bin-15", "inactive-21", "lost-41", "frozen-62", "closed-62"],
)
async def test_card_rules(stack: Stack, pan: str, pin: str, rc: str) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(pan, pin, 100)
    assert ans.rc == rc and ans.mac_ok


async def test_expired_card_field_14_is_54(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(EXPIRED.pan, EXPIRED.pin, 100, expiry=EXPIRED.expiry)
    assert ans.rc == "54"


async def test_expired_card_track2_is_54(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(EXPIRED.pan, EXPIRED.pin, 100, expiry="2001", track2=True)
    assert ans.rc == "54"


async def test_track2_purchase_is_approved(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(CARD.pan, CARD.pin, 100, track2=True)
    assert ans.rc == "00"


# ---------------------------------------------------------------------------------------- 7. PIN


async def test_wrong_pin_is_55_and_counted_even_though_declined(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(PINCARD.pan, "000000", 100)
    assert ans.rc == "55" and ans.mac_ok
    assert await stack.pin_tries(PINCARD.pan) == 1


async def test_third_wrong_pin_locks_75_and_then_right_pin_is_75(stack: Stack) -> None:
    pos = await stack.pos()
    rcs = [(await pos.purchase(PINCARD.pan, "000000", 100)).rc for _ in range(3)]
    assert rcs == ["55", "55", "75"]
    assert (await pos.purchase(PINCARD.pan, PINCARD.pin, 100)).rc == "75"
    assert (await pos.balance(PINCARD.pan, PINCARD.pin)).rc == "75"
    assert await stack.balance(PINCARD.pan) == PINCARD.balance


async def test_right_pin_resets_the_counter(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(PINCARD.pan, "000000", 100)).rc == "55"
    assert (await pos.purchase(PINCARD.pan, "000000", 100)).rc == "55"
    assert (await pos.purchase(PINCARD.pan, PINCARD.pin, 100)).rc == "00"
    assert await stack.pin_tries(PINCARD.pan) == 0
    assert (await pos.purchase(PINCARD.pan, "000000", 100)).rc == "55"
    assert (await pos.purchase(PINCARD.pan, "000000", 100)).rc == "55"
    assert (await pos.purchase(PINCARD.pan, PINCARD.pin, 100)).rc == "00"


async def test_right_pin_resets_the_counter_even_when_declined_later(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(LOW.pan, "000000", 100)).rc == "55"
    assert (await pos.purchase(LOW.pan, LOW.pin, 999999)).rc in ("51", "61")
    assert await stack.pin_tries(LOW.pan) == 0


async def test_undecipherable_pin_block_is_99(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 100)
    from tests.support.pos import tdes_encrypt

    f["52"] = tdes_encrypt(pos.keys["pik"], bytes.fromhex("7F123456FFFFFFFF")).hex().upper()  # format 7
    ans = await pos.send("0200", f)
    assert ans.rc == "99"
    assert await stack.pin_tries(CARD.pan) == 0


# ------------------------------------------------------------------------------------ 8. amounts


async def test_zero_amount_is_13(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 0)).rc == "13"


@pytest.mark.program(max_txn_amount=20000)
async def test_above_per_transaction_limit_is_61(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 20001)).rc == "61"
    assert (await pos.purchase(CARD.pan, CARD.pin, 20000)).rc == "00"


@pytest.mark.program(daily_amount_limit=30000)
async def test_above_daily_amount_is_61(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 20000)).rc == "00"
    assert (await pos.purchase(CARD.pan, CARD.pin, 10001)).rc == "61"
    assert (await pos.purchase(CARD.pan, CARD.pin, 10000)).rc == "00"


@pytest.mark.program(daily_count_limit=2)
async def test_above_daily_count_is_65(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "65"


async def test_topup_above_balance_cap_is_61(stack: Stack) -> None:
    hall = await stack.pos(tid=HALL_TID)
    assert (await hall.topup(NEARCAP.pan, 1001)).rc == "61"
    ans = await hall.topup(NEARCAP.pan, 1000)
    assert ans.rc == "00" and ans.balance == 500000


async def test_topup_at_service_hall_is_approved(stack: Stack) -> None:
    hall = await stack.pos(tid=HALL_TID)
    ans = await hall.topup(CARD.pan, 5000)
    assert ans.rc == "00" and ans.mac_ok and ans.balance == CARD.balance + 5000 and ans.f.get("38")
    assert ans.f.get("15") and ans.f.get("37")


@pytest.mark.program(settlement_window=window_around_now())
async def test_topup_in_settlement_window_is_90_but_purchases_continue(stack: Stack) -> None:
    hall = await stack.pos(tid=HALL_TID)
    assert (await hall.topup(CARD.pan, 5000)).rc == "90"
    assert await stack.balance(CARD.pan) == CARD.balance
    assert (await hall.purchase(CARD.pan, CARD.pin, 100)).rc == "00"


# ----------------------------------------------------------------------------------- 9. balance


async def test_insufficient_funds_is_51_with_balance(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(LOW.pan, LOW.pin, LOW.balance + 1)
    assert ans.rc == "51" and ans.balance == LOW.balance and ans.mac_ok


# ------------------------------------------------------------------------------------ approvals


async def test_purchase_approved_reply_fields(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.purchase(CARD.pan, CARD.pin, 12345)
    assert ans.rc == "00" and ans.msg.mti == "0210" and ans.mac_ok
    for k in ("12", "13", "15", "32", "37", "38", "54"):
        assert ans.f.get(k), k
    assert len(ans.f["37"]) == 12 and len(ans.f["38"]) == 6
    assert ans.balance == CARD.balance - 12345
    req = pos.purchase_fields(CARD.pan, CARD.pin, 1)
    for k in ("3", "25", "41", "42", "49"):
        assert ans.f[k] == req[k]
    assert ans.f["4"] == f"{12345:012d}"
    assert "52" not in ans.f and "2" not in ans.f
    assert await stack.balance(CARD.pan) == CARD.balance - 12345


async def test_balance_inquiry(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.balance(CARD2.pan, CARD2.pin)
    assert ans.rc == "00" and ans.balance == CARD2.balance and ans.mac_ok and ans.msg.mti == "0210"
    assert (await pos.balance(CARD2.pan, "000000")).rc == "55"


async def test_rrns_are_unique(stack: Stack) -> None:
    pos = await stack.pos()
    rrns = {(await pos.purchase(RICH.pan, RICH.pin, 100)).f["37"] for _ in range(5)}
    assert len(rrns) == 5


# ---------------------------------------------------------------------------------------- void


async def _bought(pos: PosTerminal, amount: int = 3000) -> Answer:
    ans = await pos.purchase(CARD.pan, CARD.pin, amount)
    assert ans.rc == "00"
    return ans


async def test_void_credits_the_card(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos)
    v = await pos.void(CARD.pan, 3000, p)
    assert v.rc == "00" and v.mac_ok and v.f.get("37") and v.f.get("38")
    assert v.balance == CARD.balance
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_void_with_pin(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos)
    assert (await pos.void(CARD.pan, 3000, p, pin="000000")).rc == "55"
    assert (await pos.void(CARD.pan, 3000, p, pin=CARD.pin)).rc == "00"


async def test_void_amount_mismatch_is_64(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos)
    assert (await pos.void(CARD.pan, 2999, p)).rc == "64"
    assert await stack.balance(CARD.pan) == CARD.balance - 3000


async def test_void_of_unknown_original_is_25(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos)
    assert (await pos.void(CARD.pan, 3000, p, orig_stan="999999")).rc == "25"


async def test_void_twice_is_12(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos)
    assert (await pos.void(CARD.pan, 3000, p)).rc == "00"
    assert (await pos.void(CARD.pan, 3000, p)).rc == "12"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_void_from_another_terminal_is_12(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos)
    other = await stack.pos(tid=POS2_TID)
    other.batch = pos.batch
    assert (await other.void(CARD.pan, 3000, p)).rc in ("12", "25")
    assert await stack.balance(CARD.pan) == CARD.balance - 3000


# -------------------------------------------------------------------------------------- refund


async def test_partial_refunds_up_to_the_original(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos, 5000)
    r1 = await pos.refund(CARD.pan, 2000, p)
    assert r1.rc == "00" and r1.msg.mti == "0230" and r1.mac_ok and r1.f.get("37") and r1.f.get("15")
    assert (await pos.refund(CARD.pan, 3001, p)).rc == "13"
    assert (await pos.refund(CARD.pan, 3000, p)).rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_refund_of_unknown_original_is_25(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos, 5000)
    p.f["37"] = "000000999999"
    assert (await pos.refund(CARD.pan, 100, p)).rc == "25"


async def test_refund_advice_retransmission_is_idempotent(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos, 5000)
    o = p.f
    f = {"3": "200000", "4": f"{1000:012d}", "22": "011", "25": "00", "49": "156", **pos.base("25"),
         "2": CARD.pan, "37": o["37"], "61": o["60"][2:8] + o["11"] + o["13"]}
    body = pos.encode("0220", f)
    a = await pos.send_body(body)
    b = await pos.send_body(body)
    assert a.rc == b.rc == "00" and a.f["37"] == b.f["37"]
    assert await stack.balance(CARD.pan) == CARD.balance - 4000


# ---------------------------------------------------------------------------------- PIN change


async def test_pin_change_then_new_pin_works_and_old_fails(stack: Stack) -> None:
    pos = await stack.pos()
    ans = await pos.pinchange(CARD2.pan, CARD2.pin, "135790")
    assert ans.rc == "00" and ans.msg.mti == "0210" and ans.mac_ok and "62" not in ans.f
    assert (await pos.balance(CARD2.pan, "135790")).rc == "00"
    assert (await pos.balance(CARD2.pan, CARD2.pin)).rc == "55"


async def test_pin_change_with_wrong_current_pin_is_55(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.pinchange(CARD2.pan, "000000", "135790")).rc == "55"
    assert await stack.pin_tries(CARD2.pan) == 1


async def test_card_activation_by_pin_change(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.balance(INACTIVE.pan, INACTIVE.pin)).rc == "21"
    assert (await pos.pinchange(INACTIVE.pan, INACTIVE.pin, "246802")).rc == "00"
    ans = await pos.balance(INACTIVE.pan, "246802")
    assert ans.rc == "00" and ans.balance == 0


# ------------------------------------------------------------------------------------ reversal


async def test_reversal_undoes_a_purchase(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 4000)
    assert (await pos.send("0200", f)).rc == "00"
    r = await pos.reverse(f)
    assert r.rc == "00" and r.msg.mti == "0410" and r.mac_ok and r.f.get("37")
    assert await stack.balance(CARD.pan) == CARD.balance
    again = await pos.reverse(f)  # terminals repeat reversals: no second effect
    assert again.rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_reversal_of_unknown_original_is_00_without_effect(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 4000)  # never sent: the terminal timed out before
    assert (await pos.reverse(f)).rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_reversal_of_a_declined_original_is_00_without_effect(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(LOW.pan, LOW.pin, LOW.balance + 1)
    assert (await pos.send("0200", f)).rc == "51"
    assert (await pos.reverse(f)).rc == "00"
    assert await stack.balance(LOW.pan) == LOW.balance


async def test_reversal_with_other_amount_is_25(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 4000)
    assert (await pos.send("0200", f)).rc == "00"
    bad = dict(f, **{"4": f"{3999:012d}"})
    assert (await pos.reverse(bad)).rc == "25"
    assert await stack.balance(CARD.pan) == CARD.balance - 4000


async def test_reversal_is_not_declined_for_pin_lock(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(PINCARD.pan, PINCARD.pin, 4000)
    assert (await pos.send("0200", f)).rc == "00"
    for _ in range(3):
        await pos.purchase(PINCARD.pan, "000000", 100)
    assert await stack.pin_tries(PINCARD.pan) >= 3
    assert (await pos.reverse(f, reason="06")).rc == "00"
    assert await stack.balance(PINCARD.pan) == PINCARD.balance


async def test_reversal_of_a_void_restores_the_purchase(stack: Stack) -> None:
    pos = await stack.pos()
    p = await _bought(pos, 2500)
    v = await pos.void(CARD.pan, 2500, p)
    assert v.rc == "00"
    sent = pos.last
    assert sent is not None
    void_fields = {"2": CARD.pan, "3": "200000", "4": f"{2500:012d}", "11": v.f["11"], "22": "011", "25": "00",
                   "49": "156", "60": v.f["60"]}
    assert (await pos.reverse(void_fields)).rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance - 2500


@pytest.mark.program(settlement_window=window_around_now())
async def test_reversal_of_a_topup_in_the_settlement_window(stack: Stack) -> None:
    hall = await stack.pos(tid=HALL_TID)
    f = {"3": "630000", "4": f"{1000:012d}", "22": "011", "25": "00", "49": "156", **hall.base("48"),
         "2": CARD.pan, "14": "3012"}
    assert (await hall.send("0200", f)).rc == "90"
    assert (await hall.reverse(f)).rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_reversal_with_wrong_mac_is_a0(stack: Stack) -> None:
    pos = await stack.pos()
    f = pos.purchase_fields(CARD.pan, CARD.pin, 4000)
    assert (await pos.send("0200", f)).rc == "00"
    good = pos.keys["mak"]
    pos.keys["mak"] = bytes(8)
    assert (await pos.reverse(f, reason="A0")).rc == "A0"
    pos.keys["mak"] = good
    assert (await pos.reverse(f, reason="A0")).rc == "00"
    assert await stack.balance(CARD.pan) == CARD.balance


# ------------------------------------------------------------------------------ system failures


async def test_hsm_down_is_96(stack: Stack) -> None:
    pos = await stack.pos()
    await stack.hsm_down()
    ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert ans.rc == "96"
    assert (await pos.signon()).rc == "96"
    await stack.hsm_up()
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_ledger_down_is_91(stack: Stack) -> None:
    pos = await stack.pos()
    await stack.ledger_down()
    try:
        ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    finally:
        await stack.ledger_up()
    assert ans.rc == "91"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_every_request_is_answered_on_one_long_connection(stack: Stack) -> None:
    pos = await stack.pos()
    rcs = []
    for pan, pin in ((CARD.pan, CARD.pin), (UNKNOWN_PAN, "0"), (LOST.pan, LOST.pin), (CARD.pan, "999999")):
        rcs.append((await pos.purchase(pan, pin if len(pin) >= 4 else "1234", 100)).rc)
    assert rcs == ["00", "14", "41", "55"]
    assert decode_message(pos.last.raw, CUP).mti == "0210"  # type: ignore[union-attr]
