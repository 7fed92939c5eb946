"""A tiny HTTP/1.1 endpoint for ``/healthz`` and ``/metrics`` (Prometheus text). GET/HEAD only.

Hardened like the POS side at a smaller scale: the request head must arrive within 5 s and fit 8 KiB, and at
most :data:`MAX_HTTP_CONNECTIONS` connections are served at once (the excess is closed at once), so a
scraper storm or a slowloris on the metrics port cannot starve the process of sockets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from switch.telemetry import logs

_MAX_REQUEST = 8192
#: concurrent HTTP connections; a Prometheus scraper and a health probe need two
MAX_HTTP_CONNECTIONS = 64


class HttpEndpoint:
    def __init__(self, render_metrics: Callable[[], str], health: Callable[[], dict[str, object]]) -> None:
        self._render_metrics = render_metrics
        self._health = health
        self._server: asyncio.Server | None = None
        self._open = 0
        self.refused = 0
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True, limit=_MAX_REQUEST)
        sock = self._server.sockets[0]
        self.address = sock.getsockname()[:2]
        logs.get_logger("switch.http").info(logs.LISTENING, profile="http", host=self.address[0], port=self.address[1])
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_HTTP_CONNECTIONS:
            self.refused += 1
            writer.transport.abort()
            return
        self._open += 1
        try:
            await self._answer(reader, writer)
        finally:
            self._open -= 1

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            if len(head) > _MAX_REQUEST:
                raise ValueError("request too large")
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
            elif path == "/metrics":
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
                body = self._render_metrics().encode()
            elif path == "/healthz":
                health = self._health()
                status = "200 OK" if health.get("status") == "ok" else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps(health).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head_out = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head_out if method == "HEAD" else head_out + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
