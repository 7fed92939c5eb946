"""The per-request context: every piece of state one authorization needs, in one object.

Participants are stateless; they read and write a :class:`TxnContext`. The manager owns its life: it is
created from the frame body, filled by the steps in SPEC §5 order, turned into a reply by the reply step
and summarised by the ``event=txn`` log line.

Timings: ``steps`` maps a timing bucket (``parse``, ``mac``, ``hsm_pin``, ``ledger``, ``reply``, and a few
internal ones) to milliseconds; a bucket may be fed by several participants.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switch.pipeline.results import RC_OF, Result
from switch.rc import RC

if TYPE_CHECKING:
    from switch.iso.message import IsoMessage
    from switch.iso.profiles import WireProfile
    from switch.pipeline.routes import Route
    from switch.server.connection import ConnectionInfo


@dataclass(slots=True)
class TxnContext:
    """State of one request from frame to reply."""

    body: bytes
    info: ConnectionInfo
    profile: WireProfile
    t0: float
    request: IsoMessage | None = None
    route: Route | None = None
    txn_type: str = "unknown"

    # request fields, normalized by the validate step
    mti: str = ""
    tid: str = ""
    mid: str = ""
    stan: str = ""
    batch: str = ""
    pan: str = ""
    expiry: str = ""
    amount: int = 0
    #: SHA-256 of the request's business content (fields without 64): duplicate detection
    fingerprint: str = ""

    # reference data (ledger models; typed loosely to keep the pipeline free of backend types)
    terminal: Any = None
    merchant: Any = None
    card: Any = None
    #: the card ref as read together with the duplicate lookup (fresh), when ``card_read``
    card_read: bool = False
    #: the terminal's MAK under the LMK, when it has valid working keys
    mak_lmk: str = ""
    #: the terminal's PIK (TPK) under the LMK
    pik_lmk: str = ""

    # concurrency: the request MAC verification runs while later rules are checked
    mac_task: asyncio.Future[bool] | None = None
    mac_ok: bool | None = None

    # outcome: the deciding internal result (``results.RC_OF`` gives field 39) or an RC the ledger returned
    result: Result | None = None
    rc: RC | None = None
    #: reply fields the steps decided (37, 38, 54, 62, 12, 13, 15, 48 ...); merged into the reply
    reply_fields: dict[str, str] = field(default_factory=dict)
    #: cup header processing requirement ``3``: the terminal must sign on again
    require_signon: bool = False
    #: reply must not carry a MAC (no trusted MAK: unknown terminal, no keys, MAC failure)
    no_reply_mac: bool = False
    #: a complete stored reply body to send as is (duplicate replay of the *same* request bytes)
    reply_body: bytes | None = None
    #: duplicate-detection key and whether this request registered as the in-flight holder of it
    dup_key: tuple[str, ...] | None = None
    dup_owner: bool = False
    #: set when the ledger has applied this request (an approved commit, or a declined journal row)
    journaled: bool = False
    #: the ledger's outcome came before its commit was durable: the reply may be built (and MACed) meanwhile,
    #: but goes out only once this is done (the manager waits for it); it raises if the commit failed
    durable: Any = None
    #: the reply fields the ledger's outcome added (taken back if its commit fails)
    ledger_fields: Any = None
    rrn: str = ""
    #: PIN change: the new PIN's offset from the HSM
    new_pin_offset: str = ""
    #: the PIN was verified right (the ledger resets a PIN-try count it still finds under the card's lock)
    pin_ok: bool = False
    auth_code: str = ""
    #: per-step timings in milliseconds
    steps: dict[str, float] = field(default_factory=dict)
    #: extra log fields (e.g. orig_stan) for the txn line
    log_extra: dict[str, Any] = field(default_factory=dict)

    def decline(self, result: Result) -> None:
        """Record the deciding result (the first decline wins)."""
        if self.rc is None:
            self.result = result
            self.rc = RC_OF[result]

    def approve(self) -> None:
        if self.rc is None:
            self.result = Result.APPROVED
            self.rc = RC.APPROVED

    def add_time(self, bucket: str, seconds: float) -> None:
        steps = self.steps
        steps[bucket] = steps.get(bucket, 0.0) + seconds * 1000.0
