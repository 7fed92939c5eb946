"""Scripted scenarios: TOML files of terminal steps with expectations; exit 1 on any mismatch.

A scenario names the cards and terminals it needs by *what they are*, not by number, so the same file
runs against any provisioning file (the demo's, the tests'): each alias takes the first entry of the keys
file that matches its selector and that no earlier alias took::

    name = "Purchase, then void it"

    [cards]
    alice = { status = "active", min_balance = 20000 }   # status, expired, min_balance, max_balance, pan,
    spare = { status = "active", nth = -1 }              # nth: which match (0 first, -1 last)
    stranger = { unknown = true }                        # or a made-up card: unknown / foreign / bad_luhn

    [terminals]
    shop = { kind = "pos" }                              # kind, merchant_status, tid, or unknown = true

    [[step]]
    do = "balance"                  # signon signoff echo balance purchase void refund topup pinchange settle
    card = "alice"                  # default: the first card alias; terminal: the first terminal alias
    expect_rc = "00"

    [[step]]
    do = "purchase"
    amount = 10000                  # fen; "100.00" (yuan); or "balance + 1" (the card's last known balance)
    save = "sale"                   # later steps refer to it: original = "sale", repeat = "sale"
    expect_rc = "00"
    expect_balance_delta = -10000   # against the card's balance last seen in a reply (field 54)

Step options: ``pin`` (``"wrong"`` = a PIN that is not the card's), ``new_pin`` (``"card"`` = back to the
keys file's PIN), ``amount``, ``original``
(a saved step, or ``{ rrn, stan, batch, amount, auth, date }``), ``expiry``, ``manual``, ``nmic``,
``with_pin`` (void), ``lose_reply`` (the switch answers but the reply never reaches the terminal: it
reverses before its next request), ``bad_mac`` (sent with a wrong MAC), ``repeat`` (retransmit a saved
request byte for byte), ``reuse_stan_of`` (a new request under a saved request's STAN), ``times`` (repeat
the step). Expectations: ``expect_rc`` (a code or a list), ``expect_balance``, ``expect_balance_delta``,
``expect_settlement`` (``balanced`` / ``not_balanced``), ``expect_sign_on`` (header says "sign on again"),
``expect_reversal`` (the RC of the reversal sent before this step), ``expect_same_rrn_as`` (a saved step).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from switch.crypto.luhn import luhn_check_digit
from switch.iso.message import IsoMessage
from switch.iso.profiles import PROFILES, WireProfile
from switch.rc import RC
from switch.telemetry.masking import mask_pan
from terminal_sim.client import Link, NoReply
from terminal_sim.keys import KeysFile, TerminalKey, TestCard
from terminal_sim.messages import USER_TYPES
from terminal_sim.money import format_yuan, parse_amount
from terminal_sim.receipt import rc_text
from terminal_sim.session import Session, SessionError, describe_no_reply
from terminal_sim.state import JournalEntry, TerminalState
from terminal_sim.terminal import Answer, Card, Request, Terminal

STEP_KEYS = frozenset(
    {
        "do", "terminal", "card", "amount", "pin", "new_pin", "original", "expiry", "manual", "nmic", "with_pin",
        "lose_reply", "bad_mac", "repeat", "reuse_stan_of", "times", "save", "note",
        "expect_rc", "expect_balance", "expect_balance_delta", "expect_settlement", "expect_sign_on",
        "expect_reversal", "expect_same_rrn_as",
    }
)  # fmt: skip
CARD_KEYS = frozenset(
    {"pan", "status", "expired", "min_balance", "max_balance", "nth", "unknown", "foreign", "bad_luhn"}
)
TERMINAL_KEYS = frozenset({"tid", "kind", "merchant_status", "unknown"})
TOP_KEYS = frozenset({"name", "description", "cards", "terminals", "step"})
_TZ = ZoneInfo("Asia/Shanghai")


class ScenarioError(Exception):
    """The scenario file is wrong, or cannot be set up with this keys file (the text says where)."""


# ------------------------------------------------------------------------------------------------ model


@dataclass
class Step:
    number: int
    do: str
    opts: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.opts.get(key, default)

    @property
    def where(self) -> str:
        return f"step {self.number} ({self.do})"


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    cards: dict[str, dict[str, Any]]
    terminals: dict[str, dict[str, Any]]
    steps: list[Step]


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, dict[str, Any]]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ScenarioError(f"{where}: [{key}] must map names to tables")
    return value


def parse_scenario(path: Path, data: dict[str, Any]) -> Scenario:
    where = path.name
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    cards = _table(data, "cards", where)
    terminals = _table(data, "terminals", where)
    for alias, sel in cards.items():
        bad = set(sel) - CARD_KEYS
        if bad:
            raise ScenarioError(f"{where}: card {alias!r}: unknown selector {sorted(bad)[0]!r}")
    for alias, sel in terminals.items():
        bad = set(sel) - TERMINAL_KEYS
        if bad:
            raise ScenarioError(f"{where}: terminal {alias!r}: unknown selector {sorted(bad)[0]!r}")
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(f"{where}: no [[step]]")
    steps = []
    for i, raw in enumerate(raw_steps, 1):
        do = raw.get("do")
        if do not in USER_TYPES:
            raise ScenarioError(f"{where}: step {i}: do must be one of {', '.join(USER_TYPES)}")
        bad = set(raw) - STEP_KEYS
        if bad:
            raise ScenarioError(f"{where}: step {i}: unknown key {sorted(bad)[0]!r}")
        step = Step(i, do, dict(raw))
        for key, names in (("card", cards), ("terminal", terminals)):
            ref = step.get(key)
            if ref is not None and ref not in names:
                raise ScenarioError(f"{where}: {step.where}: {key} {ref!r} is not declared in [{key}s]")
        steps.append(step)
    return Scenario(path, str(data.get("name", path.stem)), str(data.get("description", "")), cards, terminals, steps)


def load_scenario(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path.name} is not valid TOML: {exc}") from None
    return parse_scenario(path, data)


# ------------------------------------------------------------------------------------------- selection


def _yymm_now() -> str:
    return datetime.now(_TZ).strftime("%y%m")


def _made_up_pan(base: str, keys: KeysFile, bin_prefix: str) -> str:
    """A Luhn-valid PAN with ``bin_prefix``, the length of ``base``, that the keys file does not hold."""
    n = len(base) - len(bin_prefix) - 1
    for seq in range(10**n - 1, 0, -1):
        body = bin_prefix + str(seq).zfill(n)
        pan = body + luhn_check_digit(body)
        if keys.card(pan) is None:
            return pan
    raise ScenarioError("cannot make up an unknown card")


def select_cards(sc: Scenario, keys: KeysFile) -> dict[str, Card]:
    """Resolve the card aliases in declaration order, each taking a card no earlier alias took."""
    taken: set[str] = set()
    out: dict[str, Card] = {}
    now = _yymm_now()
    for alias, sel in sc.cards.items():
        template = next((c for c in keys.cards if c.status == "active" and c.pin), None)
        if sel.get("unknown") or sel.get("foreign") or sel.get("bad_luhn"):
            if template is None:
                raise ScenarioError(f"{sc.path.name}: card {alias!r}: the keys file has no active card to start from")
            if sel.get("bad_luhn"):
                pan = template.pan[:-1] + str((int(template.pan[-1]) + 1) % 10)
            elif sel.get("foreign"):
                foreign_bin = "622202" if not template.pan.startswith("622202") else "621700"
                pan = _made_up_pan(template.pan, keys, foreign_bin)
            else:
                pan = _made_up_pan(template.pan, keys, template.pan[:6])
            out[alias] = Card(pan, template.expiry, template.pin)
            continue
        matches = [c for c in keys.cards if c.pan not in taken and _card_matches(c, sel, now)]
        nth = int(sel.get("nth", 0))
        if not -len(matches) <= nth < len(matches):
            raise ScenarioError(f"{sc.path.name}: card {alias!r}: no card in the keys file matches {_show(sel)}")
        found = matches[nth]
        taken.add(found.pan)
        out[alias] = Card(found.pan, found.expiry, found.pin)
    return out


def _show(sel: dict[str, Any]) -> str:
    """A selector for an error message (a literal PAN masked)."""
    shown = {k: (mask_pan(str(v)) if k == "pan" else v) for k, v in sel.items()}
    return "{" + ", ".join(f"{k} = {v!r}" for k, v in shown.items()) + "}"


def _card_matches(c: TestCard, sel: dict[str, Any], now: str) -> bool:
    if "pan" in sel:
        return bool(c.pan == sel["pan"])
    if c.status != sel.get("status", "active"):
        return False
    expired = bool(c.expiry) and c.expiry < now
    if expired != bool(sel.get("expired", False)):
        return False
    if "min_balance" in sel and c.balance < sel["min_balance"]:
        return False
    return not ("max_balance" in sel and c.balance > sel["max_balance"])


def select_terminals(sc: Scenario, keys: KeysFile) -> dict[str, TerminalKey]:
    taken: set[str] = set()
    out: dict[str, TerminalKey] = {}
    usable = [t for t in keys.terminals if t.tmk is not None]
    if not usable:
        raise ScenarioError("the keys file has no terminal with a clear TMK")
    declared = sc.terminals or {"terminal": {"kind": "pos"}}
    for alias, sel in declared.items():
        if sel.get("unknown"):
            tids = {t.tid for t in keys.terminals}
            tid = next(f"{n:08d}" for n in range(99_999_999, 0, -1) if f"{n:08d}" not in tids)
            out[alias] = TerminalKey(tid, usable[0].mid, "pos", usable[0].tmk)
            continue
        found = None
        for t in usable:
            if t.tid in taken:
                continue
            if "tid" in sel and t.tid != sel["tid"]:
                continue
            if "kind" in sel and t.kind != sel["kind"]:
                continue
            merchant = keys.merchants.get(t.mid)
            status = merchant.status if merchant is not None else "active"
            if status != sel.get("merchant_status", "active"):
                continue
            found = t
            break
        if found is None:
            raise ScenarioError(f"{sc.path.name}: terminal {alias!r}: no terminal in the keys file matches {sel}")
        taken.add(found.tid)
        out[alias] = found
    return out


# ----------------------------------------------------------------------------------------------- amounts

_TOKEN = re.compile(r"\s*([+-])?\s*(balance|[0-9]+\.[0-9]{1,2}|[0-9]+)\s*")


def eval_amount(value: Any, balance: int | None, where: str) -> int:
    """An amount: int fen, ``"100.00"`` yuan, or a sum like ``"balance + 1"`` / ``"500000 - balance"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: amount must be an integer (fen) or a string")
    pos, total, first = 0, 0, True
    while pos < len(value):
        m = _TOKEN.match(value, pos)
        if m is None or m.end() == pos or (m[1] is None and not first):
            raise ScenarioError(f"{where}: cannot read amount {value!r}")
        if m[2] == "balance":
            if balance is None:
                raise ScenarioError(f"{where}: amount uses the balance, but none is known yet (add a balance step)")
            term = balance
        else:
            term = parse_amount(m[2])
        total += -term if m[1] == "-" else term
        pos, first = m.end(), False
    if first:
        raise ScenarioError(f"{where}: empty amount")
    return total


