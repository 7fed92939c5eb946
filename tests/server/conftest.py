"""Real TCP fixtures for the transport: a SwitchServer on ephemeral ports with the foundation handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from switch.app import BasicHandler
from switch.server.connection import ConnectionLimits, Handler
from switch.server.listener import ListenerSpec, SwitchServer
from switch.telemetry.metrics import Metrics

ServerFactory = Callable[..., "asyncio.Future[SwitchServer]"]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """Fail the test on any exception the event loop reported and nobody handled."""
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _l, ctx: errors.append(ctx))
    yield errors
    assert not errors, [str(e.get("message")) + repr(e.get("exception")) for e in errors]


@pytest.fixture
async def make_server(loop_errors: list[dict[str, object]]) -> AsyncIterator[Callable[..., object]]:
    servers: list[SwitchServer] = []

    async def make(handler: Handler | None = None, **limits: float) -> SwitchServer:
        metrics = Metrics()
        server = SwitchServer(
            [ListenerSpec("cup", "127.0.0.1", 0), ListenerSpec("iso87", "127.0.0.1", 0)],
            handler or BasicHandler(metrics),
            metrics,
            ConnectionLimits(**limits),  # type: ignore[arg-type]
            max_inflight=int(limits.pop("max_inflight", 1024)) if "max_inflight" in limits else 1024,
        )
        await server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        await s.shutdown(1.0)
