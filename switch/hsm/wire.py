"""payShield host-command framing (SPEC §10b), pure: shared by the HSM simulator and the switch's client.

Request:  ``LEN(2, big-endian, excluding itself) | header | command(2) | fields``
Reply:    ``LEN(2) | header (echoed) | response code(2) | error code(2) | fields``

The response code is the command with its second character advanced (``NC`` -> ``ND``, ``A0`` -> ``A1``).
Everything here works on bytes; nothing here logs, and error texts never carry field values.
"""

from __future__ import annotations

from dataclasses import dataclass

#: largest body (header + command + fields) this project sends or accepts by default
MAX_BODY_BYTES = 32 * 1024
#: the 2-byte length prefix cannot describe more
LENGTH_LIMIT = 0xFFFF


class WireError(ValueError):
    """A frame or reply that cannot be read (the message names the problem, never the data)."""


def response_code(command: bytes) -> bytes:
    """``b"NC"`` -> ``b"ND"``: the reply's command code."""
    if len(command) != 2:
        raise WireError("command code must be 2 characters")
    return bytes((command[0], command[1] + 1))


def frame(body: bytes) -> bytes:
    """Prefix ``body`` with its 2-byte big-endian length."""
    n = len(body)
    if n > LENGTH_LIMIT:
        raise WireError(f"body of {n} bytes does not fit a 2-byte length")
    return n.to_bytes(2, "big") + body


def encode_command(header: bytes, command: bytes, fields: bytes) -> bytes:
    """A framed request."""
    return frame(header + command + fields)


def encode_reply(header: bytes, command: bytes, error: bytes, data: bytes = b"") -> bytes:
    """A framed reply to ``command`` (the request's code; the reply carries the advanced one)."""
    return frame(header + response_code(command) + error + data)


@dataclass(frozen=True, slots=True)
class Command:
    """One decoded request body."""

    header: bytes
    code: bytes
    fields: bytes


def parse_command(body: bytes, header_len: int) -> Command:
    """Split a request body; :class:`WireError` when it is too short to hold a header and a command."""
    if len(body) < header_len + 2:
        raise WireError("request shorter than header and command code")
    return Command(body[:header_len], body[header_len : header_len + 2], body[header_len + 2 :])


@dataclass(frozen=True, slots=True)
class HsmReply:
    """One decoded reply body: ``code`` is the response code (``ND``), ``error`` the 2-digit error code."""

    header: bytes
    code: str
    error: str
    data: bytes

    @property
    def ok(self) -> bool:
        return self.error == "00"


def parse_reply(body: bytes, header_len: int) -> HsmReply:
    """Split a reply body; :class:`WireError` when it cannot hold header, response code and error code."""
    if len(body) < header_len + 4:
        raise WireError("reply shorter than header, response code and error code")
    try:
        code = body[header_len : header_len + 2].decode("ascii")
        error = body[header_len + 2 : header_len + 4].decode("ascii")
    except UnicodeDecodeError as exc:
        raise WireError("reply code or error code is not ASCII") from exc
    return HsmReply(body[:header_len], code, error, body[header_len + 4 :])


@dataclass(frozen=True, slots=True)
class Oversized:
    """A frame whose length exceeds the reader's limit: ``head`` holds its first bytes (header and command,
    as far as they arrived with the length), the rest is skipped so that the stream stays in step."""

    head: bytes
    length: int


class FrameReader:
    """Sans-IO splitter of a byte stream into frame bodies (hypercorn's shape): ``feed(data) -> list``.

    A frame longer than ``max_body`` does not stop the stream: its first ``keep`` bytes are reported as
    :class:`Oversized` and its remaining bytes are skipped as they arrive, so the next frame is read normally.
    """

    __slots__ = ("_buf", "_head", "_keep", "_max", "_need_skip", "_oversize_len")

    def __init__(self, max_body: int = MAX_BODY_BYTES, keep: int = 6) -> None:
        self._buf = bytearray()
        self._max = max_body
        self._keep = keep
        self._need_skip = 0
        self._head = b""
        self._oversize_len = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (0 between frames)."""
        return len(self._buf) + self._need_skip

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        out: list[bytes | Oversized] = []
        buf = self._buf
        buf += data
        while True:
            if self._need_skip:
                n = min(self._need_skip, len(buf))
                del buf[:n]
                self._need_skip -= n
                if self._need_skip:
                    return out
                continue
            if len(buf) < 2:
                return out
            length = (buf[0] << 8) | buf[1]
            if length > self._max:
                want = min(self._keep, length)
                if len(buf) - 2 < want:
                    return out  # wait for header and command code so the reply can be addressed
                out.append(Oversized(bytes(buf[2 : 2 + want]), length))
                del buf[:2]
                self._need_skip = length
                continue
            end = 2 + length
            if len(buf) < end:
                return out
            out.append(bytes(buf[2:end]))
            del buf[:end]
