"""End-to-end fixtures: a whole switch (real HSM simulator, real ledger) on ephemeral ports.

``stack`` runs each test on both ledger backends (SQLite file, PostgreSQL schema); the PostgreSQL run is
skipped with a reason when no server can be reached. After each test the ledger invariants are checked.
Until the real services exist in the tree the engine runs on in-memory fakes (``backend == "fake"``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import Stack


def _backends() -> list[Any]:
    try:
        import tests.support.realstack as rs
    except ImportError:
        return ["fake"]
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if rs.REAL else ["fake"]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _l, ctx: errors.append(ctx))
    yield errors
    assert not errors, [str(e.get("message")) + repr(e.get("exception")) for e in errors]


@pytest.fixture(params=_backends())
async def stack(request: pytest.FixtureRequest, tmp_path: Path, loop_errors: object) -> AsyncIterator[Stack]:
    program: dict[str, Any] = getattr(request, "param_program", {})
    marker = request.node.get_closest_marker("program")
    if marker is not None:
        program = dict(marker.kwargs)
    async with Stack.start(tmp_path, backend=request.param, **program) as s:
        yield s
        await s.check_invariants()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "program(**settings): [program] settings for the e2e stack")
