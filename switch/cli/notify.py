"""``switch notify send``: deliver pending SMS notices (at least once, stable ids) to a file or a webhook."""

from __future__ import annotations

import argparse

from switch.backoffice.gateway import FileGateway, Gateway, HttpGateway
from switch.backoffice.runtime import system_now, with_store
from switch.backoffice.services import send_notices
from switch.cli import config_from_args
from switch.config import SwitchConfig


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("notify", help="SMS notices")
    s = p.add_subparsers(dest="notify_command", metavar="ACTION")
    s.required = True
    r = s.add_parser("send", parents=[common], help="deliver pending SMS notices through the configured gateway")
    r.set_defaults(func=run)


def gateway_of(cfg: SwitchConfig) -> tuple[Gateway, str]:
    if cfg.notify.gateway == "http":
        return HttpGateway(cfg.notify.webhook_url), f"webhook {cfg.notify.webhook_url}"
    return FileGateway(cfg.notify.sms_file), f"file {cfg.notify.sms_file}"


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    gateway, where = gateway_of(cfg)
    sent, pending = with_store(cfg, lambda store: send_notices(store, gateway, now=system_now))
    print(f"notify: {sent} sent via {where}; {pending} pending")
    return 0 if pending == 0 else 1
