"""Versioned schema migrations (``switch db init``).

Migrations are SQL files ``migrations/<backend>/NNNN_name.sql``, applied in order, each in its own
transaction together with its ``schema_version`` row, so an interrupted run leaves the database at the last
complete version and the next run continues from there. Concurrent runs are serialized (SQLite: the write
lock; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from switch.ledger.dsn import Dsn, parse_dsn
from switch.ledger.errors import LedgerError, StoreUnavailable

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
#: advisory lock id for migrations on PostgreSQL ("LEDGERMI")
_PG_MIGRATION_LOCK = 0x4C45444745524D49


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class MigrationResult:
    backend: str
    before: int
    after: int
    applied: tuple[str, ...]


def migrations(backend: str) -> list[Migration]:
    """The migrations shipped for ``backend`` (``sqlite`` | ``postgres``), in version order."""
    folder = resources.files("switch.ledger").joinpath("migrations", backend)
    out = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda x: x.version)
    if [x.version for x in out] != list(range(1, len(out) + 1)):
        raise LedgerError(f"migrations/{backend}: versions must be 1..N without gaps")
    return out


def latest_version(backend: str) -> int:
    return len(migrations(backend))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ SQLite
def connect_sqlite(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, foreign keys on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, cached_statements=512)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout = 10000")
        con.execute("PRAGMA journal_mode = WAL")
        con.execute(f"PRAGMA synchronous = {_synchronous(synchronous)}")
        con.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open the SQLite ledger: {type(exc).__name__}") from None
    return con


def _synchronous(value: str) -> str:
    v = value.upper()
    if v not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise LedgerError("database.sqlite_synchronous: expected FULL or NORMAL")
    return v


def sqlite_version(con: sqlite3.Connection) -> int:
    row = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if row is None:
        return 0
    return int(con.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])


def migrate_sqlite(path: Path) -> MigrationResult:
    con = connect_sqlite(path)
    try:
        con.execute(_VERSION_TABLE)
        before = sqlite_version(con)
        applied = []
        for mig in migrations("sqlite"):
            if mig.version <= before:
                continue
            # one script = one transaction: BEGIN IMMEDIATE takes the write lock, so concurrent runs queue
            con.execute("BEGIN IMMEDIATE")
            try:
                if sqlite_version(con) >= mig.version:  # another run applied it while we waited
                    con.execute("ROLLBACK")
                    continue
                for stmt in _statements(mig.sql):
                    con.execute(stmt)
                con.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (mig.version, mig.name, _now()),
                )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            applied.append(f"{mig.version:04d}_{mig.name}")
        return MigrationResult("sqlite", before, sqlite_version(con), tuple(applied))
    except sqlite3.Error as exc:
        raise LedgerError(f"migration failed: {exc}") from None
    finally:
        con.close()


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our statements' literals)."""
    lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# ------------------------------------------------------------------------------------------------ PostgreSQL
async def pg_version(con: object) -> int:
    exists = await con.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")  # type: ignore[attr-defined]
    if not exists:
        return 0
    return int(await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))  # type: ignore[attr-defined]


async def migrate_postgres(dsn: str) -> MigrationResult:
    import asyncpg

    try:
        con = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}") from None
    try:
        async with con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", _PG_MIGRATION_LOCK)
            await con.execute(_VERSION_TABLE)
            before = await pg_version(con)
        applied = []
        for mig in migrations("postgres"):
            async with con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock($1)", _PG_MIGRATION_LOCK)
                if await pg_version(con) >= mig.version:
                    continue
                await con.execute(mig.sql)
                await con.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    _now(),
                )
            applied.append(f"{mig.version:04d}_{mig.name}")
        return MigrationResult("postgres", before, await pg_version(con), tuple(applied))
    except asyncpg.PostgresError as exc:
        raise LedgerError(f"migration failed: {type(exc).__name__}: {exc}") from None
    finally:
        await con.close()


async def init_database(dsn: str | Dsn) -> MigrationResult:
    """Create or migrate the schema of ``dsn`` to the latest version."""
    d = parse_dsn(dsn) if isinstance(dsn, str) else dsn
    if d.backend == "sqlite":
        return migrate_sqlite(d.path)
    return await migrate_postgres(d.target)
