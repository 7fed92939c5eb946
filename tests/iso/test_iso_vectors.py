"""The public vectors: SPEC worked examples (both profiles, MACs) and other implementations' messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import iso8583
import pytest

from switch.iso.codec import CodecError, decode_message, encode_message, mac_block, replace_mac
from switch.iso.framing import FrameDecoder, encode_frame
from switch.iso.header import CupHeader
from switch.iso.profiles import CUP, ISO87
from switch.iso.tpdu import Tpdu
from tests.iso.isohelpers import DEFAULT_ASCII, SHARED_VECTORS, VECTORS, load_vector

SAMPLES = load_vector("public_samples.json")
POSITIVE = [m for m in SAMPLES["messages"] if m.get("pyspec") in ("default", "default_ascii")]
NEGATIVE = SAMPLES["negatives"]
#: the other implementations' samples decoded with some other layout: must be rejected cleanly, never crash
FOREIGN = [m for m in SAMPLES["messages"] if m.get("pyspec") not in ("default", "default_ascii")]


@pytest.mark.parametrize("name", ["spec_examples.json", "public_samples.json"])
def test_vector_copies_match_shared(name: str) -> None:
    shared = SHARED_VECTORS / name if name == "spec_examples.json" else SHARED_VECTORS / "codec" / name
    if not shared.exists():
        pytest.skip("../shared/vectors not present (clean clone): using the copies in tests/iso/vectors")
    assert (VECTORS / name).read_bytes() == shared.read_bytes()


# ------------------------------------------------------------------------------------- spec examples


def _frame_body(frame_hex: str) -> bytes:
    frames = FrameDecoder().feed(bytes.fromhex(frame_hex))
    assert len(frames) == 1
    return frames[0]


def test_cup_purchase_frame(spec_examples: dict[str, Any]) -> None:
    body = _frame_body(spec_examples["cup_purchase_frame_hex"])
    msg = decode_message(body, CUP)
    expected = dict(spec_examples["cup_purchase_fields"])
    assert msg.mti == expected.pop("t")
    fields = dict(msg.fields)
    assert fields.pop("64") == spec_examples["cup_purchase_mac_field64_hex"] == "4331454431423836"
    assert fields == expected
    assert msg.fields["22"] == "021"  # left-aligned BCD 02 10 on the wire (specs.py docstring)
    assert msg.tpdu == Tpdu("0003", "0000")
    assert msg.header == CupHeader("60", "31", "0", "0", "310000")
    assert msg.raw == body
    assert encode_message(msg, CUP) == body
    assert encode_frame(encode_message(msg, CUP)).hex().upper() == spec_examples["cup_purchase_frame_hex"]


def test_iso87_purchase_frame(spec_examples: dict[str, Any]) -> None:
    body = _frame_body(spec_examples["iso87_purchase_frame_hex"])
    msg = decode_message(body, ISO87)
    expected = dict(spec_examples["cup_purchase_fields"])
    assert msg.mti == expected.pop("t")
    fields = dict(msg.fields)
    assert bytes.fromhex(fields.pop("64")) == b"B901BE7E"
    assert fields == expected
    assert msg.tpdu is None and msg.header is None
    assert encode_message(msg, ISO87) == body
    # pyiso8583 itself agrees with our reading of the iso87 frame
    doc, _ = iso8583.decode(body, ISO87.spec)
    assert {k: v for k, v in doc.items() if k not in ("t", "p")} == msg.fields


def test_profiles_normalize_identically(spec_examples: dict[str, Any]) -> None:
    cup = decode_message(_frame_body(spec_examples["cup_purchase_frame_hex"]), CUP)
    iso = decode_message(_frame_body(spec_examples["iso87_purchase_frame_hex"]), ISO87)
    cup.fields.pop("64")
    iso.fields.pop("64")
    assert cup.mti == iso.mti
    assert cup.fields == iso.fields
    # and each re-encodes in the other profile to a message that decodes back to the same content
    assert decode_message(encode_message(cup, ISO87), ISO87).fields == cup.fields


def test_cup_mac_vector(spec_examples: dict[str, Any], mac_fn: Callable[[bytes, bytes], bytes]) -> None:
    mak = bytes.fromhex(spec_examples["mak_clear"])
    mab = bytes.fromhex(spec_examples["cup_mac_mab_hex"])
    assert mac_fn(mak, mab) == spec_examples["cup_mac_under_mak"].encode() == b"3A987123"


@pytest.mark.parametrize(
    ("frame_key", "profile", "mac"),
    [("cup_purchase_frame_hex", CUP, b"C1ED1B86"), ("iso87_purchase_frame_hex", ISO87, b"B901BE7E")],
    ids=["cup", "iso87"],
)
def test_purchase_mac_verifies(
    spec_examples: dict[str, Any], mac_fn: Callable[[bytes, bytes], bytes], frame_key: str, profile: Any,
    mac: bytes,
) -> None:
    body = _frame_body(spec_examples[frame_key])
    mak = bytes.fromhex(spec_examples["mak_clear"])
    msg = decode_message(body, profile)
    prefix = profile.prefix_len
    # MAB = MTI .. end of field 63 = everything between TPDU/header and the 8 MAC bytes
    assert msg.mac_data == body[prefix:-8]
    assert mac_block(body, profile) == msg.mac_data
    assert bytes.fromhex(msg.fields["64"]) == mac
    assert mac_fn(mak, msg.mac_data) == mac
    # a wrong MAC patched in changes nothing but the last 8 bytes
    patched = replace_mac(body, b"00000000")
    assert patched[:-8] == body[:-8] and patched[-8:] == b"00000000"
    assert mac_fn(mak, mac_block(patched, profile)) == mac
    # a changed field breaks the MAC
    tampered = decode_message(body, profile)
    tampered.fields["4"] = "000000010001"
    assert mac_fn(mak, mac_block(encode_message(tampered, profile), profile)) != mac


def test_reply_mac_flow(spec_examples: dict[str, Any], mac_fn: Callable[[bytes, bytes], bytes]) -> None:
    """How the switch MACs a reply: encode with a placeholder 64, MAC the block, patch the last 8 bytes."""
    from switch.iso.codec import reply_to

    mak = bytes.fromhex(spec_examples["mak_clear"])
    req = decode_message(_frame_body(spec_examples["cup_purchase_frame_hex"]), CUP)
    rep = reply_to(req)
    rep.fields.update({"37": "000000000001", "39": "00", "64": "0" * 16})
    body = encode_message(rep, CUP)
    body = replace_mac(body, mac_fn(mak, mac_block(body, CUP)))
    back = decode_message(body, CUP)
    assert back.mti == "0210"
    assert mac_fn(mak, back.mac_data) == bytes.fromhex(back.fields["64"])


# ------------------------------------------------------------------------------------ public samples


@pytest.mark.parametrize("sample", POSITIVE, ids=[m["id"] for m in POSITIVE])
def test_public_sample_decodes_and_reencodes(sample: dict[str, Any]) -> None:
    body = bytes.fromhex(sample["raw_hex"])
    msg = decode_message(body, DEFAULT_ASCII)
    expected = dict(sample["expected"])
    assert msg.mti == expected.pop("0")
    got = dict(msg.fields)
    if sample.get("numeric_strip"):
        # moov reports numeric fields without their zero padding; the wire (and we) keep the full width
        for k, v in expected.items():
            if v.isdigit() and got.get(k, "").isdigit():
                assert got[k].lstrip("0") == v.lstrip("0"), k
                expected[k] = got[k]
    assert got == expected
    assert encode_message(msg, DEFAULT_ASCII) == body
    # pyiso8583 reads the same thing
    doc, _ = iso8583.decode(body, DEFAULT_ASCII.spec)
    assert {k: v for k, v in doc.items() if k not in ("t", "p", "1")} == msg.fields


def test_public_samples_cover_secondary_bitmaps() -> None:
    with_secondary = [m["id"] for m in POSITIVE if any(int(k) > 64 for k in m["expected"])]
    assert len(with_secondary) >= 2


@pytest.mark.parametrize("neg", NEGATIVE, ids=[n["name"] for n in NEGATIVE])
@pytest.mark.parametrize("profile", [DEFAULT_ASCII, ISO87, CUP], ids=lambda p: p.name)
def test_negative_rejected_with_codec_error(neg: dict[str, Any], profile: Any) -> None:
    body = bytes.fromhex(neg["hex"])
    with pytest.raises(CodecError) as err:
        decode_message(body, profile)
    assert err.value.field
    assert f"field {err.value.field} pos {err.value.pos}" in str(err.value)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("error_message", "55"),
        ("message_with_hex_length", "32"),
        ("message_with_hex_bcd", "48"),
        ("message_with_hex_rbcd", "48"),
        ("message_with_indicate_numeric", "28"),
        ("message_with_error_indicate_numeric", "28"),
        ("message_with_number_bcd_encoding", "7"),
        ("network_management_message_with_track", "35"),
        ("network_management_message_with_error_track", "35"),
        ("message_with_character_ebcdic_encoding", "42"),
    ],
)
def test_negative_names_the_same_field_as_pyiso8583(name: str, field: str) -> None:
    neg = next(n for n in NEGATIVE if n["name"] == name)
    assert f"field {field} " in neg["py_err"]
    with pytest.raises(CodecError) as err:
        decode_message(bytes.fromhex(neg["hex"]), DEFAULT_ASCII)
    assert err.value.field == field


@pytest.mark.parametrize("sample", FOREIGN, ids=[m["id"] for m in FOREIGN])
@pytest.mark.parametrize("profile", [DEFAULT_ASCII, ISO87, CUP], ids=lambda p: p.name)
def test_foreign_layouts_never_crash(sample: dict[str, Any], profile: Any) -> None:
    body = bytes.fromhex(sample["raw_hex"])
    try:
        msg = decode_message(body, profile)
    except CodecError:
        return
    # if a foreign layout happens to parse, it must at least round-trip
    assert decode_message(encode_message(msg, profile), profile).fields == msg.fields
