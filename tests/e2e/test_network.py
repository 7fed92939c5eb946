"""Sign-on, sign-off, echo, settlement: SPEC §3, §4 (network management and batch), as a terminal sees them."""

from __future__ import annotations

from switch.iso.codec import decode_message
from switch.iso.profiles import CUP
from tests.support.pos import parse_field62_keys
from tests.support.stack import CARD, HALL_TID, MID, TMK, UNKNOWN_TID, Stack


async def test_signon_004_delivers_three_keys_under_tmk_with_kcvs_and_a_new_batch(stack: Stack) -> None:
    pos = await stack.pos(signon=False)
    ans = await pos.signon("004")
    assert ans.rc == "00"
    assert len(bytes.fromhex(ans.f["62"])) == 60
    keys = parse_field62_keys(ans.f["62"], bytes.fromhex(TMK))  # raises on a KCV mismatch
    assert set(keys) == {"pik", "mak", "tdk"} and len(keys["mak"]) == 8
    assert ans.f["60"][:2] == "00" and ans.f["60"][8:11] == "004" and ans.f["60"][2:8] != "000000"
    for k in ("12", "13", "32", "37", "11", "41", "42"):
        assert ans.f.get(k), k
    assert len(ans.f["37"]) == 12
    assert "64" not in ans.f  # 0810 carries no MAC (SPEC §3)
    assert ans.header_requirement == "0"


async def test_signon_003_delivers_forty_bytes_and_resigning_rotates_keys(stack: Stack) -> None:
    pos = await stack.pos(signon=False)
    a = await pos.signon("003")
    assert a.rc == "00" and len(bytes.fromhex(a.f["62"])) == 40
    first = dict(pos.keys)
    b = await pos.signon("004")
    assert b.rc == "00" and pos.keys["mak"] != first["mak"]
    assert a.f["37"] != b.f["37"]


async def test_old_keys_stop_working_after_a_new_signon(stack: Stack) -> None:
    pos = await stack.pos()
    old = dict(pos.keys)
    other = await stack.pos()  # the same terminal signs on again (keys rotated)
    assert other.keys["mak"] != old["mak"]
    ans = await pos.purchase(CARD.pan, CARD.pin, 100)
    assert ans.rc == "A0"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_echo_and_signoff_answer_00_without_mac(stack: Stack) -> None:
    pos = await stack.pos()
    e = await pos.echo()
    assert e.rc == "00" and e.msg.mti == "0830" and "64" not in e.f
    s = await pos.signoff()
    assert s.rc == "00" and s.msg.mti == "0830"


async def test_signon_of_unknown_terminal_is_97(stack: Stack) -> None:
    pos = await stack.pos(tid=UNKNOWN_TID, signon=False)
    ans = await pos.signon()
    assert ans.rc == "97" and "62" not in ans.f


async def test_signon_reply_swaps_tpdu_and_echoes_header(stack: Stack) -> None:
    pos = await stack.pos(signon=False)
    ans = await pos.signon()
    raw = ans.raw
    assert raw[:5] == bytes.fromhex("6000000003")  # request TPDU 60 0003 0000, swapped
    assert raw[5:11] == bytes.fromhex("603100310000")
    assert decode_message(raw, CUP).mti == "0810"


async def test_settlement_balanced_code_1_then_next_signon_opens_next_batch(stack: Stack) -> None:
    pos = await stack.pos()
    batch = pos.batch
    p1 = await pos.purchase(CARD.pan, CARD.pin, 1000)
    p2 = await pos.purchase(CARD.pan, CARD.pin, 2500)
    p3 = await pos.purchase(CARD.pan, CARD.pin, 700)
    assert (p1.rc, p2.rc, p3.rc) == ("00", "00", "00")
    v = await pos.void(CARD.pan, 700, p3)
    assert v.rc == "00"
    ans = await pos.settle(3500, 2, 0, 0)
    assert ans.rc == "00" and ans.msg.mti == "0510" and "64" not in ans.f
    f48 = ans.f["48"]
    assert f48[:30] == f"{3500:012d}{2:03d}{0:012d}{0:03d}" and f48[30] == "1"
    assert ans.f.get("15")
    again = await pos.signon()
    assert again.rc == "00" and int(pos.batch) > int(batch)


async def test_settlement_not_balanced_is_code_2_with_switch_totals(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 1200)).rc == "00"
    ans = await pos.settle(999, 1, 0, 0)
    assert ans.rc == "00"
    assert ans.f["48"][:31] == f"{1200:012d}{1:03d}{0:012d}{0:03d}2"


async def test_settlement_counts_topups_as_credits(stack: Stack) -> None:
    hall = await stack.pos(tid=HALL_TID)
    assert (await hall.topup(CARD.pan, 3000)).rc == "00"
    ans = await hall.settle(0, 0, 3000, 1)
    assert ans.f["48"][:31] == f"{0:012d}{0:03d}{3000:012d}{1:03d}1"


async def test_settlement_of_terminal_of_other_merchant_is_03(stack: Stack) -> None:
    pos = await stack.pos()
    pos.mid = MID[:-1] + "9"
    ans = await pos.settle(0, 0, 0, 0)
    assert ans.rc in ("03",)
