"""``terminal-sim`` command line (SPEC §10): ``main(argv) -> exit code`` (0 ok, 1 mismatch or handled
error with a one-line message, 2 usage).

Common options (before or after the subcommand): ``--switch HOST:PORT``, ``--profile cup|iso87``,
``--keys FILE.toml`` (a SPEC §7 provisioning file: terminals with clear TMKs, cards with PINs),
``--state DIR`` (terminal state files, owner-only), ``--timeout S``.

- ``signon|signoff|echo|balance|purchase|void|refund|topup|pinchange|settle``: one transaction, with the
  terminal's state kept in ``DIR/<TID>.json``; prints the receipt. A declined transaction is still a
  completed one (exit 0) unless ``--expect RC`` says otherwise; no reply, a bad reply MAC or bad keys → 1.
- ``run SCENARIO.toml``: scripted steps with expectations (:mod:`terminal_sim.scenario`).
- ``load``: the load generator (:mod:`terminal_sim.load`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from switch.iso.profiles import PROFILES
from switch.rc import RC
from terminal_sim.client import Link
from terminal_sim.keys import KeysFile, KeysFileError, TerminalKey, TestCard, load_keys
from terminal_sim.money import format_yuan, parse_amount
from terminal_sim.receipt import format_receipt, rc_text
from terminal_sim.session import Session, SessionError, describe_no_reply
from terminal_sim.state import Forward, JournalEntry, StateError, StateStore
from terminal_sim.terminal import Answer, Card, KeyCheckError, Request, Terminal

DEFAULT_KEYS = Path("config/demo.toml")
DEFAULT_STATE = Path("var/terminal-sim")
DEFAULT_PORTS = {"cup": 8583, "iso87": 8584}
SINGLE = ("signon", "signoff", "echo", "balance", "purchase", "void", "refund", "topup", "pinchange", "settle")


class UsageError(Exception):
    """Bad or missing options (exit 2)."""


class HandledError(Exception):
    """An error reported in one line (exit 1)."""


# ---------------------------------------------------------------------------------------------- options


def _common() -> argparse.ArgumentParser:
    """Common options; SUPPRESS defaults so they may come before or after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    s = argparse.SUPPRESS
    p.add_argument(
        "--switch", metavar="HOST:PORT", default=s, help="switch address (default 127.0.0.1:8583 cup, :8584 iso87)"
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default=s, help="wire profile (default cup)")
    p.add_argument(
        "--keys",
        metavar="FILE.toml",
        type=Path,
        default=s,
        help=f"provisioning file with TIDs, clear TMKs and test cards (default {DEFAULT_KEYS})",
    )
    p.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        default=s,
        help=f"terminal state directory, owner-only (default {DEFAULT_STATE})",
    )
    p.add_argument("--timeout", metavar="S", type=float, default=s, help="reply timeout in seconds (default 10)")
    return p


