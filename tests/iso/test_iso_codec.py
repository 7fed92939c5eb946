"""Codec behaviour beyond the vectors: strictness, partial results, error texts, replies, MAC block."""

from __future__ import annotations

import pytest

from switch.iso.codec import (
    ECHOED_FIELDS,
    CodecError,
    decode_message,
    encode_message,
    mac_block,
    replace_mac,
    reply_to,
)
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage
from switch.iso.profiles import CUP, ISO87, WireProfile
from switch.iso.tpdu import Tpdu
from tests.iso.isohelpers import load_vector

EX = load_vector("spec_examples.json")
CUP_BODY = bytes.fromhex(EX["cup_purchase_frame_hex"])[2:]
ISO_BODY = bytes.fromhex(EX["iso87_purchase_frame_hex"])[2:]
PAN = EX["pan"]
#: values of the purchase that must never appear in an error text
SECRET_VALUES = [PAN, EX["pinblock_iso0_under_pik"], "4331454431423836", "C1ED1B86", "B901BE7E"]


def purchase(profile: WireProfile) -> IsoMessage:
    return decode_message(CUP_BODY if profile is CUP else ISO_BODY, profile)


def offset_of(body: bytes, profile: WireProfile, field: str) -> int:
    """Byte offset of a field's data in an encoded body (found by encoding the message cut before it)."""
    msg = decode_message(body, profile)
    before = IsoMessage(msg.mti, {k: v for k, v in msg.fields.items() if int(k) < int(field)}, msg.tpdu,
                        msg.header)
    return len(encode_message(before, profile))


def assert_no_values(err: CodecError) -> None:
    text = str(err) + repr(err) + err.reason
    for v in SECRET_VALUES:
        assert v not in text
        assert v.lower() not in text
    assert err.__cause__ is None


# ---------------------------------------------------------------------------------------- strictness


def test_bcd_nibble_above_9_in_numeric_field_is_rejected_with_partial() -> None:
    body = bytearray(CUP_BODY)
    pos = offset_of(CUP_BODY, CUP, "3")
    body[pos + 2] = 0x0A  # processing code 00000A
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), CUP)
    assert err.value.field == "3"
    assert err.value.pos == pos
    # decoding carried on: the caller can still answer RC 30
    assert err.value.partial == {"t": "0200", "11": "000001", "41": "10000001", "42": "898520154110001"}
    assert_no_values(err.value)


def test_bcd_nibble_above_9_in_pan_is_rejected() -> None:
    body = bytearray(CUP_BODY)
    pos = offset_of(CUP_BODY, CUP, "2")
    body[pos + 1] = 0x9A
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), CUP)
    assert err.value.field == "2"
    assert "42" in err.value.partial
    assert_no_values(err.value)


def test_bad_bcd_length_prefix_is_structural() -> None:
    body = bytearray(CUP_BODY)
    pos = offset_of(CUP_BODY, CUP, "2")
    body[pos] = 0x1A
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), CUP)
    assert (err.value.field, err.value.pos) == ("2", pos)
    assert err.value.partial == {"t": "0200"}


def test_pad_nibble_must_be_zero() -> None:
    body = bytearray(CUP_BODY)
    pos = offset_of(CUP_BODY, CUP, "22")
    assert body[pos : pos + 2] == b"\x02\x10"
    body[pos + 1] = 0x1F
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), CUP)
    assert err.value.field == "22"
    assert "pad" in err.value.reason


def test_right_aligned_field_22_is_not_silently_misread() -> None:
    body = bytearray(CUP_BODY)
    pos = offset_of(CUP_BODY, CUP, "22")
    body[pos : pos + 2] = b"\x00\x21"  # the SPEC text's reading: right-aligned, left pad
    with pytest.raises(CodecError):
        decode_message(bytes(body), CUP)


def test_cup_rejects_secondary_bitmap_but_reports_partial() -> None:
    body = bytearray(CUP_BODY)
    body[13] |= 0x80
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), CUP)
    assert err.value.field == "1"
    assert set(err.value.partial) == {"t", "11", "41", "42"}


def test_bad_tpdu_and_header() -> None:
    with pytest.raises(CodecError) as err:
        decode_message(b"\x61" + CUP_BODY[1:], CUP)
    assert err.value.field == "tpdu"
    bad_header = CUP_BODY[:5] + b"\x6a" + CUP_BODY[6:]
    with pytest.raises(CodecError) as err:
        decode_message(bad_header, CUP)
    assert err.value.field == "header"
    for n in range(12):
        with pytest.raises(CodecError):
            decode_message(CUP_BODY[:n], CUP)


