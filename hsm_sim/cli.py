"""``hsm-sim`` command line.

- ``hsm-sim serve [--config PATH] [--listen HOST:PORT]``: run the simulator (loopback by default). Logs a
  ``test_device`` warning when the LMK is the public test set, one ``listening`` line with ``host`` and
  ``port``, and stops gracefully on SIGTERM/SIGINT (exit 0).
- ``hsm-sim keys import-clear [--config PATH]``: the key-ceremony console (SPEC §10b). Clear keys are read
  from **stdin**, one JSON object a line (``{"type": "TMK", "clear": "<32 hex>"}``, optional ``"scheme"``),
  never from argv; one JSON line per key is printed: ``{"type", "key_lmk", "kcv"}`` (kcv 16H). Errors name
  the input line, never the key.

Exit codes: 0 success, 1 handled error (one line on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TextIO

from hsm_sim.config import ConfigError, HsmSimConfig, load_config, parse_hostport
from hsm_sim.lmk import Lmk, LmkError
from hsm_sim.server import HsmSimServer, load_lmk
from switch.crypto.des import has_odd_parity, kcv
from switch.telemetry.logs import configure_logging

#: key type names the console accepts (or a 3-digit key type code)
CONSOLE_KEY_TYPES = {
    "ZMK": "000",
    "ZPK": "001",
    "TMK": "002",
    "TPK": "002",
    "PVK": "002",
    "TAK": "003",
    "ZAK": "008",
    "BDK": "009",
    "ZEK": "00A",
    "TEK": "00B",
    "TDK": "00B",
    "CVK": "402",
}
_SCHEME_BY_LENGTH = {8: "Z", 16: "U", 24: "T"}


class ConsoleError(Exception):
    """A bad console input line (the text names the line, never the key)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hsm-sim", description="Thales payShield-style HSM simulator (test device)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    serve = sub.add_parser("serve", help="run the simulator")
    serve.add_argument("--config", metavar="PATH", help="config/hsm.toml")
    serve.add_argument("--listen", metavar="HOST:PORT", help="listening address (port 0 = ephemeral)")
    keys = sub.add_parser("keys", help="key ceremony console")
    ks = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    imp = ks.add_parser("import-clear", help="clear keys (JSON lines on stdin) -> keys under the LMK")
    imp.add_argument("--config", metavar="PATH", help="config/hsm.toml (its LMK; default: the test LMK)")
    return p


def import_clear(lmk: Lmk, lines: TextIO, out: TextIO) -> int:
    """Encrypt each clear key read from ``lines`` under ``lmk``; print one JSON result a line."""
    count = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise ConsoleError(f"line {n}: not a JSON object") from None
        if not isinstance(item, dict) or not isinstance(item.get("clear"), str):
            raise ConsoleError(f'line {n}: expected {{"type": ..., "clear": ...}}')
        name = str(item.get("type", "")).upper()
        key_type = CONSOLE_KEY_TYPES.get(name, name)
        try:
            clear = bytes.fromhex(item["clear"])
        except ValueError:
            raise ConsoleError(f"line {n}: key is not hex") from None
        scheme = str(item.get("scheme") or _SCHEME_BY_LENGTH.get(len(clear), ""))
        if len(clear) not in _SCHEME_BY_LENGTH:
            raise ConsoleError(f"line {n}: key must be 16, 32 or 48 hex characters")
        if not has_odd_parity(clear):
            raise ConsoleError(f"line {n}: key does not have odd parity")
        try:
            key_lmk = lmk.encrypt_key(key_type, clear, scheme)
        except LmkError as exc:
            raise ConsoleError(f"line {n}: {exc}") from None
        out.write(json.dumps({"type": name, "key_lmk": key_lmk, "kcv": kcv(clear, 8).hex().upper()}) + "\n")
        out.flush()
        count += 1
    return count


def _config(path: str | None) -> HsmSimConfig:
    import os

    return load_config(path, os.environ)


async def _serve(config: HsmSimConfig) -> None:
    server = HsmSimServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def _run(coro_config: HsmSimConfig) -> None:
    try:
        import uvloop

        uvloop.run(_serve(coro_config))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(_serve(coro_config))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        config = _config(args.config)
        if args.command == "serve":
            if args.listen:
                parse_hostport(args.listen, "--listen")
                config = replace(config, server=replace(config.server, listen=args.listen))
            configure_logging(config.logging.level, file=config.logging.file)
            _run(config)
            return 0
        import_clear(load_lmk(config), sys.stdin, sys.stdout)
        return 0
    except (ConfigError, ConsoleError, LmkError, OSError) as exc:
        print(f"hsm-sim: {exc}", file=sys.stderr)
        return 1
