"""The balance store: a double-entry ledger on SQLite (embedded default) or PostgreSQL.

``open_store(dsn, *, token_key, program, clock, ...)`` returns a :class:`~switch.ledger.store.LedgerStore`,
which satisfies the engine's ``LedgerPort`` (``switch.pipeline.ports``). The money rules live once in
:mod:`switch.ledger.operations` over the small :class:`~switch.ledger.tx.Tx` interface; :mod:`.sqlite`
(one writer thread, group commit) and :mod:`.postgres` (asyncpg pool, row locks) run them. Schema:
:mod:`.migrate` (``switch db init``). Back office: :mod:`.backoffice`.
"""

from __future__ import annotations

from typing import Any

from switch.config import ProgramConfig
from switch.ledger.backends import open_backend
from switch.ledger.errors import LedgerError, StoreUnavailable
from switch.ledger.operations import Env
from switch.ledger.store import LedgerStore

__all__ = ["LedgerError", "LedgerStore", "StoreUnavailable", "open_store"]


async def open_store(
    dsn: str,
    *,
    token_key: str,
    program: ProgramConfig,
    clock: Any,
    synchronous: str = "FULL",
    group_commit_max: int = 64,
    pool_size: int = 8,
    on_commit: Any = None,
) -> LedgerStore:
    """Open the ledger at ``dsn`` (schema must be current: ``switch db init``). ``clock`` has ``now()``,
    ``business_date()`` and ``tz`` (:class:`switch.ledger.clock.CalendarClock` is the real one).

    ``on_commit(seconds, batch_size, results)`` (SQLite) observes each group commit (metrics, tests).
    """
    name, backend = await open_backend(
        dsn, synchronous=synchronous, group_commit_max=group_commit_max, pool_size=pool_size, on_commit=on_commit
    )
    return LedgerStore(backend, backend_name=name, token_key=token_key, env=Env(program=program, clock=clock))
