"""The world of the reliability tests and of ``make soak``'s crash and fault parts.

A provisioned ledger (SQLite file or a fresh PostgreSQL schema), the HSM simulator running in this process
on an ephemeral port (its ``faults`` and ``stop``/``start`` are the HSM fault hooks), and a switch
configuration file for ``switch serve`` as a subprocess (:mod:`tests.reliability.procs`):

    async with open_world(tmp_path, "sqlite") as world:
        world.dsn, world.hsm, world.config_path, world.cards, world.terminals
        store = await world.open_store()          # the ledger, read from this process

Cards have large balances and the program's daily limits are lifted, so a long load is never declined for
limits or funds: every approval then has one cause, and every decline one of the faults under test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hsm_sim.server import HsmSimServer
from switch.cli.provision import provision_file
from switch.config import SwitchConfig, with_overrides
from switch.ledger import LedgerStore, open_store
from switch.ledger.clock import CalendarClock
from tests.support.ledger_db import postgres_ledger, sqlite_ledger
from tests.support.realstack import hsm_config, tmk_under_lmk
from tests.support.stack import TMK, _luhn_complete, base_config

MID_A = "898520154120001"
MID_B = "898520154120002"
TOKEN_KEY = "reliability-token-key"
OPENING_BALANCE = 300_000
#: daily purchase limits high enough for any load of these tests
DAILY_AMOUNT_LIMIT = 10**12
DAILY_COUNT_LIMIT = 10**9


@dataclass(frozen=True)
class WorldTerminal:
    tid: str
    mid: str
    kind: str  # pos | service_hall


@dataclass(frozen=True)
class WorldCard:
    pan: str = field(repr=False)
    pin: str = field(repr=False)
    expiry: str = "3012"
    balance: int = OPENING_BALANCE


TERMINALS = tuple(
    [WorldTerminal(f"1100{i:04d}", MID_A if i % 2 else MID_B, "pos") for i in range(1, 17)]
    + [WorldTerminal(f"2100{i:04d}", MID_A, "service_hall") for i in range(1, 5)]
)
CARDS = tuple(WorldCard(_luhn_complete(f"990001{5000 + i:09d}"), f"{(i * 7919) % 1_000_000:06d}") for i in range(24))


def provisioning_toml(tmk_lmk: str) -> str:
    out = [
        f'[[merchant]]\nmid = "{mid}"\nname = "{name}"\nmdr_bps = 38\nfee_cap = 2000\nrebate_bps = 0\n'
        'status = "active"\n'
        for mid, name in ((MID_A, "可靠商户甲"), (MID_B, "可靠商户乙"))
    ]
    out += [
        f'[[terminal]]\ntid = "{t.tid}"\nmid = "{t.mid}"\nkind = "{t.kind}"\ntmk_lmk = "{tmk_lmk}"\n' for t in TERMINALS
    ]
    out += [
        f'[[card]]\npan = "{c.pan}"\nexpiry = "{c.expiry}"\npin = "{c.pin}"\nstatus = "active"\n'
        f'balance = {c.balance}\nmember_id = "R{i:04d}"\nname = "会员{i}"\nmobile = "1390000{i:04d}"\n'
        'employer_id = "E009"\n'
        for i, c in enumerate(CARDS)
    ]
    return "\n".join(out)


def window_away_from_now() -> str:
    """A one-minute settlement window twelve hours from now (top-ups are never paused by the clock)."""
    start = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=12)
    end = start + timedelta(minutes=1)
    return f"{start:%H:%M}-{end:%H:%M}"


@dataclass
class World:
    tmp: Path
    backend: str
    dsn: str
    hsm: HsmSimServer
    cfg: SwitchConfig
    config_path: Path
    terminals: tuple[WorldTerminal, ...] = TERMINALS
    cards: tuple[WorldCard, ...] = CARDS
    tmk: str = TMK

    @property
    def hsm_address(self) -> str:
        assert self.hsm.address is not None
        return f"{self.hsm.address[0]}:{self.hsm.address[1]}"

    async def hsm_down(self) -> None:
        await self.hsm.stop(0.2)

    async def hsm_up(self) -> None:
        """A new simulator on the same port (what an HSM restart looks like to the switch)."""
        faults = self.hsm.faults
        self.hsm = HsmSimServer(hsm_config(self.tmp, self.hsm.address[1] if self.hsm.address else 0))
        self.hsm.faults = faults
        await self.hsm.start()

    async def open_store(self) -> LedgerStore:
        return await open_store(
            self.dsn,
            token_key=TOKEN_KEY,
            program=self.cfg.program,
            clock=CalendarClock.from_config(self.cfg.program),
        )

    def switch_toml(self, **sections: dict[str, object]) -> str:
        """The switch's configuration file; ``sections`` add or override keys (``hsm={"timeout_ms": 500}``)."""
        base: dict[str, dict[str, object]] = {
            "server": {"listen": {"cup": "127.0.0.1:0"}, "http": "127.0.0.1:0", "shutdown_grace_s": 10.0},
            "database": {"dsn": self.dsn},
            "hsm": {"address": self.hsm_address, "timeout_ms": 1000},
            "program": {
                "settlement_window": self.cfg.program.settlement_window,
                "daily_amount_limit": DAILY_AMOUNT_LIMIT,
                "daily_count_limit": DAILY_COUNT_LIMIT,
            },
            "files": {"var_dir": str(self.tmp / "var"), "clearing_dir": str(self.tmp / "clearing")},
            "notify": {"sms_file": str(self.tmp / "sms.jsonl")},
            "security": {"pan_token_key": TOKEN_KEY},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        return "\n".join(f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
                         for name, values in base.items())  # fmt: skip


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


@contextlib.asynccontextmanager
async def open_world(tmp: Path, backend: str, **switch_sections: dict[str, object]) -> AsyncIterator[World]:
    """A provisioned world (see the module docstring); the PostgreSQL one is dropped afterwards."""
    hsm = HsmSimServer(hsm_config(tmp))
    host, port = await hsm.start()
    try:
        async with _ledger(tmp, backend) as dsn:
            cfg = base_config(
                settlement_window=window_away_from_now(),
                daily_amount_limit=DAILY_AMOUNT_LIMIT,
                daily_count_limit=DAILY_COUNT_LIMIT,
            )
            cfg = with_overrides(cfg, "database", dsn=dsn)
            cfg = with_overrides(cfg, "hsm", address=f"{host}:{port}", timeout_ms=1000)
            cfg = with_overrides(cfg, "security", pan_token_key=TOKEN_KEY)
            prov = tmp / "reliability-provisioning.toml"
            prov.write_text(provisioning_toml(await tmk_under_lmk(cfg)))
            await provision_file(cfg, prov)
            world = World(tmp, backend, dsn, hsm, cfg, tmp / "switch.toml")
            world.config_path.write_text(world.switch_toml(**switch_sections))
            try:
                yield world
            finally:
                if world.hsm is not hsm:
                    await world.hsm.stop(0.2)
    finally:
        await hsm.stop(0.2)


@contextlib.asynccontextmanager
async def _ledger(tmp: Path, backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_ledger(tmp)
    else:
        async with postgres_ledger() as dsn:
            yield dsn