def test_mti_must_be_digits() -> None:
    body = bytearray(CUP_BODY)
    body[11] = 0x0A
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), CUP)
    assert err.value.field == "t"
    assert "t" not in err.value.partial
    iso = b"02X0" + ISO_BODY[4:]
    with pytest.raises(CodecError) as err:
        decode_message(iso, ISO87)
    assert err.value.field == "t"


@pytest.mark.parametrize("profile", [CUP, ISO87], ids=lambda p: p.name)
def test_trailing_bytes_rejected(profile: WireProfile) -> None:
    body = CUP_BODY if profile is CUP else ISO_BODY
    with pytest.raises(CodecError) as err:
        decode_message(body + b"\x00", profile)
    assert err.value.pos == len(body)
    assert "extra data" in err.value.reason
    # everything was read: the partial is complete
    assert set(err.value.partial) == {"t", "11", "41", "42"}


@pytest.mark.parametrize("profile", [CUP, ISO87], ids=lambda p: p.name)
def test_every_truncation_is_a_codec_error(profile: WireProfile) -> None:
    body = CUP_BODY if profile is CUP else ISO_BODY
    end_of_42 = offset_of(body, profile, "49")
    for n in range(len(body)):
        with pytest.raises(CodecError) as err:
            decode_message(body[:n], profile)
        assert_no_values(err.value)
        if n >= end_of_42:
            assert set(err.value.partial) == {"t", "11", "41", "42"}


def test_iso87_length_prefix_must_be_ascii_digits() -> None:
    # field 2 length "16" -> " 16"-style variants that int() would accept
    pos = offset_of(ISO_BODY, ISO87, "2")
    assert ISO_BODY[pos : pos + 2] == b"16"
    for bad in (b" 9", b"+9", b"1_"):
        body = ISO_BODY[:pos] + bad + ISO_BODY[pos + 2 :]
        with pytest.raises(CodecError) as err:
            decode_message(body, ISO87)
        assert err.value.field == "2"


def test_iso87_numeric_field_with_letter() -> None:
    msg = purchase(ISO87)
    msg.fields["4"] = "00000001000A"
    with pytest.raises(CodecError) as err:
        encode_message(msg, ISO87)
    assert err.value.field == "4"
    body = ISO_BODY.replace(b"000000010000", b"00000001000A", 1)
    with pytest.raises(CodecError) as err:
        decode_message(body, ISO87)
    assert err.value.field == "4"
    assert_no_values(err.value)


def test_iso87_secondary_bitmap_all_zero_is_accepted() -> None:
    msg = purchase(ISO87)
    body = bytearray(ISO_BODY)
    body[4] |= 0x80
    body[12:12] = bytes(8)
    got = decode_message(bytes(body), ISO87)
    assert got.fields == msg.fields
    assert got.mac_data == bytes(body[:-8])


def test_iso87_fields_beyond_64_are_tolerated_and_round_trip() -> None:
    msg = purchase(ISO87)
    msg.fields.pop("64")
    msg.fields["70"] = "301"
    msg.fields["90"] = "0" * 42
    msg.fields["128"] = "00" * 8
    body = encode_message(msg, ISO87)
    assert body[4] & 0x80  # secondary bitmap announced
    back = decode_message(body, ISO87)
    assert back.fields == msg.fields
    assert back.mac_data == b""


def test_iso87_tertiary_bitmap_rejected() -> None:
    body = bytearray(ISO_BODY)
    body[4] |= 0x80
    body[12:12] = b"\x80" + bytes(7)
    with pytest.raises(CodecError) as err:
        decode_message(bytes(body), ISO87)
    assert err.value.field == "65"


def test_iso87_field_62_hex_text() -> None:
    msg = purchase(ISO87)
    msg.fields["62"] = "50e815f7b95212f9"
    back = decode_message(encode_message(msg, ISO87), ISO87)
    assert back.fields["62"] == "50E815F7B95212F9"
    for bad in ("50E815F7B95212F", "XYZ0", "50E815F7B95212F9 "):
        msg.fields["62"] = bad
        with pytest.raises(CodecError) as err:
            encode_message(msg, ISO87)
        assert err.value.field == "62"
    # same normalized content as cup's binary 62
    cup = purchase(CUP)
    cup.fields["62"] = "50e815f7b95212f9"
    cup_body = encode_message(cup, CUP)
    assert bytes.fromhex("50E815F7B95212F9") in cup_body
    assert decode_message(cup_body, CUP).fields["62"] == "50E815F7B95212F9"


def test_track2_separator_kept() -> None:
    for profile, sep in ((CUP, "D"), (ISO87, "="), (ISO87, "D")):
        msg = purchase(profile)
        msg.fields.pop("2")
        msg.fields["35"] = f"{PAN}{sep}30121010000000000"
        assert decode_message(encode_message(msg, profile), profile).fields["35"] == msg.fields["35"]
    msg = purchase(CUP)
    msg.fields["35"] = f"{PAN}=3012"
    with pytest.raises(CodecError) as err:
        encode_message(msg, CUP)
    assert err.value.field == "35"


