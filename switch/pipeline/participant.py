"""The participant protocol (jPOS ``TransactionParticipant`` in asyncio, reduced to what we need).

A participant is a small stateless step with one job. ``prepare`` looks at the context and votes:

- ``Vote.CONTINUE``: nothing to object, go on with the next step;
- ``Vote.STOP``: the outcome is decided (a decline recorded with ``ctx.decline``, an approval, or a reply
  that is ready as is, e.g. a duplicate replay); the remaining preparing steps are skipped.

A participant that holds something for the duration of the request (the duplicate-detection slot) also
implements ``finish(ctx)``: the manager calls it, in reverse order, for every participant whose ``prepare``
ran, after the reply is built and whatever the outcome (jPOS's commit/abort collapsed into one call,
because the ledger commit itself is one participant's ``prepare``).

``bucket`` names the timing bucket the step's time is added to (``steps`` of the txn log line).
The reply step is not a participant of the routes: the manager always runs it (``AlwaysRuns``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol, runtime_checkable

from switch.pipeline.context import TxnContext


class Vote(IntEnum):
    CONTINUE = 0
    STOP = 1


@runtime_checkable
class Participant(Protocol):
    name: str
    bucket: str

    async def prepare(self, ctx: TxnContext) -> Vote: ...


@runtime_checkable
class Finisher(Protocol):
    async def finish(self, ctx: TxnContext) -> None: ...
