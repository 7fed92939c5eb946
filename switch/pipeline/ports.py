"""What the authorization engine needs from the ledger and the HSM, in its own terms.

The participants talk to these two Protocols only; :mod:`switch.pipeline.adapters` implements them over the
real ``switch.ledger`` store and ``switch.hsm`` client (and adds the reference-data cache). This keeps the
steps small and lets the engine be tested with fakes, and keeps one place to change when a service's API
moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TerminalRef:
    tid: str
    mid: str
    kind: str  # pos | service_hall
    status: str
    tmk_lmk: str
    #: working keys under the LMK ("" when the terminal has no valid working keys)
    pik_lmk: str
    mak_lmk: str
    batch: str
    mac_failures: int = 0


@dataclass(frozen=True, slots=True)
class MerchantRef:
    mid: str
    status: str  # active | suspended | closed


@dataclass(frozen=True, slots=True)
class CardRef:
    token: str
    expiry: str  # YYMM
    status: str  # inactive | active | lost | frozen | closed
    pin_offset: str
    pin_tries: int
    pvk_ref: str = ""


@dataclass(frozen=True, slots=True)
class WorkingKeys:
    """Result of sign-on key generation: each key under the LMK and under the TMK, with its KCV."""

    pik_lmk: str
    pik_tmk: bytes
    pik_kcv: bytes
    mak_lmk: str
    mak_tmk: bytes
    mak_kcv: bytes
    tdk_lmk: str = ""
    tdk_tmk: bytes = b""
    tdk_kcv: bytes = b""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the ledger answered for one request: field 39 (and why), and the reply fields it stored
    (37, 38, 54, 15, 48 ...) which a retransmission gets again."""

    rc: str
    fields: dict[str, str] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StoredReply:
    fingerprint: str
    rc: str
    fields: dict[str, str]


@dataclass(slots=True)
class Request:
    """A financial request as the ledger needs it (the pipeline already checked format, card and PIN).

    Treat as immutable (build variants with ``dataclasses.replace``); not ``frozen`` only because a frozen
    dataclass's ``__init__`` sets each of these fields through ``object.__setattr__`` (~5 µs per request)."""

    kind: str  # balance | purchase | void | refund | topup | pinchange | reversal | settlement | declined
    dup_key: tuple[str, ...]
    fingerprint: str
    tid: str
    mid: str
    batch: str
    stan: str
    mti: str
    pcode: str
    amount: int = 0
    card_token: str = ""
    pan: str = ""
    #: void: original RRN / auth code / 61; refund: 37/61; reversal: original STAN = 11
    orig_rrn: str = ""
    orig_auth: str = ""
    orig_batch: str = ""
    orig_stan: str = ""
    orig_date: str = ""
    #: PIN change: the new offset
    new_pin_offset: str = ""
    activate: bool = False
    #: the PIN was verified right in this request: the ledger resets the card's PIN-try count if it finds one
    #: (the engine's check of that count may have used a ref read up to ``database.refdata_ttl_ms`` earlier)
    pin_ok: bool = False
    #: declined journal row: its response code and reason
    rc: str = ""
    reason: str = ""
    #: settlement: terminal totals (field 48 as sent)
    totals48: str = ""
    #: reversal: field 39 of the 0400 (reason)
    reversal_reason: str = ""
    #: reversal: type of the original (purchase / void / topup)
    orig_kind: str = ""


class LedgerPort(Protocol):
    """Reference reads may come from a short-lived cache (:mod:`switch.pipeline.refcache`); ``fresh=True``
    reads the ledger (used before a decline or a counted failure that a stale ref could have caused)."""

    async def terminal(self, tid: str, *, fresh: bool = False) -> TerminalRef | None: ...
    async def merchant(self, mid: str) -> MerchantRef | None: ...
    async def card(self, pan: str, *, fresh: bool = False) -> CardRef | None: ...
    async def signon(self, tid: str, keys: WorkingKeys) -> tuple[str, str]:
        """Store the keys, open the next batch; ``(batch, rrn)``."""
        ...

    async def mac_failure(self, tid: str) -> int: ...
    async def mac_success(self, tid: str) -> None: ...
    async def pin_result(self, card_token: str, ok: bool, max_tries: int) -> int: ...
    async def find_reply(self, dup_key: tuple[str, ...]) -> StoredReply | None: ...
    async def find_reply_card(
        self, dup_key: tuple[str, ...], pan: str
    ) -> tuple[StoredReply | None, CardRef | None, bool]:
        """The duplicate lookup and, in the same read when the card ref is not cached, the card:
        ``(stored, card, card_read)`` (``card`` is meaningful only when ``card_read``)."""
        ...

    async def execute(self, req: Request) -> Outcome: ...


class PinBlockError(Exception):
    """The HSM could not decipher/parse the PIN block (payShield 20/23/24): RC 99."""


class HsmPort(Protocol):
    async def verify_mac(self, mak_lmk: str, data: bytes, mac: bytes) -> bool: ...
    async def generate_mac(self, mak_lmk: str, data: bytes) -> bytes: ...
    async def verify_pin(self, pik_lmk: str, pin_block: str, pan: str, offset: str, pvk: str) -> bool: ...
    async def change_pin(
        self, pik_lmk: str, pin_block: str, new_pin_block: str, pan: str, offset: str, pvk: str
    ) -> str | None: ...
    async def working_keys(self, tmk_lmk: str, with_tdk: bool) -> WorkingKeys: ...