# -------------------------------------------------------------------------------------------------- run


class ScriptedLink(Link):
    """A link whose next reply can be lost on the way back (the switch did answer; the terminal never sees
    it), for ``lose_reply`` steps."""

    lose_next = False

    async def exchange(self, body: bytes, reply_mti: str, stan: str, tid: str, timeout_s: float) -> IsoMessage:
        reply = await super().exchange(body, reply_mti, stan, tid, timeout_s)
        if self.lose_next:
            self.lose_next = False
            self.drop()
            raise NoReply("reply lost on the line (scenario)")
        return reply


@dataclass
class StepResult:
    step: Step
    answer: Answer | None
    summary: str
    mismatches: list[str] = field(default_factory=list)


@dataclass
class ScenarioResult:
    scenario: Scenario
    results: list[StepResult] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(not r.mismatches for r in self.results)

    @property
    def mismatched(self) -> int:
        return sum(1 for r in self.results if r.mismatches)


def _rc_words(code: str) -> str:
    return f"{code} ({RC.describe(code)[0]})" if code else "no reply"


class Runner:
    """Runs scenarios against one switch with the cards and terminals of one keys file."""

    def __init__(
        self,
        keys: KeysFile,
        host: str,
        port: int,
        profile: WireProfile,
        *,
        timeout_s: float = 10.0,
        out: TextIO | None = None,
    ) -> None:
        self.keys, self.host, self.port, self.profile = keys, host, port, profile
        self.timeout_s = timeout_s
        self.out = out if out is not None else sys.stdout

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def run(self, sc: Scenario) -> ScenarioResult:
        result = ScenarioResult(sc)
        self._print(f"scenario {sc.path.name}: {sc.name}")
        try:
            cards = select_cards(sc, self.keys)
            terminals = select_terminals(sc, self.keys)
        except ScenarioError as exc:
            result.error = str(exc)
            self._print(f"  cannot run: {exc}")
            return result
        ctx = _RunContext(self, sc, cards, terminals)
        try:
            for step in sc.steps:
                times = int(step.get("times", 1))
                for i in range(times):
                    r = await ctx.run_step(step)
                    result.results.append(r)
                    # a repeated step shows its last run and any run that did not match
                    if r.mismatches or i == times - 1:
                        mark = "ok" if not r.mismatches else "MISMATCH"
                        count = f" x{times}" if times > 1 and not r.mismatches else ""
                        self._print(f"  {step.number:>2} {step.do:<9} {r.summary}{count}  [{mark}]")
                    for line in r.mismatches:
                        self._print(f"       {line}")
        except ScenarioError as exc:
            result.error = str(exc)
            self._print(f"  stopped: {exc}")
        finally:
            await ctx.close()
        if result.ok:
            self._print(f"  passed: {len(result.results)} steps")
        elif not result.error:
            self._print(f"  FAILED: {result.mismatched} of {len(result.results)} steps did not match")
        return result


