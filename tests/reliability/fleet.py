"""Terminals that remember everything they were told: the oracle of the crash and fault tests.

Each :class:`FleetTerminal` is the terminal simulator's own terminal (``terminal_sim``: state machine,
session, line), so it behaves as a UnionPay terminal does: a reversal record is written before a purchase,
void or top-up is sent and the reversal is sent before the next request until it is answered; on top of
that, a refund advice that went out without a definitive answer (none, an approval without a MAC the terminal
can trust, or a "try again" 96/91/A0) is kept and retransmitted unchanged until it gets one (a real
terminal's advice queue), and :meth:`FleetTerminal.finish` pays every debt and settles
the batch. Every answer (and every missing one) is recorded as a :class:`Seen`.

    fleet = Fleet(world, "127.0.0.1", port, n_pos=6, n_hall=1, seed=1)
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    ...  # kill the switch, restart it, inject faults
    stop.set(); await task
    await fleet.finish()                     # reversals and advices owed, then settlement
    fleet.seen                               # what the terminals were told
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from switch.iso.profiles import CUP
from terminal_sim.client import Link
from terminal_sim.session import Session, SessionError
from terminal_sim.state import JournalEntry, TerminalState
from terminal_sim.terminal import REVERSAL_RETRY_RCS, Answer, Card, Request, Terminal
from tests.reliability.world import World, WorldTerminal

POS_MIX = {"purchase": 60, "balance": 10, "void": 15, "refund": 15}
HALL_MIX = {"topup": 75, "balance": 25}
MONEY_KINDS = frozenset({"purchase", "void", "refund", "topup"})


@dataclass(frozen=True)
class Seen:
    """One exchange as the terminal saw it. ``status``: ok, bad_mac, timeout (sent, no reply), not_sent."""

    tid: str
    mid: str
    kind: str
    mti: str
    pcode: str
    batch: str
    stan: str
    status: str
    rc: str = ""
    rrn: str = ""
    amount: int = 0
    pan: str = field(default="", repr=False)
    #: void/refund: the original's batch and STAN; reversal: the kind it reverses
    orig_batch: str = ""
    orig_stan: str = ""
    of_kind: str = ""
    #: settlement: the code of field 48 (1 balanced, 2 not)
    settle_code: str = ""
    at: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """The request's identity (SPEC §5 rule 5's duplicate key, MID implied by TID)."""
        return (self.tid, self.mti, self.batch, self.stan, self.pcode)

    @property
    def accepted_approval(self) -> bool:
        return self.status == "ok" and self.rc == "00" and self.kind in MONEY_KINDS


def seen_of(answer: Answer) -> Seen:
    req = answer.request
    f = req.fields
    f60 = f.get("60", "")
    orig = req.original
    of_kind = req.reversal_of.kind if req.reversal_of is not None else ""
    code = ""
    totals = answer.settlement
    if totals is not None:
        code = totals.program.code
    return Seen(
        tid=f.get("41", ""),
        mid=f.get("42", ""),
        kind=req.type.name,
        mti=req.type.mti,
        pcode=f.get("3", ""),
        batch=f60[2:8],
        stan=f.get("11", ""),
        status=answer.status,
        rc=answer.rc,
        rrn=answer.fields.get("37", ""),
        amount=req.amount,
        pan=req.card.pan if req.card is not None else "",
        orig_batch=orig.batch if orig is not None else "",
        orig_stan=orig.stan if orig is not None else "",
        of_kind=of_kind,
        settle_code=code,
        at=time.monotonic(),
    )


def _advice_done(answer: Answer) -> bool:
    return answer.status == "ok" and answer.rc not in REVERSAL_RETRY_RCS


class FleetTerminal:
    def __init__(
        self, wt: WorldTerminal, world: World, host: str, port: int, rng: random.Random, timeout_s: float,
        record: Callable[[Answer], None],
    ) -> None:  # fmt: skip
        self.wt = wt
        self.rng = rng
        self.cards = [Card(c.pan, c.expiry, c.pin) for c in world.cards]
        self.terminal = Terminal(TerminalState(wt.tid, wt.mid), bytes.fromhex(world.tmk), CUP)
        self.link = Link(host, port, CUP, connect_timeout_s=2.0)
        self.session = Session(self.terminal, self.link, timeout_s=timeout_s, observer=self._observe)
        self._record = record
        mix = HALL_MIX if wt.kind == "service_hall" else POS_MIX
        self.kinds, self.weights = list(mix), list(mix.values())
        self.purchases: list[JournalEntry] = []
        #: refund advices sent without an answer: retransmitted as they are until answered
        self.owed_advices: list[Request] = []

    def _observe(self, answer: Answer) -> None:
        req = answer.request
        if req.type.advice:
            owed = any(r is req for r in self.owed_advices)
            # no answer, an approval whose MAC the terminal cannot trust, or "try again later" (96, 91, A0: the
            # switch journals none of these, an earlier attempt may have been recorded): the advice goes again
            if not _advice_done(answer) and not owed:
                self.owed_advices.append(req)
            elif _advice_done(answer) and owed:
                self.owed_advices = [r for r in self.owed_advices if r is not req]
        if answer.kind == "purchase" and answer.approved:
            self.purchases.append(self.terminal.state.journal[-1])
        self._record(answer)

    def _builder(self, kind: str) -> Callable[[Terminal], Request]:
        batch = self.terminal.state.batch
        if kind == "void":
            while self.purchases:
                entry = self.purchases.pop()
                if not entry.voided and not entry.refunded and entry.batch == batch:
                    card = self._card(entry.pan)
                    return lambda t: t.void(card, entry)
            kind = "purchase"
        if kind == "refund":
            live = [e for e in self.terminal.state.journal if e.kind == "purchase" and not e.voided
                    and e.refunded < e.amount]  # fmt: skip
            if live:
                entry = live[self.rng.randrange(len(live))]
                amount = self.rng.randint(1, entry.amount - entry.refunded)
                card = self._card(entry.pan)
                return lambda t: t.refund(card, amount, entry)
            kind = "purchase"
        card = self.cards[self.rng.randrange(len(self.cards))]
        amount = self.rng.randint(100, 2000)
        if kind == "purchase":
            return lambda t: t.purchase(card, amount)
        if kind == "topup":
            return lambda t: t.topup(card, amount)
        return lambda t: t.balance(card)

    def _card(self, pan: str) -> Card:
        return next(c for c in self.cards if c.pan == pan)

    async def _pay_advices(self) -> bool:
        """Retransmit the advices owed; True when none is left."""
        for req in list(self.owed_advices):
            answer = await self.session.send(req)
            if not _advice_done(answer):
                return False
        return not self.owed_advices

    async def run(self, stop: asyncio.Event, pause_s: float = 0.0) -> None:
        while not stop.is_set():
            try:
                if not await self._pay_advices():
                    await asyncio.sleep(0.05)
                    continue
                kind = self.rng.choices(self.kinds, self.weights)[0]
                answer = await self.session.run(self._builder(kind))
            except SessionError:  # the switch is down or not answering: as a terminal, try again shortly
                await asyncio.sleep(0.05)
                continue
            if answer.status in ("not_sent", "timeout"):
                await asyncio.sleep(0.05)
            elif pause_s:
                await asyncio.sleep(pause_s)

    async def finish(self, deadline: float) -> Answer | None:
        """Pay every reversal and advice owed, then settle (None when the switch never let us)."""
        while time.monotonic() < deadline:
            try:
                await self.session.prepare()
                if await self._pay_advices():
                    answer = await self.session.settle()
                    if answer.msg is not None:
                        return answer
            except SessionError:
                pass
            await asyncio.sleep(0.1)
        return None

    async def close(self) -> None:
        await self.session.close()


class Fleet:
    """``n_pos`` shop terminals and ``n_hall`` service-hall terminals of the world, recording what they see."""

    def __init__(
        self, world: World, host: str, port: int, *, n_pos: int = 6, n_hall: int = 1, seed: int = 1,
        timeout_s: float = 5.0,
    ) -> None:  # fmt: skip
        shops = [t for t in world.terminals if t.kind == "pos"][:n_pos]
        halls = [t for t in world.terminals if t.kind == "service_hall"][:n_hall]
        self.seen: list[Seen] = []
        self.settlements: dict[str, Seen | None] = {}
        self.terminals = [
            FleetTerminal(wt, world, host, port, random.Random(f"{seed}/{wt.tid}"), timeout_s, self._record)
            for wt in shops + halls
        ]

    def _record(self, answer: Answer) -> None:
        self.seen.append(seen_of(answer))

    async def run(self, stop: asyncio.Event, pause_s: float = 0.0) -> None:
        await asyncio.gather(*(t.run(stop, pause_s) for t in self.terminals))

    async def finish(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        answers = await asyncio.gather(*(t.finish(deadline) for t in self.terminals))
        for t, answer in zip(self.terminals, answers, strict=True):
            self.settlements[t.wt.tid] = seen_of(answer) if answer is not None else None

    async def close(self) -> None:
        for t in self.terminals:
            await t.close()

    def counts(self) -> Counter[str]:
        """``status`` / ``kind:rc`` counters of everything seen (for messages and the soak's report)."""
        c: Counter[str] = Counter()
        for s in self.seen:
            c[s.status] += 1
            if s.rc:
                c[f"{s.kind}:{s.rc}"] += 1
        return c
