"""/healthz and /metrics over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib

from switch.server.http import HttpEndpoint
from switch.telemetry.metrics import Metrics


async def http_get(host: str, port: int, path: str, method: str = "GET") -> tuple[str, str]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def test_healthz_and_metrics() -> None:
    metrics = Metrics()
    metrics.requests.inc(mti="0200", rc="00")
    metrics.latency.observe(0.004)
    endpoint = HttpEndpoint(metrics.render, lambda: {"status": "ok"})
    host, port = await endpoint.start("127.0.0.1", 0)
    try:
        status, body = await http_get(host, port, "/healthz")
        assert status == "HTTP/1.1 200 OK" and '"status": "ok"' in body
        status, body = await http_get(host, port, "/metrics")
        assert status == "HTTP/1.1 200 OK"
        assert 'switch_requests_total{mti="0200",rc="00"} 1' in body
        assert 'switch_request_latency_seconds_bucket{le="0.005"} 1' in body
        assert "switch_connections_open" in body and "switch_inflight_requests" in body
        status, _ = await http_get(host, port, "/nope")
        assert status.startswith("HTTP/1.1 404")
        status, _ = await http_get(host, port, "/metrics", method="POST")
        assert status.startswith("HTTP/1.1 405")
    finally:
        await endpoint.close()


async def test_http_connection_cap_and_oversize_head() -> None:
    from switch.server.http import MAX_HTTP_CONNECTIONS

    endpoint = HttpEndpoint(Metrics().render, lambda: {"status": "ok"})
    host, port = await endpoint.start("127.0.0.1", 0)
    idle = [await asyncio.open_connection(host, port) for _ in range(MAX_HTTP_CONNECTIONS)]
    try:
        await asyncio.sleep(0.05)
        r, w = await asyncio.open_connection(host, port)
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r.read(), 5) == b""  # over the cap: closed at once
        w.close()
        assert endpoint.refused == 1
        r2, w2 = await asyncio.open_connection(host, port)  # still full: refused too
        w2.write(b"GET /healthz HTTP/1.1\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r2.read(), 5) == b""
        w2.close()
    finally:
        for _r, w in idle:
            w.close()
    await asyncio.sleep(0.05)
    status, _ = await http_get(host, port, "/healthz")  # the idle ones gone: served again
    assert status == "HTTP/1.1 200 OK"
    r, w = await asyncio.open_connection(host, port)
    w.write(b"GET /" + b"x" * 10000 + b" HTTP/1.1\r\n\r\n")  # a head over 8 KiB: dropped, no crash
    with contextlib.suppress(ConnectionResetError):
        await asyncio.wait_for(r.read(), 5)
    w.close()
    await endpoint.close()
