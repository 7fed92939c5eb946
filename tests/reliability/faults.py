"""Fault injectors shared by ``tests/reliability/test_faults.py`` and ``make soak``'s fault part.

- HSM: ``HSM_FAULTS`` = (name, inject, clear): slow (latency beyond the switch's HSM timeout), erroring
  (payShield error 13 to every command), gone (the simulator stopped, then a new one on the same port);
- PostgreSQL outage: :func:`terminate_backends` terminates the switch's backends (found by their
  ``application_name``) again and again for a while;
- slow database: :func:`hold_sqlite_write_lock` (another writer holds SQLite's write lock) and
  :func:`hold_pg_journal_lock` (``LOCK TABLE journal IN EXCLUSIVE MODE``), each for ``seconds``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.reliability.world import World

Fault = tuple[str, Callable[[World], Awaitable[None]], Callable[[World], Awaitable[None]]]


async def _slow(world: World) -> None:
    world.hsm.faults.latency_ms = 1200  # beyond the switch's HSM timeout (400 ms in the tests and the soak)


async def _erroring(world: World) -> None:
    world.hsm.faults.error_rate = 1.0  # payShield error 13 to every command


async def _clear(world: World) -> None:
    world.hsm.faults.clear()


HSM_FAULTS: tuple[Fault, ...] = (
    ("slow", _slow, _clear),
    ("erroring", _erroring, _clear),
    ("gone", World.hsm_down, World.hsm_up),
)


async def terminate_backends(app: str, seconds: float) -> int:
    """A real outage of the switch's PostgreSQL connections: its backends terminated again and again."""
    import asyncpg

    from tests.support.ledger_db import PG_BASE

    admin = await asyncpg.connect(PG_BASE)
    killed = 0
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app
            )
            killed += sum(1 for r in rows if r[0])
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    return killed


async def hold_sqlite_write_lock(world: World, seconds: float, held: asyncio.Event) -> None:
    """Another process-like writer (an operator's bulk job) holding SQLite's write lock for a while."""
    import sqlite3

    con = sqlite3.connect(
        world.dsn.removeprefix("sqlite:///"), timeout=30, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(con.execute, "BEGIN IMMEDIATE")
        held.set()
        await asyncio.sleep(seconds)
        con.execute("COMMIT")
    finally:
        con.close()


async def hold_pg_journal_lock(world: World, seconds: float, held: asyncio.Event) -> None:
    import asyncpg

    con = await asyncpg.connect(world.dsn)
    try:
        async with con.transaction():
            await con.execute("LOCK TABLE journal IN EXCLUSIVE MODE")
            held.set()
            await asyncio.sleep(seconds)
    finally:
        await con.close()
