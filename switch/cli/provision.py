"""``switch provision FILE.toml``: load merchants, terminals and cards (SPEC §7); idempotent.

Clear development secrets go through the HSM only: clear TMKs through the key-ceremony console
(``hsm.ceremony_command``), clear PINs through the host port (``BA`` then ``DE`` with ``hsm.pvk_lmk``, or the
simulator's development PVK when that is empty). The HSM is contacted only when a new entry needs it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from switch.cli import config_from_args
from switch.config import HsmConfig, SwitchConfig
from switch.errors import HandledError, SwitchError
from switch.ledger import open_store
from switch.ledger.clock import CalendarClock
from switch.ledger.errors import LedgerError
from switch.ledger.provision import ProvisionReport, load_provisioning, provision


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("provision", parents=[common], help="load merchants, terminals and cards from a TOML file")
    p.add_argument("file", metavar="FILE.toml", type=Path, help="provisioning file (SPEC §7 format)")
    p.set_defaults(func=run)


class HsmProvisioner:
    """:class:`switch.ledger.provision.ProvisionHsm` over the real HSM (console + host port)."""

    def __init__(self, hsm: HsmConfig) -> None:
        self._cfg = hsm
        self._client: object | None = None

    async def tmks_under_lmk(self, clear_tmks: Sequence[str]) -> list[str]:
        from switch.hsm.ceremony import import_clear_keys

        keys = await import_clear_keys([("TMK", k) for k in clear_tmks], self._cfg.ceremony_command)
        return [k.key_lmk for k in keys]

    async def pin_offset(self, pin: str, pan: str) -> str:
        from switch.hsm.client import HsmClient
        from switch.hsm.connect import hsm_client
        from switch.hsm.dev import DEV_PVK_LMK

        if self._client is None:
            client = hsm_client(self._cfg, pool_size=1)
            await client.start()
            self._client = client
        assert isinstance(self._client, HsmClient)
        pin_lmk = await self._client.encrypt_clear_pin(pin, pan)
        return await self._client.ibm_offset(self._cfg.pvk_lmk or DEV_PVK_LMK, pin_lmk, pan)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[attr-defined]


async def provision_file(cfg: SwitchConfig, path: Path) -> ProvisionReport:
    spec = load_provisioning(path)
    store = await open_store(
        cfg.database.dsn,
        token_key=cfg.security.pan_token_key,
        program=cfg.program,
        clock=CalendarClock.from_config(cfg.program),
        synchronous=cfg.database.sqlite_synchronous,
        pool_size=2,
    )
    hsm = HsmProvisioner(cfg.hsm)
    try:
        return await provision(store, spec, bins=cfg.program.bins, hsm=hsm)
    finally:
        await hsm.close()
        await store.close()


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        report = asyncio.run(provision_file(cfg, args.file))
    except (LedgerError, SwitchError) as exc:
        if isinstance(exc, HandledError):
            raise
        raise HandledError(str(exc)) from None
    except (OSError, TimeoutError) as exc:
        raise HandledError(f"provisioning failed: {type(exc).__name__}") from None
    print(report.text())
    return 0
