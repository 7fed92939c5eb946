"""CPU per purchase of the authorization engine alone: frame body in, reply body out, in this process, over the
real ledger (SQLite) and the real HSM simulator (its own process) — no POS sockets and no load generator here,
so the figure moves only with the engine's own work. The steadiest before/after number on a shared machine.

    python bench/bench_engine.py [--requests 6000] [--terminals 20] [--sync FULL] [--profile]

``--profile`` runs the same under cProfile and prints the top functions (cProfile inflates Python-heavy
code: use it for where, the plain run for how much).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stack import PIN, PY, base_env, run, start_hsm, write_provisioning

from switch.config import load_config
from switch.iso.profiles import PROFILES
from switch.pipeline.adapters import open_services
from switch.pipeline.engine import build_manager
from switch.server.connection import ConnectionInfo
from switch.telemetry.logs import configure_logging
from switch.telemetry.metrics import Metrics
from tests.support.pos import PosTerminal, parse_field62_keys


async def drive(args: argparse.Namespace, env: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
    cfg = load_config(None, env)
    closers: list[Any] = []
    deps = await open_services(cfg, Metrics(), closers)
    manager = build_manager(deps)
    info = ConnectionInfo(1, PROFILES["cup"], "127.0.0.1:1", "cup")
    pans = [c["pan"] for c in doc["card"]]
    terminals = []
    for t in doc["terminal"][: args.terminals]:
        pos = PosTerminal(None, None, "cup", t["tid"], t["mid"], bytes.fromhex(t["tmk"]))  # type: ignore[arg-type]
        f = pos.base("00", "004")
        f["63"] = "001"
        ans = pos.read_answer(await manager(pos.encode("0800", f, mac=False), info) or b"")
        assert ans.rc == "00", ans.rc
        pos.keys = parse_field62_keys(ans.f["62"], pos.tmk)
        pos.batch = ans.f["60"][2:8]
        terminals.append(pos)
    per = args.requests // len(terminals)
    bodies = [
        [pos.encode("0200", pos.purchase_fields(pans[(i * 7 + j) % len(pans)], PIN, 100 + j % 900)) for j in range(per)]
        for i, pos in enumerate(terminals)
    ]
    approved = 0

    async def terminal(seq: list[bytes]) -> None:
        nonlocal approved
        for body in seq:
            out = await manager(body, info)
            approved += out is not None and b"00" in out[-40:]  # cheap check; counted exactly below

    # warm-up: caches, connections
    for seq in bodies:
        await terminal(seq[:5])
    bodies = [seq[5:] for seq in bodies]
    n = sum(len(s) for s in bodies)
    prof = cProfile.Profile() if args.profile else None
    c0, t0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    await asyncio.gather(*(terminal(seq) for seq in bodies))
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    for close in reversed(closers):
        await close()
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
        pstats.Stats(prof).sort_stats("cumtime").print_stats(45)
    return {"requests": n, "cpu_us_per_purchase": round(cpu / n * 1e6, 1), "per_s": round(n / wall), "cpu_s": cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--terminals", type=int, default=20)
    ap.add_argument("--sync", default="FULL")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        work = Path(tmp)
        env = base_env(work)
        env.update(SWITCH_DATABASE_DSN=f"sqlite:///{work / 'switch.db'}", SWITCH_DATABASE_SQLITE_SYNCHRONOUS=args.sync)
        keys = work / "keys.toml"
        write_provisioning(keys, terminals=max(args.terminals, 4), cards=200)
        hsm = start_hsm(work, env)
        try:
            env["SWITCH_HSM_ADDRESS"] = f"127.0.0.1:{hsm.port()}"
            run("switch db init", [PY, "-m", "switch", "db", "init"], env)
            run("switch provision", [PY, "-m", "switch", "provision", str(keys)], env)
            configure_logging("info", file=str(work / "switch.log"))
            os.environ.update({k: v for k, v in env.items() if k.startswith("SWITCH_")})
            import uvloop

            r = uvloop.run(drive(args, env, tomllib.loads(keys.read_text())))
            r["hsm_cpu_s"] = None
        finally:
            hsm.stop()
    print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
