"""The back office at its product surface: every test drives the real CLI (``switch.cli.main`` in-process, in a
worker thread with its own event loop, exactly as ``python -m switch`` runs it) against a real ledger (a SQLite
file or a fresh PostgreSQL schema) provisioned through ``switch provision``, with the real HSM simulator
in-process; POS traffic, where a test needs it, goes through the real switch over TCP (``World.pos``).

The program's clock is the real one. So that a run is independent of the hour, every test sets the cut-over
12 hours and the settlement window 6 hours away from now (``SWITCH_PROGRAM_CUTOVER`` /
``SWITCH_PROGRAM_SETTLEMENT_WINDOW``): the business date cannot change under a test, and tests move it with
``switch day close``. The ledger invariants are checked after every test.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hsm_sim.server import HsmSimServer
from switch.app import SwitchApp, start_switch
from switch.cli import main
from switch.config import SwitchConfig, load_config, with_overrides
from switch.ledger import LedgerStore
from switch.pipeline.adapters import open_services
from switch.pipeline.engine import build_manager
from switch.telemetry.metrics import Metrics
from tests.support.cards import pan
from tests.support.ledger_db import TOKEN_KEY, fresh_ledger, open_test_store, token_of
from tests.support.pos import PosTerminal
from tests.support.realstack import hsm_config, tmk_under_lmk
from tests.support.stack import TMK, base_config

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
TZ = ZoneInfo("Asia/Shanghai")
PROGRAM_ID = "UNIONCARD"

# ---------------------------------------------------------------------------------------------- the world
MID_A = "898520154110001"  # 0.38 %, fee cap 20.00, 5 % cashback
MID_B = "898520154110003"  # 1 %, fee cap 0.50, 10 % cashback
MID_H = "898520154119001"  # the union service hall (cash top-ups)
TID_A = "10000001"
TID_B = "10000003"
TID_H = "20000001"
MERCHANTS = {
    MID_A: {"name": "羊城西饼", "mdr_bps": 38, "fee_cap": 2000, "rebate_bps": 500},
    MID_B: {"name": "职工食堂", "mdr_bps": 100, "fee_cap": 50, "rebate_bps": 1000},
    MID_H: {"name": "工会服务大厅", "mdr_bps": 0, "fee_cap": 0, "rebate_bps": 0},
}


@dataclass(frozen=True)
class Card:
    pan: str
    pin: str
    status: str
    balance: int
    mobile: str
    member_id: str
    employer_id: str = "E001"

    @property
    def last4(self) -> str:
        return self.pan[-4:]

    @property
    def masked(self) -> str:
        return f"{self.pan[:6]}******{self.pan[-4:]}"

    @property
    def token(self) -> str:
        return token_of(self.pan)


def _card(seq: int, pin: str, status: str, balance: int, mobile: str, employer: str = "E001") -> Card:
    return Card(pan(seq), pin, status, balance, mobile, f"M{seq:04d}", employer)


C1 = _card(1, "123456", "active", 50000, "13800000001")
C2 = _card(2, "654321", "active", 50000, "13800000002")
NEARCAP = _card(3, "111111", "active", 499000, "13800000003")
LOST = _card(4, "222222", "lost", 10000, "13800000004")
INACTIVE = _card(5, "333333", "inactive", 0, "13800000005", employer="E002")
NOMOBILE = _card(6, "444444", "active", 20000, "")
CARDS = (C1, C2, NEARCAP, LOST, INACTIVE, NOMOBILE)
#: program BIN, Luhn-valid, never provisioned
UNKNOWN_PAN = pan(999)


def provisioning_toml(tmk_lmk: str) -> str:
    out = [
        f'[[merchant]]\nmid = "{mid}"\nname = "{m["name"]}"\nmdr_bps = {m["mdr_bps"]}\nfee_cap = {m["fee_cap"]}\n'
        f'rebate_bps = {m["rebate_bps"]}\nstatus = "active"\n'
        for mid, m in MERCHANTS.items()
    ]
    for tid, mid, kind in ((TID_A, MID_A, "pos"), (TID_B, MID_B, "pos"), (TID_H, MID_H, "service_hall")):
        out.append(f'[[terminal]]\ntid = "{tid}"\nmid = "{mid}"\nkind = "{kind}"\ntmk_lmk = "{tmk_lmk}"\n')
    for c in CARDS:
        out.append(
            f'[[card]]\npan = "{c.pan}"\nexpiry = "3012"\npin = "{c.pin}"\nstatus = "{c.status}"\n'
            f'balance = {c.balance}\nmember_id = "{c.member_id}"\nname = "会员{c.member_id}"\n'
            f'mobile = "{c.mobile}"\nemployer_id = "{c.employer_id}"\n'
        )
    return "\n".join(out)


def _hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def quiet_hours(now: datetime | None = None) -> dict[str, str]:
    """Cut-over 12 h and settlement window 6 h away from now (program time zone)."""
    local = (now or datetime.now(UTC)).astimezone(TZ)
    window = local + timedelta(hours=6)
    return {
        "SWITCH_PROGRAM_CUTOVER": _hhmm(local + timedelta(hours=12)),
        "SWITCH_PROGRAM_SETTLEMENT_WINDOW": f"{_hhmm(window)}-{_hhmm(window + timedelta(minutes=30))}",
    }


def window_now() -> str:
    """A settlement window that contains the present minute (and the next few)."""
    local = datetime.now(UTC).astimezone(TZ)
    return f"{_hhmm(local - timedelta(minutes=5))}-{_hhmm(local + timedelta(minutes=10))}"


def ymd(d: date) -> str:
    return d.strftime("%Y%m%d")


def parse_ymd(s: str) -> date:
    return date(int(s[:4]), int(s[4:6]), int(s[6:8]))


# ---------------------------------------------------------------------------------------------- CLI runner
@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(argv: list[str]) -> CliResult:
    """``switch.cli.main(argv)`` with stdout/stderr captured; argparse's usage exit is returned as its code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


