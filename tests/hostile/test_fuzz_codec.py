"""Fuzzing both codecs: arbitrary bodies, structure-aware valid messages, and mutated valid messages
(bit flips, truncations, length-prefix lies, bitmap bits for absent fields, BCD nibbles above 9, bad pads,
MTI/TPDU/header damage, splices). Only ``CodecError`` may come out, its text is a fixed reason plus field
and position, and whatever decodes re-encodes to the same fields (``fuzzgen.check_decode``)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.iso import codec
from switch.iso.codec import CodecError, decode_message, encode_message
from switch.iso.message import IsoMessage
from switch.iso.profiles import CUP, ISO87, PROFILES, WireProfile
from tests.hostile.fuzzgen import (
    MUTATIONS,
    OracleFailure,
    check_decode,
    encode_with_spans,
    fuzz_body,
    mutate,
    valid_message,
)
from tests.support.secrets import find_secrets

BOTH = pytest.mark.parametrize("profile", [CUP, ISO87], ids=["cup", "iso87"])


@BOTH
@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=2100))
def test_arbitrary_bodies(profile: WireProfile, body: bytes) -> None:
    check_decode(body, profile)


@BOTH
@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_behind_a_valid_prefix(profile: WireProfile, body: bytes) -> None:
    prefix = bytes.fromhex("6000030000603100310000") if profile.has_tpdu else b""
    check_decode(prefix + b"\x02\x00" + body if profile.has_tpdu else b"0200" + body, profile)


@BOTH
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_structure_aware_inputs(profile: WireProfile, seed: int) -> None:
    check_decode(fuzz_body(random.Random(seed), profile)[1], profile)


@BOTH
def test_valid_messages_round_trip_byte_exact(profile: WireProfile) -> None:
    rng = random.Random(2048)
    sizes = Counter()
    for _ in range(500):
        msg = valid_message(rng, profile)
        body = encode_message(msg, profile)
        outcome = check_decode(body, profile)
        assert outcome.ok and outcome.message is not None
        assert outcome.message.fields == msg.fields and outcome.message.mti == msg.mti
        assert encode_message(outcome.message, profile) == body
        sizes[len(msg.fields) > 10] += 1
    assert sizes[True] > 50  # many-field messages too, not only small ones


@BOTH
@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_mutations(profile: WireProfile, kind: str) -> None:
    rng = random.Random(f"{profile.name}/{kind}")
    outcomes = Counter()
    for _ in range(120):
        enc = encode_with_spans(valid_message(rng, profile), profile)
        other = encode_with_spans(valid_message(rng, profile), profile)
        _kind, body = mutate(rng, enc, other, kind)
        outcome = check_decode(body, profile)
        outcomes[outcome.ok] += 1
    assert outcomes[False] > 0, "the mutation never produced an invalid message"


def test_error_text_never_carries_a_value() -> None:
    pan = "9900010000000019"
    msg = IsoMessage(
        mti="0200",
        fields={"2": pan, "3": "000000", "11": "000001", "41": "10000001", "42": "898520154110001", "49": "156"},
    )
    body = encode_message(msg, ISO87)
    broken = body.replace(b"156", b"1X6")
    with pytest.raises(CodecError) as err:
        decode_message(broken, ISO87)
    assert find_secrets(str(err.value)) == [] and pan not in repr(err.value.args)
    assert err.value.field == "49" and err.value.partial["11"] == "000001"
    with pytest.raises(CodecError) as err:
        encode_message(IsoMessage(mti="0200", fields={"4": pan + "X"}), PROFILES["cup"])
    assert pan not in str(err.value)


def test_the_oracle_catches_a_leaking_or_crashing_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: a codec that leaks a value into its error text, or raises anything else, is caught."""
    body = b"0800" + bytes(8)

    def leaky(data: bytes, profile: WireProfile) -> IsoMessage:
        raise CodecError("2", 4, "bad PAN 9900010000000019")

    def crashy(data: bytes, profile: WireProfile) -> IsoMessage:
        raise IndexError("boom")

    for fake in (leaky, crashy):
        monkeypatch.setattr("tests.hostile.fuzzgen.decode_message", fake)
        with pytest.raises(OracleFailure):
            check_decode(body, ISO87)
    assert codec.decode_message is decode_message  # the real one was never touched
