"""Glue shared by the back-office CLI commands: config → store / HSM / calendar, card argument parsing."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from switch.backoffice.ports import BackofficeStore
from switch.backoffice.timeutil import BusinessCalendar
from switch.backoffice.tokens import card_token
from switch.config import SwitchConfig
from switch.errors import HandledError, UsageError
from switch.telemetry.masking import luhn_ok

T = TypeVar("T")

_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def system_now() -> datetime:
    return datetime.now(UTC)


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


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


def with_store(cfg: SwitchConfig, fn: Callable[[BackofficeStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = await open_store(cfg)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def calendar_of(cfg: SwitchConfig) -> BusinessCalendar:
    return BusinessCalendar.from_config(cfg.program)
