"""Open the backend a DSN names: :class:`~switch.ledger.sqlite.SqliteBackend` or
:class:`~switch.ledger.postgres.PostgresBackend` (schema must be current)."""

from __future__ import annotations

from typing import Any

from switch.ledger.dsn import parse_dsn
from switch.ledger.store import Backend


async def open_backend(
    dsn: str,
    *,
    synchronous: str = "FULL",
    group_commit_max: int = 64,
    pool_size: int = 8,
    on_commit: Any = None,
) -> tuple[str, Backend]:
    """``(backend name, opened backend)`` for ``dsn``."""
    d = parse_dsn(dsn)
    if d.backend == "sqlite":
        from switch.ledger.sqlite import SqliteBackend

        sqlite_backend = SqliteBackend(
            d.path, synchronous=synchronous, group_commit_max=group_commit_max, on_commit=on_commit
        )
        sqlite_backend.open()
        return "sqlite", sqlite_backend
    from switch.ledger.postgres import PostgresBackend

    pg_backend = PostgresBackend(d.target, pool_size=pool_size, group_commit_max=group_commit_max)
    await pg_backend.open()
    return "postgres", pg_backend
