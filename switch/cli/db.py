"""``switch db init``: create or migrate the ledger schema (SQLite file or PostgreSQL DSN from the config).

Idempotent: a database already at the latest version is left as it is. The PostgreSQL DSN is never printed
(it may carry a password)."""

from __future__ import annotations

import argparse
import asyncio

from switch.cli import config_from_args
from switch.errors import HandledError
from switch.ledger.dsn import parse_dsn
from switch.ledger.errors import LedgerError
from switch.ledger.migrate import init_database, latest_version


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("db", help="ledger database schema")
    s = p.add_subparsers(dest="db_command", metavar="ACTION")
    s.required = True
    init = s.add_parser("init", parents=[common], help="create or migrate the schema to the current version")
    init.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        dsn = parse_dsn(cfg.database.dsn)
        result = asyncio.run(init_database(dsn))
    except LedgerError as exc:
        raise HandledError(str(exc)) from None
    where = dsn.target if dsn.backend == "sqlite" else "PostgreSQL"
    if result.applied:
        print(
            f"ledger schema ({dsn.backend}, {where}): version {result.before} -> {result.after} "
            f"(applied {', '.join(result.applied)})"
        )
    else:
        print(
            f"ledger schema ({dsn.backend}, {where}): already at version {result.after} "
            f"(latest {latest_version(dsn.backend)})"
        )
    return 0
