"""switch.hsm.wire: framing, reply codes, and the frame reader split at every offset."""

from __future__ import annotations

import pytest

from switch.hsm.wire import (
    FrameReader,
    Oversized,
    WireError,
    encode_command,
    encode_reply,
    frame,
    parse_command,
    parse_reply,
    response_code,
)


def test_response_code_advances_the_second_character() -> None:
    assert response_code(b"NC") == b"ND"
    assert response_code(b"CA") == b"CB"
    assert response_code(b"A0") == b"A1"
    assert response_code(b"M8") == b"M9"
    with pytest.raises(WireError):
        response_code(b"N")


def test_command_and_reply_round_trip() -> None:
    raw = encode_command(b"0001", b"BU", b"020ABCDEF0123456789")
    assert raw[:2] == (len(raw) - 2).to_bytes(2, "big")
    cmd = parse_command(raw[2:], 4)
    assert (cmd.header, cmd.code, cmd.fields) == (b"0001", b"BU", b"020ABCDEF0123456789")
    reply = parse_reply(encode_reply(b"0001", b"BU", b"00", b"0123")[2:], 4)
    assert (reply.header, reply.code, reply.error, reply.data, reply.ok) == (b"0001", "BV", "00", b"0123", True)


def test_short_bodies_are_wire_errors() -> None:
    with pytest.raises(WireError):
        parse_command(b"000", 4)
    with pytest.raises(WireError):
        parse_reply(b"0001ND0", 4)
    with pytest.raises(WireError):
        frame(bytes(70000))


def test_reader_splits_a_stream_cut_at_every_offset() -> None:
    frames = [b"0001NC", b"0002BU" + b"x" * 300, b"0003M6" + bytes(range(256))]
    stream = b"".join(frame(f) for f in frames)
    for cut in range(len(stream) + 1):
        r = FrameReader()
        out = r.feed(stream[:cut]) + r.feed(stream[cut:])
        assert out == frames
        assert r.buffered == 0


def test_reader_skips_an_oversized_frame_and_stays_in_step() -> None:
    big = frame(b"0009M6" + bytes(5000))
    small = frame(b"0010NC")
    stream = big + small
    for cut in (0, 1, 3, 7, 8, 100, len(big), len(stream)):
        r = FrameReader(max_body=1024, keep=6)
        out = r.feed(stream[:cut]) + r.feed(stream[cut:])
        assert out[0] == Oversized(b"0009M6", 5006)
        assert out[1:] == [b"0010NC"]
