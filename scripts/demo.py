"""``make demo``: the whole program on one machine, from a fresh clone, in about a minute.

1. start the HSM simulator and the switch (SQLite under ``var/demo/``) as real processes on free ports,
   reading their ``event=listening`` lines;
2. ``switch db init`` and ``switch provision config/demo.toml`` (merchants incl. a service hall, terminals
   with their TMKs loaded through the HSM ceremony, cards with their PINs turned into offsets in the HSM);
3. one purchase from the command line, with its receipt, as a cashier would do it;
4. a ~15 s mixed load from the terminal simulator with a live progress display, and its report;
5. ``switch day close`` and ``switch clearing run``: the day's clearing file;
6. SIGTERM to both servers, checking that they stop cleanly (exit 0).

Every step says what it does; a step that fails stops the demo with one line naming it (and the log file
to read), and the servers are always stopped. Server logs go to ``var/demo/*.log``. Options:
``--duration S``, ``--terminals N``, ``--rate TPS``, ``--var DIR`` (default ``var/demo``; only a directory the
demo made is ever wiped), ``--keep`` (do not wipe it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VAR = Path("var/demo")
#: written into the demo's directory: only a directory holding it is ever wiped
MARKER = ".demo-run"
PROVISIONING = Path("config/demo.toml")
PY = sys.executable


class DemoError(Exception):
    """A step failed; the text says which and where to look."""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


class Server:
    """A server subprocess whose stdout (JSON log lines) is copied to a log file by a thread that also
    collects the ``listening`` events."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.listening: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._log: IO[str] = self.log_path.open("w", encoding="utf-8")
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        except OSError as exc:
            raise DemoError(f"cannot start {name}: {exc.strerror}") from None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "listening":
                with self._cond:
                    self.listening.append(event)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def last_line(self) -> str:
        """The last line the server wrote (usually why it stopped)."""
        try:
            lines = self.log_path.read_text(encoding="utf-8").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no output"

    def wait_listening(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.listening) < count:
                if self.proc.poll() is not None:
                    self._thread.join(5)
                    raise DemoError(
                        f"{self.name} exited with {self.proc.returncode} before listening: {self.last_line()}"
                        f" (see {self.log_path})"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoError(f"{self.name} did not report listening in {timeout_s:.0f} s (see {self.log_path})")
                self._cond.wait(min(left, 0.5))
            return list(self.listening)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not stop. Returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self._thread.join(5)
        self._log.close()
        return self.proc.returncode


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+\s*\] ")


def result_lines(output: str) -> str:
    """A command's own output without the structured log lines it also printed."""
    lines = [x for x in output.strip().splitlines() if not _LOG_LINE.match(x) and not x.startswith("{")]
    return "\n   ".join(lines)


