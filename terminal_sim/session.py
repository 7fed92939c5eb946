"""A terminal on its line: what a POS does around each transaction.

Before a request: sign on when it must (never signed on, batch settled, "sign on again" from the switch),
then send the reversal it owes, retried up to ``reversal_attempts`` times in a row, as UnionPay terminals
do. The request itself: the reversal record is written *before* sending (so even a crash leaves the
terminal owing it), the state is saved after the answer. An advice (refund) that gets no answer is
retransmitted unchanged (the switch answers a retransmission from its stored reply).

``save`` persists the terminal's state (the CLI's state file; a no-op for the load generator); ``observer``
sees every answer, including sign-ons, reversals and settlements.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from switch.rc import RC
from terminal_sim.client import Link, NoReply, NotSent
from terminal_sim.state import TerminalState
from terminal_sim.terminal import Answer, Request, Terminal


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
        reversal_attempts: int = 3,
        advice_attempts: int = 3,
    ) -> None:
        self.terminal = terminal
        self.link = link
        self.timeout_s = timeout_s
        self._save = save
        self._observer = observer
        self.auto_signon = auto_signon
        self.reversal_attempts = reversal_attempts
        self.advice_attempts = advice_attempts

    @property
    def state(self) -> TerminalState:
        return self.terminal.state

    def save(self) -> None:
        if self._save is not None:
            self._save(self.state)

    async def send(self, req: Request) -> Answer:
        """One exchange: reversal record first, then the request, then the answer (state saved around)."""
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
        """Sign on if needed and send any reversal owed; :class:`SessionError` when that cannot be done."""
        out: list[Answer] = []
        if self.state.needs_signon and self.auto_signon:
            out.append(await self._must_signon())
        tries = 0
        while self.state.pending is not None:
            if tries >= self.reversal_attempts:
                raise SessionError(
                    f"a reversal (STAN {self.state.pending.stan}) is still owed: the switch did not answer it"
                )
            tries += 1
            req = self.terminal.reversal()
            assert req is not None
            answer = await self.send(req)
            out.append(answer)
            if answer.status == "not_sent":
                raise SessionError(f"a reversal is owed but the switch is unreachable: {answer.detail}")
            if self.state.needs_signon and self.state.pending is not None and self.auto_signon:
                out.append(await self._must_signon())
        return out

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
        send it; retransmit an unanswered advice."""
        await self.prepare()
        if self.terminal.batch_full:
            raise SessionError("the batch is full (999 transactions): settle it first")
        req = make(self.terminal)
        answer = await self.send(req)
        tries = 1
        while req.type.advice and answer.status == "timeout" and tries < self.advice_attempts:
            tries += 1
            answer = await self.send(req)
        return answer

    async def settle(self) -> Answer:
        """Batch settlement with the terminal's own totals, after any reversal owed (no sign-on first:
        settling needs no keys, and a sign-on would open a new batch); retransmitted when unanswered."""
        if self.state.pending is not None:
            await self.prepare()
        req = self.terminal.settle()
        answer = await self.send(req)
        tries = 1
        # unanswered: the same request again (same STAN: the switch answers a retransmission from its record)
        while answer.status == "timeout" and tries < self.advice_attempts:
            tries += 1
            answer = await self.send(req)
        return answer

    async def close(self) -> None:
        await self.link.aclose()


def describe_no_reply(answer: Answer) -> str:
    """One line for an answer without a usable reply (for the CLI and scenario reports)."""
    if answer.status == "not_sent":
        return f"not sent: {answer.detail}"
    if answer.status == "timeout":
        owed = " (reversal pending)" if answer.request.type.reversible else ""
        return f"no reply: {answer.detail}{owed}"
    if answer.status == "bad_mac":
        return f"{answer.detail}: approval not accepted (reversal pending)"
    return answer.detail
