"""The load generator: N terminals on one asyncio loop per process (``--procs`` processes), each behaving like
a real UnionPay terminal.

Each terminal signs on, then sends one request at a time drawn from the mix (``purchase=80,balance=15,
void=3,refund=2``; ``topup`` goes to service-hall terminals, ``pinchange`` changes a PIN to itself), either
as fast as the switch answers or paced to ``--rate`` TPS in total; a request without an answer in
``--timeout`` seconds makes the terminal hang up and send the reversal before its next request; at the end
every terminal settles its batch with its own totals. Voids take the terminal's newest unvoided purchase
of the batch and refunds a recent purchase (a purchase is sent instead while there is none).

Measured: the latency of every request of the mix (HDR histogram), RCs, timeouts, reversals, sign-ons,
settlement results, and the generator's own CPU time per message in the measured window, so a reader
can tell whether the generator or the switch was the limit. Processes start their measured window
together (after every terminal has signed on) and their figures are merged into one report.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import queue
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from switch.iso.profiles import PROFILES
from terminal_sim.client import Link
from terminal_sim.fastwire import FieldCache
from terminal_sim.keys import KeysFile, TerminalKey
from terminal_sim.progress import Progress, Snapshot
from terminal_sim.report import LoadStats, render_text
from terminal_sim.session import Session, SessionError
from terminal_sim.state import JournalEntry, TerminalState, WorkingKeys
from terminal_sim.terminal import DEFAULT_HEADER, DEFAULT_TPDU, Answer, Card, Request, Terminal

DEFAULT_MIX = "purchase=80,balance=15,void=3,refund=2"
MIX_TYPES = ("purchase", "balance", "void", "refund", "topup", "pinchange", "echo")
#: what a service hall's terminals do
HALL_TYPES = frozenset({"topup", "balance", "pinchange", "echo"})
TICK_S = 0.5
#: how long processes may take to sign their terminals on before the run is abandoned
READY_TIMEOUT_S = 120.0


class LoadError(Exception):
    """The load cannot be set up (bad mix, not enough terminals or cards); one line for the operator."""


@dataclass(frozen=True)
class LoadConfig:
    host: str
    port: int
    profile: str = "cup"
    terminals: int = 10
    duration_s: float = 10.0
    rate: float | None = None
    mix: dict[str, int] = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    timeout_s: float = 5.0
    short: bool = False
    amount_min: int = 100
    amount_max: int = 5000
    procs: int = 1
    seed: int = 8583
    progress: str = "auto"
    #: the peer is a bare echo server (SPEC §11 baseline): no sign-on, reply MACs not checked, no settlement
    echo_baseline: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "switch": f"{self.host}:{self.port}",
            "profile": self.profile,
            "terminals": self.terminals,
            "procs": self.procs,
            "duration_s": self.duration_s,
            "rate": self.rate,
            "mix": self.mix,
            "connections": "short" if self.short else "long",
            "timeout_s": self.timeout_s,
            "amount_fen": [self.amount_min, self.amount_max],
            "echo_baseline": self.echo_baseline,
        }


def parse_mix(text: str) -> dict[str, int]:
    """``"purchase=80,balance=20"`` -> weights; :class:`LoadError` on anything else."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, sep, weight = part.strip().partition("=")
        if not sep or name not in MIX_TYPES or not weight.strip().isdigit():
            raise LoadError(f"--mix: expected TYPE=WEIGHT,... with TYPE in {', '.join(MIX_TYPES)}")
        mix[name] = mix.get(name, 0) + int(weight)
    if sum(mix.values()) <= 0:
        raise LoadError("--mix: the weights add up to zero")
    return mix


