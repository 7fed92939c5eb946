"""The engine over real TCP with in-memory services (rule order, concurrency, failure mapping)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from switch.app import SwitchApp, start_switch
from switch.config import SwitchConfig, with_overrides
from switch.pipeline.deps import Deps
from switch.pipeline.engine import build_manager
from switch.pipeline.ports import MerchantRef, TerminalRef
from switch.telemetry.metrics import Metrics
from tests.support.fakes import FakeCard, FakeClock, FakeHsm, FakeLedger
from tests.support.pos import PosTerminal

TMK = "0123456789ABCDEFFEDCBA9876543210"
MID = "898520154110001"
PAN = "9900010000000019"


@dataclass
class Env:
    app: SwitchApp
    ledger: FakeLedger
    hsm: FakeHsm
    clock: FakeClock

    def port(self, profile: str) -> int:
        return self.app.server.address(profile)[1]

    async def pos(self, profile: str = "cup", tid: str = "10000001", signon: bool = True) -> PosTerminal:
        p = await PosTerminal.connect("127.0.0.1", self.port(profile), profile=profile, tid=tid, mid=MID, tmk=TMK)
        if signon:
            ans = await p.signon()
            assert ans.rc == "00", ans.rc
        return p


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    ledger = FakeLedger()
    ledger.merchants[MID] = MerchantRef(MID, "active")
    ledger.terminals["10000001"] = TerminalRef("10000001", MID, "pos", "active", TMK, "", "", "000000")
    ledger.terminals["20000001"] = TerminalRef("20000001", MID, "service_hall", "active", TMK, "", "", "000000")
    ledger.cards[PAN] = FakeCard(PAN, "3012", "active", "123456", 50000)
    hsm, clock, metrics = FakeHsm(), FakeClock(), Metrics()
    cfg = with_overrides(SwitchConfig(), "server", listen={"cup": "127.0.0.1:0", "iso87": "127.0.0.1:0"}, http="")
    deps = Deps(cfg.program, ledger, hsm, clock, metrics, acquirer_id="990001",
                hsm_unavailable_errors=(TimeoutError,), ledger_unavailable_errors=(ConnectionError,))
    app = await start_switch(cfg, handler=build_manager(deps))
    yield Env(app, ledger, hsm, clock)
    await app.stop(1.0)


async def test_purchase_void_reverse_settle(env: Env) -> None:
    pos = await env.pos()
    a = await pos.purchase(PAN, "123456", 10000)
    assert a.rc == "00" and a.mac_ok and a.balance == 40000
    v = await pos.void(PAN, 10000, a)
    assert v.rc == "00", v.rc
    assert env.ledger.cards[PAN].balance == 50000
    b = await pos.purchase(PAN, "123456", 2000)
    assert b.rc == "00"
    fields = pos.last.msg.fields  # type: ignore[union-attr]
    assert fields["39"] == "00"
    s = await pos.settle(2000, 1, 0, 0)
    assert s.rc == "00" and s.f["48"][30] == "1", s.f
    await pos.close()
