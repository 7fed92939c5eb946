"""One POS connection: frames in, application replies out (transport only; no ISO 8583 business here).

Each socket is an :class:`asyncio.Protocol` (cheaper than streams on the hot path). Frames are cut by the
sans-IO :class:`~switch.iso.framing.FrameDecoder`; every frame becomes a task that awaits the application
handler, so requests pipelined on one connection are processed concurrently and answered in completion
order (each reply matched by its own fields, as the terminal expects). Writes are whole frames through the
transport's single buffer, so replies never interleave.

Defences (each a ``[server]`` key, see ``docs/SECURITY.md``):

- at most ``max_inflight_per_connection`` requests at once per connection, and reading pauses while the
  peer does not take its replies: TCP back-pressure instead of queueing without bound;
- ``max_connections`` / ``max_connections_per_ip``: the excess is refused (reset) at once, counted in
  ``switch_connections_refused_total{reason}`` and logged (rate-limited, so a flood cannot flood the log);
- ``frame_timeout_s``: a frame whose first byte arrived must be complete within it (slowloris), and a TLS
  handshake likewise; ``idle_timeout_s``: nothing received and nothing in flight; ``write_timeout_s``: a
  peer that stops reading its replies is cut off;
- an oversize or zero length prefix closes the connection (the stream cannot be resynchronised).

With TLS (``server.tls_cert``), the socket is accepted as plain TCP and counted against the caps before the
handshake (done here over memory BIOs, :class:`~switch.server.tls.TlsSession`), which must finish within
``frame_timeout_s``: a flood of half-open handshakes is capped like any other flood.

Close reasons (``conn_close`` event, ``switch_connections_closed_total{reason}``): ``peer_closed``,
``idle_timeout``, ``frame_timeout``, ``frame_error``, ``undecodable``, ``write_timeout``, ``shutdown``,
``handler_error``, ``tls_handshake``, ``tls_error``, ``connection_lost``. Refusals (``conn_close`` at warning level,
``switch_connections_refused_total``): ``max_connections``, ``max_connections_per_ip``, ``shutdown``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from switch.config import ServerConfig
from switch.iso.framing import FrameDecoder, FrameError, encode_frame
from switch.iso.profiles import WireProfile
from switch.server.tls import TlsSession
from switch.telemetry import logs
from switch.telemetry.metrics import Metrics

_conn_ids = itertools.count(1)
#: longest wait, after our FIN, for the peer of a connection we closed on an error to close its side
_LINGER_S = 2.0


@dataclass(slots=True)
class ConnectionInfo:
    """What the application may know about the connection a request came on."""

    conn_id: int
    profile: WireProfile
    peer: str
    listener: str
    #: True when the connection is TLS-protected
    tls: bool = False


class CloseConnection(Exception):
    """Raised by a handler for a frame that cannot be answered at all: the connection is closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Handler(Protocol):
    """The application: reply body for a request body, or ``None`` for no reply (e.g. an advice never answered)."""

    def __call__(self, body: bytes, info: ConnectionInfo) -> Awaitable[bytes | None]: ...


@dataclass(slots=True)
class ConnectionLimits:
    idle_timeout_s: float = 60.0
    max_frame_bytes: int = 2048
    max_inflight_per_connection: int = 32
    write_timeout_s: float = 10.0
    max_connections: int = 4096
    max_connections_per_ip: int = 2048
    frame_timeout_s: float = 15.0

    @classmethod
    def from_config(cls, srv: ServerConfig) -> ConnectionLimits:
        return cls(
            idle_timeout_s=srv.idle_timeout_s,
            max_frame_bytes=srv.max_frame_bytes,
            max_inflight_per_connection=srv.max_inflight_per_connection,
            write_timeout_s=srv.write_timeout_s,
            max_connections=srv.max_connections,
            max_connections_per_ip=srv.max_connections_per_ip,
            frame_timeout_s=srv.frame_timeout_s,
        )


class RateLimitedLog:
    """Lets through at most ``per_second`` lines per second; the rest are counted and reported as
    ``suppressed=N`` on the next line let through (metrics still count every event)."""

    def __init__(self, per_second: int = 20) -> None:
        self._per_second = per_second
        self._window = 0
        self._used = 0
        self.suppressed = 0

    def allow(self) -> int | None:
        """``None`` to drop this line, else the number of lines dropped since the last one let through."""
        window = int(time.monotonic())
        if window != self._window:
            self._window, self._used = window, 0
        if self._used >= self._per_second:
            self.suppressed += 1
            return None
        self._used += 1
        dropped, self.suppressed = self.suppressed, 0
        return dropped


