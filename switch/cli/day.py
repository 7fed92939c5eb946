"""``switch day close``: manual cut-over (日切, SPEC §6/§7); prints the closed business date.

stdout carries exactly the closed date (``YYYYMMDD``, the form ``clearing run --date`` takes), so a script can
chain ``switch clearing run --date "$(switch day close)"``; the sentence for people goes to stderr.
"""

from __future__ import annotations

import argparse
import sys

from switch.backoffice.runtime import system_now, with_store
from switch.backoffice.services import close_day
from switch.clearing.records import yyyymmdd
from switch.cli import config_from_args


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("day", help="business date (cut-over)")
    s = p.add_subparsers(dest="day_command", metavar="ACTION")
    s.required = True
    close = s.add_parser("close", parents=[common], help="close the open business date now and open the next")
    close.set_defaults(func=run_close)
    show = s.add_parser("show", parents=[common], help="print the open and the last closed business date")
    show.set_defaults(func=run_show)


def run_close(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    closed, opened = with_store(cfg, lambda store: close_day(store, system_now()))
    print(yyyymmdd(closed))
    print(f"switch: business date {yyyymmdd(closed)} closed; {yyyymmdd(opened)} is open", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    day = with_store(cfg, lambda store: store.business_day(system_now()))
    last = yyyymmdd(day.last_closed) if day.last_closed else "-"
    print(f"open business date {yyyymmdd(day.open_date)}; last closed {last}")
    return 0
