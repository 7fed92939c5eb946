"""Property tests: round trips on both profiles, agreement with pyiso8583, and fuzzing decode."""

from __future__ import annotations

import copy

import iso8583
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.iso.codec import CodecError, decode_message, encode_message, mac_block
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage
from switch.iso.profiles import CUP, ISO87, WireProfile
from switch.iso.tpdu import Tpdu
from tests.iso.isohelpers import DEFAULT_ASCII, load_vector

DIGITS = "0123456789"
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(DIGITS, min_size=n, max_size=n)


def var_digits(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(DIGITS, min_size=min_size, max_size=max_size)


def ascii_text(n: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(PRINTABLE, min_size=n, max_size=n if max_size is None else max_size)


def hexbytes(min_size: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.binary(min_size=min_size, max_size=min_size if max_size is None else max_size).map(
        lambda b: b.hex().upper()
    )


track2 = st.builds(
    lambda pan, exp, rest: f"{pan}D{exp}{rest}"[:37],
    var_digits(19, 12),
    digits(4),
    var_digits(20),
)

#: every field the switch uses, with values valid in both profiles
FIELD_STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "2": var_digits(19),
    "3": digits(6),
    "4": digits(12),
    "11": digits(6),
    "12": digits(6),
    "13": digits(4),
    "14": digits(4),
    "15": digits(4),
    "22": digits(3),
    "25": digits(2),
    "32": var_digits(11),
    "35": track2,
    "37": ascii_text(12),
    "38": ascii_text(6),
    "39": ascii_text(2),
    "41": ascii_text(8),
    "42": ascii_text(15),
    "48": var_digits(322),
    "49": digits(3),
    "52": hexbytes(8),
    "53": digits(16),
    "54": ascii_text(0, 20),
    "60": var_digits(17),
    "61": var_digits(29),
    "62": hexbytes(0, 200),
    "63": ascii_text(0, 163),
    "64": hexbytes(8),
}

field_dicts = st.fixed_dictionaries({}, optional=FIELD_STRATEGIES)
mtis = digits(4)
tpdus = st.builds(Tpdu, hexbytes(2), hexbytes(2))
headers = st.builds(CupHeader, digits(2), digits(2), digits(1), digits(1), digits(6))


def _pyiso_doc(msg: IsoMessage) -> dict[str, str]:
    return {"t": msg.mti, **copy.deepcopy(msg.fields)}


def _check_round_trip(msg: IsoMessage, profile: WireProfile) -> bytes:
    body = encode_message(msg, profile)
    back = decode_message(body, profile)
    assert back.mti == msg.mti
    assert back.fields == msg.fields
    assert back.tpdu == msg.tpdu and back.header == msg.header
    assert back.raw == body
    assert encode_message(back, profile) == body
    prefix = profile.prefix_len
    if "64" in msg.fields:
        assert back.mac_data == body[prefix:-8] == mac_block(body, profile)
    else:
        assert back.mac_data == b""
    # pyiso8583 is the reference for the spec dicts: same bytes out, same values back
    pyiso_body, _ = iso8583.encode(_pyiso_doc(msg), profile.spec)
    assert bytes(pyiso_body) == body[prefix:]
    doc, _ = iso8583.decode(body[prefix:], profile.spec)
    assert {k: v for k, v in doc.items() if k not in ("t", "p")} == msg.fields
    return body


@given(mti=mtis, fields=field_dicts, tpdu=tpdus, header=headers)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_both_profiles(
    mti: str, fields: dict[str, str], tpdu: Tpdu, header: CupHeader
) -> None:
    cup_body = _check_round_trip(IsoMessage(mti, dict(fields), tpdu, header), CUP)
    iso_body = _check_round_trip(IsoMessage(mti, dict(fields)), ISO87)
    # identical normalized content across profiles
    assert decode_message(cup_body, CUP).fields == decode_message(iso_body, ISO87).fields


# --------------------------------------------------------------------------------------------- fuzzing

EX = load_vector("spec_examples.json")
SEEDS = {
    "cup": bytes.fromhex(EX["cup_purchase_frame_hex"])[2:],
    "iso87": bytes.fromhex(EX["iso87_purchase_frame_hex"])[2:],
}
PROFILES = [CUP, ISO87, DEFAULT_ASCII]


def _decode_only_codec_error(body: bytes, profile: WireProfile) -> IsoMessage | None:
    try:
        return decode_message(body, profile)
    except CodecError as err:
        assert isinstance(err.partial, dict)
        assert set(err.partial) <= {"t", "11", "41", "42"}
        return None


@given(data=st.binary(max_size=400))
@settings(max_examples=500)
def test_random_bytes_only_raise_codec_error(data: bytes) -> None:
    for profile in PROFILES:
        _decode_only_codec_error(data, profile)


@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255), st.sampled_from("rid")), max_size=4),
    cut=st.integers(0, 200),
)
@settings(max_examples=800)
def test_mutated_messages_only_raise_codec_error(
    seed: str, edits: list[tuple[int, int, str]], cut: int
) -> None:
    body = bytearray(SEEDS[seed])
    for where, byte, op in edits:
        pos = where % (len(body) + 1)
        if op == "r" and pos < len(body):
            body[pos] = byte
        elif op == "i":
            body.insert(pos, byte)
        elif pos < len(body):
            del body[pos]
    if cut % 5 == 0:
        del body[cut % (len(body) + 1) :]
    data = bytes(body)
    for profile in PROFILES:
        msg = _decode_only_codec_error(data, profile)
        if msg is None:
            continue
        # whatever decodes re-encodes to content that decodes identically ...
        again = encode_message(msg, profile)
        assert decode_message(again, profile).fields == msg.fields
        # ... and cup's layout is canonical: byte for byte
        if profile is CUP:
            assert again == data


@given(fields=field_dicts)
def test_cup_numeric_fields_never_yield_hex_letters(fields: dict[str, str]) -> None:
    body = encode_message(IsoMessage("0200", fields, Tpdu("0003", "0000"), CupHeader()), CUP)
    msg = decode_message(body, CUP)
    for key in CUP.numeric_fields & msg.fields.keys():
        assert msg.fields[key] == "" or msg.fields[key].isdigit()
