"""``switch serve``: run the POS listeners, the HTTP endpoint and the authorization engine."""

from __future__ import annotations

import argparse
import asyncio
import signal

from switch.app import run_async, start_switch
from switch.cli import config_from_args
from switch.config import SwitchConfig, parse_hostport, with_overrides
from switch.errors import ConfigError, HandledError
from switch.ledger.errors import LedgerError
from switch.telemetry.logs import configure_logging


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the switch")
    p.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="PROFILE=HOST:PORT",
        help="listener for a wire profile (cup, iso87); repeatable; replaces the configured ones",
    )
    p.add_argument("--http", metavar="HOST:PORT", help="HTTP address for /healthz and /metrics")
    p.add_argument("--workers", type=int, metavar="N", help="processes sharing the ports (SO_REUSEPORT)")
    # set by the --workers supervisor on its children: bind with SO_REUSEPORT
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def apply_serve_flags(cfg: SwitchConfig, args: argparse.Namespace) -> SwitchConfig:
    if args.listen:
        listen: dict[str, str] = {}
        for item in args.listen:
            profile, sep, addr = item.partition("=")
            if not sep or profile not in ("cup", "iso87"):
                raise ConfigError("--listen", "expected PROFILE=HOST:PORT with PROFILE cup or iso87")
            parse_hostport(addr, "--listen")
            listen[profile] = addr
        cfg = with_overrides(cfg, "server", listen=listen)
    if args.http is not None:
        if args.http:
            parse_hostport(args.http, "--http")
        cfg = with_overrides(cfg, "server", http=args.http)
    return cfg


async def serve(cfg: SwitchConfig, reuse_port: bool = False) -> int:
    try:
        app = await start_switch(cfg, reuse_port=reuse_port)
    except LedgerError as exc:  # e.g. no schema yet: one line naming `switch db init`, exit 1
        raise HandledError(f"balance store: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    cfg = apply_serve_flags(config_from_args(args), args)
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError("--workers", "must be at least 1")
        cfg = with_overrides(cfg, "server", workers=args.workers)
    if cfg.server.workers > 1:
        from switch.server.workers import run_workers

        base: list[str] = []
        for flag in ("config", "db", "hsm"):
            if getattr(args, flag):
                base += [f"--{flag}", getattr(args, flag)]
        return run_workers(cfg, base)
    configure_logging(cfg.logging.level, file=cfg.logging.file)
    return run_async(serve(cfg, reuse_port=args.reuse_port))
