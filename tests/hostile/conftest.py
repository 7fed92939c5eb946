"""Fixtures of the hostile-input tests: real servers on ephemeral ports, clients from chosen source addresses."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from switch.app import BasicHandler
from switch.server.connection import ConnectionLimits, Handler
from switch.server.listener import ListenerSpec, SwitchServer
from switch.telemetry.metrics import Metrics

StartServer = Callable[..., Awaitable[SwitchServer]]

#: modules whose tests run on both event loops: asyncio, and uvloop (what ``switch serve`` runs on)
BOTH_LOOPS = ("test_tls.py", "test_abuse.py")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    factories: dict[str, Callable[[], Any]] = {"asyncio": asyncio.new_event_loop}
    if item.path.name in BOTH_LOOPS:
        try:
            import uvloop

            factories["uvloop"] = uvloop.new_event_loop
        except ImportError:
            pass
    return factories


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """Fail the test on any exception the event loop reported and nobody handled."""
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _l, ctx: errors.append(ctx))
    yield errors
    assert not errors, [str(e.get("message")) + repr(e.get("exception")) for e in errors]


@pytest.fixture
async def start_server(loop_errors: list[dict[str, object]]) -> AsyncIterator[StartServer]:
    """``await start_server(handler=None, tls=None, max_inflight=1024, **limits)`` -> a started SwitchServer."""
    servers: list[SwitchServer] = []

    async def start(
        handler: Handler | None = None, tls: ssl.SSLContext | None = None, max_inflight: int = 1024, **limits: Any
    ) -> SwitchServer:
        metrics = Metrics()
        server = SwitchServer(
            [ListenerSpec("cup", "127.0.0.1", 0), ListenerSpec("iso87", "127.0.0.1", 0)],
            handler or BasicHandler(metrics),
            metrics,
            ConnectionLimits(**limits),
            max_inflight=max_inflight,
            tls=tls,
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        await s.shutdown(1.0)


class Clients:
    """Open client connections, closed at the end of the test."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def open(
        self, addr: tuple[str, int], source: str | None = None, tls: ssl.SSLContext | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(
            *addr,
            local_addr=(source, 0) if source else None,
            ssl=tls,
            server_hostname="localhost" if tls else None,
        )
        self.writers.append(writer)
        return reader, writer

    async def close_all(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()
        await asyncio.sleep(0)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    c = Clients()
    yield c
    with contextlib.suppress(Exception):
        await c.close_all()


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Read until the server closes; returns what it sent (a reset counts as a close)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionError:  # reset, or a broken pipe seen by a client still writing
        return b""


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true (servers update metrics from callbacks, a tick or two later)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
