"""2-byte big-endian length framing (SPEC §2): split at every offset, coalesced frames, limits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.iso.framing import MAX_FRAME_BYTES, FrameDecoder, FrameError, encode_frame

BODIES = [b"\x01", b"hello", bytes(range(256)) * 3, b"\x00" * 2048]


def test_encode_frame_prefix() -> None:
    assert encode_frame(b"abc") == b"\x00\x03abc"
    assert encode_frame(b"x" * 0x0102)[:2] == b"\x01\x02"
    assert MAX_FRAME_BYTES == 2048


def test_encode_frame_rejects_empty_and_unrepresentable() -> None:
    with pytest.raises(FrameError) as err:
        encode_frame(b"")
    assert err.value.reason == "zero_length"
    with pytest.raises(FrameError) as err:
        encode_frame(b"x" * 65536)
    assert err.value.reason == "oversize"


@pytest.mark.parametrize("body", BODIES, ids=lambda b: f"len{len(b)}")
def test_split_at_every_offset(body: bytes) -> None:
    stream = encode_frame(body) + encode_frame(b"second")
    for cut in range(len(stream) + 1):
        dec = FrameDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert got == [body, b"second"], cut
        assert dec.buffered == 0


def test_byte_by_byte() -> None:
    bodies = [b"a", b"bb" * 100, b"ccc"]
    stream = b"".join(encode_frame(b) for b in bodies)
    dec = FrameDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        out = dec.feed(stream[i : i + 1])
        got += out
        # nothing is returned before the last byte of a frame arrived
        assert all(b in bodies for b in out)
    assert got == bodies
    assert dec.buffered == 0


def test_partial_data_is_kept() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x00") == []
    assert dec.buffered == 1
    assert dec.feed(b"\x05abc") == []
    assert dec.buffered == 5
    assert dec.feed(b"de\x00\x01") == [b"abcde"]
    assert dec.buffered == 2
    assert dec.feed(b"z") == [b"z"]


def test_max_frame_is_accepted_and_one_more_is_not() -> None:
    dec = FrameDecoder()
    assert dec.feed(encode_frame(b"m" * MAX_FRAME_BYTES)) == [b"m" * MAX_FRAME_BYTES]
    with pytest.raises(FrameError) as err:
        dec.feed((MAX_FRAME_BYTES + 1).to_bytes(2, "big"))
    assert err.value.reason == "oversize"
    assert err.value.length == MAX_FRAME_BYTES + 1


def test_oversize_detected_from_the_prefix_alone() -> None:
    # the error comes as soon as the 2 length bytes are in, without waiting for the body
    dec = FrameDecoder(max_frame_bytes=10)
    assert dec.feed(b"\x00") == []
    with pytest.raises(FrameError):
        dec.feed(b"\x0b")


def test_zero_length_is_an_error() -> None:
    dec = FrameDecoder()
    with pytest.raises(FrameError) as err:
        dec.feed(encode_frame(b"ok") + b"\x00\x00")
    assert err.value.reason == "zero_length"


def test_decoder_stays_failed() -> None:
    dec = FrameDecoder()
    with pytest.raises(FrameError):
        dec.feed(b"\xff\xff")
    assert dec.failed
    with pytest.raises(FrameError):
        dec.feed(encode_frame(b"fine"))


def test_frame_error_text_has_no_content() -> None:
    dec = FrameDecoder()
    with pytest.raises(FrameError) as err:
        dec.feed(b"\xff\xff9900010000000019")
    assert "9900010000000019" not in str(err.value)


def test_bad_limit() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)
    with pytest.raises(ValueError):
        FrameDecoder(70000)


@given(
    bodies=st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_any_chunking_yields_the_same_frames(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    dec = FrameDecoder()
    got: list[bytes] = []
    for a, b in itertools.pairwise(points):
        got += dec.feed(stream[a:b])
    assert got == bodies
    assert dec.buffered == 0