def run(step: str, argv: list[str], env: dict[str, str], *, capture: bool = True) -> str:
    """Run a command; its output is returned (or shown live with ``capture=False``); failure stops the demo."""
    try:
        done = subprocess.run(argv, check=False, env=env, text=True, capture_output=capture, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoError(f"{step}: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip().splitlines() if capture else []
        raise DemoError(f"{step} failed (exit {done.returncode})" + (f": {detail[-1]}" if detail else ""))
    return done.stdout or ""


def require_modules() -> None:
    """Each part of the product must be in the tree; say which is missing instead of a traceback."""
    import importlib

    for module, what in (
        ("hsm_sim.cli", "the HSM simulator (hsm_sim)"),
        ("switch.cli", "the switch CLI"),
        ("switch.ledger", "the ledger"),
        ("terminal_sim.cli", "the terminal simulator"),
    ):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise DemoError(f"{what} is not in this tree yet ({exc.name} missing)") from None
    from switch.cli import build_parser

    sub = build_parser()._subparsers
    commands = set(sub._group_actions[0].choices) if sub is not None else set()  # type: ignore[arg-type]
    for cmd in ("serve", "db", "provision", "day", "clearing"):
        if cmd not in commands:
            raise DemoError(f"`switch {cmd}` is not in this tree yet")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the whole program: HSM, switch, terminals, clearing.")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of load (default 15)")
    ap.add_argument("--terminals", type=int, default=24, help="simulated terminals (default 24)")
    ap.add_argument("--rate", type=float, default=300.0, help="total TPS of the load (default 300)")
    ap.add_argument("--keep", action="store_true", help="do not wipe the demo directory from the last run")
    ap.add_argument("--var", type=Path, default=DEFAULT_VAR, help=f"demo directory (default {DEFAULT_VAR})")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    servers: list[Server] = []
    var = args.var
    try:
        require_modules()
        if var.exists() and not args.keep:
            if not (var / MARKER).exists() and any(var.iterdir()):
                raise DemoError(f"{var} is not empty and was not made by the demo: not wiping it")
            shutil.rmtree(var)
        var.mkdir(parents=True, exist_ok=True)
        (var / MARKER).touch()
        env = dict(os.environ)
        env.update(
            SWITCH_DATABASE_DSN=f"sqlite:///{var / 'switch.db'}",
            SWITCH_FILES_VAR_DIR=str(var),
            SWITCH_FILES_CLEARING_DIR=str(var / "clearing"),
            SWITCH_NOTIFY_SMS_FILE=str(var / "sms.jsonl"),
            HSM_PIN_MAILER_FILE=str(var / "pin_mailers.jsonl"),
            PYTHONUNBUFFERED="1",
        )

        say("starting the HSM simulator (payShield-style, test LMK)")
        hsm_argv = [PY, "-m", "hsm_sim", "serve", "--config", "config/hsm.toml", "--listen", "127.0.0.1:0"]
        hsm = Server("hsm", hsm_argv, env, var)
        servers.append(hsm)
        hsm_port = int(hsm.wait_listening(1)[0]["port"])
        env["SWITCH_HSM_ADDRESS"] = f"127.0.0.1:{hsm_port}"
        print(f"   HSM simulator on 127.0.0.1:{hsm_port} (log {hsm.log_path})")

        say(f"creating the ledger ({var / 'switch.db'}) and provisioning {PROVISIONING}")
        print("   " + result_lines(run("switch db init", [PY, "-m", "switch", "db", "init"], env)))
        print("   " + result_lines(run("switch provision", [PY, "-m", "switch", "provision", str(PROVISIONING)], env)))

        say("starting the switch")
        listen = ["--listen", "cup=127.0.0.1:0", "--listen", "iso87=127.0.0.1:0", "--http", "127.0.0.1:0"]
        sw = Server("switch", [PY, "-m", "switch", "serve", *listen], env, var)
        servers.append(sw)
        by = {e.get("profile"): e for e in sw.wait_listening(3)}
        cup = int(by["cup"]["port"])
        print(
            f"   cup 127.0.0.1:{cup}, iso87 127.0.0.1:{by['iso87']['port']}, "
            f"metrics http://127.0.0.1:{by['http']['port']}/metrics (log {sw.log_path})"
        )

        sim = [
            PY,
            "-m",
            "terminal_sim",
            "--switch",
            f"127.0.0.1:{cup}",
            "--keys",
            str(PROVISIONING),
            "--state",
            str(var / "terminals"),
        ]
        say("a cashier's purchase of 88.00 at 羊城西饼, with its receipt")
        run("terminal-sim purchase", [*sim, "purchase", "--amount", "88.00", "--expect", "00"], env, capture=False)

        say(
            f"{args.duration:.0f} s of mixed load: {args.terminals} terminals, {args.rate:.0f} TPS "
            "(purchases, balance inquiries, voids, refunds, top-ups at the service hall)"
        )
        run(
            "terminal-sim load",
            [
                *sim,
                "load",
                "--terminals",
                str(args.terminals),
                "--duration",
                str(args.duration),
                "--rate",
                str(args.rate),
                "--mix",
                "purchase=75,balance=12,void=4,refund=3,topup=6",
                "--json",
                str(var / "load.json"),
                "--progress",
                "always",  # in place on a terminal, a line every 2 s otherwise (CI logs)
            ],
            env,
            capture=False,
        )

        say("closing the business date and writing the clearing file")
        print("   " + result_lines(run("switch day close", [PY, "-m", "switch", "day", "close"], env)))
        clearing = [PY, "-m", "switch", "clearing", "run", "--no-progress"]
        print("   " + result_lines(run("switch clearing run", clearing, env)))
        files = sorted((var / "clearing").glob("CLR_*.txt"))
        if not files:
            raise DemoError(f"no clearing file in {var / 'clearing'}")
        lines = files[-1].read_text(encoding="utf-8").splitlines()
        print(f"   {files[-1]}: {len(lines)} lines; first records and the trailer:")
        for line in [*lines[:3], "   ...", *[x for x in lines if x.startswith("M|")], lines[-1]]:
            print(f"     {line}")
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130
    finally:
        if servers:
            say("stopping the servers (SIGTERM)")
        failed = []
        for server in reversed(servers):
            code = server.stop()
            print(f"   {server.name}: " + ("killed after not stopping" if code is None else f"exit {code}"))
            if code != 0:
                failed.append(server.name)
    if failed:
        print(f"demo: {', '.join(failed)} did not stop cleanly (see {var}/*.log)", file=sys.stderr)
        return 1
    say(f"done: load report {var / 'load.json'}, clearing file in {var / 'clearing'}, logs in {var}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
