"""The small transaction interface the money rules are written against, once, for both backends.

SQL is written in PostgreSQL style (``$1`` placeholders, ``FOR UPDATE``); the SQLite implementation rewrites
``$n`` to ``?n`` and drops ``FOR UPDATE`` (its single writer already serializes every write transaction).
Values: amounts ``int`` fen, business dates ``int`` YYYYMMDD, timestamps via :meth:`Tx.ts` and
:func:`as_datetime`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Row(Protocol):
    def __getitem__(self, key: str | int, /) -> Any: ...
    def __len__(self) -> int: ...


class Tx(Protocol):
    """One database transaction (or, for reads, one connection)."""

    dialect: str  # "sqlite" | "postgres"
    #: values read once per transaction and shared by its operations (e.g. merchant terms); a group commit's
    #: operations share one ``Tx``, so only what no POS operation changes may go here
    memo: dict[Any, Any]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    async def next_rrn(self) -> int:
        """A number never handed out before (RRN source), durable with this transaction's commit."""
        ...

    async def last_closed(self) -> int | None:
        """The last manually closed business date (YYYYMMDD); holds off a concurrent ``day close``."""
        ...

    def ts(self, value: datetime) -> Any:
        """``value`` as this backend stores timestamps."""
        ...


TxFn = Callable[[Tx], Awaitable[T]]


def as_datetime(value: Any) -> datetime:
    """A stored timestamp (SQLite ISO text, PostgreSQL ``datetime``) as an aware ``datetime``."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    d = datetime.fromisoformat(str(value))
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def date_int(d: date) -> int:
    """``date(2026, 11, 22)`` → ``20261122``."""
    return d.year * 10000 + d.month * 100 + d.day


def int_date(i: int) -> date:
    """``20261122`` → ``date(2026, 11, 22)``."""
    return date(i // 10000, i // 100 % 100, i % 100)


def next_date_int(i: int) -> int:
    return date_int(int_date(i) + timedelta(days=1))


async def open_business_date(tx: Tx, calendar_date: date) -> int:
    """SPEC §6 with manual cut-over: max(calendar business date, last closed + 1)."""
    cal = date_int(calendar_date)
    last = await tx.last_closed()
    if last is not None and last >= cal:
        return next_date_int(last)
    return cal
