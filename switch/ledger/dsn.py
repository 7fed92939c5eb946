"""Ledger DSNs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``postgresql://...``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from switch.ledger.errors import LedgerError

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class Dsn:
    backend: str  # sqlite | postgres
    #: SQLite: the database file; PostgreSQL: the DSN as given (asyncpg understands it)
    target: str

    @property
    def path(self) -> Path:
        return Path(self.target)


def parse_dsn(dsn: str) -> Dsn:
    """Which backend and where; raises :class:`LedgerError` for anything else (the DSN is not echoed: it may
    carry a password)."""
    if dsn.startswith(SQLITE_PREFIX):
        path = dsn[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:" or path.startswith("file:"):
            raise LedgerError("database.dsn: sqlite needs a file path (sqlite:///var/switch.db)")
        return Dsn("sqlite", path)
    if dsn.startswith(POSTGRES_PREFIXES):
        return Dsn("postgres", dsn)
    raise LedgerError("database.dsn: expected sqlite:///PATH or postgresql://...")
