"""Subfield helpers (SPEC §4), data-element names, MTI helpers, TPDU/header and the masked dump."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.iso.codec import decode_message
from switch.iso.describe import describe, mask_pan
from switch.iso.fields import (
    DE,
    Balance54,
    Field60,
    Field61,
    FieldFormatError,
    SettlementGroup,
    SettlementTotals,
    Track2,
    format_balance54,
    format_field60,
    format_field61,
    format_settlement48,
    parse_balance54,
    parse_field60,
    parse_field61,
    parse_settlement48,
    parse_track2,
)
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage, is_request_mti, mti_class, reply_mti, request_mti
from switch.iso.profiles import CUP, ISO87
from switch.iso.tpdu import Tpdu
from tests.iso.isohelpers import load_vector

EX = load_vector("spec_examples.json")
PAN = EX["pan"]


def test_de_names_are_field_keys() -> None:
    names = {d.name: d.value for d in DE}
    assert names["PAN"] == "2" and names["PCODE"] == "3" and names["AMOUNT"] == "4" and names["STAN"] == "11"
    assert names["RC"] == "39" and names["TID"] == "41" and names["MID"] == "42" and names["MAC"] == "64"
    fields = {"11": "000001"}
    assert fields[DE.STAN] == "000001"
    assert len({d.value for d in DE}) == len(list(DE))


# ----------------------------------------------------------------------------------------------- 60/61


def test_field60() -> None:
    assert parse_field60("22000001000") == Field60("22", "000001", "000", "")
    assert parse_field60("00000123004") == Field60("00", "000123", "004", "")
    assert parse_field60("22000001") == Field60("22", "000001", "", "")
    assert parse_field60("22000001000501") == Field60("22", "000001", "000", "501")
    assert format_field60("22", "000001") == "22000001000"
    assert format_field60("00", "000002", "301") == "00000002301"
    for bad in ("", "2200000", "220000010", "2200000100", "22000001000A", "1" * 18, "２２000001000"):
        with pytest.raises(FieldFormatError) as err:
            parse_field60(bad)
        assert err.value.field == "60"
        assert bad not in str(err.value) or not bad
    with pytest.raises(FieldFormatError):
        format_field60("2", "000001")
    with pytest.raises(FieldFormatError):
        format_field60("22", "000001", "000", "1234567")


def test_field61() -> None:
    assert parse_field61("0000010001231122") == Field61("000001", "000123", "1122", "")
    assert parse_field61("000001000123") == Field61("000001", "000123", "", "")
    assert format_field61("000001", "000123", "1122") == "0000010001231122"
    assert format_field61("000001", "000123") == "000001000123"
    for bad in ("00000100012", "0000010001231", "0000010001231322", "000001000123112A"):
        with pytest.raises(FieldFormatError) as err:
            parse_field61(bad)
        assert err.value.field == "61"
    with pytest.raises(FieldFormatError):
        format_field61("000001", "000123", "", "99")


@given(st.text("0123456789", min_size=2, max_size=2), st.text("0123456789", min_size=6, max_size=6),
       st.text("0123456789", min_size=3, max_size=3))
def test_field60_round_trip(t: str, batch: str, nmic: str) -> None:
    assert parse_field60(format_field60(t, batch, nmic)) == Field60(t, batch, nmic, "")


# -------------------------------------------------------------------------------------------------- 54


def test_balance54() -> None:
    assert format_balance54(50000) == "1002156C000000050000"
    assert format_balance54(50000, sign="C") == "1002156C000000050000"
    assert format_balance54(-1) == "1002156D000000000001"
    assert format_balance54(7, sign="D") == "1002156D000000000007"
    assert format_balance54(0, "840") == "1002840C000000000000"
    assert parse_balance54("1002156C000000050000") == Balance54("10", "02", "156", 50000)
    assert parse_balance54("1002156D000000000001").amount_fen == -1
    for bad_amount in (10**12, -(10**12)):
        with pytest.raises(FieldFormatError):
            format_balance54(bad_amount)
    with pytest.raises(FieldFormatError):
        format_balance54(1, sign="X")
    with pytest.raises(FieldFormatError) as err:
        parse_balance54("1002156X000000050000")
    assert err.value.field == "54"


# -------------------------------------------------------------------------------------------------- 48


def test_settlement48() -> None:
    totals = SettlementTotals.of(150000, 3, 2000, 1, "0")
    s = format_settlement48(totals)
    assert len(s) == 62
    assert s[:31] == "000000150000" + "003" + "000000002000" + "001" + "0"
    assert s[31:] == "0" * 31
    back = parse_settlement48(s)
    assert back == totals
    assert (back.debit_amount, back.debit_count, back.credit_amount, back.credit_count, back.code) == (
        150000, 3, 2000, 1, "0")
    reply = SettlementTotals.of(150000, 3, 2000, 1, "1")
    assert format_settlement48(reply)[30] == "1" and format_settlement48(reply)[61] == "1"
    for bad in ("0" * 61, "0" * 63, "0" * 30 + "A" + "0" * 31):
        with pytest.raises(FieldFormatError) as err:
            parse_settlement48(bad)
        assert err.value.field == "48"
    with pytest.raises(FieldFormatError):
        format_settlement48(SettlementTotals(SettlementGroup(1, 1000, 0, 0)))
    with pytest.raises(FieldFormatError):
        format_settlement48(SettlementTotals(SettlementGroup(-1, 0, 0, 0)))


@given(st.integers(0, 10**12 - 1), st.integers(0, 999), st.integers(0, 10**12 - 1), st.integers(0, 999),
       st.sampled_from("012"))
def test_settlement48_round_trip(da: int, dc: int, ca: int, cc: int, code: str) -> None:
    totals = SettlementTotals.of(da, dc, ca, cc, code)
    assert parse_settlement48(format_settlement48(totals)) == totals


# -------------------------------------------------------------------------------------------------- 35


def test_track2() -> None:
    assert parse_track2(f"{PAN}D30121010000000000") == Track2(PAN, "3012", "101", "0000000000")
    assert parse_track2(f"{PAN}=3012") == Track2(PAN, "3012", "", "")
    assert parse_track2(f"{PAN}=3012101") == Track2(PAN, "3012", "101", "")
    t = parse_track2(f"{PAN}=30121")
    assert (t.expiry_yymm, t.service_code, t.discretionary) == ("3012", "", "1")
    assert PAN not in repr(parse_track2(f"{PAN}D3012101"))
    for bad in ("", PAN, f"{PAN}D301", f"{PAN}X3012", "12345D3012", f"{PAN}D3012F"):
        with pytest.raises(FieldFormatError) as err:
            parse_track2(bad)
        assert err.value.field == "35"
        assert PAN not in str(err.value)


# -------------------------------------------------------------------------------------------- MTI etc.


def test_mti_helpers() -> None:
    assert reply_mti("0200") == "0210"
    assert reply_mti("0800") == "0810"
    assert reply_mti("0820") == "0830"
    assert reply_mti("0220") == "0230"
    assert reply_mti("0400") == "0410"
    assert reply_mti("0500") == "0510"
    for bad in ("0210", "020", "02a0", ""):
        with pytest.raises(ValueError):
            reply_mti(bad)
    assert mti_class("0210") == mti_class("0200") == mti_class("0220") == "02"
    assert mti_class("0400") == "04"
    assert request_mti("0210") == "0200" and request_mti("0401") == "0400" and request_mti("0230") == "0220"
    assert is_request_mti("0420") and not is_request_mti("0430")


def test_tpdu() -> None:
    t = Tpdu.parse(bytes.fromhex("6000030000"))
    assert t == Tpdu("0003", "0000")
    assert t.encode() == bytes.fromhex("6000030000")
    assert t.swapped() == Tpdu("0000", "0003")
    assert t.swapped().swapped() == t
    with pytest.raises(ValueError):
        Tpdu.parse(bytes.fromhex("7000030000"))
    with pytest.raises(ValueError):
        Tpdu.parse(bytes.fromhex("60000300"))
    with pytest.raises(ValueError):
        Tpdu("00g3", "0000")


def test_header() -> None:
    h = CupHeader.parse(bytes.fromhex("603100310000"))
    assert h == CupHeader("60", "31", "0", "0", "310000")
    assert h.encode() == bytes.fromhex("603100310000")
    signon = h.with_processing_requirement("3")
    assert signon.encode() == bytes.fromhex("603103310000")
    assert signon.requires_sign_on and not h.requires_sign_on
    with pytest.raises(ValueError):
        CupHeader.parse(bytes.fromhex("6031003100"))
    with pytest.raises(ValueError):
        CupHeader.parse(bytes.fromhex("6031003100A0"))
    with pytest.raises(ValueError):
        h.with_processing_requirement("33")


# --------------------------------------------------------------------------------------------- describe


def test_describe_masks_by_default() -> None:
    msg = decode_message(bytes.fromhex(EX["cup_purchase_frame_hex"])[2:], CUP)
    msg.fields["35"] = f"{PAN}D3012101"
    msg.fields["62"] = "ABCDEF0123456789"
    text = describe(msg, CUP)
    assert "990001******0019" in text
    assert PAN not in text
    for secret in (EX["pinblock_iso0_under_pik"], "4331454431423836", "ABCDEF0123456789", "D3012101"):
        assert secret not in text
    assert "Primary Account Number" in text
    assert "TPDU" in text and "HEADER" in text
    assert "'000000010000'" in text  # ordinary fields are shown
    raw = describe(msg, CUP, mask=False)
    assert PAN in raw and EX["pinblock_iso0_under_pik"] in raw


def test_describe_without_profile_and_mask_pan() -> None:
    text = describe(IsoMessage("0800", {"11": "000001", "41": "10000001"}), ISO87)
    assert "MTI    0800" in text and "TPDU" not in text
    assert describe(IsoMessage("0800", {})).startswith("MTI")
    assert mask_pan("9900010000000019") == "990001******0019"
    assert mask_pan("12345") == "*****"
