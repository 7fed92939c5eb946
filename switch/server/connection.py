"""One POS connection: frames in, application replies out (transport only; no ISO 8583 business here).

Each socket is an :class:`asyncio.Protocol` (cheaper than streams on the hot path). Frames are cut by the
sans-IO :class:`~switch.iso.framing.FrameDecoder`; every frame becomes a task that awaits the application
handler, so requests pipelined on one connection are processed concurrently and answered in completion
order (each reply matched by its own fields, as the terminal expects). A connection carries at most
``max_inflight_per_connection`` requests at once: beyond that, reading pauses (TCP back-pressure) instead of
queueing without bound. Writes are whole frames through the transport's single buffer, so replies never
interleave. A reader that stops taking replies is cut off after ``write_timeout_s``.

Close reasons (``conn_close`` event, ``switch_connections_closed_total{reason}``): ``peer_closed``,
``idle_timeout``, ``frame_error``, ``undecodable``, ``write_timeout``, ``shutdown``, ``handler_error``,
``connection_lost``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from switch.iso.framing import FrameDecoder, FrameError, encode_frame
from switch.iso.profiles import WireProfile
from switch.telemetry import logs
from switch.telemetry.metrics import Metrics

_conn_ids = itertools.count(1)


@dataclass(slots=True)
class ConnectionInfo:
    """What the application may know about the connection a request came on."""

    conn_id: int
    profile: WireProfile
    peer: str
    listener: str


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


@dataclass(slots=True)
class ServerState:
    """State shared by all connections of one server process."""

    metrics: Metrics
    limits: ConnectionLimits
    global_slots: asyncio.Semaphore
    connections: set[PosConnection] = field(default_factory=set)
    per_ip: dict[str, int] = field(default_factory=dict)
    accepting: bool = True


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
        self._idle_handle: asyncio.TimerHandle | None = None
        self._closing = False
        self._eof = False
        self._close_reason = "connection_lost"
        self._log = logs.get_logger("switch.server")
        self.info = ConnectionInfo(next(_conn_ids), profile, "?", listener)
        self.drained = asyncio.Event()
        self.drained.set()
        self.closed = asyncio.Event()
        self._ip = "?"
        self._counted = False

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
            state.metrics.connections_refused.inc(reason=refused)
            self._log.warning(logs.CONN_CLOSE, peer=self.info.peer, profile=self._profile.name, reason=refused)
            self._closing = True
            transport.abort()
            self.closed.set()
            return
        self._counted = True
        state.connections.add(self)
        state.per_ip[self._ip] = state.per_ip.get(self._ip, 0) + 1
        state.metrics.connections_open.inc()
        state.metrics.connections_total.inc(profile=self._profile.name)
        self._log.info(logs.CONN_OPEN, peer=self.info.peer, profile=self._profile.name, conn=self.info.conn_id)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = time.monotonic()
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._state.metrics.frame_errors.inc(reason=exc.reason)
            self._log.warning(logs.FRAME_ERROR, peer=self.info.peer, profile=self._profile.name, reason=exc.reason)
            self.close("frame_error", graceful=True)
            return
        for body in frames:
            self._start_request(body)

    def eof_received(self) -> bool:
        # Half-close from the terminal (request sent, then SHUT_WR): answer what is in flight, then close.
        self._eof = True
        if not self._tasks and not self._pending:
            self.close("peer_closed")
        return True

    def pause_writing(self) -> None:
        self._write_paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self._write_paused_since = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            self._close_reason = "peer_closed" if exc is None else "connection_lost"
        self._finish()

    # -- requests ----------------------------------------------------------------------------------
    def _start_request(self, body: bytes) -> None:
        cap = self._limits.max_inflight_per_connection
        if len(self._tasks) >= cap:
            # Over the per-connection cap: hold the frame and stop reading (TCP back-pressure).
            self._pending.append(body)
            if not self._paused_reading and self._transport is not None:
                self._paused_reading = True
                self._transport.pause_reading()
            return
        task = asyncio.get_running_loop().create_task(self._run_request(body))
        self._tasks.add(task)
        self.drained.clear()
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        cap = self._limits.max_inflight_per_connection
        while self._pending and len(self._tasks) < cap and not self._closing:
            self._start_request(self._pending.popleft())
        if self._paused_reading and not self._pending and not self._stopped and len(self._tasks) < cap:
            self._paused_reading = False
            if self._transport is not None and not self._closing:
                self._transport.resume_reading()
        if not self._tasks and not self._pending:
            self.drained.set()
            if self._eof and not self._closing:
                self.close("peer_closed")

    async def _run_request(self, body: bytes) -> None:
        state = self._state
        async with state.global_slots:
            state.metrics.inflight.inc()
            try:
                reply = await self._handler(body, self.info)
            except CloseConnection as exc:
                self._state.metrics.frame_errors.inc(reason=exc.reason)
                self._log.warning(logs.FRAME_ERROR, peer=self.info.peer, profile=self._profile.name, reason=exc.reason)
                self.close("undecodable", graceful=True)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # The application promises an answer for everything it can parse; reaching here is a bug.
                self._log.exception("handler_error", peer=self.info.peer, profile=self._profile.name)
                self.close("handler_error", graceful=True)
                return
            finally:
                state.metrics.inflight.dec()
        if reply is not None:
            self.write(reply)

    def write(self, body: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_frame(body))

    # -- lifecycle ---------------------------------------------------------------------------------
    def _arm_idle_timer(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(self._limits.idle_timeout_s, max(self._limits.write_timeout_s, 0.05)) / 2
        self._idle_handle = loop.call_later(max(period, 0.01), self._check_timers)

    def _check_timers(self) -> None:
        if self._closing:
            return
        now = time.monotonic()
        if self._write_paused_since is not None and now - self._write_paused_since > self._limits.write_timeout_s:
            self.close("write_timeout", graceful=False)
            return
        if not self._tasks and now - self._last_activity > self._limits.idle_timeout_s:
            self.close("idle_timeout")
            return
        self._arm_idle_timer()

    def close(self, reason: str, graceful: bool = True) -> None:
        """Close the socket; ``graceful`` flushes what was already written."""
        if self._closing:
            return
        self._closing = True
        self._close_reason = reason
        if self._transport is not None:
            if graceful:
                self._transport.close()
            else:
                self._transport.abort()

    def stop_reading(self) -> None:
        """Shutdown step 1: take no new requests from this socket."""
        self._stopped = True
        if self._transport is not None and not self._closing and not self._paused_reading:
            self._paused_reading = True
            self._transport.pause_reading()

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
