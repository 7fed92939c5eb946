"""/healthz and /metrics over real HTTP."""

from __future__ import annotations

import asyncio

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