class World:
    """A provisioned ledger + the HSM simulator + (on demand) the switch; ``await world.cli(...)`` runs a command."""

    def __init__(self, tmp_path: Path, backend: str, dsn: str, hsm: HsmSimServer, hsm_addr: str) -> None:
        self.tmp = tmp_path
        self.backend = backend
        self.dsn = dsn
        self.hsm = hsm
        self.hsm_addr = hsm_addr
        self.cfg_path = tmp_path / "switch.toml"
        self.clearing_dir = tmp_path / "clearing"
        self.sms_file = tmp_path / "sms.jsonl"
        self.mailer_file = tmp_path / "pin_mailers.jsonl"
        self._store: LedgerStore | None = None
        self._app: SwitchApp | None = None
        self._closers: list[Any] = []
        self._terminals: list[PosTerminal] = []
        self.write_config()

    def write_config(self, **notify: str) -> None:
        extra = "".join(f'{k} = "{v}"\n' for k, v in notify.items())
        self.cfg_path.write_text(
            f'[database]\ndsn = "{self.dsn}"\n'
            f'[hsm]\naddress = "{self.hsm_addr}"\ntimeout_ms = 2000\n'
            f'[files]\nvar_dir = "{self.tmp}"\nclearing_dir = "{self.clearing_dir}"\n'
            f'[notify]\nsms_file = "{self.sms_file}"\n{extra}'
            f'[security]\npan_token_key = "{TOKEN_KEY}"\n',
            encoding="utf-8",
        )

    async def cli(self, *argv: str) -> CliResult:
        return await asyncio.to_thread(run_cli, [*argv, "--config", str(self.cfg_path)])

    async def ok(self, *argv: str) -> CliResult:
        r = await self.cli(*argv)
        assert r.code == 0, (argv, r)
        return r

    # -- the ledger, read directly ----------------------------------------------------------------
    async def store(self) -> LedgerStore:
        if self._store is None:
            self._store = await open_test_store(self.dsn)
        return self._store

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        store = await self.store()
        return [tuple(r) for r in await store.read(lambda tx: tx.fetch(sql, *args))]

    async def balance(self, card: Card) -> int:
        value = await (await self.store()).balance(card.token)
        assert value is not None
        return int(value)

    async def open_date(self) -> date:
        r = await self.ok("day", "show")
        return parse_ymd(r.out.split("open business date ")[1][:8])

    async def close_day(self) -> date:
        r = await self.ok("day", "close")
        return parse_ymd(r.out.strip())

    # -- the switch, for POS traffic ---------------------------------------------------------------
    def config(self) -> SwitchConfig:
        cfg = load_config(self.cfg_path, os.environ)
        return with_overrides(cfg, "server", listen={"cup": "127.0.0.1:0"}, http="")

    async def pos(self, tid: str = TID_A) -> PosTerminal:
        if self._app is None:
            cfg = self.config()
            deps = await open_services(cfg, Metrics(), self._closers)
            self._app = await start_switch(cfg, handler=build_manager(deps))
        mid = {TID_A: MID_A, TID_B: MID_B, TID_H: MID_H}[tid]
        port = self._app.server.address("cup")[1]
        p = await PosTerminal.connect("127.0.0.1", port, profile="cup", tid=tid, mid=mid, tmk=TMK)
        self._terminals.append(p)
        assert (await p.signon()).rc == "00"
        return p

    async def close(self) -> None:
        for t in self._terminals:
            await t.close()
        if self._app is not None:
            await self._app.stop(2.0)
        for c in reversed(self._closers):
            with contextlib.suppress(Exception):
                await c()
        if self._store is not None:
            await self._store.close()

    async def check_invariants(self) -> None:
        problems = await (await self.store()).check_invariants()
        assert problems == [], problems


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def world(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    for name in list(os.environ):
        if name.startswith("SWITCH_"):
            monkeypatch.delenv(name)
    for name, value in quiet_hours().items():
        monkeypatch.setenv(name, value)
    hsm = HsmSimServer(hsm_config(tmp_path))
    host, port = await hsm.start()
    try:
        async with fresh_ledger(backend, tmp_path) as dsn:
            w = World(tmp_path, backend, dsn, hsm, f"{host}:{port}")
            try:
                prov = tmp_path / "provisioning.toml"
                prov.write_text(provisioning_toml(await tmk_under_lmk(base_config())), encoding="utf-8")
                await w.ok("provision", str(prov))
                yield w
                await w.check_invariants()
            finally:
                await w.close()
    finally:
        await hsm.stop(0.5)


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))
