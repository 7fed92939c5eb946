"""``switch notify send`` through the real CLI, on both ledgers: SMS notices written with the money (top-up,
purchase, void, refund) in the SPEC's wording, delivered at least once with stable ids to the JSON-lines file or
to an HTTP webhook (a small asyncio HTTP server in the test), delivered again after a failed attempt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.backoffice.conftest import C1, C2, NOMOBILE, TID_A, TID_H, World

pytestmark = pytest.mark.asyncio


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


async def _traffic(world: World) -> None:
    """Purchase, void, refund, top-up with SMS; a reversed purchase and a card without mobile without."""
    a = await world.pos(TID_A)
    hall = await world.pos(TID_H)
    p = await a.purchase(C1.pan, C1.pin, 10000)
    assert p.rc == "00"
    v = await a.purchase(C1.pan, C1.pin, 3000)
    assert (await a.void(C1.pan, 3000, v)).rc == "00"
    assert (await a.refund(C1.pan, 2500, p)).rc == "00"
    assert (await hall.topup(C2.pan, 8888)).rc == "00"
    f = a.purchase_fields(C2.pan, C2.pin, 100)
    assert (await a.send("0200", f)).rc == "00" and (await a.reverse(f)).rc == "00"  # its notice is cancelled
    assert (await a.purchase(NOMOBILE.pan, NOMOBILE.pin, 100)).rc == "00"  # no mobile, no notice


async def test_file_gateway_delivers_once_with_stable_ids(world: World) -> None:
    await _traffic(world)
    r = await world.ok("notify", "send")
    assert r.out.strip() == f"notify: 5 sent via file {world.sms_file}; 0 pending"
    sent = [json.loads(x) for x in world.sms_file.read_text(encoding="utf-8").splitlines()]
    assert stat.S_IMODE(world.sms_file.stat().st_mode) == 0o600
    assert [(n["kind"], n["mobile"]) for n in sent] == [
        ("purchase", C1.mobile),
        ("purchase", C1.mobile),
        ("void", C1.mobile),
        ("refund", C1.mobile),
        ("topup", C2.mobile),
    ]
    rrns = await world.fetch(
        "SELECT j.rrn FROM notices n JOIN journal j ON j.id = n.journal_id WHERE n.status = 'sent' ORDER BY j.id"
    )
    assert [n["id"] for n in sent] == [f"sms-{r[0]}" for r in rrns]  # stable: named after the movement's RRN
    prefix = f"您尾号{C1.last4}的工会会员服务卡"
    texts = [n["text"] for n in sent]
    assert all(t.startswith(prefix) for t in texts[:4])
    assert texts[0].endswith(f"消费100.00元，余额{_yuan(C1.balance - 10000)}元。")
    assert texts[1].endswith(f"消费30.00元，余额{_yuan(C1.balance - 13000)}元。")
    assert texts[2].endswith(f"消费撤销30.00元，余额{_yuan(C1.balance - 10000)}元。")
    assert texts[3].endswith(f"退货25.00元，余额{_yuan(C1.balance - 7500)}元。")
    assert texts[4].endswith(f"充值88.88元，余额{_yuan(C2.balance + 8888)}元。")
    for t in texts:
        assert C1.pan not in t and C2.pan not in t

    again = await world.ok("notify", "send")
    assert again.out.strip() == f"notify: 0 sent via file {world.sms_file}; 0 pending"
    assert len(world.sms_file.read_text(encoding="utf-8").splitlines()) == 5


@dataclass
class Hook:
    """A tiny HTTP/1.1 webhook: records (Idempotency-Key, JSON body) and answers 503 while ``fail`` > 0."""

    url: str = ""
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    fail: int = 0
    fail_after: int = 10**9

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            key = headers.get("idempotency-key", "")
            if self.fail > 0 or len(self.received) >= self.fail_after:
                self.fail -= 1
                self.refused.append(key)
                status = "503 Service Unavailable"
            else:
                assert head[0].startswith("POST ") and headers["content-type"].startswith("application/json")
                self.received.append((key, json.loads(body)))
                status = "200 OK"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook()
    server = await asyncio.start_server(h.handle, "127.0.0.1", 0)
    h.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/sms"
    try:
        yield h
    finally:
        server.close()
        await server.wait_closed()


async def test_webhook_delivers_at_least_once_and_retries_after_a_failure(world: World, hook: Hook) -> None:
    await _traffic(world)
    world.write_config(gateway="http", webhook_url=hook.url)

    hook.fail = 1  # the gateway is down: nothing is marked sent
    down = await world.cli("notify", "send")
    assert down.code == 1 and "did not accept" in down.err and hook.received == []
    assert len(await world.fetch("SELECT id FROM notices WHERE status = 'pending'")) == 5

    hook.fail_after = 2  # accepts two, then fails: those two are sent, the rest stays pending
    partial = await world.cli("notify", "send")
    assert partial.code == 1 and partial.out.strip() == f"notify: 2 sent via webhook {hook.url}; 3 pending"
    hook.fail_after = 10**9
    done = await world.ok("notify", "send")
    assert done.out.strip() == f"notify: 3 sent via webhook {hook.url}; 0 pending"

    ids = [k for k, _ in hook.received]
    assert ids == [body["id"] for _, body in hook.received] and len(set(ids)) == 5  # each once, key = body id
    assert hook.refused[0] == ids[0] and hook.refused[1] == ids[2]  # the same ids were offered before
    assert [b["kind"] for _, b in hook.received] == ["purchase", "purchase", "void", "refund", "topup"]
    assert hook.received[0][1]["text"].endswith(f"消费100.00元，余额{_yuan(C1.balance - 10000)}元。")
    assert (await world.ok("notify", "send")).out.strip().startswith("notify: 0 sent")
    assert len(hook.received) == 5
