"""The POS transport over real TCP: profiles, pipelining, short/long connections, hostile input, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import pytest

from switch.iso.profiles import PROFILES
from switch.server.connection import ConnectionInfo
from switch.server.listener import SwitchServer
from tests.server.wire import HEADER, TPDU, echo_request, frame, read_frame, read_reply

_WRITERS: list[asyncio.StreamWriter] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    for w in _WRITERS:
        w.close()
        with contextlib.suppress(Exception):
            await w.wait_closed()
    _WRITERS.clear()


async def connect(server: SwitchServer, profile: str = "cup") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*server.address(profile))
    _WRITERS.append(writer)
    return reader, writer


@pytest.mark.parametrize("profile", ["cup", "iso87"])
async def test_echo_is_approved_on_both_profiles(make_server, profile: str) -> None:
    server = await make_server()
    reader, writer = await connect(server, profile)
    writer.write(echo_request("000001", profile))
    reply = await read_reply(reader, profile)
    assert reply.mti == "0830"
    assert reply.fields["39"] == "00"
    assert reply.fields["11"] == "000001" and reply.fields["41"] == "10000001"
    assert reply.fields["60"] == "00000001301"
    if profile == "cup":
        assert reply.tpdu is not None and reply.tpdu.encode() == TPDU.swapped().encode()
        assert reply.header is not None and reply.header.encode() == HEADER.encode()
    writer.close()


async def test_unknown_message_type_gets_40(make_server) -> None:
    from switch.iso.codec import encode_message
    from switch.iso.message import IsoMessage

    server = await make_server()
    reader, writer = await connect(server, "iso87")
    msg = IsoMessage(
        mti="0200",
        fields={
            "3": "000000",
            "4": "000000000100",
            "11": "000007",
            "41": "10000001",
            "42": "898520154110001",
            "49": "156",
        },
    )
    writer.write(frame(encode_message(msg, PROFILES["iso87"])))
    reply = await read_reply(reader, "iso87")
    assert reply.mti == "0210" and reply.fields["39"] == "40" and reply.fields["4"] == "000000000100"
    writer.close()


async def test_pipelined_requests_on_one_connection_are_each_answered(make_server) -> None:
    server = await make_server()
    reader, writer = await connect(server)
    stans = [f"{i:06d}" for i in range(1, 101)]
    writer.write(b"".join(echo_request(s) for s in stans))
    got = sorted([(await read_reply(reader)).fields["11"] for _ in stans])
    assert got == stans
    writer.close()


async def test_many_short_connections(make_server) -> None:
    server = await make_server()

    async def one(i: int) -> str:
        reader, writer = await connect(server)
        writer.write(echo_request(f"{i:06d}"))
        reply = await read_reply(reader)
        writer.close()
        return reply.fields["11"]

    got = await asyncio.gather(*(one(i) for i in range(1, 61)))
    assert got == [f"{i:06d}" for i in range(1, 61)]


async def test_half_closed_client_still_gets_its_reply(make_server) -> None:
    server = await make_server()
    reader, writer = await connect(server)
    writer.write(echo_request("000042"))
    writer.write_eof()
    reply = await read_reply(reader)
    assert reply.fields["11"] == "000042"
    assert await reader.read() == b""  # then the switch closes


async def test_byte_by_byte_slow_sender_is_answered(make_server) -> None:
    server = await make_server()
    reader, writer = await connect(server)
    for b in echo_request("000003"):
        writer.write(bytes([b]))
        await writer.drain()
        await asyncio.sleep(0.001)
    assert (await read_reply(reader)).fields["39"] == "00"
    writer.close()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (struct.pack(">H", 5000) + b"x" * 10, "oversize"),
        (frame(b"\xff" * 40), "undecodable"),
        (frame(b"garbage that is not iso"), "undecodable"),
    ],
)
async def test_unanswerable_input_closes_only_that_connection(make_server, payload: bytes, reason: str) -> None:
    server = await make_server()
    good_reader, good_writer = await connect(server)
    bad_reader, bad_writer = await connect(server)
    bad_writer.write(payload)
    assert await asyncio.wait_for(bad_reader.read(), 5) == b""  # closed without an answer
    bad_writer.close()  # the switch lingers until the peer closes its side too
    good_writer.write(echo_request("000009"))
    assert (await read_reply(good_reader)).fields["39"] == "00"
    good_writer.close()
    metrics = server.metrics
    assert sum(metrics.frame_errors.values.values()) >= 1
    closed = metrics.connections_closed
    for _ in range(100):
        if closed.get(reason="frame_error") + closed.get(reason="undecodable") >= 1:
            break
        await asyncio.sleep(0.02)
    assert closed.get(reason="frame_error") + closed.get(reason="undecodable") >= 1


async def test_parseable_header_but_broken_field_gets_rc30(make_server) -> None:
    """MTI, 11, 41 and 42 readable, field 4 not numeric → RC 30 (SPEC §5.1)."""
    server = await make_server()
    reader, writer = await connect(server, "iso87")
    bitmap = bytearray(8)
    for bit in (3, 4, 11, 41, 42):
        bitmap[(bit - 1) // 8] |= 0x80 >> ((bit - 1) % 8)
    body = b"0200" + bytes(bitmap) + b"000000" + b"00000000ABCD" + b"000123" + b"10000001" + b"898520154110001"
    writer.write(frame(body))
    reply = await read_reply(reader, "iso87")
    assert reply.mti == "0210" and reply.fields["39"] == "30" and reply.fields["11"] == "000123"
    assert reply.fields["41"] == "10000001" and reply.fields["42"] == "898520154110001"
    writer.close()


async def test_truncated_frame_then_disconnect_is_harmless(make_server) -> None:
    server = await make_server()
    _r, writer = await connect(server)
    writer.write(echo_request("000001")[:10])
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.05)
    reader, writer = await connect(server)
    writer.write(echo_request("000002"))
    assert (await read_reply(reader)).fields["11"] == "000002"
    writer.close()


async def test_client_that_disconnects_before_its_reply(make_server) -> None:
    started = asyncio.Event()

    async def slow(body: bytes, info: ConnectionInfo) -> bytes | None:
        started.set()
        await asyncio.sleep(0.1)
        return body

    server = await make_server(handler=slow)
    _r, writer = await connect(server)
    writer.write(echo_request("000001"))
    await started.wait()
    writer.transport.abort()
    await asyncio.sleep(0.2)
    assert server.metrics.connections_open.get() == 0


async def test_idle_connection_is_closed(make_server) -> None:
    server = await make_server(idle_timeout_s=0.2)
    reader, _w = await connect(server)
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert server.metrics.connections_closed.get(reason="idle_timeout") == 1


async def test_connection_cap_per_ip(make_server) -> None:
    server = await make_server(max_connections_per_ip=2)
    conns = [await connect(server) for _ in range(2)]
    r3, _w3 = await connect(server)
    assert await asyncio.wait_for(r3.read(), 3) == b""
    r, w = conns[0]
    w.write(echo_request("000001"))
    assert (await read_reply(r)).fields["39"] == "00"
    assert server.metrics.connections_refused.get(reason="max_connections_per_ip") == 1


async def test_inflight_cap_applies_backpressure_without_losing_requests(make_server) -> None:
    active = 0
    peak = 0

    async def handler(body: bytes, info: ConnectionInfo) -> bytes | None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return body

    server = await make_server(handler=handler, max_inflight_per_connection=4)
    reader, writer = await connect(server)
    writer.write(b"".join(frame(f"req{i:04d}".encode()) for i in range(40)))
    got = sorted([(await read_frame(reader)).decode() for _ in range(40)])
    assert got == sorted(f"req{i:04d}" for i in range(40))
    assert peak <= 4
    writer.close()


async def test_graceful_shutdown_answers_inflight_requests(make_server) -> None:
    async def handler(body: bytes, info: ConnectionInfo) -> bytes | None:
        await asyncio.sleep(0.3)
        return body

    server = await make_server(handler=handler)
    reader, writer = await connect(server)
    writer.write(frame(b"inflight"))
    await asyncio.sleep(0.05)
    await server.shutdown(grace_s=5.0)
    assert await read_frame(reader) == b"inflight"
    assert await asyncio.wait_for(reader.read(), 3) == b""
    with pytest.raises(OSError):
        await connect(server)
