"""HSM round trips: ``DA`` (IBM PIN verify) and ``M8`` (UnionPay MAC verify), the two commands on a purchase's
hot path, through :class:`switch.hsm.client.HsmClient` against ``hsm-sim serve`` running as its own process.

Each command is measured one at a time (``inflight=1``: latency) and pipelined (``--inflight`` commands in
flight over the client's pool: throughput). Round trips per second and p50/p99/max latency (hdrhistogram)
are printed as a table, and written as JSON with ``--json FILE``. Both processes run uvloop.

    python bench/bench_hsm.py [--seconds 3] [--inflight 32] [--pool 2] [--json var/bench_hsm.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hsm_sim.lmk import Lmk  # noqa: E402 - bench-side key ceremony for the test keys
from switch.crypto.des import encrypt_ecb  # noqa: E402
from switch.crypto.mac import mac_unionpay_ecb  # noqa: E402
from switch.crypto.pinblock import format_iso0  # noqa: E402
from switch.hsm.client import HsmClient  # noqa: E402

SPEC = json.loads((ROOT / "tests" / "iso" / "vectors" / "spec_examples.json").read_text())


async def start_simulator() -> tuple[asyncio.subprocess.Process, int]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_hsm_"))
    (tmp / "hsm.toml").write_text(f'[pin]\nmailer_file = "{tmp / "mailers.jsonl"}"\n[logging]\nlevel = "warning"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hsm_sim", "serve", "--config", str(tmp / "hsm.toml"), "--listen", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "HSM_LOGGING_LEVEL": "info"},
    )  # fmt: skip
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        if not line:
            raise RuntimeError("hsm-sim exited")
        event = json.loads(line)
        if event.get("event") == "listening":
            return proc, int(event["port"])


async def measure(call: Callable[[], Awaitable[bool]], seconds: float, inflight: int) -> dict[str, float]:
    hist = HdrHistogram(1, 60_000_000, 3)  # microseconds
    count = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            ok = await call()
            hist.record_value(max(1, int((time.perf_counter() - t) * 1e6)))
            assert ok
            count += 1

    for _ in range(200):  # warm-up: connections, caches
        await call()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - t0
    return {
        "per_s": round(count / elapsed),
        "p50_ms": hist.get_value_at_percentile(50) / 1000,
        "p99_ms": hist.get_value_at_percentile(99) / 1000,
        "max_ms": hist.get_max_value() / 1000,
        "n": count,
    }


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    lmk = Lmk.test_set()
    pik_clear, mak_clear = bytes.fromhex(SPEC["pik_clear"]), bytes.fromhex(SPEC["mak_clear"])
    pik, mak = lmk.encrypt_key("002", pik_clear, "U"), lmk.encrypt_key("003", mak_clear, "Z")
    pan = SPEC["pan"]
    block = encrypt_ecb(pik_clear, format_iso0(SPEC["pin"], pan)).hex().upper()
    mab = bytes.fromhex(SPEC["cup_purchase_frame_hex"])[13:-8]
    mac = mac_unionpay_ecb(mak_clear, mab)
    proc, port = await start_simulator()
    results: dict[str, dict[str, float]] = {}
    try:
        async with HsmClient("127.0.0.1", port, pool_size=args.pool, timeout_s=5.0) as client:
            calls: dict[str, Callable[[], Awaitable[bool]]] = {
                "DA": lambda: client.verify_pin_ibm(pik, "", block, pan, SPEC["ibm3624_offset"]),
                "M8": lambda: client.verify_mac(mak, mab, mac),
            }
            for name, call in calls.items():
                for inflight in (1, args.inflight):
                    results[f"{name} inflight={inflight}"] = await measure(call, args.seconds, inflight)
    finally:
        proc.terminate()
        await proc.wait()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--pool", type=int, default=2)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    results = uvloop.run(run(args))
    print(f"{'scenario':<20}{'round trips/s':>15}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, r in results.items():
        print(f"{name:<20}{r['per_s']:>15,.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['max_ms']:>10.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pool": args.pool, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