# --------------------------------------------------------------------------------------------- encode


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("3", "00000"),  # fixed length short
        ("3", "0000000"),  # fixed length long
        ("3", "00000A"),  # not numeric
        ("2", "1" * 20),  # over max 19
        ("22", "²¹³"),  # unicode digits are not digits here
        ("41", "1000000"),  # ans8 short
        ("42", "商户号商户号商户号商户号商户号"),  # not ASCII
        ("52", "50E815F7B95212"),  # 7 bytes
        ("52", "50E815F7B95212FZ"),  # not hex
        ("60", "1" * 18),  # n...017
        ("62", "ABC"),  # odd hex
        ("1", "0000000000000000"),  # bitmap is not a field
        ("65", "0000000000000000"),  # tertiary bitmap marker
        ("99", "1"),  # beyond the cup bitmap
        ("02", "9900010000000019"),  # keys are canonical numbers
        ("x", "1"),
    ],
)
def test_encode_rejects_with_codec_error_naming_the_field(field: str, value: str) -> None:
    msg = purchase(CUP)
    msg.fields[field] = value
    with pytest.raises(CodecError) as err:
        encode_message(msg, CUP)
    assert err.value.field in (field, "?")
    assert value not in str(err.value) or len(value) < 3


def test_encode_requires_tpdu_header_and_mti() -> None:
    msg = purchase(CUP)
    with pytest.raises(CodecError) as err:
        encode_message(IsoMessage(msg.mti, msg.fields, None, msg.header), CUP)
    assert err.value.field == "tpdu"
    with pytest.raises(CodecError) as err:
        encode_message(IsoMessage(msg.mti, msg.fields, msg.tpdu, None), CUP)
    assert err.value.field == "header"
    for bad in ("200", "02000", "02a0"):
        with pytest.raises(CodecError) as err:
            encode_message(IsoMessage(bad, msg.fields, msg.tpdu, msg.header), CUP)
        assert err.value.field == "t"


def test_encode_does_not_mutate_the_message() -> None:
    msg = purchase(CUP)
    before = dict(msg.fields)
    encode_message(msg, CUP)
    encode_message(msg, ISO87)
    assert msg.fields == before


def test_empty_variable_field_round_trips() -> None:
    for profile in (CUP, ISO87):
        msg = purchase(profile)
        msg.fields["63"] = ""
        assert decode_message(encode_message(msg, profile), profile).fields["63"] == ""


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode_message(bytearray(CUP_BODY), CUP).fields == purchase(CUP).fields
    assert decode_message(memoryview(CUP_BODY), CUP).raw == CUP_BODY


def test_decode_rejects_non_bytes_with_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_message("0200", CUP)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ mac block


def test_mac_block_requires_field_64_last() -> None:
    msg = purchase(CUP)
    msg.fields.pop("64")
    body = encode_message(msg, CUP)
    with pytest.raises(CodecError):
        mac_block(body, CUP)
    assert decode_message(body, CUP).mac_data == b""
    with pytest.raises(CodecError):
        mac_block(b"\x00", ISO87)


def test_replace_mac_checks_sizes() -> None:
    with pytest.raises(ValueError):
        replace_mac(CUP_BODY, b"123")
    with pytest.raises(ValueError):
        replace_mac(b"1234", b"12345678")


# ---------------------------------------------------------------------------------------------- reply


def test_reply_to_skeleton() -> None:
    req = purchase(CUP)
    req.header = CupHeader("60", "31", "0", "3", "310000")
    req.fields["37"] = "123456789012"
    rep = reply_to(req)
    assert rep.mti == "0210"
    assert rep.tpdu == Tpdu("0000", "0003")
    assert rep.header == CupHeader("60", "31", "0", "0", "310000")
    assert set(rep.fields) == {k for k in ECHOED_FIELDS if k in req.fields}
    assert all(rep.fields[k] == req.fields[k] for k in rep.fields)
    assert "2" not in rep.fields and "52" not in rep.fields and "64" not in rep.fields
    assert rep.raw == b"" and rep.mac_data == b""
    rep.fields["39"] = "00"
    assert decode_message(encode_message(rep, CUP), CUP).fields["39"] == "00"
    # the reply's dict is its own
    rep.fields["3"] = "999999"
    assert req.fields["3"] == "000000"


def test_reply_to_iso87_and_non_requests() -> None:
    rep = reply_to(purchase(ISO87))
    assert rep.mti == "0210" and rep.tpdu is None and rep.header is None
    with pytest.raises(ValueError):
        reply_to(IsoMessage("0210", {}))