def plan_terminals(keys: KeysFile, n: int, mix: dict[str, int]) -> list[TerminalKey]:
    """``n`` usable terminals (clear TMK, active merchant): shops' terminals merchant by merchant in turn,
    service-hall ones in proportion to the top-up share of the mix (at least one when there are top-ups)."""
    active = {m.mid for m in keys.merchants.values() if m.status == "active"} if keys.merchants else None
    usable = [t for t in keys.terminals if t.tmk is not None and (active is None or t.mid in active)]
    halls = [t for t in usable if t.kind == "service_hall"]
    # shops' terminals taken merchant by merchant in turn, so every merchant gets its share of the load
    by_mid: dict[str, list[TerminalKey]] = {}
    for t in usable:
        if t.kind != "service_hall":
            by_mid.setdefault(t.mid, []).append(t)
    shops = [t for group in itertools.zip_longest(*by_mid.values()) for t in group if t is not None]
    total = sum(mix.values())
    want_halls = 0
    if mix.get("topup", 0):
        want_halls = min(len(halls), max(1, round(n * mix["topup"] / total)))
    picked = halls[:want_halls] + shops[: n - want_halls]
    if len(picked) < n:
        picked += [t for t in halls[want_halls:]][: n - len(picked)]
    if len(picked) < n:
        raise LoadError(
            f"--terminals {n}: the keys file has only {len(picked)} usable terminals (clear TMK, "
            "active merchant); each simulated terminal needs its own TID"
        )
    return picked


def usable_cards(keys: KeysFile) -> list[Card]:
    now = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%y%m")
    cards = [Card(c.pan, c.expiry, c.pin) for c in keys.cards
             if c.status == "active" and c.pin and (not c.expiry or c.expiry >= now)]  # fmt: skip
    if not cards:
        raise LoadError("the keys file has no active, unexpired card with a PIN")
    return cards


# ----------------------------------------------------------------------------------------------- terminal


