"""``switch report card PAN --from --to`` / ``report employer ID --month YYYY-MM`` (CSV or table).

``--to`` defaults to the open business date and ``--from`` to the first day of ``--to``'s month; ``--month``
defaults to the open business date's month. ``--out FILE`` writes the report to a file (atomically, owner-only:
statements carry names) instead of stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from switch.backoffice.csvio import AtomicTextWriter
from switch.backoffice.ports import BackofficeStore
from switch.backoffice.runtime import calendar_of, system_now, token_from_arg, with_store
from switch.backoffice.services import card_statement_text, employer_statement_text
from switch.cli import config_from_args
from switch.errors import UsageError


def _date(text: str) -> date:
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected YYYY-MM-DD or YYYYMMDD") from exc


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", help="statements")
    s = p.add_subparsers(dest="report_command", metavar="KIND")
    s.required = True
    c = s.add_parser("card", parents=[common], help="cardholder statement (personal flow)")
    c.add_argument("card", metavar="PAN|TOKEN")
    c.add_argument("--from", dest="start", type=_date, metavar="YYYY-MM-DD", help="first business date")
    c.add_argument("--to", dest="end", type=_date, metavar="YYYY-MM-DD", help="last business date (inclusive)")
    _output_options(c)
    c.set_defaults(func=run_card)
    e = s.add_parser("employer", parents=[common], help="employer top-up statement (enterprise flow)")
    e.add_argument("employer_id", metavar="ID")
    e.add_argument("--month", metavar="YYYY-MM", help="month of business dates (default: the open one's)")
    _output_options(e)
    e.set_defaults(func=run_employer)


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "csv"), default="table")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the report to FILE instead of stdout")


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        print(text, end="")
        return
    with AtomicTextWriter(out) as w:
        w.write(text)
    print(f"report: {out}", file=sys.stderr)


def run_card(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.start and args.end and args.end < args.start:
        raise UsageError("--to is before --from")
    token = token_from_arg(args.card, cfg)
    cal = calendar_of(cfg)

    async def go(store: BackofficeStore) -> str:
        end = args.end or (await store.business_day(system_now())).open_date
        start = args.start or end.replace(day=1)
        if end < start:
            raise UsageError("--to is before --from")
        return await card_statement_text(store, token, start, end, fmt=args.format, tz_local=cal.local)

    _emit(with_store(cfg, go), args.out)
    return 0


def run_employer(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    cal = calendar_of(cfg)

    async def go(store: BackofficeStore) -> str:
        month = args.month or (await store.business_day(system_now())).open_date.strftime("%Y-%m")
        return await employer_statement_text(store, args.employer_id, month, fmt=args.format, tz_local=cal.local)

    _emit(with_store(cfg, go), args.out)
    return 0
