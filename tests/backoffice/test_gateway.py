"""SMS gateways: JSON-lines file (owner-only, appended) and HTTP webhook (2xx = accepted, stable ids)."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from switch.backoffice.gateway import FileGateway, HttpGateway, Notice
from switch.errors import HandledError

N1 = Notice("N1", "purchase", "13800000000", "您尾号0019的工会会员服务卡11月22日14:03消费100.00元，余额400.00元。", "t")
N2 = Notice("N2", "topup", "13800000000", "x", "t")


def test_file_gateway_appends_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sms.jsonl"
    gw = FileGateway(path)
    assert gw.deliver([N1]) == 1
    assert gw.deliver([N1, N2]) == 2  # a re-delivery keeps the same id
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["N1", "N1", "N2"]
    assert lines[0]["text"] == N1.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str]]]] = []
    fail_after = 99

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if len(self.received) >= self.fail_after:
            self.send_response(503)
            self.end_headers()
            return
        self.received.append((self.headers["Idempotency-Key"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received = []
    _Hook.fail_after = 99
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/sms"
    srv.shutdown()
    srv.server_close()


def test_http_gateway(hook: str) -> None:
    gw = HttpGateway(hook)
    assert gw.deliver([N1, N2]) == 2
    assert [k for k, _ in _Hook.received] == ["N1", "N2"]
    assert _Hook.received[0][1]["text"] == N1.text


def test_http_gateway_partial_and_total_failure(hook: str) -> None:
    _Hook.fail_after = 1
    gw = HttpGateway(hook)
    assert gw.deliver([N1, N2]) == 1
    with pytest.raises(HandledError):
        gw.deliver([N2])


def test_http_gateway_rejects_bad_url() -> None:
    with pytest.raises(HandledError):
        HttpGateway("file:///etc/passwd")