def opt(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def profile_of(args: argparse.Namespace) -> str:
    return str(opt(args, "profile", "cup"))


def switch_address(args: argparse.Namespace) -> tuple[str, int]:
    text = opt(args, "switch")
    if text is None:
        return "127.0.0.1", DEFAULT_PORTS[profile_of(args)]
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError("--switch: expected HOST:PORT")
    return host, int(port)


def keys_of(args: argparse.Namespace) -> KeysFile:
    path = opt(args, "keys")
    if path is None:
        if not DEFAULT_KEYS.exists():
            raise UsageError("--keys FILE.toml is required (terminals' TMKs and test cards)")
        path = DEFAULT_KEYS
    return load_keys(Path(path))


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return int(uvloop.run(coro))


# ------------------------------------------------------------------------------------ single transactions


def _add_single(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    helps = {
        "signon": "sign on: working keys from field 62 (KCVs checked), the batch from 60.2",
        "signoff": "sign off",
        "echo": "echo test",
        "balance": "balance inquiry (PIN)",
        "purchase": "purchase (PIN)",
        "void": "void a purchase of the open batch (default: the last one)",
        "refund": "refund advice against an earlier purchase (default: the last one)",
        "topup": "cash top-up (service-hall terminals)",
        "pinchange": "PIN change / card activation",
        "settle": "batch settlement with the terminal's totals",
    }
    for name in SINGLE:
        p = sub.add_parser(name, parents=[common], help=helps[name])
        p.add_argument("--tid", help="terminal ID (default: the first suitable terminal of the keys file)")
        p.add_argument("--expect", metavar="RC", help="exit 1 unless the answer carries this response code")
        if name == "signon":
            p.add_argument("--nmic", choices=("003", "004"), default="004", help="60.3: 003 (PIK+MAK) or 004 (+TDK)")
        if name in ("balance", "purchase", "void", "refund", "topup", "pinchange"):
            p.add_argument("--pan", help="card number (default: the first active card of the keys file)")
            p.add_argument("--expiry", metavar="YYMM", help="card expiry (default: from the keys file)")
            p.add_argument("--manual", action="store_true", help="key the PAN in (fields 2/14) instead of swiping")
        if name in ("balance", "purchase", "void", "pinchange"):
            p.add_argument("--pin", help="PIN typed by the cardholder (default: from the keys file)")
        if name in ("purchase", "refund", "topup", "void"):
            p.add_argument("--amount", help="fen (10000) or yuan (100.00)")
        if name in ("void", "refund"):
            p.add_argument("--orig-stan", metavar="STAN", help="original trace number")
            p.add_argument("--rrn", help="original reference number (37)")
            p.add_argument("--auth", help="original auth code (38) when the original is not in the journal")
            p.add_argument("--orig-batch", metavar="BATCH", help="original batch when not in the journal")
        if name == "refund":
            p.add_argument("--orig-date", metavar="MMDD", help="original date when not in the journal")
        if name == "pinchange":
            p.add_argument("--new-pin", required=True, help="the new PIN")
        p.set_defaults(func=_single, kind=name)


def _pick_terminal(keys: KeysFile, tid: str | None, kind: str) -> TerminalKey:
    if tid:
        t = keys.terminal(tid)
    else:
        wanted = "service_hall" if kind == "topup" else "pos"
        usable = [t for t in keys.terminals if t.tmk is not None]
        matching = [t for t in usable if t.kind == wanted] or usable
        if not matching:
            raise HandledError("no terminal with a clear TMK in the keys file")
        t = matching[0]
    if t.tmk is None:
        raise HandledError(f"terminal {t.tid} has no clear TMK in the keys file (only tmk_lmk)")
    return t


def _pick_card(args: argparse.Namespace, keys: KeysFile) -> Card:
    pan = opt(args, "pan")
    if pan:
        if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
            raise UsageError("--pan: expected 12 to 19 digits")
        known = keys.card(pan) or TestCard(pan)
    else:
        actives = [c for c in keys.cards if c.status == "active" and c.pin]
        if not actives:
            raise UsageError("--pan is required (no active card with a PIN in the keys file)")
        known = actives[0]
    pin = opt(args, "pin") or known.pin
    return Card(known.pan, opt(args, "expiry") or known.expiry, pin)


def _optional_amount(args: argparse.Namespace) -> int | None:
    text = opt(args, "amount")
    if text is None:
        return None
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise UsageError(f"--amount: {exc}") from None


def _amount(args: argparse.Namespace) -> int:
    amount = _optional_amount(args)
    if amount is None:
        raise UsageError("--amount is required")
    return amount


def _original(args: argparse.Namespace, term: Terminal, kind: str) -> JournalEntry:
    state = term.state
    stan, rrn = opt(args, "orig_stan"), opt(args, "rrn")
    entry = state.find(stan=stan or "", rrn=rrn or "") if (stan or rrn) else None
    if entry is None and not (stan or rrn):
        candidates = [e for e in (*state.history, *state.journal) if e.kind == "purchase"]
        if kind == "void":
            candidates = [e for e in state.journal if e.kind == "purchase" and not e.voided]
        else:
            candidates = [e for e in candidates if not e.voided and e.refunded < e.amount]
        if not candidates:
            raise UsageError(f"no purchase to {kind} in this terminal's journal: give --rrn / --orig-stan")
        return candidates[-1]
    if entry is not None:
        return entry
    # not in the journal: built from the options, as an operator keys in a voucher
    if not rrn:
        raise UsageError(f"--rrn is required to {kind} a purchase that is not in this terminal's journal")
    amount = _amount(args)
    return JournalEntry(
        kind="purchase",
        stan=(stan or "0").zfill(6),
        batch=(opt(args, "orig_batch") or state.batch).zfill(6),
        amount=amount,
        rrn=rrn,
        auth=opt(args, "auth") or "",
        date=opt(args, "orig_date") or "",
    )


def _builder(args: argparse.Namespace, kind: str, keys: KeysFile) -> Callable[[Terminal], Request]:
    """Validate the options now; the request itself is built after sign-on / reversal."""
    if kind in ("signon", "settle"):
        raise AssertionError(kind)
    if kind in ("signoff", "echo"):
        return lambda t: t.management(kind)
    card = _pick_card(args, keys)
    if kind in ("balance", "purchase", "pinchange") and not card.pin:
        raise UsageError("--pin is required (this card has no PIN in the keys file)")
    if kind == "balance":
        return lambda t: t.balance(card)
    if kind == "purchase":
        amount = _amount(args)
        return lambda t: t.purchase(card, amount)
    if kind == "topup":
        amount = _amount(args)
        return lambda t: t.topup(card, amount)
    if kind == "pinchange":
        new_pin = str(opt(args, "new_pin"))
        if not (new_pin.isdigit() and 4 <= len(new_pin) <= 12):
            raise UsageError("--new-pin: expected 4 to 12 digits")
        return lambda t: t.pinchange(card, new_pin)
    if kind == "void":
        pin = bool(opt(args, "pin"))

        def void(t: Terminal) -> Request:
            return t.void(card, _original(args, t, "void"), pin=pin)

        return void

    def refund(t: Terminal) -> Request:
        orig = _original(args, t, "refund")
        amount = _optional_amount(args)
        return t.refund(card, amount if amount is not None else orig.amount - orig.refunded, orig)

    return refund


def _print_step(answer: Answer, when: str) -> None:
    """One line for what the terminal did on its own around the transaction (``when``: first, then)."""
    req = answer.request
    kind = req.type.name
    text = rc_text(answer.rc) if answer.rc and answer.status == "ok" else describe_no_reply(answer)
    if kind == "signon":
        batch = answer.fields.get("60", "")[2:8]
        text = f"{rc_text(answer.rc)}, batch {batch}" if answer.rc else describe_no_reply(answer)
        print(f"sign-on {when}: {text}")
    elif kind == "reversal":
        print(f"reversal of trace {req.stan} {when}: {text}")
    elif req.type.advice:
        print(f"{kind} advice of trace {req.stan} {when}: {text}")


def _single(args: argparse.Namespace) -> int:
    return run_async(_single_async(args))


async def _single_async(args: argparse.Namespace) -> int:
    kind = args.kind
    keys = keys_of(args)
    profile = PROFILES[profile_of(args)]
    host, port = switch_address(args)
    tk = _pick_terminal(keys, opt(args, "tid"), kind)
    assert tk.tmk is not None
    make = None if kind in ("signon", "settle") else _builder(args, kind, keys)
    store = StateStore(Path(opt(args, "state", DEFAULT_STATE)))
    error: SessionError | None = None
    with store.locked(tk.tid):
        state = store.load(tk.tid, tk.mid)
        term = Terminal(state, tk.tmk, profile, swipe=not opt(args, "manual", False))
        seen: list[Answer] = []
        session = Session(
            term,
            Link(host, port, profile),
            timeout_s=float(opt(args, "timeout", 10.0)),
            save=store.save,
            observer=seen.append,
        )
        try:
            if kind == "signon":
                answer = await session.signon(args.nmic)
                if answer.approved and state.queue:  # then what the terminal still owes
                    try:
                        await session.forward_queue()
                    except SessionError as exc:
                        error = exc
            elif kind == "settle":
                answer = await session.settle()
            else:
                assert make is not None
                answer = await session.run(make)
        except KeyCheckError as exc:
            raise HandledError(str(exc)) from None
        except SessionError:
            for rec in session.given_up:
                _print_given_up(rec)
            raise
        finally:
            await session.close()
        owed = answer.request.stored
        kept = owed is not None and any(r is owed for r in state.queue)
    main_at = next(i for i, a in enumerate(seen) if a.request is answer.request)
    for i, step in enumerate(seen):
        if step is answer:
            continue
        if step.request is answer.request:
            _print_step(step, "(sent again)")
        else:
            _print_step(step, "first" if i < main_at else "then")
    for rec in session.given_up:
        _print_given_up(rec)
    outcome = "" if answer.status == "ok" else describe_no_reply(answer)
    print(format_receipt(answer, merchant_name=keys.merchant_name(tk.mid), outcome=outcome))
    if kept:
        assert owed is not None
        print(f"note: {owed.describe()} kept in the terminal's queue: sent again before its next request or settlement")
    if answer.status != "ok":
        print(f"terminal-sim: {kind}: {outcome}", file=sys.stderr)
        return 1
    if kept:
        print(f"terminal-sim: {kind}: {rc_text(answer.rc)}: advice kept, sent again later", file=sys.stderr)
        return 1
    if error is not None:
        print(f"terminal-sim: {error}", file=sys.stderr)
        return 1
    expect = opt(args, "expect")
    if expect and answer.rc != expect:
        print(f"terminal-sim: {kind}: expected {rc_text(expect)}, got {rc_text(answer.rc)}", file=sys.stderr)
        return 1
    if kind == "pinchange" and answer.rc == RC.APPROVED:
        print("note: the keys file still holds the old PIN; pass --pin with the new one from now on")
    return 0


def _print_given_up(rec: Forward) -> None:
    amount = f" RMB {format_yuan(rec.amount)}" if rec.amount else ""
    card = f" {rec.masked_pan}" if rec.masked_pan else ""
    print(
        f"given up: {rec.describe()}{card}{amount} after {rec.attempts} sends (last answer: {rec.last or 'none'});"
        " it is not in the batch totals: reconcile it by hand"
    )


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="terminal-sim",
        parents=[common],
        description="POS terminal simulator: single transactions with receipts, scenarios, load generator",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_single(sub, common)
    from terminal_sim import load as load_cmd
    from terminal_sim import scenario as scenario_cmd

    scenario_cmd.add_parser(sub, common)
    load_cmd.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"terminal-sim: {exc}", file=sys.stderr)
        return 2
    except (HandledError, KeysFileError, StateError, SessionError) as exc:
        print(f"terminal-sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
