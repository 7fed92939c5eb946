"""Listening sockets for the POS profiles, with graceful shutdown (uvicorn's shape).

``start()`` binds every listener (port 0 = ephemeral) and logs one ``listening`` event per socket with the
bound address; ``serve(shutdown_trigger)`` runs until the trigger completes; ``shutdown(grace)`` stops
accepting, stops reading new requests, lets in-flight requests answer for up to ``grace`` seconds, cancels
the rest and closes every socket.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switch.iso.profiles import PROFILES
from switch.server.connection import ConnectionLimits, Handler, PosConnection, ServerState
from switch.telemetry import logs
from switch.telemetry.metrics import Metrics


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    profile: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BoundAddress:
    profile: str
    host: str
    port: int


class SwitchServer:
    """All POS listeners of one process."""

    def __init__(
        self,
        listeners: list[ListenerSpec],
        handler: Handler,
        metrics: Metrics,
        limits: ConnectionLimits,
        max_inflight: int = 1024,
        reuse_port: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        for spec in listeners:
            if spec.profile not in PROFILES:
                raise ValueError(f"unknown wire profile {spec.profile!r}")
        self._listeners = listeners
        self._handler = handler
        self._reuse_port = reuse_port
        self.metrics = metrics
        self.state = ServerState(metrics=metrics, limits=limits, global_slots=asyncio.Semaphore(max_inflight), tls=tls)
        self._servers: list[asyncio.Server] = []
        self.addresses: list[BoundAddress] = []
        self._log = logs.get_logger("switch.server")

    async def start(self) -> list[BoundAddress]:
        loop = asyncio.get_running_loop()
        tls_on = self.state.tls is not None
        for spec in self._listeners:
            profile = PROFILES[spec.profile]
            name = f"{spec.profile}@{spec.host}:{spec.port}"

            def factory(p: object = profile, n: str = name) -> PosConnection:
                return PosConnection(self._handler, p, n, self.state)  # type: ignore[arg-type]

            server = await loop.create_server(
                factory,
                spec.host,
                spec.port,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
                backlog=1024,
            )
            self._servers.append(server)
            for sock in server.sockets:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                host, port = sock.getsockname()[:2]
                bound = BoundAddress(spec.profile, host, port)
                self.addresses.append(bound)
                self._log.info(logs.LISTENING, profile=spec.profile, host=host, port=port, pid=os.getpid(), tls=tls_on)
        return self.addresses

    def address(self, profile: str) -> tuple[str, int]:
        for a in self.addresses:
            if a.profile == profile:
                return a.host, a.port
        raise KeyError(profile)

    async def serve(self, shutdown_trigger: Callable[[], Awaitable[object]], grace_s: float = 10.0) -> None:
        if not self._servers:
            await self.start()
        await shutdown_trigger()
        await self.shutdown(grace_s)

    async def shutdown(self, grace_s: float = 10.0) -> None:
        state = self.state
        state.accepting = False
        for server in self._servers:
            server.close()
        conns = list(state.connections)
        inflight = sum(c.inflight for c in conns)
        for conn in conns:
            conn.stop_reading()
        if conns:
            waits = [asyncio.ensure_future(c.drained.wait()) for c in conns]
            _done, pending = await asyncio.wait(waits, timeout=grace_s)
            for fut in pending:
                fut.cancel()
        cancelled = 0
        for conn in conns:
            if not conn.drained.is_set():
                cancelled += conn.inflight
                conn.cancel_inflight()
            conn.close("shutdown")
        if conns:
            waits = [asyncio.ensure_future(c.closed.wait()) for c in conns]
            _done, pending = await asyncio.wait(waits, timeout=2.0)
            for fut in pending:
                fut.cancel()
            for conn in conns:
                if not conn.closed.is_set():
                    conn.abort()  # a peer that does not read: its unsent replies are dropped
            await asyncio.sleep(0)
        for server in self._servers:
            await server.wait_closed()
        if state.refusal_log.suppressed:
            self._log.warning(logs.CONN_CLOSE, reason="refused", suppressed=state.refusal_log.suppressed)
        self._log.info(logs.SHUTDOWN, component="pos", connections=len(conns), inflight=inflight, cancelled=cancelled)