class LoadTerminal:
    """One simulated terminal of the load: its session, its share of the mix, its own random stream."""

    def __init__(
        self, tk: TerminalKey, cfg: LoadConfig, cards: list[Card], stats: LoadStats, seed: int, wire: FieldCache
    ) -> None:
        assert tk.tmk is not None
        profile = PROFILES[cfg.profile]
        self.cfg, self.cards, self.stats = cfg, cards, stats
        self.rng = random.Random(seed)
        self.terminal = Terminal(
            TerminalState(tk.tid, tk.mid), tk.tmk, profile, wire=wire, verify_replies=not cfg.echo_baseline
        )
        if cfg.echo_baseline:
            # an echo server issues no keys: the requests are MACed under zero keys, same sizes, same work
            self.terminal.state.keys = WorkingKeys(bytes(16), bytes(8), bytes(16))
            self.terminal.state.needs_signon = False
            self.terminal.state.batch = "000001"
        self.link = Link(cfg.host, cfg.port, profile, short=cfg.short)
        self.session = Session(self.terminal, self.link, timeout_s=cfg.timeout_s, observer=stats.observe)
        allowed = self.share_of_mix(cfg.mix, tk.kind)
        self.kinds = list(allowed) or ["balance"]
        self.weights = list(allowed.values()) or [1]
        self.voidable: list[JournalEntry] = []
        self.refundable: list[JournalEntry] = []

    @staticmethod
    def share_of_mix(mix: dict[str, int], kind: str) -> dict[str, int]:
        """A shop's terminal does everything but top-ups; a service-hall terminal does the hall's business
        (top-ups, balance inquiries, PIN changes) when the mix has any, else it stands in for a shop."""
        wanted = {k: w for k, w in mix.items() if w > 0}
        if kind == "service_hall":
            hall = {k: w for k, w in wanted.items() if k in HALL_TYPES}
            if "topup" in hall:
                return hall
        return {k: w for k, w in wanted.items() if k != "topup"}

    async def signon(self) -> bool:
        for attempt in range(3):
            try:
                await self.session.prepare()
                return True
            except SessionError:
                self.stats.errors += 1
                await asyncio.sleep(0.2 * (attempt + 1))
        return False

    def _card(self) -> Card:
        return self.cards[self.rng.randrange(len(self.cards))]

    def _amount(self) -> int:
        return self.rng.randint(self.cfg.amount_min, self.cfg.amount_max)

    def _builder(self, kind: str) -> Callable[[Terminal], Request]:
        if kind == "void":
            batch = self.terminal.state.batch
            while self.voidable:
                entry = self.voidable.pop()
                # the switch refuses to void a purchase that was refunded in part
                if not entry.voided and not entry.refunded and entry.batch == batch and entry.pan:
                    card = self._card_of(entry)
                    return lambda t: t.void(card, entry)
            kind = "purchase"
        elif kind == "refund":
            live = [e for e in self.refundable[-50:] if not e.voided and e.refunded < e.amount and e.pan]
            if live:
                entry = live[self.rng.randrange(len(live))]
                card = self._card_of(entry)
                amount = self.rng.randint(1, entry.amount - entry.refunded)
                return lambda t: t.refund(card, amount, entry)
            kind = "purchase"
        card = self._card()
        if kind == "purchase":
            amount = self._amount()
            return lambda t: t.purchase(card, amount)
        if kind == "balance":
            return lambda t: t.balance(card)
        if kind == "topup":
            amount = self._amount()
            return lambda t: t.topup(card, amount)
        if kind == "pinchange":
            return lambda t: t.pinchange(card, card.pin)
        return lambda t: t.management("echo")

    def _card_of(self, entry: JournalEntry) -> Card:
        for c in self.cards:
            if c.pan == entry.pan:
                return c
        return Card(entry.pan)

    def _remember(self, answer: Answer) -> None:
        # only purchases with an RRN and auth code can be voided or refunded (an echo peer gives none)
        if answer.kind == "purchase" and answer.approved and len(answer.fields.get("37", "")) == 12:
            entry = self.terminal.state.journal[-1]
            self.voidable.append(entry)
            self.refundable.append(entry)
            if len(self.refundable) > 200:
                del self.refundable[:100]

    async def run_until(self, deadline: float) -> None:
        interval = self.cfg.terminals / self.cfg.rate if self.cfg.rate else 0.0
        next_at = time.perf_counter() + self.rng.random() * interval
        loop_sleep = asyncio.sleep
        while True:
            now = time.perf_counter()
            if interval:
                if next_at > now:
                    if next_at >= deadline:
                        return
                    await loop_sleep(next_at - now)
                elif now - next_at > 1.0:  # far behind schedule: do not burst to catch up
                    next_at = now
                next_at += interval
            elif now >= deadline:
                return
            if self.terminal.batch_full:  # as a real terminal does: settle, then sign on into the next batch
                await self.settle()
            kind = self.rng.choices(self.kinds, self.weights)[0]
            try:
                answer = await self.session.run(self._builder(kind))
            except SessionError:
                self.stats.errors += 1
                await loop_sleep(min(1.0, self.cfg.timeout_s))
                continue
            if answer.status == "not_sent":  # the line is down: wait a little before dialling again
                await loop_sleep(min(1.0, self.cfg.timeout_s))
                continue
            self._remember(answer)

    async def settle(self) -> None:
        if self.cfg.echo_baseline:  # nothing to settle with an echo server: start a new batch locally
            state = self.terminal.state
            state.open_batch(f"{int(state.batch) % 999_999 + 1:06d}")
            return
        try:
            answer = await self.session.settle()
        except SessionError:
            self.stats.settled(None)
        else:
            self.stats.settled(answer)

    async def close(self) -> None:
        self.stats.terminal_done(self.terminal.state)  # its store-and-forward queue: given up, still owed
        self.stats.connects += self.link.connects
        self.link.drop()
        self.stats.unmatched_replies += self.link.unmatched
        await self.session.close()


# ----------------------------------------------------------------------------------------------- process


def snapshot(stats: LoadStats) -> Snapshot:
    return Snapshot(stats.answered, stats.rc.get("00", 0), stats.timeouts, sum(stats.reversals.values()), stats.errors)


