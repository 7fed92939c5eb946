"""Glue shared by the back-office CLI commands: config → store / HSM / calendar, card argument parsing, logging
and the mapping of expected failures (files, database) to one-line errors (exit 1).

Operator commands keep stdout for their result (a summary line, a report, the closed business date) so that
scripts can use it; their JSON log lines (SPEC §9 events such as ``clearing_written``, masked like the switch's)
go to ``logging.file`` when one is configured, else to stderr, next to the progress display.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import structlog

from switch.backoffice.ports import BackofficeStore
from switch.backoffice.timeutil import BusinessCalendar
from switch.backoffice.tokens import card_token
from switch.config import SwitchConfig
from switch.errors import HandledError, UsageError
from switch.ledger.errors import LedgerError
from switch.telemetry.logs import configure_logging
from switch.telemetry.masking import luhn_ok

T = TypeVar("T")

_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def system_now() -> datetime:
    return datetime.now(UTC)


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


def default_out(input_path: Path, what: str) -> Path:
    """``--out`` when not given: next to the input, ``ORDERS.csv`` → ``ORDERS.results.csv``."""
    return input_path.with_name(f"{input_path.stem}.{what}.csv")


def operator_name(args: argparse.Namespace) -> str:
    name = getattr(args, "operator", None) or os.environ.get("USER") or os.environ.get("LOGNAME") or "operator"
    return str(name)[:64]


def token_from_arg(value: str, cfg: SwitchConfig) -> str:
    """A PAN (Luhn-checked) or a card token (64 lowercase hex) given on the command line → token."""
    v = value.strip()
    if _TOKEN.match(v):
        return v
    if v.isdigit() and 13 <= len(v) <= 19 and luhn_ok(v):
        return card_token(v, cfg.security.pan_token_key)
    raise UsageError("card: expected a PAN (13-19 digits, Luhn) or a 64-hex card token")


async def open_store(cfg: SwitchConfig) -> BackofficeStore:
    from switch.ledger.backoffice import open_backoffice_store

    try:
        return await open_backoffice_store(cfg.database.dsn, calendar=calendar_of(cfg))
    except HandledError:
        raise
    except (OSError, ConnectionError) as exc:
        raise HandledError(f"database unavailable: {type(exc).__name__}") from exc


def setup_logging(cfg: SwitchConfig) -> None:
    """JSON log lines (redacted) to ``logging.file`` or stderr, unless the process configured logging already
    (a test session, or a host program embedding the CLI)."""
    if not structlog.is_configured():
        configure_logging(cfg.logging.level, stream=sys.stderr, file=cfg.logging.file)


def os_error_text(exc: OSError) -> str:
    """``No space left on device: var/clearing/.CLR_20261122.txt.tmp``: what failed and where (paths only)."""
    what = exc.strerror or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what


def with_store(cfg: SwitchConfig, fn: Callable[[BackofficeStore], Awaitable[T]]) -> T:
    """Run ``fn`` over an opened back-office store (closed afterwards), in a fresh event loop.

    File-system errors and ledger errors that escape ``fn`` become one-line ``HandledError`` exceptions.
    """
    setup_logging(cfg)

    async def main() -> T:
        store = await open_store(cfg)
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except OSError as exc:
        raise HandledError(os_error_text(exc)) from None
    except LedgerError as exc:
        raise HandledError(str(exc)) from None


def calendar_of(cfg: SwitchConfig) -> BusinessCalendar:
    return BusinessCalendar.from_config(cfg.program)
