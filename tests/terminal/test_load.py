"""The load generator against the real switch: its report, its money safety under lost replies (every
reversal lands, every batch settles balanced), several processes merged, pacing, the echo baseline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.iso.codec import decode_message, encode_message, reply_to
from switch.iso.framing import FrameDecoder, encode_frame
from switch.iso.profiles import CUP
from terminal_sim.fastwire import EcbMac, FieldCache, xor_fold
from terminal_sim.keys import load_keys
from terminal_sim.load import LoadError, parse_mix, plan_terminals
from terminal_sim.report import LoadStats, render_text
from terminal_sim.terminal import DEFAULT_HEADER, DEFAULT_TPDU
from tests.support.stack import Stack
from tests.terminal.conftest import LossyProxy, Sim

MIX = "purchase=60,balance=15,void=10,refund=10,topup=5"


async def load(sim: Sim, tmp_path: Path, *argv: str, port: int | None = None) -> dict[str, object]:
    out = tmp_path / "report.json"
    r = await sim("--timeout", "2", "load", "--json", str(out), "--progress", "never", *argv, port=port)
    assert r.code == 0, r.err
    assert "TPS" in r.out and "settlement" in r.out
    rep: dict[str, object] = json.loads(out.read_text())
    return rep


async def test_mixed_load_reports_and_every_batch_settles_balanced(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    rep = await load(sim, tmp_path, "--terminals", "3", "--duration", "1.5", "--mix", MIX)
    assert rep["answered"] and rep["answered"] == rep["requests"]  # type: ignore[comparison-overlap]
    assert rep["timeouts"] == 0 and rep["errors"] == 0 and rep["bad_reply_mac"] == 0
    assert rep["signons"] == {"ok": 3, "failed": 0}
    settlement = rep["settlement"]
    assert isinstance(settlement, dict) and settlement["balanced"] == settlement["terminals"] >= 3
    rc = rep["rc"]
    assert isinstance(rc, dict) and rc.get("00", 0) > 0
    by_type = rep["by_type"]
    assert isinstance(by_type, dict) and {"purchase", "balance", "topup"} <= set(by_type)
    lat = rep["latency_ms"]
    assert isinstance(lat, dict) and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert (rep["p50_ms"], rep["p99_ms"], rep["max_ms"]) == (lat["p50"], lat["p99"], lat["max"])
    assert rep["settled_balanced"] == settlement["balanced"]
    client = rep["client"]
    assert isinstance(client, dict) and client["cpu_us_per_message"] > 0


async def test_lost_replies_are_reversed_and_batches_still_balance(
    stack: Stack, sim: Sim, tmp_path: Path, proxy: LossyProxy
) -> None:
    proxy.drop_every = 7
    out = tmp_path / "report.json"
    r = await sim(
        "--timeout",
        "0.3",
        "load",
        "--terminals",
        "3",
        "--duration",
        "2",
        "--mix",
        "purchase=70,void=20,balance=10",
        "--json",
        str(out),
        "--progress",
        "never",
        port=proxy.port,
    )
    assert r.code == 0, r.err
    rep = json.loads(out.read_text())
    assert rep["timeouts"] > 0
    # a reversal whose own reply is lost is sent again until answered
    assert rep["reversals"]["rc"].get("00", 0) >= 1 and set(rep["reversals"]["rc"]) <= {"00", "timeout"}
    # the terminals' totals (reversed requests left out) equal the switch's for every batch
    s = rep["settlement"]
    assert s["failed"] == 0 and s["not_balanced"] == 0 and s["balanced"] >= 3, s


async def test_refund_advices_approved_with_a_bad_mac_are_resent_and_batches_balance(
    stack: Stack, sim: Sim, tmp_path: Path, proxy: LossyProxy
) -> None:
    # the switch records these refunds, but their approvals reach the terminals damaged: a terminal that did not
    # send them again (same STAN: the switch answers from its record) would settle without them, unbalanced
    proxy.corrupt_mti, proxy.corrupt_replies = "0230", 5
    rep = await load(sim, tmp_path, "--terminals", "2", "--duration", "1.5", "--mix", "purchase=1,refund=1",
                     port=proxy.port)  # fmt: skip
    assert proxy.corrupted == 5
    q = rep["store_and_forward"]
    # each damaged approval is followed by one more send of its advice
    assert isinstance(q, dict) and q["advices_resent"] >= 5 and q["given_up"] == 0 and q["owed_at_end"] == 0, q
    assert q["advices_resent_rc"].get("00", 0) >= 1
    assert rep["bad_reply_mac"] >= 1 and rep["errors"] == 0  # type: ignore[operator]
    s = rep["settlement"]
    assert isinstance(s, dict) and s["failed"] == 0 and s["not_balanced"] == 0 and s["balanced"] >= 2, s
    assert f"queue      advices sent again {q['advices_resent']} (" in render_text(rep)


async def test_short_connections(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    rep = await load(sim, tmp_path, "--terminals", "2", "--duration", "1", "--short", "--mix", "purchase=1,balance=1")
    answered = rep["answered"]
    assert isinstance(answered, int) and answered > 0
    conns = rep["connections_opened"]
    assert isinstance(conns, int) and conns >= answered


async def test_rate_caps_the_request_count(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    rep = await load(sim, tmp_path, "--terminals", "3", "--duration", "1.5", "--rate", "20", "--mix", "balance=1")
    requests = rep["requests"]
    assert isinstance(requests, int) and 0 < requests <= 20 * 1.5 + 4


@pytest.mark.slow
async def test_two_processes_merge_into_one_report(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    rep = await load(sim, tmp_path, "--terminals", "3", "--duration", "1.5", "--procs", "2", "--mix", MIX)
    client = rep["client"]
    assert isinstance(client, dict) and client["procs"] == 2
    assert rep["signons"] == {"ok": 3, "failed": 0}
    settlement = rep["settlement"]
    assert isinstance(settlement, dict) and settlement["balanced"] == settlement["terminals"] >= 3
    by_type = rep["by_type"]
    assert isinstance(by_type, dict)
    assert sum(t["count"] for t in by_type.values()) == rep["answered"]


class EchoServer:
    """A bare echo peer (the benchmark baseline): MTI + 10, field 39 = 00, nothing else."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        dec = FrameDecoder()
        while data := await r.read(65536):
            for body in dec.feed(data):
                req = decode_message(body, CUP)
                rep = reply_to(req)
                rep.fields["39"] = "00"
                w.write(encode_frame(encode_message(rep, CUP)))
        w.close()


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    e = EchoServer()
    server = await asyncio.start_server(e._client, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_echo_baseline_needs_no_signon_and_trusts_unmaced_replies(sim: Sim, tmp_path: Path, echo: int) -> None:
    rep = await load(sim, tmp_path, "--terminals", "2", "--duration", "1", "--echo-baseline", port=echo)
    assert rep["answered"] and rep["rc"] == {"00": rep["answered"]}
    assert rep["signons"] == {"ok": 0, "failed": 0} and rep["reversals"]["sent"] == 0  # type: ignore[index]


async def test_setup_errors(sim: Sim, tmp_path: Path) -> None:
    r = await sim("load", "--terminals", "99", "--duration", "1", "--progress", "never")
    assert r.code == 1 and "usable terminals" in r.err and len(r.err.strip().splitlines()) == 1
    r = await sim("load", "--mix", "purchase=1,steal=5")
    assert r.code == 2 and "--mix" in r.err


def test_mix_and_terminal_planning(keys_file: Path) -> None:
    assert parse_mix("purchase=80, balance=20") == {"purchase": 80, "balance": 20}
    for bad in ("purchase", "purchase=x", "purchase=0", "nope=1"):
        with pytest.raises(LoadError):
            parse_mix(bad)
    keys = load_keys(keys_file)
    picked = plan_terminals(keys, 3, {"purchase": 50, "topup": 50})
    assert [t.kind for t in picked].count("service_hall") == 1  # the only one the keys file has
    assert all(t.mid != "898520154110002" for t in picked)  # the suspended merchant's terminal is left out


def test_stats_survive_the_trip_between_processes() -> None:
    a, b = LoadStats(), LoadStats()
    for i in range(1, 500):
        a.latency.record_value(i)
    b.latency.record_value(10_000)
    a.rc["00"], b.rc["00"], b.rc["51"] = 499, 1, 2
    a.elapsed_s, b.elapsed_s, a.cpu_s, b.cpu_s = 2.0, 2.5, 0.5, 0.25
    merged = LoadStats.from_wire(json.loads(json.dumps(a.to_wire())))
    merged.merge(LoadStats.from_wire(b.to_wire()))
    assert merged.latency.get_total_count() == 500 and merged.latency.get_max_value() >= 9_990
    assert merged.rc == {"00": 500, "51": 2} and merged.elapsed_s == 2.5 and merged.cpu_s == 0.75
    assert merged.procs == 2


def test_fast_encoding_and_mac_equal_the_codec_and_the_reference_mac() -> None:
    import os

    from switch.crypto.mac import mac_unionpay_ecb, xor_blocks

    for n in range(0, 200):
        data = os.urandom(n)
        assert xor_fold(data) == xor_blocks(data)
    mak = bytes.fromhex("3232323232323232")
    for n in (0, 7, 8, 63, 64, 200):
        data = os.urandom(n)
        assert EcbMac(mak).mac(data) == mac_unionpay_ecb(mak, data)
    cache = FieldCache(CUP, DEFAULT_TPDU, DEFAULT_HEADER)
    fields = {
        "2": "9900010000000019",
        "3": "000000",
        "4": "000000012345",
        "11": "000123",
        "14": "3012",
        "22": "021",
        "25": "00",
        "41": "10000001",
        "42": "898520154110001",
        "49": "156",
        "52": "50E815F7B95212F9",
        "53": "2600000000000000",
        "60": "22000001000",
        "64": "0" * 16,
    }
    from switch.iso.message import IsoMessage

    for _ in range(2):  # second time from the cache
        assert cache.encode("0200", fields) == encode_message(
            IsoMessage("0200", dict(fields), DEFAULT_TPDU, DEFAULT_HEADER), CUP
        )


@pytest.mark.parametrize("profile_name", ["cup", "iso87"])
def test_fast_encoding_equals_the_codec_for_random_requests(profile_name: str) -> None:
    import random

    from switch.iso.codec import CodecError
    from switch.iso.message import IsoMessage
    from switch.iso.profiles import PROFILES

    profile = PROFILES[profile_name]
    tpdu, header = (DEFAULT_TPDU, DEFAULT_HEADER) if profile.has_tpdu else (None, None)
    cache = FieldCache(profile, tpdu, header)
    rng = random.Random(7)
    for _ in range(300):
        fields = {
            "3": rng.choice(["000000", "310000", "2000", "00000x"]),
            "4": f"{rng.randrange(10**12):012d}",
            "11": f"{rng.randrange(10**6):06d}",
            "22": rng.choice(["021", "011"]),
            "25": "00",
            "41": "10000001",
            "42": "898520154110001",
            "49": "156",
            "52": rng.randbytes(8).hex().upper() if rng.random() > 0.1 else "XYZ",
            "53": "2600000000000000",
            "60": "22000001000",
            "64": "0" * 16,
        }
        try:
            want: bytes | None = encode_message(IsoMessage("0200", dict(fields), tpdu, header), profile)
        except CodecError:
            want = None
        if want is None:
            with pytest.raises(CodecError):
                cache.encode("0200", fields)
        else:
            assert cache.encode("0200", fields) == want
