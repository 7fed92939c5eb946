"""``switch topup import ORDERS.csv --out RESULTS.csv``: employer bulk top-ups (SPEC §7)."""

from __future__ import annotations

import argparse
from pathlib import Path

from switch.backoffice.runtime import add_progress_flag, calendar_of, default_out, system_now, with_store
from switch.backoffice.topup import import_topups
from switch.cli import config_from_args


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("topup", help="employer bulk top-ups")
    s = p.add_subparsers(dest="topup_command", metavar="ACTION")
    s.required = True
    imp = s.add_parser("import", parents=[common], help="apply a file of top-up orders (idempotent by order id)")
    imp.add_argument("orders", type=Path, metavar="ORDERS.csv", help="order_id,employer_id,pan,amount,item,note")
    imp.add_argument(
        "--out", type=Path, metavar="RESULTS.csv", help="per-line result file (default: ORDERS.results.csv)"
    )
    add_progress_flag(imp)
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = args.out or default_out(args.orders, "results")
    summary = with_store(
        cfg,
        lambda store: import_topups(
            store,
            orders_path=args.orders,
            out_path=out,
            token_key=cfg.security.pan_token_key,
            balance_cap=cfg.program.balance_cap,
            calendar=calendar_of(cfg),
            now=system_now,
            progress=not args.no_progress,
        ),
    )
    print(summary.text())
    print(f"results: {out}")
    return 0