class _RunContext:
    def __init__(self, runner: Runner, sc: Scenario, cards: dict[str, Card], terminals: dict[str, TerminalKey]) -> None:
        self.runner, self.sc = runner, sc
        self.cards, self.terminal_keys = cards, terminals
        self.sessions: dict[str, Session] = {}
        self.links: dict[str, ScriptedLink] = {}
        self.saved: dict[str, tuple[Request, Answer]] = {}
        self.balances: dict[str, int] = {}
        self._step_answers: list[Answer] = []

    async def close(self) -> None:
        for s in self.sessions.values():
            await s.close()

    def session(self, alias: str) -> Session:
        s = self.sessions.get(alias)
        if s is None:
            tk = self.terminal_keys[alias]
            assert tk.tmk is not None
            r = self.runner
            link = ScriptedLink(r.host, r.port, r.profile)
            term = Terminal(TerminalState(tk.tid, tk.mid), tk.tmk, r.profile)
            s = Session(term, link, timeout_s=r.timeout_s, observer=self._observe)
            self.sessions[alias], self.links[alias] = s, link
        return s

    def _observe(self, answer: Answer) -> None:
        self._step_answers.append(answer)
        card = answer.request.card
        balance = answer.balance
        if card is not None and balance is not None:
            self.balances[card.pan] = balance

    def _alias(self, step: Step, key: str, table: dict[str, Any]) -> str:
        alias = step.get(key)
        if alias is None:
            if not table:
                raise ScenarioError(f"{step.where}: needs a {key}: declare one in [{key}s]")
            alias = next(iter(table))
        return str(alias)

    def _card(self, step: Step) -> Card:
        card = self.cards[self._alias(step, "card", self.cards)]
        pin = step.get("pin")
        if pin == "wrong":
            pin = "000000" if card.pin != "000000" else "111111"
        expiry = step.get("expiry")
        return Card(card.pan, card.expiry if expiry is None else str(expiry), str(pin) if pin else card.pin)

    def _original(self, step: Step, state: TerminalState) -> JournalEntry:
        ref = step.get("original")
        if isinstance(ref, str):
            saved = self.saved.get(ref)
            if saved is None:
                raise ScenarioError(f"{step.where}: original {ref!r} was not saved by an earlier step")
            req, answer = saved
            f = answer.fields
            entry = next(
                (e for e in (*state.journal, *state.history) if e.stan == req.stan and e.rrn == f.get("37")), None
            )
            if entry is not None:
                return entry
            # declined or unanswered original: quote it as the terminal sent it
            return JournalEntry(
                req.type.name,
                req.stan,
                req.fields.get("60", "")[2:8],
                req.amount,
                f.get("37", "000000000000"),
                f.get("38", ""),
                f.get("13", ""),
            )
        if isinstance(ref, dict):
            return JournalEntry(
                "purchase",
                str(ref.get("stan", "000000")).zfill(6),
                str(ref.get("batch", state.batch)).zfill(6),
                int(ref.get("amount", 0)),
                str(ref.get("rrn", "000000000000")),
                str(ref.get("auth", "")),
                str(ref.get("date", "")),
            )
        raise ScenarioError(f'{step.where}: needs original = "<saved step>" or a table')

    def _builder(self, step: Step, term: Terminal) -> Callable[[Terminal], Request]:
        do = step.do
        if do == "signon":
            nmic = str(step.get("nmic", "004"))
            return lambda t: t.signon(nmic)
        if do in ("signoff", "echo"):
            return lambda t: t.management(do)
        if do == "settle":
            return lambda t: t.settle()
        card = self._card(step)
        term.swipe = not step.get("manual", False)

        def amount() -> int:
            return eval_amount(step.get("amount"), self.balances.get(card.pan), step.where)

        if do in ("purchase", "topup") and step.get("amount") is None:
            raise ScenarioError(f"{step.where}: needs an amount")
        if do == "balance":
            return lambda t: t.balance(card)
        if do == "purchase":
            return lambda t: t.purchase(card, amount())
        if do == "topup":
            return lambda t: t.topup(card, amount())
        if do == "pinchange":
            new_pin = str(step.get("new_pin", ""))
            if new_pin == "card":  # back to the PIN of the keys file
                new_pin = self.cards[self._alias(step, "card", self.cards)].pin
            if not new_pin:
                raise ScenarioError(f"{step.where}: needs new_pin")
            return lambda t: t.pinchange(card, new_pin)
        if do == "void":
            with_pin = bool(step.get("with_pin", False))
            return lambda t: t.void(
                card,
                self._original(step, t.state),
                pin=with_pin,
                amount=None if step.get("amount") is None else amount(),
            )

        # refund
        def refund(t: Terminal) -> Request:
            orig = self._original(step, t.state)
            return t.refund(card, orig.amount if step.get("amount") is None else amount(), orig)

        return refund

    async def run_step(self, step: Step) -> StepResult:
        session = self.session(self._alias(step, "terminal", self.terminal_keys))
        term = session.terminal
        link = self.links[self._alias(step, "terminal", self.terminal_keys)]
        self._step_answers = []
        card_pan = ""
        if step.do not in ("signon", "signoff", "echo", "settle"):
            card_pan = self._card(step).pan
        before = self.balances.get(card_pan) if card_pan else None
        try:
            if step.do != "signon":
                await session.prepare()
            repeat = step.get("repeat")
            if repeat is not None:
                saved = self.saved.get(str(repeat))
                if saved is None:
                    raise ScenarioError(f"{step.where}: repeat {repeat!r} was not saved by an earlier step")
                old = saved[0]
                req = Request(
                    old.type, old.fields, old.body, old.amount, old.card, old.original, old.totals, retransmission=True
                )
            else:
                req = self._builder(step, term)(term)
            if step.get("reuse_stan_of") is not None:
                other = self.saved.get(str(step.get("reuse_stan_of")))
                if other is None:
                    raise ScenarioError(f"{step.where}: reuse_stan_of names no saved step")
                req.fields["11"] = other[0].stan
                req.body = term.encode(req.type, req.fields)
            if step.get("bad_mac"):
                keys = term.state.keys
                wrong = bytes(b ^ 0xFF for b in keys.mak) if keys is not None else bytes(8)
                req.body = term.encode(req.type, req.fields, mak=wrong)
            link.lose_next = bool(step.get("lose_reply", False))
            answer = await session.send(req)
        except SessionError as exc:
            return StepResult(step, None, f"terminal could not proceed: {exc}", [f"terminal: {exc}"])
        if step.get("save"):
            self.saved[str(step.get("save"))] = (req, answer)
        return StepResult(step, answer, self._summary(answer), self._check(step, answer, before))

    def _summary(self, a: Answer) -> str:
        req = a.request
        parts = [f"terminal {req.fields.get('41', '')}"]
        if req.card is not None:
            parts.append(mask_pan(req.card.pan))
        if req.amount:
            parts.append(format_yuan(req.amount))
        head = " ".join(parts)
        if a.status != "ok":
            return f"{head} -> {describe_no_reply(a)}"
        tail = rc_text(a.rc)
        if a.balance is not None:
            tail += f", balance {format_yuan(a.balance)}"
        settlement = a.settlement
        if settlement is not None:
            tail += ", " + {"1": "balanced", "2": "not balanced"}.get(settlement.code, f"code {settlement.code}")
        return f"{head} -> {tail}"

    def _check(self, step: Step, a: Answer, before: int | None) -> list[str]:
        out: list[str] = []
        lose = bool(step.get("lose_reply", False))
        if lose:
            if a.status != "timeout":
                out.append(f"reply: expected it lost on the line, got status {a.status}")
        elif a.status != "ok":
            out.append(f"reply: expected a usable reply, got {describe_no_reply(a)}")
        expect_rc = step.get("expect_rc")
        if expect_rc is not None and not lose:
            wanted = [expect_rc] if isinstance(expect_rc, str) else [str(x) for x in expect_rc]
            if a.rc not in wanted:
                want = " or ".join(_rc_words(w) for w in wanted)
                out.append(f"rc: expected {want}, got {_rc_words(a.rc)}")
        if step.get("expect_balance") is not None or step.get("expect_balance_delta") is not None:
            got = a.balance
            if step.get("expect_balance") is not None:
                want_abs = int(step.get("expect_balance"))
                label = format_yuan(want_abs)
            else:
                if before is None:
                    raise ScenarioError(
                        f"{step.where}: expect_balance_delta needs a balance seen earlier (add a balance step)"
                    )
                delta = int(step.get("expect_balance_delta"))
                want_abs = before + delta
                label = f"{format_yuan(want_abs)} ({'+' if delta >= 0 else ''}{format_yuan(delta)})"
            if got != want_abs:
                out.append(f"balance: expected {label}, got {'none' if got is None else format_yuan(got)}")
        want_settle = step.get("expect_settlement")
        if want_settle is not None:
            s = a.settlement
            got_settle = "none" if s is None else {"1": "balanced", "2": "not_balanced"}.get(s.code, s.code)
            if got_settle != want_settle:
                out.append(f"settlement: expected {want_settle}, got {got_settle}")
        want_signon = step.get("expect_sign_on")
        if want_signon is not None and bool(want_signon) != a.sign_on_required:
            out.append(f"header: expected sign-on required = {bool(want_signon)}, got {a.sign_on_required}")
        want_rev = step.get("expect_reversal")
        if want_rev is not None:
            revs = [x for x in self._step_answers if x.request.type.name == "reversal"]
            got_rev = revs[-1].rc if revs else "none sent"
            if got_rev != want_rev:
                out.append(f"reversal: expected {_rc_words(str(want_rev))}, got {got_rev}")
        same = step.get("expect_same_rrn_as")
        if same is not None:
            saved = self.saved.get(str(same))
            if saved is None:
                raise ScenarioError(f"{step.where}: expect_same_rrn_as names no saved step")
            if a.fields.get("37") != saved[1].fields.get("37"):
                out.append(f"rrn: expected {saved[1].fields.get('37')} (as {same}), got {a.fields.get('37')}")
        return out


