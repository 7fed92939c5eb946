"""``switch clearing run [--date YYYYMMDD]``: write the clearing file of a closed business date (SPEC §8)."""

from __future__ import annotations

import argparse
from pathlib import Path

from switch.backoffice.runtime import add_progress_flag, calendar_of, system_now, with_store
from switch.clearing.run import parse_date_arg, run_clearing
from switch.cli import config_from_args
from switch.errors import UsageError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("clearing", help="clearing files")
    s = p.add_subparsers(dest="clearing_command", metavar="ACTION")
    s.required = True
    r = s.add_parser("run", parents=[common], help="write the clearing file of a closed business date")
    r.add_argument("--date", metavar="YYYYMMDD", help="business date (default: the latest closed one)")
    add_progress_flag(r)
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    day = None
    if args.date:
        try:
            day = parse_date_arg(args.date)
        except ValueError as exc:
            raise UsageError("--date: expected YYYYMMDD") from exc
    outcome = with_store(
        cfg,
        lambda store: run_clearing(
            store,
            clearing_dir=Path(cfg.files.clearing_dir),
            program_id=cfg.program.program_id,
            calendar=calendar_of(cfg),
            now=system_now,
            business_date=day,
            progress=not args.no_progress,
        ),
    )
    print(outcome.text())
    return 0
