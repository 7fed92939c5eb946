"""The simulator's transport over real TCP: pipelining, partial reads, oversized and garbage frames, slow
senders and readers, half-closed peers, many clients, restart on the same port, faults, and a fuzz of every
command that must never reach an internal error."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsm_sim.commands import COMMANDS
from hsm_sim.device import Device
from hsm_sim.lmk import Lmk
from hsm_sim.mailer import PinMailer
from hsm_sim.server import HsmSimServer, ServerStats, execute
from switch.hsm.wire import encode_command, frame
from tests.hsm.conftest import SPEC, sim_config, under_lmk
from tests.hsm.rawclient import RawClient

MAK = under_lmk("003", SPEC["mak_clear"])
MAB = bytes.fromhex(SPEC["cup_mac_mab_hex"])


def m6(data: bytes = MAB) -> bytes:
    return f"00091003{MAK}{len(data):04X}".encode() + data


async def test_pipelined_commands_in_one_write_are_answered_in_order(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        headers = [f"{i:04d}".encode() for i in range(200)]
        await raw.send_raw(b"".join(encode_command(h, b"M6", m6()) for h in headers))
        replies = [await raw.read_reply() for _ in headers]
    assert [r.header for r in replies] == headers
    assert {r.data for r in replies} == {SPEC["cup_mac_under_mak"].encode()}


async def test_a_command_sent_one_byte_at_a_time(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        for b in encode_command(b"0042", b"M6", m6()):
            await raw.send_raw(bytes([b]))
        reply = await raw.read_reply()
    assert (reply.header, reply.error, reply.data) == (b"0042", "00", SPEC["cup_mac_under_mak"].encode())


async def test_oversized_frame_is_skipped_and_answered_15(tmp_path: Path) -> None:
    async with HsmSimServer(sim_config(tmp_path, max_body_bytes=1024)) as hsm, RawClient(hsm) as raw:
        await raw.send_raw(encode_command(b"0001", b"M6", bytes(5000)) + encode_command(b"0002", b"NC", b""))
        big, nc = await raw.read_reply(), await raw.read_reply()
        assert (big.header, big.code, big.error) == (b"0001", "M7", "15")
        assert (nc.header, nc.error) == (b"0002", "00")
        # a length prefix of 65535 with nothing behind it yet, then the rest in pieces
        await raw.send_raw(b"\xff\xff0003A0")
        big = await raw.read_reply()  # answered as soon as its header and command code are in
        assert (big.header, big.code, big.error) == (b"0003", "A1", "15")
        await raw.send_raw(bytes(65535 - 6))
        assert (await raw.command("NC")).error == "00"
    assert hsm.stats.oversized == 2


async def test_garbage_and_short_frames_keep_the_connection(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        await raw.send_raw(frame(b"\x00\x01") + frame(b"") + frame(b"\xff\xfe\xfd\xfc\x10\x11garbage\x80\x00"))
        reply = await raw.read_reply()
        assert reply.header == b"\xff\xfe\xfd\xfc" and reply.error == "68"
        assert (await raw.command("NC")).error == "00"
    assert hsm.stats.unreadable == 2


async def test_slow_sender_is_disconnected(tmp_path: Path) -> None:
    async with HsmSimServer(sim_config(tmp_path, frame_timeout_s=0.3)) as hsm, RawClient(hsm) as raw:
        assert (await raw.command("NC")).error == "00"
        await raw.send_raw(encode_command(b"0001", b"NC", b"")[:4])
        assert await raw.closed_by_peer()
    assert hsm.stats.timeouts == 1


async def test_idle_timeout(tmp_path: Path) -> None:
    async with HsmSimServer(sim_config(tmp_path, idle_timeout_s=0.3)) as hsm, RawClient(hsm) as raw:
        assert await raw.closed_by_peer()


async def test_slow_reader_back_pressure_then_everything_arrives(hsm: HsmSimServer) -> None:
    n = 20000  # ~900 kB of replies, several times the write buffer's high-water mark
    async with RawClient(hsm) as raw:
        batch = b"".join(encode_command(f"{i % 10000:04d}".encode(), b"NC", b"") for i in range(n))
        raw.writer.write(batch)
        await asyncio.sleep(0.2)  # we do not read: the server must pause, not buffer without bound
        drain = asyncio.create_task(raw.writer.drain())
        replies = [await raw.read_reply(timeout=10) for _ in range(n)]
        await drain
    assert len(replies) == n and all(r.error == "00" for r in replies)


async def test_half_closed_peer_gets_its_reply(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        await raw.send_raw(encode_command(b"0007", b"NC", b""))
        raw.writer.write_eof()
        reply = await raw.read_reply()
        assert reply.header == b"0007" and reply.error == "00"
        assert await raw.closed_by_peer()


async def test_many_concurrent_clients(hsm: HsmSimServer) -> None:
    async def one(i: int) -> int:
        async with RawClient(hsm) as raw:
            ok = 0
            for _ in range(20):
                ok += (await raw.command("M6", m6(MAB + bytes([i])))).error == "00"
            return ok

    assert sum(await asyncio.gather(*(one(i) for i in range(25)))) == 500


async def test_connection_cap(tmp_path: Path) -> None:
    async with HsmSimServer(sim_config(tmp_path, max_connections=2)) as hsm:
        async with RawClient(hsm) as a, RawClient(hsm) as b, RawClient(hsm) as c:
            assert (await a.command("NC")).error == "00"
            assert (await b.command("NC")).error == "00"
            assert await c.closed_by_peer()


async def test_restart_on_the_same_port(tmp_path: Path) -> None:
    hsm = HsmSimServer(sim_config(tmp_path))
    host, port = await hsm.start()
    await hsm.stop()
    assert await hsm.start() == (host, port)
    async with RawClient(hsm) as raw:
        assert (await raw.command("NC")).error == "00"
    await hsm.stop()


async def test_faults_error_drop_latency_and_command_filter(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        hsm.faults.error_rate = 1.0
        assert (await raw.command("NC")).error == "13"
        hsm.faults.error_code = "17"
        hsm.faults.commands = frozenset({"M6"})
        assert (await raw.command("NC")).error == "00"
        assert (await raw.command("M6", m6())).error == "17"
        hsm.faults.clear()
        hsm.faults.drop_rate = 1.0
        await raw.send_raw(encode_command(b"0099", b"NC", b""))
        while not hsm.stats.dropped:  # noqa: ASYNC110 - polling a counter of the server under test
            await asyncio.sleep(0.005)
        hsm.faults.clear()
        hsm.faults.latency_ms = 50
        reply = await raw.command("NC")  # the dropped 0099 never comes: the next reply is this one
        assert reply.error == "00"
    assert hsm.stats.dropped == 1


async def test_stop_sends_delayed_replies_due_within_grace(tmp_path: Path) -> None:
    hsm = HsmSimServer(sim_config(tmp_path))
    await hsm.start()
    async with RawClient(hsm) as raw:
        hsm.faults.latency_ms = 100
        await raw.send_raw(encode_command(b"0001", b"NC", b""))
        await asyncio.sleep(0.01)
        stopping = asyncio.create_task(hsm.stop())
        reply = await raw.read_reply()
        await stopping
    assert reply.error == "00"


_DEVICE = Device(Lmk.test_set(), PinMailer(Path(tempfile.mkdtemp()) / "fuzz_mailers.jsonl"))
_KEYLIKE = st.sampled_from(
    ["", "U", "X", "T", "Z", MAK, SPEC["pinblock_iso0_under_pik"], "0123456789ABCDEF", ";", "%00"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(sorted(COMMANDS)),
    parts=st.lists(
        st.one_of(st.binary(max_size=24), _KEYLIKE.map(str.encode), st.text("0123456789", max_size=16).map(str.encode)),
        max_size=10,
    ),
)
def test_fuzzed_fields_never_reach_an_internal_error(code: bytes, parts: list[bytes]) -> None:
    stats = ServerStats()
    error, _data = execute(_DEVICE, code, b"".join(parts), stats)
    assert stats.internal_errors == 0
    assert len(error) == 2 and error.isdigit()
