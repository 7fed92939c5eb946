"""The simulator's TCP transport (the shape of ``switch/server/listener.py``).

``HsmSimServer(config)``: ``await start() -> (host, port)`` (port 0 = ephemeral; a restart after ``stop()``
binds the same port again), ``await stop()``, ``faults`` changeable at runtime. One asyncio protocol per
connection: a sans-IO :class:`~switch.hsm.wire.FrameReader`, commands executed as they arrive (pipelined
requests are answered in order unless latency is injected), a bad command answered with its error code,
never a dropped connection. Oversized frames are skipped and answered ``15``; a peer that stops reading
pauses our reading (back-pressure); a started frame that does not complete within ``frame_timeout_s`` (slow
sender) and, when configured, a connection idle for ``idle_timeout_s`` are closed. With ``[server] tls_cert``
the port speaks TLS (``hsm_sim/tls.py``; the handshake is held to ``frame_timeout_s``).

Nothing is logged per command (hot path); ``stats`` counts commands, errors, faults and frame problems.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from hsm_sim.commands import COMMANDS
from hsm_sim.config import HsmSimConfig, parse_hostport
from hsm_sim.device import Device
from hsm_sim.errors import COMMAND_DISABLED, INVALID_INPUT, CommandError
from hsm_sim.faults import Fault, Faults
from hsm_sim.fields import Fields
from hsm_sim.lmk import Lmk
from hsm_sim.mailer import PinMailer
from hsm_sim.tls import server_context
from switch.hsm.wire import FrameReader, Oversized, frame
from switch.telemetry import logs

_HIGH_WATER = 256 * 1024
_SWEEP_S = 0.5


@dataclass(slots=True)
class ServerStats:
    connections: int = 0
    commands: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    oversized: int = 0
    unreadable: int = 0
    internal_errors: int = 0
    timeouts: int = 0


def load_lmk(config: HsmSimConfig) -> Lmk:
    return Lmk.from_file(config.lmk.file) if config.lmk.file else Lmk.test_set()


def execute(device: Device, code: bytes, fields: bytes, stats: ServerStats) -> tuple[bytes, bytes]:
    """Run one command: (error code, reply fields). Never raises."""
    handler = COMMANDS.get(code)
    if handler is None:
        return COMMAND_DISABLED.encode(), b""
    try:
        return b"00", handler(device, Fields(fields))
    except CommandError as exc:
        return exc.code.encode("ascii"), b""
    except Exception:  # a simulator bug must not take the connection down; the type alone is counted
        stats.internal_errors += 1
        return INVALID_INPUT.encode(), b""


def _reply_code(code: bytes) -> bytes:
    return bytes((code[0], (code[1] + 1) & 0xFF)) if len(code) == 2 else b"ZZ"


class HsmConnection(asyncio.Protocol):
    __slots__ = ("_batch", "_last_frame", "_paused", "_reader", "_srv", "closed", "frame_started", "transport")

    def __init__(self, srv: HsmSimServer) -> None:
        self._srv = srv
        self._reader = FrameReader(srv.config.server.max_body_bytes, keep=srv.header_len + 2)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.frame_started = 0.0
        self._last_frame = 0.0
        self._paused = False
        #: replies collected while one read is being handled (None outside ``data_received``)
        self._batch: list[bytes] | None = None

    # -- asyncio callbacks --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        srv = self._srv
        if len(srv.connections) >= srv.config.server.max_connections or not srv.accepting:
            self.transport.abort()
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)
        srv.connections.add(self)
        srv.stats.connections += 1
        self._last_frame = srv.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._srv.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        srv = self._srv
        # the replies to every command of this read go out in one write (one syscall, one wake-up of the host)
        self._batch = []
        try:
            self._receive(data)
        finally:
            batch, self._batch = self._batch, None
            if batch:
                self._write(batch[0] if len(batch) == 1 else b"".join(batch))
        self.frame_started = srv.loop.time() if self._reader.buffered else 0.0

    def _receive(self, data: bytes) -> None:
        srv = self._srv
        for item in self._reader.feed(data):
            self._last_frame = srv.loop.time()
            if isinstance(item, Oversized):
                srv.stats.oversized += 1
                self._answer_oversized(item)
            else:
                self._handle(item)

    def eof_received(self) -> bool | None:
        return False  # half-closed peer: close our side too (replies already written stay written)

    # -- commands -----------------------------------------------------------------------------------------
    def _answer_oversized(self, item: Oversized) -> None:
        hl = self._srv.header_len
        if len(item.head) >= hl + 2:
            self._send(frame(item.head[:hl] + _reply_code(item.head[hl : hl + 2]) + INVALID_INPUT.encode()), 0.0)

    def _handle(self, body: bytes) -> None:
        srv = self._srv
        hl = srv.header_len
        if len(body) < hl + 2:
            srv.stats.unreadable += 1  # nothing to address a reply to
            return
        header, code = body[:hl], body[hl : hl + 2]
        srv.stats.commands += 1
        faults = srv.faults
        delay = 0.0
        if faults.active and faults.applies(code.decode("latin-1")):
            decision = faults.decide()
            if decision is Fault.DROP:
                srv.stats.dropped += 1
                return
            delay = faults.latency_ms / 1000.0
            if decision is Fault.ERROR:
                out = frame(header + _reply_code(code) + faults.error_code.encode("ascii"))
                srv.stats.errors[faults.error_code] += 1
                self._send(out, delay)
                return
        error, data = execute(srv.device, code, body[hl + 2 :], srv.stats)
        if error != b"00":
            srv.stats.errors[error.decode("ascii")] += 1
        self._send(frame(header + _reply_code(code) + error + data), delay)

    def _send(self, out: bytes, delay: float) -> None:
        if delay > 0:
            handle = self._srv.loop.call_later(delay, self._write, out)
            self._srv.delayed.add(handle)
        elif self._batch is not None:
            self._batch.append(out)
        else:
            self._write(out)

    def _write(self, out: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(out)

    def sweep(self, now: float) -> None:
        """Close a slow sender (started frame older than ``frame_timeout_s``) or an idle connection."""
        cfg = self._srv.config.server
        slow = self.frame_started and cfg.frame_timeout_s and now - self.frame_started > cfg.frame_timeout_s
        idle = cfg.idle_timeout_s and now - self._last_frame > cfg.idle_timeout_s
        if (slow or idle) and self.transport is not None and not self.transport.is_closing():
            self._srv.stats.timeouts += 1
            self.transport.close()


class HsmSimServer:
    """The simulator's listening socket and its connections."""

    def __init__(self, config: HsmSimConfig | None = None, *, lmk: Lmk | None = None) -> None:
        self.config = config or HsmSimConfig()
        self.header_len = self.config.server.header_len
        self.lmk = lmk or load_lmk(self.config)
        self.device = Device(
            self.lmk, PinMailer(self.config.pin.mailer_file), default_pin_length=self.config.pin.default_length
        )
        self.faults = Faults.from_config(self.config.faults)
        self.stats = ServerStats()
        self.connections: set[HsmConnection] = set()
        self.delayed: set[asyncio.TimerHandle] = set()
        self.accepting = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._host, self._port = parse_hostport(self.config.server.listen, "server.listen")
        self.address: tuple[str, int] | None = None
        self._log = logs.get_logger("hsm_sim.server")
        self.loop: asyncio.AbstractEventLoop

    async def start(self) -> tuple[str, int]:
        self.loop = asyncio.get_running_loop()
        tls = server_context(self.config.server)
        self.accepting = True
        self._server = await self.loop.create_server(
            lambda: HsmConnection(self),
            self._host,
            self._port,
            reuse_address=True,
            backlog=256,
            ssl=tls,
            ssl_handshake_timeout=self.config.server.frame_timeout_s if tls is not None else None,
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._port = port  # a restart binds the same port
        self.address = (host, port)
        self._sweeper = asyncio.create_task(self._sweep())
        if self.lmk.is_test:
            self._log.warning(
                "test_device", message="HSM simulator with the public Thales test LMK: a test device, not secure"
            )
        self._log.info(logs.LISTENING, component="hsm_sim", host=host, port=port, pid=os.getpid(), tls=tls is not None)
        return host, port

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.sweep(now)
            self.delayed = {h for h in self.delayed if not h.cancelled() and h.when() > now}

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop accepting, let delayed replies that are due within ``grace_s`` go out, close every connection."""
        self.accepting = False
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        pending = [h for h in self.delayed if not h.cancelled()]
        if pending:
            wait = max(h.when() for h in pending) - self.loop.time()
            if 0 < wait <= grace_s:
                await asyncio.sleep(wait)
        for h in self.delayed:
            h.cancel()
        self.delayed.clear()
        conns = list(self.connections)
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        if conns:
            await asyncio.wait([conn.closed for conn in conns], timeout=grace_s)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._log.info(logs.SHUTDOWN, component="hsm_sim", connections=len(conns), commands=self.stats.commands)

    async def __aenter__(self) -> HsmSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
