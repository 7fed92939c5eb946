"""The terminal's pure parts against the SPEC's worked examples and the independent test terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switch.iso.codec import decode_message
from switch.iso.profiles import CUP, ISO87
from terminal_sim import messages as m
from terminal_sim.money import format_yuan, parse_amount
from terminal_sim.state import Forward, JournalEntry, StateError, StateStore, TerminalState, WorkingKeys
from terminal_sim.terminal import Card, KeyCheckError, Terminal, recover_keys
from tests.support.pos import PosTerminal

EX = json.loads((Path(__file__).parents[1] / "iso" / "vectors" / "spec_examples.json").read_text())
TMK = bytes.fromhex(EX["tmk_clear"])


def signed_on(profile: str = "cup") -> Terminal:
    state = TerminalState("10000001", "898520154110001", batch="000001")
    state.keys = recover_keys(EX["signon_field62_004_hex"], TMK)
    state.needs_signon = False
    return Terminal(state, TMK, CUP if profile == "cup" else ISO87)


def test_keys_recovered_from_field_62_match_the_spec_example() -> None:
    keys = recover_keys(EX["signon_field62_004_hex"], TMK)
    assert keys.pik.hex().upper() == EX["pik_clear"]
    assert keys.mak.hex().upper() == EX["mak_clear"]
    assert keys.tdk.hex().upper() == EX["tdk_clear"]
    assert EX["mak_clear"] not in repr(keys)
    three = recover_keys(EX["signon_field62_004_hex"][:80], TMK)
    assert three.tdk == b"" and three.mak == keys.mak


@pytest.mark.parametrize("offset", [17, 37, 58])  # a flipped bit in a KCV of PIK, MAK, TDK
def test_a_wrong_kcv_is_refused_naming_the_key_only(offset: int) -> None:
    raw = bytearray(bytes.fromhex(EX["signon_field62_004_hex"]))
    raw[offset] ^= 0x01
    with pytest.raises(KeyCheckError) as exc:
        recover_keys(raw.hex(), TMK)
    assert EX["pik_clear"] not in str(exc.value) and "check value" in str(exc.value)


def test_pin_block_and_frame_of_the_spec_example_purchase_byte_for_byte() -> None:
    t = signed_on()
    assert t.pin_block(EX["pin"], EX["pan"]) == EX["pinblock_iso0_under_pik"]
    fields = {k: v for k, v in EX["cup_purchase_fields"].items() if k != "t"}
    body = t.encode(m.TYPES["purchase"], fields)
    assert (len(body).to_bytes(2, "big") + body).hex().upper() == EX["cup_purchase_frame_hex"].upper()


def test_iso87_frame_of_the_spec_example() -> None:
    t = signed_on("iso87")
    fields = {k: v for k, v in EX["cup_purchase_fields"].items() if k != "t"}
    body = t.encode(m.TYPES["purchase"], fields)
    assert (len(body).to_bytes(2, "big") + body).hex().upper() == EX["iso87_purchase_frame_hex"].upper()


async def test_requests_equal_the_independent_test_terminals_byte_for_byte() -> None:
    t = signed_on()
    pos = PosTerminal(None, None, "cup", "10000001", "898520154110001", TMK)  # type: ignore[arg-type]
    pos.keys = {"pik": t.state.keys.pik, "mak": t.state.keys.mak}  # type: ignore[union-attr]
    pos.batch, pos.stan = "000001", 0
    card = Card(EX["pan"], "3012", EX["pin"])
    mine = t.purchase(card, 12345)
    theirs = pos.encode("0200", pos.purchase_fields(EX["pan"], EX["pin"], 12345, track2=True))
    assert mine.body == theirs
    t.swipe = False
    mine = t.balance(card)
    f = {
        "3": "310000",
        "22": "011",
        "25": "00",
        "49": "156",
        "52": pos.pin_block(EX["pin"], EX["pan"]),
        "53": "2600000000000000",
        **pos.base("01"),
        "2": EX["pan"],
        "14": "3012",
    }
    assert mine.body == pos.encode("0200", f)


def test_reversal_repeats_the_original_without_card_data() -> None:
    t = signed_on()
    req = t.purchase(Card(EX["pan"], "3012", EX["pin"]), 500)
    t.before_send(req)
    assert t.state.pending is not None and t.state.pending.reason == "98"
    rev = t.reversal()
    assert rev is not None
    msg = decode_message(rev.body, CUP)
    assert msg.mti == "0400" and msg.fields["11"] == req.stan and msg.fields["39"] == "98"
    for k in ("3", "4", "22", "25", "41", "42", "49", "60"):
        assert msg.fields[k] == req.fields[k], k
    assert not {"2", "14", "35", "52", "53"} & set(msg.fields)
    assert "64" in msg.fields


def test_state_round_trips_without_the_pan(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s")
    st = TerminalState("10000001", "898520154110001", batch="000004", stan=41)
    st.keys = WorkingKeys(bytes(range(16)), bytes(range(8)), bytes(16))
    st.queue.append(Forward("purchase", {"3": "000000", "4": "000000000100", "11": "000041"}, "A0", 1))
    st.journal.append(
        JournalEntry(
            "purchase", "000040", "000004", 100, "RRN000000001", "123456", "1122", "990001******0019", pan=EX["pan"]
        )
    )
    store.save(st)
    assert EX["pan"] not in store.path("10000001").read_text()
    back = store.load("10000001", "898520154110001")
    assert back.keys == st.keys and back.queue == st.queue and back.stan == 41
    assert back.pending is not None and back.pending.reason == "A0"
    assert back.journal[0].rrn == "RRN000000001" and back.journal[0].pan == ""
    store.path("10000001").write_text("{not json")
    with pytest.raises(StateError):
        store.load("10000001", "898520154110001")


def test_state_lock_refuses_a_second_user(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with store.locked("10000001"), pytest.raises(StateError, match="busy"), store.locked("10000001"):
        pass


def test_stan_wraps_after_999999() -> None:
    st = TerminalState("10000001", "898520154110001", stan=999_998)
    assert [st.next_stan(), st.next_stan(), st.next_stan()] == ["999999", "000001", "000002"]


def test_amounts_in_fen_or_yuan() -> None:
    assert parse_amount("10000") == 10000
    assert parse_amount("100.00") == 10000
    assert parse_amount("0.5") == 50
    assert format_yuan(12345) == "123.45" and format_yuan(-5) == "-0.05"
    for bad in ("", "1,00", "-1", "1.234", "abc"):
        with pytest.raises(ValueError):
            parse_amount(bad)