async def run_terminals(
    cfg: LoadConfig,
    tks: list[TerminalKey],
    cards: list[Card],
    *,
    seed_base: int,
    ready: Callable[[], Any],
    tick: Callable[[LoadStats], None],
) -> LoadStats:
    """This process's share of the load: sign on, wait for ``ready()`` (the common start), run, settle."""
    stats = LoadStats()
    profile = PROFILES[cfg.profile]
    wire = FieldCache(
        profile, DEFAULT_TPDU if profile.has_tpdu else None, DEFAULT_HEADER if profile.has_header else None
    )
    terms = [LoadTerminal(tk, cfg, cards, stats, seed_base + i, wire) for i, tk in enumerate(tks)]
    try:
        await asyncio.gather(*(t.signon() for t in terms))
        await ready()
        t0, cpu0 = time.perf_counter(), time.process_time()
        deadline = t0 + cfg.duration_s
        async with asyncio.TaskGroup() as tg:  # a failing terminal cancels the others
            runs = [tg.create_task(t.run_until(deadline)) for t in terms]
            while not all(r.done() for r in runs):
                await asyncio.wait(runs, timeout=TICK_S)
                tick(stats)
        stats.elapsed_s = time.perf_counter() - t0
        stats.cpu_s = time.process_time() - cpu0
        await asyncio.gather(*(t.settle() for t in terms))
    finally:
        for t in terms:
            await t.close()
    tick(stats)
    return stats


async def run_local(cfg: LoadConfig, tks: list[TerminalKey], cards: list[Card], progress: Progress) -> LoadStats:
    async def ready() -> None:
        progress.restart()

    def tick(stats: LoadStats) -> None:
        progress.tick(snapshot(stats))

    stats = await run_terminals(cfg, tks, cards, seed_base=cfg.seed, ready=ready, tick=tick)
    progress.done()
    return stats


def _child(cfg: LoadConfig, tks: list[TerminalKey], cards: list[Card], index: int, out: Any, go: MpEvent) -> None:
    """A worker process: its terminals on its own uvloop; progress and the result go back through ``out``."""
    from terminal_sim.cli import run_async

    last = [0.0]

    async def ready() -> None:
        out.put(("ready", index, None))
        ok = await asyncio.get_running_loop().run_in_executor(None, go.wait, READY_TIMEOUT_S)
        if not ok:
            raise LoadError("the run never started")

    def tick(stats: LoadStats) -> None:
        now = time.perf_counter()
        if now - last[0] >= TICK_S:
            last[0] = now
            out.put(("tick", index, asdict(snapshot(stats))))

    async def main() -> int:
        stats = await run_terminals(cfg, tks, cards, seed_base=cfg.seed + index * 100_000, ready=ready, tick=tick)
        out.put(("done", index, stats.to_wire()))
        return 0

    try:
        run_async(main())
    except Exception as exc:  # reported to the parent, which fails the run with one line
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))