# -------------------------------------------------------------------------------------------------- CLI


def scenario_paths(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(p.glob("*.toml")))
        else:
            out.append(p)
    return out


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run scenario files (or every *.toml of a directory)")
    p.add_argument("scenarios", metavar="SCENARIO.toml", nargs="+", type=Path)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from terminal_sim.cli import HandledError, keys_of, opt, profile_of, run_async, switch_address

    keys = keys_of(args)
    host, port = switch_address(args)
    profile = PROFILES[profile_of(args)]
    paths = scenario_paths(list(args.scenarios))
    if not paths:
        raise HandledError("no scenario files found")
    try:
        scenarios = [load_scenario(p) for p in paths]
    except ScenarioError as exc:
        raise HandledError(str(exc)) from None

    async def go() -> int:
        runner = Runner(keys, host, port, profile, timeout_s=float(opt(args, "timeout", 10.0)))
        failed = []
        for sc in scenarios:
            res = await runner.run(sc)
            if not res.ok:
                failed.append(sc.path.name)
        if len(scenarios) > 1:
            print(
                f"{len(scenarios) - len(failed)} of {len(scenarios)} scenarios passed"
                + (f"; failed: {', '.join(failed)}" if failed else "")
            )
        return 1 if failed else 0

    try:
        return run_async(go())
    except ScenarioError as exc:
        raise HandledError(str(exc)) from None
