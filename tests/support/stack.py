"""A whole switch for end-to-end tests: real HSM simulator, real ledger, real provisioning, real TCP.

    async with Stack.start(tmp_path, backend="sqlite") as stack:   # or backend="postgres"
        pos = await stack.pos("cup")                 # connected PosTerminal, signed on (signon=False: not)
        ans = await pos.purchase(CARD.pan, CARD.pin, 10000)
        assert await stack.balance(CARD.pan) == 40000
        await stack.check_invariants()               # the ledger's double-entry / balance invariants

- ``Stack.start(tmp_path, backend, env=None, **program)``: starts the HSM simulator in-process on port 0, a
  fresh ledger (a temp SQLite file, or a fresh schema in the PostgreSQL ``test`` database), runs
  ``switch db init`` and ``switch provision`` on :data:`PROVISIONING` (the real CLI code), then
  ``switch.app.start_switch`` on ephemeral ports with the program settings given (e.g.
  ``settlement_window="00:00-23:59"``). ``stack.stop()`` (or the ``async with``) stops everything.
- ``stack.port(profile)``, ``stack.pos(profile="cup", tid=POS_TID, signon=True)``;
- ``stack.balance(pan)``, ``stack.pin_tries(pan)``, ``stack.check_invariants()``;
- ``stack.hsm_down()`` / ``stack.hsm_up()``, ``stack.ledger_down()`` / ``stack.ledger_up()``: failure injection.

The cards, terminals and merchants are the constants below; every test starts from the same state.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.app import SwitchApp, start_switch
from switch.config import SwitchConfig, with_overrides
from tests.support.cards import luhn_complete, pan
from tests.support.pos import PosTerminal

TMK = "0123456789ABCDEFFEDCBA9876543210"
MID = "898520154110001"
MID_SUSPENDED = "898520154110002"
MID_OTHER = "898520154110003"
POS_TID = "10000001"
POS2_TID = "10000002"
HALL_TID = "20000001"
SUSPENDED_TID = "30000001"
UNKNOWN_TID = "99999999"


@dataclass(frozen=True)
class Card:
    pan: str
    pin: str
    expiry: str
    status: str
    balance: int


#: the name ``tests/reliability/world.py`` imports
_luhn_complete = luhn_complete

CARD = Card(pan(1), "123456", "3012", "active", 50000)
CARD2 = Card(pan(2), "654321", "3012", "active", 50000)
LOW = Card(pan(3), "111111", "3012", "active", 1000)
NEARCAP = Card(pan(4), "222222", "3012", "active", 499000)
INACTIVE = Card(pan(5), "333333", "3012", "inactive", 0)
LOST = Card(pan(6), "444444", "3012", "lost", 10000)
FROZEN = Card(pan(7), "555555", "3012", "frozen", 10000)
CLOSED = Card(pan(8), "666666", "3012", "closed", 0)
EXPIRED = Card(pan(9), "777777", "2001", "active", 10000)
PINCARD = Card(pan(10), "888888", "3012", "active", 50000)
RICH = Card(pan(11), "121212", "3012", "active", 500000)
CARDS = (CARD, CARD2, LOW, NEARCAP, INACTIVE, LOST, FROZEN, CLOSED, EXPIRED, PINCARD, RICH)
#: Luhn-valid, program BIN, never provisioned
UNKNOWN_PAN = pan(999)
#: Luhn-valid, outside the program's BIN ranges
FOREIGN_PAN = luhn_complete("622202000000001")
#: program BIN, bad check digit
BAD_LUHN_PAN = CARD.pan[:-1] + str((int(CARD.pan[-1]) + 1) % 10)


def provisioning_toml() -> str:
    """The provisioning file (SPEC §7 format) every stack is loaded with."""
    out = []
    for mid, name, status in (
        (MID, "羊城西饼", "active"),
        (MID_SUSPENDED, "停业商户", "suspended"),
        (MID_OTHER, "另一商户", "active"),
    ):
        out.append(
            f'[[merchant]]\nmid = "{mid}"\nname = "{name}"\nmdr_bps = 38\nfee_cap = 2000\nrebate_bps = 500\n'
            f'status = "{status}"\n'
        )
    for tid, mid, kind in (
        (POS_TID, MID, "pos"),
        (POS2_TID, MID, "pos"),
        (HALL_TID, MID, "service_hall"),
        (SUSPENDED_TID, MID_SUSPENDED, "pos"),
    ):
        out.append(f'[[terminal]]\ntid = "{tid}"\nmid = "{mid}"\nkind = "{kind}"\ntmk = "{TMK}"\n')
    for i, c in enumerate(CARDS):
        out.append(
            f'[[card]]\npan = "{c.pan}"\nexpiry = "{c.expiry}"\npin = "{c.pin}"\nstatus = "{c.status}"\n'
            f'balance = {c.balance}\nmember_id = "M{i:04d}"\nname = "会员{i}"\nmobile = "1380000{i:04d}"\n'
            f'employer_id = "E001"\n'
        )
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ stack


class Stack:
    """A running switch with its HSM and ledger (see the module docstring)."""

    def __init__(self, backend: str, cfg: SwitchConfig, app: SwitchApp) -> None:
        self.backend = backend
        self.cfg = cfg
        self.app = app
        self._stops: list[Callable[[], Awaitable[Any]]] = []
        self.terminals: list[PosTerminal] = []
        #: the engine's metrics (the app's, unless the engine was built apart from it)
        self.metrics = app.metrics
        # backend hooks
        self._balance: Callable[[str], Awaitable[int]]
        self._pin_tries: Callable[[str], Awaitable[int]]
        self._invariants: Callable[[], Awaitable[None]]
        self._hsm_down: Callable[[bool], Awaitable[None]]
        self._ledger_down: Callable[[bool], Awaitable[None]]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, tmp_path: Path, backend: str = "sqlite", **program: Any) -> AsyncIterator[Stack]:
        if backend == "fake":
            stack = await _start_fake(tmp_path, program)
        else:
            from tests.support.realstack import start_real

            stack = await start_real(cls, tmp_path, backend, program)
        try:
            yield stack
        finally:
            await stack.stop()

    def port(self, profile: str) -> int:
        return self.app.server.address(profile)[1]

    async def pos(self, profile: str = "cup", tid: str = POS_TID, signon: bool = True, mid: str = MID) -> PosTerminal:
        p = await PosTerminal.connect("127.0.0.1", self.port(profile), profile=profile, tid=tid, mid=mid, tmk=TMK)
        self.terminals.append(p)
        if signon:
            ans = await p.signon()
            assert ans.rc == "00", f"sign-on answered {ans.rc}"
        return p

    async def balance(self, pan: str) -> int:
        return await self._balance(pan)

    async def pin_tries(self, pan: str) -> int:
        return await self._pin_tries(pan)

    async def check_invariants(self) -> None:
        await self._invariants()

    async def hsm_down(self) -> None:
        await self._hsm_down(True)

    async def hsm_up(self) -> None:
        await self._hsm_down(False)

    async def ledger_down(self) -> None:
        await self._ledger_down(True)

    async def ledger_up(self) -> None:
        await self._ledger_down(False)

    async def stop(self) -> None:
        for t in self.terminals:
            await t.close()
        await self.app.stop(2.0)
        for s in reversed(self._stops):
            with contextlib.suppress(Exception):
                await s()


def base_config(**program: Any) -> SwitchConfig:
    cfg = with_overrides(SwitchConfig(), "server", listen={"cup": "127.0.0.1:0", "iso87": "127.0.0.1:0"}, http="")
    if program:
        cfg = with_overrides(cfg, "program", **program)
    return cfg


async def _start_fake(tmp_path: Path, program: dict[str, Any]) -> Stack:
    from switch.pipeline.deps import Deps
    from switch.pipeline.engine import build_manager
    from switch.pipeline.ports import MerchantRef, TerminalRef
    from switch.telemetry.metrics import Metrics
    from tests.support.fakes import FakeCard, FakeClock, FakeHsm, FakeLedger

    prov = tomllib.loads(provisioning_toml())
    cfg0 = base_config(**program).program
    ledger = FakeLedger(
        cap=cfg0.balance_cap, daily_amount_limit=cfg0.daily_amount_limit, daily_count_limit=cfg0.daily_count_limit
    )
    for m in prov["merchant"]:
        ledger.merchants[m["mid"]] = MerchantRef(m["mid"], m["status"])
    for t in prov["terminal"]:
        ledger.terminals[t["tid"]] = TerminalRef(t["tid"], t["mid"], t["kind"], "active", t["tmk"], "", "", "000000")
    for c in prov["card"]:
        ledger.cards[c["pan"]] = FakeCard(c["pan"], c["expiry"], c["status"], c["pin"], c["balance"])
    cfg = base_config(**program)
    hsm, clock, metrics = FakeHsm(), FakeClock(window=cfg.program.settlement_window), Metrics()
    deps = Deps(
        cfg.program,
        ledger,
        hsm,
        clock,
        metrics,
        acquirer_id=cfg.program.bins[0],
        hsm_unavailable_errors=(TimeoutError,),
        ledger_unavailable_errors=(ConnectionError,),
    )
    app = await start_switch(cfg, handler=build_manager(deps))
    stack = Stack("fake", cfg, app)
    stack.metrics = metrics

    async def balance(pan: str) -> int:
        return ledger.cards[pan].balance

    async def tries(pan: str) -> int:
        return ledger.cards[pan].pin_tries

    async def invariants() -> None:
        assert all(c.balance >= 0 for c in ledger.cards.values())

    async def hsm_down(down: bool) -> None:
        hsm.fail = down

    async def ledger_down(down: bool) -> None:
        ledger.fail = down

    stack._balance, stack._pin_tries, stack._invariants = balance, tries, invariants
    stack._hsm_down, stack._ledger_down = hsm_down, ledger_down
    return stack


def window_around_now(minutes: int = 60) -> str:
    """A settlement window (``HH:MM-HH:MM``, Asia/Shanghai) that contains the current time."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    a, b = now - timedelta(minutes=minutes), now + timedelta(minutes=minutes)
    return f"{a:%H:%M}-{b:%H:%M}"
