"""Connection abuse over real TCP, on asyncio and uvloop: slowloris, idle floods, connection floods from one
address and overall, oversize lengths, a peer that never reads, a broken application. In every case the
abuse is cut, logged and counted, and a legitimate terminal keeps getting answers.

Attackers connect from 127.0.0.2.. (any 127/8 address is local on Linux) so that per-address caps can be
told apart from the legitimate terminal on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import struct

import pytest
from structlog.testing import capture_logs

from switch.server.connection import CloseConnection, ConnectionInfo
from switch.server.listener import SwitchServer
from tests.hostile.conftest import Clients, StartServer, closed_by_peer, wait_for
from tests.server.wire import echo_request, frame, read_frame, read_reply


async def legit_round_trip(clients: Clients, server: SwitchServer, stan: str) -> None:
    """A short-connection terminal on 127.0.0.1: connect, ask, get the answer."""
    reader, writer = await clients.open(server.address("cup"))
    writer.write(echo_request(stan))
    reply = await read_reply(reader)
    assert reply.fields["39"] == "00" and reply.fields["11"] == stan
    writer.close()


async def test_slowloris_is_cut_by_the_frame_timeout(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(frame_timeout_s=0.3, idle_timeout_s=30)
    request = echo_request("000001")
    attackers = [await clients.open(server.address("cup"), source="127.0.0.2") for _ in range(20)]

    async def drip(writer: asyncio.StreamWriter) -> None:
        # one byte every 50 ms: never idle, never a whole frame within the frame timeout
        for b in request:
            if writer.is_closing():
                return
            writer.write(bytes([b]))
            await asyncio.sleep(0.05)

    drips = [asyncio.create_task(drip(w)) for _r, w in attackers]
    for i in range(5):
        await legit_round_trip(clients, server, f"10000{i}")
        await asyncio.sleep(0.05)
    for r, _w in attackers:
        assert await closed_by_peer(r) == b""
    await asyncio.gather(*drips, return_exceptions=True)
    await wait_for(lambda: server.metrics.connections_closed.get(reason="frame_timeout") == 20)


async def test_length_prefix_then_nothing_is_cut(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(frame_timeout_s=0.3, idle_timeout_s=30)
    reader, writer = await clients.open(server.address("iso87"), source="127.0.0.2")
    writer.write(struct.pack(">H", 200) + b"0800")  # a header promising 200 bytes, then silence
    assert await closed_by_peer(reader) == b""
    await legit_round_trip(clients, server, "000002")
    await wait_for(lambda: server.metrics.connections_closed.get(reason="frame_timeout") == 1)


async def test_a_slow_but_honest_terminal_is_not_cut(start_server: StartServer, clients: Clients) -> None:
    """The frame timeout runs per frame: a long connection sending frames slowly, each in time, stays."""
    server = await start_server(frame_timeout_s=0.5, idle_timeout_s=30)
    reader, writer = await clients.open(server.address("cup"))
    for i in range(4):
        request = echo_request(f"00000{i}")
        writer.write(request[:10])
        await asyncio.sleep(0.15)
        writer.write(request[10:])
        assert (await read_reply(reader)).fields["11"] == f"00000{i}"
        await asyncio.sleep(0.3)  # idle between frames does not count against the frame timeout
    assert server.metrics.connections_closed.get(reason="frame_timeout") == 0


async def test_idle_flood_is_closed_by_the_idle_timeout(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(idle_timeout_s=0.3)
    idle = [await clients.open(server.address("iso87"), source="127.0.0.3") for _ in range(30)]
    await legit_round_trip(clients, server, "000003")
    for r, _w in idle:
        assert await closed_by_peer(r) == b""
    await wait_for(lambda: server.metrics.connections_closed.get(reason="idle_timeout") == 30)


async def test_flood_from_one_address_is_capped_logged_and_counted(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(max_connections_per_ip=5)
    with capture_logs() as logs:
        flood = [await clients.open(server.address("cup"), source="127.0.0.2") for _ in range(30)]
        refused = 0
        for r, _w in flood:
            try:
                data = await asyncio.wait_for(r.read(), 0.2)
            except TimeoutError:
                continue  # accepted and open
            except ConnectionResetError:
                data = b""
            assert data == b""
            refused += 1
        assert refused == 25
        for i in range(3):
            await legit_round_trip(clients, server, f"00001{i}")
    assert server.metrics.connections_refused.get(reason="max_connections_per_ip") == 25
    assert 'switch_connections_refused_total{reason="max_connections_per_ip"} 25' in server.metrics.render()
    lines = [e for e in logs if e["event"] == "conn_close" and e.get("reason") == "max_connections_per_ip"]
    assert lines and all(e["log_level"] == "warning" and e["peer"].startswith("127.0.0.2:") for e in lines)
    # the accepted five still work
    r, w = flood[0] if not flood[0][0].at_eof() else next(c for c in flood if not c[0].at_eof())
    w.write(echo_request("000020"))
    assert (await read_reply(r)).fields["11"] == "000020"


async def test_refusal_logging_is_rate_limited(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(max_connections_per_ip=1)
    await clients.open(server.address("cup"), source="127.0.0.2")
    with capture_logs() as logs:
        for _ in range(60):
            r, _w = await clients.open(server.address("cup"), source="127.0.0.2")
            assert await closed_by_peer(r) == b""
    await wait_for(lambda: server.metrics.connections_refused.get(reason="max_connections_per_ip") == 60)
    lines = [e for e in logs if e["event"] == "conn_close"]
    # 20 lines per second at most (the burst may straddle a second boundary), every refusal still counted
    assert 1 <= len(lines) <= 40
    if len(lines) < 60:
        assert server.state.refusal_log.suppressed + sum(e["suppressed"] for e in lines) == 60 - len(lines)


async def test_global_cap_refuses_then_recovers(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(max_connections=6, max_connections_per_ip=3, idle_timeout_s=0.4)
    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        for _ in range(3):
            await clients.open(server.address("cup"), source=source)
    await wait_for(lambda: server.metrics.connections_refused.get(reason="max_connections") == 3)
    assert server.metrics.connections_open.get() == 6
    # full: a terminal is refused now, and gets in once the idle attackers have been cut
    r, _w = await clients.open(server.address("cup"))
    assert await closed_by_peer(r) == b""
    await wait_for(lambda: server.metrics.connections_open.get() == 0, timeout=5)
    await legit_round_trip(clients, server, "000030")


@pytest.mark.parametrize(
    ("prefix", "reason"), [(b"\xff\xff", "oversize"), (b"\x08\x01", "oversize"), (b"\x00\x00", "zero_length")]
)
async def test_bad_length_prefixes_close_that_connection_only(
    start_server: StartServer, clients: Clients, prefix: bytes, reason: str
) -> None:
    server = await start_server()
    good_r, good_w = await clients.open(server.address("cup"))
    bad_r, bad_w = await clients.open(server.address("cup"), source="127.0.0.2")
    bad_w.write(echo_request("000001") + prefix + b"\x00" * 64)
    assert (await read_reply(bad_r)).fields["11"] == "000001"  # the well-framed request before it is answered
    assert await closed_by_peer(bad_r) == b""
    bad_w.close()  # the switch lingers (reads and drops) until the peer closes its side too
    good_w.write(echo_request("000002"))
    assert (await read_reply(good_r)).fields["11"] == "000002"
    assert server.metrics.frame_errors.get(reason=reason) == 1
    await wait_for(lambda: server.metrics.connections_closed.get(reason="frame_error") == 1)


async def test_peer_that_never_reads_is_cut_by_the_write_timeout(start_server: StartServer, clients: Clients) -> None:
    big = b"R" * 60000
    calls = 0

    async def bulky(body: bytes, info: ConnectionInfo) -> bytes | None:
        nonlocal calls
        calls += 1
        return big  # large replies fill the socket buffers quickly

    server = await start_server(handler=bulky, write_timeout_s=0.3)
    _reader, writer = await clients.open(server.address("cup"), source="127.0.0.2")
    for _ in range(400):  # ~24 MB of replies asked for, none read
        writer.write(frame(b"x"))
        if writer.is_closing():
            break
        await asyncio.sleep(0)
    await wait_for(lambda: server.metrics.connections_closed.get(reason="write_timeout") == 1, timeout=10)
    # requests stop being taken while replies go unread: the server did not buffer 400 replies
    assert calls < 400
    r2, w2 = await clients.open(server.address("cup"))
    w2.write(frame(b"hello"))
    assert await read_frame(r2) == big


async def test_a_failing_application_closes_only_that_connection(start_server: StartServer, clients: Clients) -> None:
    async def handler(body: bytes, info: ConnectionInfo) -> bytes | None:
        if body == b"boom":
            raise RuntimeError("bug")
        if body == b"empty":
            return b""  # cannot be framed
        return body

    server = await start_server(handler=handler)
    for bad in (b"boom", b"empty"):
        r, w = await clients.open(server.address("iso87"))
        w.write(frame(bad))
        assert await closed_by_peer(r) == b""
        w.close()
    r, w = await clients.open(server.address("iso87"))
    w.write(frame(b"fine"))
    assert await read_frame(r) == b"fine"
    await wait_for(lambda: server.metrics.connections_closed.get(reason="handler_error") == 2)


async def test_shutdown_does_not_wait_forever_for_a_peer_that_never_reads(
    start_server: StartServer, clients: Clients
) -> None:
    async def bulky(body: bytes, info: ConnectionInfo) -> bytes | None:
        return b"R" * 60000

    server = await start_server(handler=bulky, write_timeout_s=30)
    _r, writer = await clients.open(server.address("cup"))
    for _ in range(200):
        writer.write(frame(b"x"))
        await asyncio.sleep(0)
    await wait_for(lambda: any(c._write_paused_since for c in server.state.connections))
    await asyncio.wait_for(server.shutdown(grace_s=0.2), 10)
    assert server.metrics.connections_open.get() == 0


async def test_stream_after_a_bad_prefix_is_ignored_while_earlier_requests_finish(
    start_server: StartServer, clients: Clients
) -> None:
    async def slow(body: bytes, info: ConnectionInfo) -> bytes | None:
        await asyncio.sleep(0.2)
        return body

    server = await start_server(handler=slow)
    reader, writer = await clients.open(server.address("iso87"), source="127.0.0.2")
    writer.write(frame(b"first") + b"\xff\xff")
    for _ in range(5):  # more garbage while "first" is still in flight: not read, not logged again
        await asyncio.sleep(0.02)
        writer.write(b"\xff\xff" * 100)
    assert await read_frame(reader) == b"first"
    assert await closed_by_peer(reader) == b""
    assert server.metrics.frame_errors.get(reason="oversize") == 1


async def test_an_unanswerable_frame_does_not_cost_the_answers_already_in_flight(
    start_server: StartServer, clients: Clients
) -> None:
    async def handler(body: bytes, info: ConnectionInfo) -> bytes | None:
        if body == b"bad":
            raise CloseConnection("undecodable")
        await asyncio.sleep(0.2)
        return body + b"-ok"

    server = await start_server(handler=handler)
    reader, writer = await clients.open(server.address("cup"))
    writer.write(frame(b"slow1") + frame(b"bad") + frame(b"slow2"))  # pipelined, the bad one in the middle
    assert sorted([await read_frame(reader), await read_frame(reader)]) == [b"slow1-ok", b"slow2-ok"]
    assert await closed_by_peer(reader) == b""
    writer.close()
    await wait_for(lambda: server.metrics.connections_closed.get(reason="undecodable") == 1)
