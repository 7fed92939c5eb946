"""switch.hsm.client against the simulator over TCP: pipelining over a small pool, reply matching by header,
timeouts (and late replies that must not be taken for another request's), outages, reconnection with
backoff, and the exception types the engine maps to RC 96 / 99."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from hsm_sim.server import HsmSimServer
from switch.hsm.client import HsmClient, HsmError, HsmUnavailable
from tests.hsm.conftest import SPEC, sim_config, under_lmk

MAK = under_lmk("003", SPEC["mak_clear"])
PIK = under_lmk("002", SPEC["pik_clear"])
MAB = bytes.fromhex(SPEC["cup_mac_mab_hex"])
GOOD = SPEC["cup_mac_under_mak"].encode()


async def test_pipelined_calls_share_the_pool_and_each_gets_its_own_answer(
    hsm: HsmSimServer, client: HsmClient
) -> None:
    # interleave right and wrong MACs: a mismatched reply would flip a verdict
    jobs = [client.verify_mac(MAK, MAB, GOOD if i % 3 else b"00000000") for i in range(600)]
    results = await asyncio.gather(*jobs)
    assert results == [bool(i % 3) for i in range(600)]
    assert hsm.stats.connections == 2  # pool_size: no connection per call


async def test_typed_helpers_end_to_end(client: HsmClient) -> None:
    pan = SPEC["pan"]
    diag = await client.diagnostics()
    assert len(diag.lmk_check_value) == 16 and diag.firmware
    assert await client.verify_pin_ibm(PIK, "", SPEC["pinblock_iso0_under_pik"], pan, "646684")
    assert not await client.verify_pin_ibm(PIK, "", SPEC["pinblock_iso0_under_pik"], pan, "111111")
    pin_lmk = await client.generate_pin(pan)
    assert len(pin_lmk) == 16
    offset = await client.ibm_offset("", pin_lmk, pan)
    assert len(offset) == 6 and offset.isdigit()


async def test_pin_change_returns_the_new_offset_or_none(client: HsmClient) -> None:
    from switch.crypto.des import encrypt_ecb
    from switch.crypto.pinblock import format_iso0

    pan, pik = SPEC["pan"], bytes.fromhex(SPEC["pik_clear"])
    new_block = encrypt_ecb(pik, format_iso0("654321", pan)).hex().upper()
    old_block = SPEC["pinblock_iso0_under_pik"]
    new_offset = await client.pin_change_ibm(PIK, "", old_block, new_block, pan, "646684")
    assert new_offset is not None and len(new_offset) == 6
    assert await client.verify_pin_ibm(PIK, "", new_block, pan, new_offset)
    assert await client.pin_change_ibm(PIK, "", new_block, old_block, pan, "646684") is None
    # and the offset DE computes for the same PIN agrees
    assert await client.ibm_offset("", await client.encrypt_clear_pin("654321", pan), pan) == new_offset


async def test_hsm_errors_carry_their_code(client: HsmClient) -> None:
    with pytest.raises(HsmError) as exc:
        await client.verify_pin_ibm(PIK, "", "0" * 16, SPEC["pan"], "646684")
    assert exc.value.code in {"20", "24"} and SPEC["pan"] not in str(exc.value)
    with pytest.raises(HsmError) as exc:
        await client.verify_pin_ibm(PIK, "", SPEC["pinblock_iso0_under_pik"], SPEC["pan"], "646684", pin_format="77")
    assert exc.value.code == "23"


async def test_malformed_mac_is_a_wrong_mac_not_an_hsm_failure(hsm: HsmSimServer, client: HsmClient) -> None:
    before = hsm.stats.commands
    assert not await client.verify_mac(MAK, MAB, b"\x00\x01\x02\x03\x04\x05\x06\x07")
    assert not await client.verify_mac(MAK, MAB, b"3a987123")
    assert hsm.stats.commands == before


async def test_timeout_then_late_reply_is_not_taken_for_another(hsm: HsmSimServer) -> None:
    assert hsm.address is not None
    async with HsmClient(*hsm.address, pool_size=1, timeout_s=0.15) as client:
        hsm.faults.latency_ms = 400
        hsm.faults.commands = frozenset({"M8"})
        with pytest.raises(HsmUnavailable):
            await client.verify_mac(MAK, MAB, GOOD)
        # meanwhile the connection keeps serving; the late M9 will arrive in the middle of these
        hsm.faults.clear()
        for _ in range(30):
            assert not await client.verify_mac(MAK, MAB, b"00000000")
            await asyncio.sleep(0.02)
        assert await client.verify_mac(MAK, MAB, GOOD)
        conn = client._slots[0]
        assert conn is not None and conn.orphans == 0 and not conn.pending


async def test_dropped_reply_is_unavailable(hsm: HsmSimServer) -> None:
    assert hsm.address is not None
    async with HsmClient(*hsm.address, pool_size=1, timeout_s=0.1) as client:
        hsm.faults.drop_rate = 1.0
        with pytest.raises(HsmUnavailable):
            await client.generate_mac(MAK, MAB)
        hsm.faults.clear()
        assert await client.generate_mac(MAK, MAB) == GOOD


async def test_injected_error_is_hsm_error(hsm: HsmSimServer, client: HsmClient) -> None:
    hsm.faults.error_rate = 1.0
    with pytest.raises(HsmError) as exc:
        await client.generate_mac(MAK, MAB)
    assert exc.value.code == "13"


async def test_outage_and_reconnect_on_the_same_port(tmp_path: Path) -> None:
    hsm = HsmSimServer(sim_config(tmp_path))
    host, port = await hsm.start()
    client = HsmClient(host, port, pool_size=2, timeout_s=0.5)
    await client.start()
    try:
        assert await client.generate_mac(MAK, MAB) == GOOD
        await hsm.stop()
        with pytest.raises(HsmUnavailable):
            await client.generate_mac(MAK, MAB)
        await hsm.start()
        for _ in range(200):  # backoff: the first attempts may be refused while it elapses
            try:
                assert await client.generate_mac(MAK, MAB) == GOOD
                break
            except HsmUnavailable:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the client did not reconnect")
    finally:
        await client.close()
        await hsm.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_hsm_fails_fast_and_start_does_not_raise() -> None:
    client = HsmClient("127.0.0.1", _free_port(), pool_size=2, timeout_s=0.5)
    await client.start()
    try:
        for _ in range(3):
            with pytest.raises(HsmUnavailable):
                await client.diagnostics()
    finally:
        await client.close()


async def test_close_fails_calls_in_flight(hsm: HsmSimServer) -> None:
    assert hsm.address is not None
    client = HsmClient(*hsm.address, pool_size=1, timeout_s=2.0)
    await client.start()
    hsm.faults.latency_ms = 500
    call = asyncio.create_task(client.diagnostics())
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(HsmUnavailable):
        await call
    with pytest.raises(HsmUnavailable):
        await client.diagnostics()


def test_client_and_simulator_under_uvloop(tmp_path: Path) -> None:
    """The switch and ``hsm-sim serve`` run on uvloop, whose transports are not asyncio classes."""
    import uvloop

    async def run() -> list[bool]:
        async with HsmSimServer(sim_config(tmp_path)) as hsm:
            assert hsm.address is not None
            async with HsmClient(*hsm.address, pool_size=2) as client:
                return await asyncio.gather(*(client.verify_mac(MAK, MAB, GOOD) for _ in range(50)))

    assert uvloop.run(run()) == [True] * 50
