"""``switch`` command line (SPEC §7): ``main(argv) -> exit code`` (0 ok, 1 handled error, 2 usage).

Each subcommand lives in its own module exposing ``add_parser(subparsers, common)``; the parser's ``func``
(``(args) -> int``) runs it. Options every subcommand takes: ``--config``, ``--db``, ``--hsm``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from switch.config import SwitchConfig, load_config, parse_hostport, with_overrides
from switch.errors import ConfigError, HandledError, UsageError

#: subcommand modules, in the order ``--help`` lists them; a module not written yet is skipped
SUBCOMMAND_MODULES = (
    "serve",
    "db",
    "provision",
    "cards",
    "topup",
    "day",
    "clearing",
    "rebates",
    "notify",
    "report",
)

DEFAULT_CONFIG = "config/switch.toml"


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help=f"TOML configuration (default: {DEFAULT_CONFIG} if present)")
    common.add_argument("--db", metavar="DSN", help="sqlite:///path or postgresql://... (overrides database.dsn)")
    common.add_argument("--hsm", metavar="HOST:PORT", help="HSM simulator address (overrides hsm.address)")
    return common


def config_from_args(args: argparse.Namespace) -> SwitchConfig:
    """Load the configuration named by ``--config`` and apply ``--db`` / ``--hsm`` on top (flags win)."""
    path = args.config
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    cfg = load_config(path, os.environ)
    if getattr(args, "db", None):
        if not args.db.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("--db", "expected sqlite:///PATH or postgresql://...")
        cfg = with_overrides(cfg, "database", dsn=args.db)
    if getattr(args, "hsm", None):
        parse_hostport(args.hsm, "--hsm")
        cfg = with_overrides(cfg, "hsm", address=args.hsm)
    return cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switch", description="Union member card acquiring switch")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    common = common_options()
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"switch.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"switch.cli.{name}":
                continue
            raise
        module.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"switch: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, HandledError) as exc:
        print(f"switch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
