"""``switch rebates run --month YYYY-MM``: credit each card's cashback for that month (SPEC §8); idempotent."""

from __future__ import annotations

import argparse

from switch.backoffice.runtime import system_now, with_store
from switch.backoffice.services import run_rebates
from switch.cli import config_from_args


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rebates", help="monthly cashback")
    s = p.add_subparsers(dest="rebates_command", metavar="ACTION")
    s.required = True
    r = s.add_parser("run", parents=[common], help="credit the cashback of a finished month")
    r.add_argument("--month", required=True, metavar="YYYY-MM")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    summary = with_store(cfg, lambda store: run_rebates(store, month=args.month, now=system_now()))
    print(summary.text())
    return 0
