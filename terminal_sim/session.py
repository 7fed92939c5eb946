"""A terminal on its line: what a POS does around each transaction.

Before a request: sign on when it must (never signed on, batch settled, "sign on again" from the switch),
then work off its store-and-forward queue: every reversal and refund advice it still owes, oldest first,
each sent again (same STAN, same content) until it gets a definitive, MAC-verified answer. The request
itself: its reversal record (purchase, void, top-up) or the advice itself (refund) is queued *before*
sending, so even a crash leaves the terminal owing it; the state is saved around every exchange. Settlement
works off the queue first too: a batch is never settled while something of it is still owed.

The retry bound (:class:`ForwardPolicy`, documented in docs/TERMINAL_SIM.md): each time the queue is worked
off, a record is tried at most ``burst`` times in a row (``pause_s`` apart after a "try again" answer; a
timeout has waited already); still owed after that, the new request or the settlement is not sent
(:class:`SessionError`) and the next command tries again. A record sent ``limit`` times in all *and* first
sent ``min_age_s`` ago or more without a definitive answer is given up (both, so that a switch answering
``96`` fast during an outage cannot use the bound up in seconds): taken off the queue, kept in the state's
``given_up`` list (and :attr:`Session.given_up`) for the operator, who reconciles it by hand (the batch
will not balance).

``save`` persists the terminal's state (the CLI's state file; a no-op for the load generator); ``observer``
sees every answer, including sign-ons, reversals, advices sent again and settlements.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from switch.rc import RC
from terminal_sim.client import Link, NoReply, NotSent
from terminal_sim.state import Forward, TerminalState
from terminal_sim.terminal import Answer, ForwardError, Request, Terminal


@dataclass(frozen=True)
class ForwardPolicy:
    """How hard the terminal tries to deliver a queued reversal or advice."""

    #: tries in a row for one record each time the queue is worked off (before a request, before settling)
    burst: int = 3
    #: sends of one record in all and ...
    limit: int = 20
    #: ... seconds since its first send: a record past both without a definitive answer is given up
    min_age_s: float = 600.0
    #: pause before the next try after an answer that said "try again" (96, 91, A0, a bad MAC); none by default:
    #: the back-off is between occasions (the next command; the load generator's next turn)
    pause_s: float = 0.0


DEFAULT_POLICY = ForwardPolicy()


class SessionError(Exception):
    """The terminal cannot go on (sign-on refused, reversal unanswered); the text is for the operator."""


class Session:
    def __init__(
        self,
        terminal: Terminal,
        link: Link,
        *,
        timeout_s: float = 10.0,
        save: Callable[[TerminalState], None] | None = None,
        observer: Callable[[Answer], None] | None = None,
        auto_signon: bool = True,
        policy: ForwardPolicy = DEFAULT_POLICY,
    ) -> None:
        self.terminal = terminal
        self.link = link
        self.timeout_s = timeout_s
        self._save = save
        self._observer = observer
        self.auto_signon = auto_signon
        self.policy = policy
        #: records this session gave up (also in ``state.given_up``)
        self.given_up: list[Forward] = []

    @property
    def state(self) -> TerminalState:
        return self.terminal.state

    def save(self) -> None:
        if self._save is not None:
            self._save(self.state)

    async def send(self, req: Request) -> Answer:
        """One exchange: queue what it owes first, then the request, then the answer (state saved around)."""
        term = self.terminal
        term.before_send(req)
        self.save()
        start = time.perf_counter()
        try:
            msg = await self.link.exchange(req.body, req.reply_mti, req.stan, term.tid, self.timeout_s)
        except NotSent as exc:
            answer = term.on_no_reply(req, False, str(exc))
        except NoReply as exc:
            answer = term.on_no_reply(req, True, exc.reason)
        else:
            answer = term.on_reply(req, msg, time.perf_counter() - start)
        self.save()
        if self._observer is not None:
            self._observer(answer)
        return answer

    async def signon(self, nmic: str = "004") -> Answer:
        return await self.send(self.terminal.signon(nmic))

    async def prepare(self) -> list[Answer]:
        """Sign on if needed and work off the store-and-forward queue; :class:`SessionError` when that cannot
        be done."""
        out: list[Answer] = []
        if self.state.needs_signon and self.auto_signon:
            out.append(await self._must_signon())
        await self.forward_queue(out)
        return out

    async def forward_queue(self, out: list[Answer] | None = None) -> list[Answer]:
        """Send every queued reversal and advice again, oldest first (see the module docstring for the
        bound); :class:`SessionError` when one is still owed after its burst."""
        out = [] if out is None else out
        while self.state.queue:
            rec = self.state.queue[0]
            last = await self._deliver(rec, out)
            if self._queued(rec):
                if last is not None and last.status == "not_sent":
                    raise SessionError(f"{rec.describe()} is owed but the switch is unreachable: {last.detail}")
                raise SessionError(f"{rec.describe()} is still owed ({rec.attempts} sends, last answer: {rec.last})")
        return out

    def _queued(self, rec: Forward) -> bool:
        return any(r is rec for r in self.state.queue)

    async def _deliver(
        self, rec: Forward, out: list[Answer], tries: int = 0, last: Answer | None = None, *, signon: bool = True
    ) -> Answer | None:
        """Send ``rec`` again until it leaves the queue (a definitive answer, or given up at the bound), at most
        ``policy.burst`` tries in all counting the ``tries`` already made; the last answer to it. When the
        switch asks for a sign-on, it is done first (``signon=False``: stop there, the next request does it)."""
        while self._queued(rec):
            if self._exhausted(rec):
                self._give_up(rec)
                break
            if tries >= self.policy.burst:
                break
            if self.state.needs_signon and self.auto_signon:  # the switch answered A0: new keys first
                if not signon:
                    break
                out.append(await self._must_signon())
            if self.policy.pause_s and last is not None and last.status in ("ok", "bad_mac"):
                await asyncio.sleep(self.policy.pause_s)  # "try again": give the switch a moment
            try:
                req = self.terminal.forward(rec)
            except ForwardError:
                rec.last = "card data cannot be opened (another TMK?)"
                self._give_up(rec)
                break
            tries += 1
            last = await self.send(req)
            out.append(last)
            if last.status == "not_sent":
                break
        return last

    def _exhausted(self, rec: Forward) -> bool:
        p = self.policy
        return rec.attempts >= p.limit and time.time() - rec.first_sent >= p.min_age_s

    def _give_up(self, rec: Forward) -> None:
        self.state.give_up(rec)
        self.given_up.append(rec)
        self.save()

    async def _must_signon(self) -> Answer:
        answer = await self.signon()
        if answer.status == "not_sent":
            raise SessionError(f"sign-on not sent: {answer.detail}")
        if answer.status == "timeout":
            raise SessionError("sign-on: no reply from the switch")
        if answer.status == "bad_keys":
            raise SessionError(f"sign-on: {answer.detail}")
        if answer.rc != RC.APPROVED:
            code = answer.rc or "--"
            raise SessionError(f"sign-on refused: {code} {RC.describe(code)[0]}")
        return answer

    async def run(self, make: Callable[[Terminal], Request]) -> Answer:
        """Prepare, build the request with ``make`` (after sign-on, so it gets the right batch and keys),
        send it; an advice not definitively answered is sent again at once, within the burst (it stays queued
        if that does not settle it). Returns the last answer to the request."""
        await self.prepare()
        if self.terminal.batch_full:
            raise SessionError("the batch is full (999 transactions): settle it first")
        req = make(self.terminal)
        answer = await self.send(req)
        rec = req.stored
        if rec is not None and answer.status != "not_sent" and self._queued(rec):
            answer = await self._deliver(rec, [], tries=1, last=answer, signon=False) or answer
        return answer

    async def settle(self) -> Answer:
        """Batch settlement with the terminal's own totals, after the store-and-forward queue (no sign-on
        first unless the switch asked for one: settling needs no keys, and a sign-on would open a new batch);
        retransmitted when unanswered (same STAN: the switch answers a retransmission from its record)."""
        if self.state.queue:
            await self.forward_queue()
        req = self.terminal.settle()
        answer = await self.send(req)
        tries = 1
        while answer.status == "timeout" and tries < self.policy.burst:
            tries += 1
            answer = await self.send(req)
        return answer

    async def close(self) -> None:
        await self.link.aclose()


def describe_no_reply(answer: Answer) -> str:
    """One line for an answer without a usable reply (for the CLI and scenario reports)."""
    if answer.status == "not_sent":
        return f"not sent: {answer.detail}"
    t = answer.request.type
    owed = " (reversal pending)" if t.reversible else " (advice kept: sent again)" if t.advice else ""
    if answer.status == "timeout":
        return f"no reply: {answer.detail}{owed}"
    if answer.status == "bad_mac":
        return f"{answer.detail}: approval not accepted{owed}"
    return answer.detail
