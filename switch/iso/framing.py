"""Message framing on the POS link: a 2-byte big-endian length prefix (SPEC §2).

Every message on both wire profiles travels as ``LEN(2) | body`` where ``LEN`` is the body length in bytes,
big-endian, *excluding* the two length bytes themselves. This module is sans-IO: :class:`FrameDecoder` is fed
whatever bytes the transport delivered (any split, any coalescing) and hands back complete bodies; the
asyncio code around it stays thin (hypercorn's shape).

Limits: a declared length of zero, or one above ``max_frame_bytes`` (default :data:`MAX_FRAME_BYTES`, the
SPEC's 2048-byte maximum message length, counted without the prefix), raises :class:`FrameError`. A length
error leaves the stream unsynchronised for good, so the decoder stays failed afterwards and the connection
must be closed. The complete frames that arrived *before* the bad prefix (in the same chunk) travel in the
error's ``frames``: they were well framed and deserve their answers before the close.
"""

from __future__ import annotations

__all__ = ["LENGTH_PREFIX_BYTES", "MAX_FRAME_BYTES", "FrameDecoder", "FrameError", "encode_frame"]

#: width of the length prefix
LENGTH_PREFIX_BYTES = 2
#: default maximum body length (SPEC §2: max message length 2048 bytes)
MAX_FRAME_BYTES = 2048
_PREFIX_MAX = 0xFFFF


class FrameError(ValueError):
    """A length prefix that cannot be honoured.

    ``reason`` is a short machine-friendly label (``"oversize"``, ``"zero_length"``, ``"failed"``) suitable
    for a metrics label; ``length`` is the declared length (or the body length for :func:`encode_frame`).
    The text never contains message content.
    """

    def __init__(self, reason: str, length: int, limit: int, frames: list[bytes] | None = None) -> None:
        super().__init__(f"frame error: {reason} (declared length {length}, limit {limit})")
        self.reason = reason
        self.length = length
        self.limit = limit
        #: complete frames decoded from the same input before the bad prefix (only on the first raise)
        self.frames: list[bytes] = frames if frames is not None else []


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its 2-byte big-endian length.

    Raises :class:`FrameError` for an empty body or one longer than 65535 bytes (the prefix cannot say so).
    The SPEC's 2048-byte limit is the receiver's business (:class:`FrameDecoder`), not enforced here.
    """
    n = len(body)
    if n == 0:
        raise FrameError("zero_length", 0, _PREFIX_MAX)
    if n > _PREFIX_MAX:
        raise FrameError("oversize", n, _PREFIX_MAX)
    return n.to_bytes(LENGTH_PREFIX_BYTES, "big") + bytes(body)


class FrameDecoder:
    """Incremental (sans-IO) decoder of length-prefixed frames.

    ``feed(data)`` appends ``data`` to an internal buffer and returns every complete body now available, in
    order (possibly none). Partial prefixes and partial bodies are kept for the next call. A zero or oversize
    declared length raises :class:`FrameError`; the decoder then refuses all further input (the byte
    stream can no longer be trusted) by raising the same error again.
    """

    __slots__ = ("_buf", "_error", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if not 1 <= max_frame_bytes <= _PREFIX_MAX:
            raise ValueError("max_frame_bytes must be within 1..65535")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Number of bytes received but not yet returned as part of a complete frame."""
        return len(self._buf)

    @property
    def failed(self) -> bool:
        """True once a length error was seen; every later :meth:`feed` raises."""
        return self._error is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return the complete frame bodies (without their length prefix)."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        start = 0
        end = len(buf)
        limit = self.max_frame_bytes
        while end - start >= LENGTH_PREFIX_BYTES:
            length = (buf[start] << 8) | buf[start + 1]
            if length == 0 or length > limit:
                reason = "zero_length" if length == 0 else "oversize"
                self._error = FrameError(reason, length, limit)
                del buf[:]
                raise FrameError(reason, length, limit, frames)
            stop = start + LENGTH_PREFIX_BYTES + length
            if stop > end:
                break
            frames.append(bytes(buf[start + LENGTH_PREFIX_BYTES : stop]))
            start = stop
        if start:
            del buf[:start]
        return frames
