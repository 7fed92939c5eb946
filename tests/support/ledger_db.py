"""Fresh ledgers for tests: an initialised SQLite file, or a fresh schema in the PostgreSQL ``test`` database.

    dsn = sqlite_ledger(tmp_path)                      # sqlite:///<tmp>/ledger.db, schema applied
    async with postgres_ledger() as dsn:               # postgresql://...?search_path=ledger_<hex> (dropped after)
        ...
    store = await open_test_store(dsn, clock=ManualClock(...))

PostgreSQL tests skip with a clear reason when no server answers (``require_postgres``). ``seed`` loads a
small, fixed world (merchants, terminals, cards with precomputed PIN offsets and keys under the LMK) through
the real provisioning code. ``ManualClock`` is a settable clock on the real business calendar.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from switch.backoffice.timeutil import BusinessCalendar
from switch.config import ProgramConfig
from switch.ledger import LedgerStore, open_store
from switch.ledger.migrate import init_database, migrate_sqlite
from switch.ledger.provision import parse_provisioning, provision
from tests.support.cards import pan

PG_BASE = os.environ.get("SWITCH_TEST_PG", "postgresql://127.0.0.1:5432/test")
TOKEN_KEY = "test-token-key"
_PG_STATE: dict[str, bool] = {}


class ManualClock:
    """``now()`` is fixed until moved (``set`` / ``advance``); business date by the real calendar."""

    def __init__(self, now: datetime | None = None, program: ProgramConfig | None = None) -> None:
        self.calendar = BusinessCalendar.from_config(program or ProgramConfig())
        self.tz = self.calendar.tz
        self._now = now or datetime(2026, 11, 22, 14, 3, tzinfo=self.tz)

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)

    def business_date(self) -> date:
        return self.calendar.business_date(self._now)

    def in_settlement_window(self) -> bool:
        return self.calendar.in_settlement_window(self._now)


def sqlite_ledger(tmp_path: Path, name: str = "ledger.db") -> str:
    """A new SQLite ledger file with the current schema."""
    path = tmp_path / name
    migrate_sqlite(path)
    return f"sqlite:///{path}"


async def postgres_available() -> bool:
    if "ok" not in _PG_STATE:
        import asyncpg

        try:
            con = await asyncio.wait_for(asyncpg.connect(PG_BASE), 3)
        except Exception:
            _PG_STATE["ok"] = False
        else:
            await con.close()
            _PG_STATE["ok"] = True
    return _PG_STATE["ok"]


async def require_postgres() -> None:
    if not await postgres_available():
        pytest.skip(f"no PostgreSQL server answers at {PG_BASE} (set SWITCH_TEST_PG)")


@contextlib.asynccontextmanager
async def postgres_ledger(init: bool = True) -> AsyncIterator[str]:
    """A fresh schema ``ledger_<hex>`` in the test database (migrated unless ``init=False``); dropped after."""
    import asyncpg

    await require_postgres()
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_BASE)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in PG_BASE else "?"
        dsn = f"{PG_BASE}{sep}search_path={schema}"
        if init:
            await init_database(dsn)
        yield dsn
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_ledger(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_ledger(tmp_path)
    else:
        async with postgres_ledger() as dsn:
            yield dsn


async def open_test_store(
    dsn: str, *, clock: Any = None, program: ProgramConfig | None = None, **opts: Any
) -> LedgerStore:
    program = program or ProgramConfig()
    return await open_store(dsn, token_key=TOKEN_KEY, program=program, clock=clock or ManualClock(), **opts)


# ------------------------------------------------------------------------------------------------ seed data
def token_of(pan: str) -> str:
    """The card token the test ledgers (keyed with ``TOKEN_KEY``) store for ``pan``."""
    from switch.backoffice.tokens import card_token

    return card_token(pan, TOKEN_KEY)


MID = "898520154110001"
MID2 = "898520154110003"
MID_SUSPENDED = "898520154110002"
POS_TID = "10000001"
POS2_TID = "10000002"
HALL_TID = "20000001"
OTHER_TID = "10000003"
#: a development TMK under the simulator's test LMK (the clear key itself never appears in a ledger)
TMK_LMK = "U" + hashlib.sha256(b"ledger-test-tmk").hexdigest()[:32].upper()


@dataclass(frozen=True)
class SeedCard:
    pan: str
    status: str
    balance: int
    mobile: str = "13800000000"

    @property
    def token(self) -> str:
        return token_of(self.pan)


CARD = SeedCard(pan(1), "active", 50000)
CARD2 = SeedCard(pan(2), "active", 50000)
LOW = SeedCard(pan(3), "active", 1000)
NEARCAP = SeedCard(pan(4), "active", 499000)
INACTIVE = SeedCard(pan(5), "inactive", 0)
LOST = SeedCard(pan(6), "lost", 10000)
NOMOBILE = SeedCard(pan(7), "active", 20000, mobile="")
SEED_CARDS = (CARD, CARD2, LOW, NEARCAP, INACTIVE, LOST, NOMOBILE)


def seed_document(cards: tuple[SeedCard, ...] = SEED_CARDS) -> dict[str, Any]:
    return {
        "merchant": [
            {"mid": MID, "name": "羊城西饼", "mdr_bps": 38, "fee_cap": 2000, "rebate_bps": 500, "status": "active"},
            {"mid": MID2, "name": "另一商户", "mdr_bps": 100, "fee_cap": 50, "rebate_bps": 0, "status": "active"},
            {"mid": MID_SUSPENDED, "name": "停业商户", "mdr_bps": 38, "fee_cap": 2000, "status": "suspended"},
        ],
        "terminal": [
            {"tid": POS_TID, "mid": MID, "kind": "pos", "tmk_lmk": TMK_LMK},
            {"tid": POS2_TID, "mid": MID, "kind": "pos", "tmk_lmk": TMK_LMK},
            {"tid": HALL_TID, "mid": MID, "kind": "service_hall", "tmk_lmk": TMK_LMK},
            {"tid": OTHER_TID, "mid": MID2, "kind": "pos", "tmk_lmk": TMK_LMK},
        ],
        "card": [
            {
                "pan": c.pan,
                "expiry": "3012",
                "pin_offset": "646684",
                "status": c.status,
                "balance": c.balance,
                "member_id": f"M{i:04d}",
                "name": f"会员{i}",
                "mobile": c.mobile,
                "employer_id": "E001",
            }
            for i, c in enumerate(cards)
        ],
    }


async def seed(store: LedgerStore, cards: tuple[SeedCard, ...] = SEED_CARDS) -> None:
    await provision(store, parse_provisioning(seed_document(cards)), bins=["990001"], hsm=None)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
