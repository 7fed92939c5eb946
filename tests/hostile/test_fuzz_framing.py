"""Fuzzing the sans-IO frame decoder: arbitrary streams cut at arbitrary points give exactly the frames a
reference parser finds, the frames before a bad length prefix included, and only ``FrameError`` comes out."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.iso.framing import FrameDecoder, FrameError
from tests.hostile.fuzzgen import frame_stream, reference_frames, split_points


def feed_in_pieces(stream: bytes, cuts: list[int], max_frame: int) -> tuple[list[bytes], bool, int]:
    dec = FrameDecoder(max_frame)
    frames: list[bytes] = []
    for a, b in itertools.pairwise(cuts):
        try:
            frames += dec.feed(stream[a:b])
        except FrameError as exc:
            assert str(exc).startswith("frame error: ") and exc.reason in ("oversize", "zero_length")
            frames += exc.frames
            assert dec.failed
            try:
                dec.feed(b"\x00\x01x")
            except FrameError as again:
                assert again.frames == []  # the frames are handed out once
            else:
                raise AssertionError("a failed decoder accepted more input")
            return frames, True, 0
    return frames, False, dec.buffered


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=12), st.integers(1, 2048))
def test_arbitrary_bytes_at_arbitrary_splits(stream: bytes, cuts: list[int], max_frame: int) -> None:
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    assert feed_in_pieces(stream, points, max_frame) == reference_frames(stream, max_frame)


def test_seeded_frame_streams() -> None:
    rng = random.Random(8583)
    failed = 0
    frames_seen = 0
    for _ in range(2000):
        max_frame = rng.choice((16, 300, 2048))
        stream = frame_stream(rng, max_frame)
        expected = reference_frames(stream, max_frame)
        assert feed_in_pieces(stream, split_points(rng, len(stream)), max_frame) == expected
        failed += expected[1]
        frames_seen += len(expected[0])
    assert failed > 100 and frames_seen > 3000  # both paths were exercised


def test_byte_by_byte_equals_one_shot() -> None:
    rng = random.Random(7)
    for _ in range(200):
        stream = frame_stream(rng, 2048)
        assert feed_in_pieces(stream, list(range(len(stream) + 1)), 2048) == feed_in_pieces(
            stream, [0, len(stream)], 2048
        )