@dataclass(slots=True)
class ServerState:
    """State shared by all connections of one server process."""

    metrics: Metrics
    limits: ConnectionLimits
    global_slots: asyncio.Semaphore
    connections: set[PosConnection] = field(default_factory=set)
    per_ip: dict[str, int] = field(default_factory=dict)
    accepting: bool = True
    #: server-side TLS context of the POS listeners, ``None`` = plain TCP
    tls: ssl.SSLContext | None = None
    refusal_log: RateLimitedLog = field(default_factory=RateLimitedLog)


class PosConnection(asyncio.Protocol):
    """Transport for one terminal socket."""

    def __init__(self, handler: Handler, profile: WireProfile, listener: str, state: ServerState) -> None:
        self._handler = handler
        self._state = state
        self._limits = state.limits
        self._decoder = FrameDecoder(self._limits.max_frame_bytes)
        self._profile = profile
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused_reading = False
        self._stopped = False
        self._pending: collections.deque[bytes] = collections.deque()
        self._write_paused_since: float | None = None
        self._last_activity = time.monotonic()
        #: when the first byte of the frame now being received arrived (None: no partial frame)
        self._frame_started: float | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._tls: TlsSession | None = None
        self._closing = False
        self._close_started = 0.0
        self._lingering = False
        #: close reason once in-flight requests are answered (half-close, frame error)
        self._drain_close: str | None = None
        self._close_reason = "connection_lost"
        self._log = logs.get_logger("switch.server")
        self.info = ConnectionInfo(next(_conn_ids), profile, "?", listener)
        self.drained = asyncio.Event()
        self.drained.set()
        self.closed = asyncio.Event()
        self._ip = "?"
        self._counted = False

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    # -- asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the Transport interface without subclassing it
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peername: Any = transport.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            self._ip = str(peername[0])
            self.info.peer = f"{peername[0]}:{peername[1]}"
        state = self._state
        refused = None
        if not state.accepting:
            refused = "shutdown"
        elif len(state.connections) >= self._limits.max_connections:
            refused = "max_connections"
        elif state.per_ip.get(self._ip, 0) >= self._limits.max_connections_per_ip:
            refused = "max_connections_per_ip"
        if refused is not None:
            self._refuse(transport, refused)
            return
        self._counted = True
        state.connections.add(self)
        state.per_ip[self._ip] = state.per_ip.get(self._ip, 0) + 1
        state.metrics.connections_open.inc()
        state.metrics.connections_total.inc(profile=self._profile.name)
        self._log.info(
            logs.CONN_OPEN,
            peer=self.info.peer,
            profile=self._profile.name,
            conn=self.info.conn_id,
            tls=state.tls is not None,
        )
        if state.tls is not None:
            self._tls = TlsSession(state.tls)
            self.info.tls = True
            self._frame_started = time.monotonic()  # the handshake is held to the frame timeout
        self._arm_idle_timer()

    def _refuse(self, transport: asyncio.Transport, reason: str) -> None:
        state = self._state
        state.metrics.connections_refused.inc(reason=reason)
        dropped = state.refusal_log.allow()
        if dropped is not None:
            self._log.warning(
                logs.CONN_CLOSE, peer=self.info.peer, profile=self._profile.name, reason=reason, suppressed=dropped
            )
        self._closing = True
        transport.abort()
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._drain_close is not None:
            return  # closing, or after a bad length prefix: the rest of the stream is not read (nor logged)
        now = self._last_activity = time.monotonic()
        if self._tls is not None:
            data = self._tls_receive(data)
            if self._tls.peer_closed:
                self._take_frames(data, now)  # records before the close_notify are requests like any other
                self.eof_received()
                return
            if not data:
                return
        self._take_frames(data, now)

    def _take_frames(self, data: bytes, now: float) -> None:
        if not data or self._closing:
            return
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._state.metrics.frame_errors.inc(reason=exc.reason)
            self._log.warning(
                logs.FRAME_ERROR, peer=self.info.peer, profile=self._profile.name, reason=exc.reason, length=exc.length
            )
            # The well-framed requests before the bad prefix are answered, then the connection closes.
            for body in exc.frames:
                self._start_request(body)
            self._close_when_drained("frame_error")
            return
        if not self._decoder.buffered:
            self._frame_started = None
        elif frames or self._frame_started is None:
            # a new frame began in this chunk (earlier frames of the chunk are complete)
            self._frame_started = now
        for body in frames:
            self._start_request(body)

    def _tls_receive(self, data: bytes) -> bytes:
        """Ciphertext in, plaintext out; handshake replies and alerts go straight back to the peer."""
        tls = self._tls
        assert tls is not None and self._transport is not None
        was_established = tls.established
        try:
            plain = tls.receive(data)
        except Exception as exc:  # ssl.SSLError; anything else from OpenSSL must not escape either
            self._flush_tls()  # the alert tells a real terminal what went wrong
            reason = "tls_error" if was_established else "tls_handshake"
            # The exception type only: OpenSSL texts can quote what the peer sent.
            self._log.warning(reason, peer=self.info.peer, profile=self._profile.name, error=type(exc).__name__)
            self.close(reason, graceful=True)
            return b""
        self._flush_tls()
        if tls.established and not was_established:
            self._frame_started = None
        return plain

    def _flush_tls(self) -> None:
        assert self._tls is not None and self._transport is not None
        out = self._tls.take_output()
        if out and not self._transport.is_closing():
            self._transport.write(out)

    def eof_received(self) -> bool:
        # Half-close from the terminal (request sent, then SHUT_WR, or a TLS close_notify): answer what is in
        # flight, then close. During a lingering close the peer's FIN ends it (returning False closes).
        if self._closing:
            return False
        self._close_when_drained("peer_closed")
        return True

    def _close_when_drained(self, reason: str) -> None:
        """Take no more requests; close once those in flight are answered."""
        if self._drain_close is not None:
            return
        self._drain_close = reason
        self._stopped = True
        self._update_reading()
        if not self._tasks and not self._pending:
            self.close(reason)

    def pause_writing(self) -> None:
        # The peer is not taking its replies: stop taking its requests too, and start the write timer.
        self._write_paused_since = time.monotonic()
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused_since = None
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            self._close_reason = "peer_closed" if exc is None else "connection_lost"
        self._finish()

    # -- requests ----------------------------------------------------------------------------------
    def _start_request(self, body: bytes) -> None:
        if len(self._tasks) >= self._limits.max_inflight_per_connection or self._write_paused_since is not None:
            # Over the per-connection cap: hold the frame and stop reading (TCP back-pressure).
            self._pending.append(body)
            self._update_reading()
            return
        task = asyncio.get_running_loop().create_task(self._run_request(body))
        self._tasks.add(task)
        self.drained.clear()
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # _run_request handles everything; this is the last line of defence against a leaked error
            self._log.error("request_task_error", peer=self.info.peer, error=type(task.exception()).__name__)
        self._pump()
        if not self._tasks and not self._pending:
            self.drained.set()
            if self._drain_close is not None and not self._closing:
                self.close(self._drain_close)

    def _pump(self) -> None:
        """Start held requests while there is room. Not while the peer leaves its replies unread: each
        reply would sit in our write buffer, so a peer that pipelines and never reads could make us buffer
        a reply for every tiny request it managed to send (memory amplification)."""
        cap = self._limits.max_inflight_per_connection
        while self._pending and len(self._tasks) < cap and not self._closing and self._write_paused_since is None:
            self._start_request(self._pending.popleft())
        self._update_reading()

    def _update_reading(self) -> None:
        """Read from the socket only while nothing holds us back (shutdown, in-flight cap, unread replies)."""
        transport = self._transport
        if transport is None or self._closing:
            return
        hold = (
            self._stopped
            or bool(self._pending)
            or self._write_paused_since is not None
            or len(self._tasks) >= self._limits.max_inflight_per_connection
        )
        # is_reading() guards: uvloop raises on a redundant pause/resume, and EOF stops reading by itself
        if hold and not self._paused_reading:
            self._paused_reading = True
            if transport.is_reading():
                transport.pause_reading()
            self._frame_started = None  # a frame cannot complete while we do not read
        elif not hold and self._paused_reading:
            self._paused_reading = False
            if not transport.is_reading():
                transport.resume_reading()
            if self._decoder.buffered:
                self._frame_started = time.monotonic()

    async def _run_request(self, body: bytes) -> None:
        state = self._state
        async with state.global_slots:
            state.metrics.inflight.inc()
            try:
                reply = await self._handler(body, self.info)
            except CloseConnection as exc:
                self._state.metrics.frame_errors.inc(reason=exc.reason)
                self._log.warning(logs.FRAME_ERROR, peer=self.info.peer, profile=self._profile.name, reason=exc.reason)
                # other requests of this connection already in flight are well framed: they get their answers
                self._close_when_drained("undecodable")
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # The application promises an answer for everything it can parse; reaching here is a bug.
                self._log.exception("handler_error", peer=self.info.peer, profile=self._profile.name)
                self._close_when_drained("handler_error")
                return
            finally:
                state.metrics.inflight.dec()
        if reply is not None:
            try:
                self.write(reply)
            except FrameError:
                self._log.error("reply_error", peer=self.info.peer, profile=self._profile.name, length=len(reply))
                self._close_when_drained("handler_error")

    def write(self, body: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._tls is None:
            transport.write(encode_frame(body))
        else:
            try:
                self._tls.send(encode_frame(body))
            except ssl.SSLError:
                self.close("tls_error", graceful=False)
                return
            self._flush_tls()
        self._last_activity = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------------
    def _arm_idle_timer(self) -> None:
        loop = asyncio.get_running_loop()
        lim = self._limits
        period = min(lim.idle_timeout_s, lim.frame_timeout_s, max(lim.write_timeout_s, 0.05)) / 2
        self._idle_handle = loop.call_later(max(period, 0.01), self._check_timers)

    def _check_timers(self) -> None:
        now = time.monotonic()
        lim = self._limits
        if self._closing:
            # A graceful close waits for the write buffer to drain: a peer that never reads would hold the
            # socket forever, so the write timeout bounds the wait.
            if not self.closed.is_set() and self._transport is not None:
                if now - self._close_started > (_LINGER_S if self._lingering else lim.write_timeout_s):
                    self._transport.abort()
                else:
                    self._arm_idle_timer()
            return
        if self._write_paused_since is not None and now - self._write_paused_since > lim.write_timeout_s:
            self.close("write_timeout", graceful=False)
            return
        if self._frame_started is not None and now - self._frame_started > lim.frame_timeout_s:
            # a frame (or TLS handshake) begun and never finished: slowloris or a broken terminal
            self.close("frame_timeout", graceful=False)
            return
        if not self._tasks and not self._pending and now - self._last_activity > lim.idle_timeout_s:
            self.close("idle_timeout")
            return
        self._arm_idle_timer()

    def close(self, reason: str, graceful: bool = True) -> None:
        """Close the socket; ``graceful`` flushes what was already written."""
        if self._closing:
            return
        self._closing = True
        self._close_reason = reason
        self._close_started = time.monotonic()
        transport = self._transport
        if transport is None:
            return
        if not graceful:
            transport.abort()
            return
        if self._tls is not None:
            self._tls.close_notify()
            self._flush_tls()
        if self._drain_close not in (None, "peer_closed") and transport.can_write_eof():
            # Lingering close (as HTTP servers do): the peer may still be sending, and closing with unread
            # bytes makes the kernel answer with a reset that can destroy the replies still on their way.
            # So: FIN after the replies, read and drop whatever still comes, close when the peer closes
            # (eof_received) or when the write timeout runs out (_check_timers).
            transport.write_eof()
            self._lingering = True
            if not transport.is_reading():
                transport.resume_reading()
            return
        transport.close()

    def abort(self) -> None:
        """Drop the socket now, unsent replies included (shutdown's last resort)."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def stop_reading(self) -> None:
        """Shutdown step 1: take no new requests from this socket."""
        self._stopped = True
        self._update_reading()

    def cancel_inflight(self) -> None:
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()

    def _finish(self) -> None:
        if self.closed.is_set():
            return
        self._closing = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        state = self._state
        if self._counted:
            state.connections.discard(self)
            left = state.per_ip.get(self._ip, 1) - 1
            if left <= 0:
                state.per_ip.pop(self._ip, None)
            else:
                state.per_ip[self._ip] = left
            state.metrics.connections_open.dec()
            state.metrics.connections_closed.inc(reason=self._close_reason)
            self._log.info(
                logs.CONN_CLOSE,
                peer=self.info.peer,
                profile=self._profile.name,
                conn=self.info.conn_id,
                reason=self._close_reason,
            )
        self.closed.set()


ProtocolFactory = Callable[[], PosConnection]
