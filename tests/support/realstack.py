"""The real stack behind :class:`tests.support.stack.Stack`: HSM simulator, ledger (SQLite file or a fresh
PostgreSQL schema), provisioning through the real code, and the switch with its authorization engine.

- The HSM simulator runs in-process on an ephemeral port with the public test LMK; ``hsm_down`` stops it and
  ``hsm_up`` starts it again on the same port (the switch's client reconnects by itself).
- The ledger is provisioned with :func:`switch.cli.provision.provision_file` from ``provisioning_toml()``; the
  clear development TMK goes through the HSM console (``hsm-sim keys import-clear``) once per test session and
  the resulting TMK under the LMK is reused (one subprocess per session instead of one per test). Clear PINs
  become offsets through the simulator's host port (BA + DE) in every test.
- ``ledger_down`` marks the live store unavailable (its operations raise ``StoreUnavailable`` → RC 91).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from hsm_sim.config import HsmSimConfig
from hsm_sim.server import HsmSimServer
from switch.app import start_switch
from switch.cli.provision import provision_file
from switch.config import SwitchConfig, with_overrides
from switch.pipeline.adapters import open_services
from switch.pipeline.engine import build_manager
from switch.telemetry.metrics import Metrics
from tests.support.ledger_db import postgres_ledger, sqlite_ledger
from tests.support.stack import TMK, Stack, base_config, provisioning_toml

#: the e2e suite runs on the real services (``tests/e2e/conftest.py`` reads this)
REAL = True

_TMK_UNDER_LMK: dict[str, str] = {}


async def tmk_under_lmk(cfg: SwitchConfig) -> str:
    """The development TMK under the test LMK, through the HSM console (once per session)."""
    if TMK not in _TMK_UNDER_LMK:
        from switch.hsm.ceremony import import_clear_keys

        keys = await import_clear_keys([("TMK", TMK)], cfg.hsm.ceremony_command)
        _TMK_UNDER_LMK[TMK] = keys[0].key_lmk
    return _TMK_UNDER_LMK[TMK]


def hsm_config(tmp_path: Path, port: int = 0) -> HsmSimConfig:
    cfg = HsmSimConfig()
    return dataclasses.replace(
        cfg,
        server=dataclasses.replace(cfg.server, listen=f"127.0.0.1:{port}"),
        pin=dataclasses.replace(cfg.pin, mailer_file=str(tmp_path / "pin_mailers.jsonl")),
    )


async def start_real(cls: type[Stack], tmp_path: Path, backend: str, program: dict[str, Any]) -> Stack:
    stops: list[Any] = []
    try:
        return await _start(cls, tmp_path, backend, program, stops)
    except BaseException:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                await stop()
        raise


async def _start(cls: type[Stack], tmp_path: Path, backend: str, program: dict[str, Any], stops: list[Any]) -> Stack:
    hsm = HsmSimServer(hsm_config(tmp_path))
    host, port = await hsm.start()
    holder = {"hsm": hsm}

    async def stop_hsm() -> None:
        await holder["hsm"].stop(0.5)

    stops.append(stop_hsm)

    if backend == "sqlite":
        dsn = sqlite_ledger(tmp_path)
    else:
        pg = postgres_ledger()
        dsn = await pg.__aenter__()

        async def drop_schema() -> None:
            await pg.__aexit__(None, None, None)

        stops.append(drop_schema)

    cfg = base_config(**program)
    cfg = with_overrides(cfg, "database", dsn=dsn)
    cfg = with_overrides(cfg, "hsm", address=f"{host}:{port}", timeout_ms=1000)
    prov = tmp_path / "provisioning.toml"
    prov.write_text(provisioning_toml().replace(f'tmk = "{TMK}"', f'tmk_lmk = "{await tmk_under_lmk(cfg)}"'))
    await provision_file(cfg, prov)

    metrics = Metrics()
    closers: list[Any] = []
    deps = await open_services(cfg, metrics, closers)
    stops.extend(closers)
    app = await start_switch(cfg, handler=build_manager(deps))
    stack = cls(backend, cfg, app)
    stack.metrics = metrics
    stack._stops = stops
    store = deps.store

    async def balance(pan: str) -> int:
        value = await store.balance(store.token(pan))
        assert value is not None, "no such card"
        return int(value)

    async def pin_tries(pan: str) -> int:
        value = await store.pin_tries(store.token(pan))
        assert value is not None, "no such card"
        return int(value)

    async def invariants() -> None:
        problems = await store.check_invariants()
        assert not problems, problems

    async def hsm_down(down: bool) -> None:
        if down:
            await holder["hsm"].stop(0.2)
        else:
            holder["hsm"] = HsmSimServer(hsm_config(tmp_path, port))
            await holder["hsm"].start()

    async def ledger_down(down: bool) -> None:
        store.set_unavailable(down)

    stack._balance, stack._pin_tries, stack._invariants = balance, pin_tries, invariants
    stack._hsm_down, stack._ledger_down = hsm_down, ledger_down
    return stack
