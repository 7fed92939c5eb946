"""``switch report card PAN --from --to`` / ``report employer ID --month YYYY-MM`` (CSV or table)."""

from __future__ import annotations

import argparse
from datetime import date

from switch.backoffice.runtime import calendar_of, token_from_arg, with_store
from switch.backoffice.services import card_statement_text, employer_statement_text
from switch.cli import config_from_args
from switch.errors import UsageError


def _date(text: str) -> date:
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected YYYY-MM-DD") from exc


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", help="statements")
    s = p.add_subparsers(dest="report_command", metavar="KIND")
    s.required = True
    c = s.add_parser("card", parents=[common], help="cardholder statement (personal flow)")
    c.add_argument("card", metavar="PAN|TOKEN")
    c.add_argument("--from", dest="start", type=_date, required=True, metavar="YYYY-MM-DD", help="first business date")
    c.add_argument("--to", dest="end", type=_date, required=True, metavar="YYYY-MM-DD", help="last business date")
    c.add_argument("--format", choices=("table", "csv"), default="table")
    c.set_defaults(func=run_card)
    e = s.add_parser("employer", parents=[common], help="employer top-up statement (enterprise flow)")
    e.add_argument("employer_id", metavar="ID")
    e.add_argument("--month", required=True, metavar="YYYY-MM")
    e.add_argument("--format", choices=("table", "csv"), default="table")
    e.set_defaults(func=run_employer)


def run_card(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.end < args.start:
        raise UsageError("--to is before --from")
    token = token_from_arg(args.card, cfg)
    cal = calendar_of(cfg)
    text = with_store(
        cfg, lambda store: card_statement_text(store, token, args.start, args.end, fmt=args.format, tz_local=cal.local)
    )
    print(text, end="")
    return 0


def run_employer(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    cal = calendar_of(cfg)
    text = with_store(
        cfg,
        lambda store: employer_statement_text(store, args.employer_id, args.month, fmt=args.format, tz_local=cal.local),
    )
    print(text, end="")
    return 0
