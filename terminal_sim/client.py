"""The terminal's line to the switch: length-framed ISO 8583 over TCP, one request at a time.

:class:`Connection` is an ``asyncio.Protocol`` (cheap under uvloop): bytes go through the sans-IO
:class:`~switch.iso.framing.FrameDecoder`, each frame is decoded, and the reply is matched to the waiting
request by its own MTI, field 11 and field 41 (a late reply to an earlier request is counted and dropped,
never taken for the current one). Timeouts use one timer handle per request (no ``wait_for`` task).

:class:`Link` is what a terminal holds: a long connection reused across transactions and reopened after a
failure, or short connections (one per transaction, as dial-up UnionPay terminals do). A terminal that
timed out hangs up, so the late reply can never be mistaken for the next one.

Errors: :class:`NotSent` (nothing left the terminal: connection refused, connect timeout; no reversal is
owed) and :class:`NoReply` (sent, but no matching reply in time or the line dropped: a reversal is owed).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

from switch.iso.codec import CodecError, decode_message
from switch.iso.framing import FrameDecoder, FrameError, encode_frame
from switch.iso.message import IsoMessage
from switch.iso.profiles import WireProfile

#: replies may be a little larger than requests; the switch caps requests at 2048
MAX_REPLY_BYTES = 8192


class LinkError(Exception):
    """Base of the line errors (texts carry addresses and reasons, never message content)."""


class NotSent(LinkError):
    """The request never left the terminal."""


class NoReply(LinkError):
    """The request was sent but no matching reply came (timeout, or the switch hung up)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection(asyncio.Protocol):
    """One TCP connection to the switch carrying one outstanding request at a time."""

    def __init__(self, profile: WireProfile) -> None:
        self.profile = profile
        self.decoder = FrameDecoder(MAX_REPLY_BYTES)
        self.transport: asyncio.Transport | None = None
        self._waiting: tuple[str, str, str] | None = None
        self._future: asyncio.Future[IsoMessage] | None = None
        self.closed = False
        #: replies that matched no waiting request (late replies), undecodable frames
        self.unmatched = 0
        self.undecodable = 0

    @classmethod
    async def open(cls, host: str, port: int, profile: WireProfile, timeout_s: float = 5.0) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, proto = await loop.create_connection(lambda: cls(profile), host, port)
        except TimeoutError:
            raise NotSent(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise NotSent(f"cannot connect to {host}:{port}: {exc.strerror or type(exc).__name__}") from None
        return proto

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError:
            self._fail(NoReply("reply frame length invalid"))
            self.close()
            return
        for frame in frames:
            try:
                msg = decode_message(frame, self.profile)
            except CodecError:
                self.undecodable += 1
                continue
            f = msg.fields
            fut = self._future
            if fut is not None and not fut.done() and (msg.mti, f.get("11", ""), f.get("41", "")) == self._waiting:
                fut.set_result(msg)
            else:
                self.unmatched += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(NoReply("connection closed by the switch"))

    # -- API ----------------------------------------------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        fut = self._future
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    async def exchange(self, body: bytes, reply_mti: str, stan: str, tid: str, timeout_s: float) -> IsoMessage:
        """Send one frame body and wait for the reply with that MTI, 11 and 41."""
        if self.closed or self.transport is None:
            raise NotSent("connection is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[IsoMessage] = loop.create_future()
        self._future, self._waiting = fut, (reply_mti, stan, tid)
        self.transport.write(encode_frame(body))
        timer = loop.call_later(timeout_s, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self._future = self._waiting = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(fut: asyncio.Future[IsoMessage]) -> None:
    if not fut.done():
        fut.set_exception(NoReply("no reply in time"))


class Link:
    """A terminal's line: long (reused, reopened after trouble) or short (one connection per exchange)."""

    def __init__(
        self, host: str, port: int, profile: WireProfile, *, short: bool = False, connect_timeout_s: float = 5.0
    ) -> None:
        self.host, self.port, self.profile = host, port, profile
        self.short = short
        self.connect_timeout_s = connect_timeout_s
        self._conn: Connection | None = None
        self.connects = 0
        self.unmatched = 0

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await Connection.open(self.host, self.port, self.profile, self.connect_timeout_s)
            self.connects += 1
            self._conn = conn
        return conn

    async def exchange(self, body: bytes, reply_mti: str, stan: str, tid: str, timeout_s: float) -> IsoMessage:
        """Send and wait; :class:`NotSent` or :class:`NoReply` on trouble (the connection is then dropped)."""
        conn = await self._connection()
        try:
            reply = await conn.exchange(body, reply_mti, stan, tid, timeout_s)
        except LinkError:
            self.drop()
            raise
        if self.short:
            self.drop()
        return reply

    def drop(self) -> None:
        """Hang up (a late reply on this line can then never be taken for a later request)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self.unmatched += conn.unmatched
            conn.close()

    async def aclose(self) -> None:
        self.drop()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