def run_procs(cfg: LoadConfig, tks: list[TerminalKey], cards: list[Card], progress: Progress) -> LoadStats:
    """Split the terminals over ``cfg.procs`` processes, start them together, merge their figures."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    chunks = [tks[i :: cfg.procs] for i in range(cfg.procs)]
    procs = [ctx.Process(target=_child, args=(cfg, chunk, cards, i, out, go), daemon=True)
             for i, chunk in enumerate(chunks) if chunk]  # fmt: skip
    for p in procs:
        p.start()
    ticks: dict[int, Snapshot] = {}
    results: dict[int, LoadStats] = {}
    ready = 0
    started = False
    limit = time.monotonic() + READY_TIMEOUT_S
    try:
        while len(results) < len(procs):
            try:
                kind, index, payload = out.get(timeout=TICK_S)
            except queue.Empty:
                if not started and time.monotonic() > limit:
                    raise LoadError("worker processes did not get ready in time") from None
                if any(not p.is_alive() and p.exitcode not in (0, None) for p in procs):
                    raise LoadError("a worker process died") from None
                continue
            if kind == "error":
                raise LoadError(f"worker {index}: {payload}")
            if kind == "ready":
                ready += 1
                if ready == len(procs):
                    go.set()
                    started = True
                    progress.restart()
            elif kind == "tick":
                ticks[index] = Snapshot(**payload)
                total = Snapshot()
                for s in ticks.values():
                    total = total.add(s)
                progress.tick(total)
            elif kind == "done":
                results[index] = LoadStats.from_wire(payload)
    finally:
        go.set()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        progress.done()
    merged = results.pop(min(results))
    for r in results.values():
        merged.merge(r)
    return merged


# -------------------------------------------------------------------------------------------------- CLI


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("load", parents=[common], help="load generator: N terminals, a mix, a report")
    p.add_argument("--terminals", type=int, default=10, metavar="N", help="simulated terminals (default 10)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S", help="measured seconds (default 10)")
    p.add_argument(
        "--rate",
        type=float,
        metavar="TPS",
        help="total requests per second (default: as fast as the switch answers, one request at a time per terminal)",
    )
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"request mix (default {DEFAULT_MIX})")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument("--procs", type=int, default=1, metavar="P", help="generator processes (default 1)")
    p.add_argument("--short", action="store_true", help="one connection per transaction (dial-up terminals)")
    p.add_argument(
        "--amount", default="100-5000", metavar="MIN-MAX", help="purchase/top-up amounts in fen (default 100-5000)"
    )
    p.add_argument("--seed", type=int, default=8583, help="random seed (default 8583)")
    p.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="live progress on stderr (auto: when it is a terminal)",
    )
    p.add_argument(
        "--echo-baseline",
        action="store_true",
        help="the peer is a bare echo server (benchmark baseline): no sign-on, reply MACs not checked, no settlement;"
        " the requests are the same",
    )
    p.set_defaults(func=_run)


def _config(args: argparse.Namespace) -> LoadConfig:
    from terminal_sim.cli import UsageError, opt, profile_of, switch_address

    host, port = switch_address(args)
    lo, sep, hi = str(args.amount).partition("-")
    if not (sep and lo.isdigit() and hi.isdigit() and 0 < int(lo) <= int(hi)):
        raise UsageError("--amount: expected MIN-MAX in fen, e.g. 100-5000")
    if args.terminals < 1 or args.duration <= 0 or args.procs < 1 or (args.rate is not None and args.rate <= 0):
        raise UsageError("--terminals, --duration, --procs and --rate must be positive")
    try:
        mix = parse_mix(args.mix)
    except LoadError as exc:
        raise UsageError(str(exc)) from None
    return LoadConfig(
        host=host, port=port, profile=profile_of(args), terminals=args.terminals, duration_s=args.duration,
        rate=args.rate, mix=mix, timeout_s=float(opt(args, "timeout", 5.0)), short=args.short,
        amount_min=int(lo), amount_max=int(hi), procs=min(args.procs, args.terminals), seed=args.seed,
        progress=args.progress, echo_baseline=args.echo_baseline,
    )  # fmt: skip


def run_load(cfg: LoadConfig, keys: KeysFile, *, stream: Any = None) -> dict[str, Any]:
    """Run the load and return the JSON report (also used by the demo and the benchmarks)."""
    from terminal_sim.cli import run_async

    tks = plan_terminals(keys, cfg.terminals, cfg.mix)
    cards = usable_cards(keys)
    progress = Progress(cfg.duration_s, cfg.progress, stream)
    if cfg.procs == 1:
        result: list[LoadStats] = []

        async def go() -> int:
            result.append(await run_local(cfg, tks, cards, progress))
            return 0

        run_async(go())
        stats = result[0]
    else:
        stats = run_procs(cfg, tks, cards, progress)
    return stats.report(cfg.summary())


def _run(args: argparse.Namespace) -> int:
    from terminal_sim.cli import HandledError, keys_of

    cfg = _config(args)
    keys = keys_of(args)
    try:
        rep = run_load(cfg, keys)
    except LoadError as exc:
        raise HandledError(str(exc)) from None
    print(render_text(rep))
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(rep, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise HandledError(f"cannot write {args.json}: {exc.strerror}") from None
        print(f"report written to {args.json}", file=sys.stderr)
    return 0
