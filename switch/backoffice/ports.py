"""What the back office needs from the ledger: one Protocol, implemented for SQLite and PostgreSQL in
``switch.ledger.backoffice`` (same tables as the POS money rules, same business date).

Every method that moves money does so in one database transaction together with its journal row(s), its
double-entry postings, the balance update and its SMS outbox row(s), and is idempotent by its key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from switch.backoffice.gateway import Notice
from switch.clearing.build import ClearingRow


@dataclass(frozen=True, slots=True)
class CardView:
    """A card as operators see it: never the PAN, only first 6 / last 4 and the token."""

    token: str
    first6: str
    last4: str
    expiry: str
    status: str
    balance: int
    pin_tries: int
    member_id: str
    name: str
    mobile: str
    employer_id: str

    @property
    def masked_pan(self) -> str:
        return f"{self.first6}******{self.last4}"


@dataclass(frozen=True, slots=True)
class NewCard:
    """A card to insert at issuance (status INACTIVE, balance 0)."""

    token: str
    first6: str
    last4: str
    sequence: int
    expiry: str
    pin_offset: str
    member_id: str
    name: str
    mobile: str
    employer_id: str


@dataclass(frozen=True, slots=True)
class TopupItem:
    line: int
    order_id: str
    employer_id: str
    card_token: str
    amount: int
    item: str
    note: str
    digest: str  # hash of the order's content (idempotency: same id + same digest = duplicate)


@dataclass(frozen=True, slots=True)
class TopupOutcome:
    line: int
    result: str  # applied | duplicate | rejected:<reason>
    balance: int | None = None


@dataclass(frozen=True, slots=True)
class BusinessDay:
    open_date: date
    last_closed: date | None


@dataclass(frozen=True, slots=True)
class ClearingFileRecord:
    business_date: date
    file_id: str
    created_at: datetime
    sha256: str
    d_count: int


@dataclass(frozen=True, slots=True)
class RebateItem:
    card_token: str
    amount: int


@dataclass(frozen=True, slots=True)
class StatementLine:
    when: datetime
    business_date: date
    kind: str
    amount: int  # signed, card side: + credit, - debit
    balance_after: int
    merchant: str
    reference: str  # RRN, order id or rebate month


@dataclass(frozen=True, slots=True)
class EmployerLine:
    when: datetime
    order_id: str
    first6: str
    last4: str
    member_id: str
    name: str
    amount: int
    item: str
    note: str


class BackofficeStore(Protocol):
    async def close(self) -> None: ...

    # --- business date (SPEC §6) ---
    async def business_day(self, now: datetime) -> BusinessDay: ...
    async def close_business_day(self, now: datetime) -> tuple[date, date]: ...

    # --- cards ---
    async def next_card_sequence(self, bin_: str) -> int: ...
    async def card_by_token(self, token: str) -> CardView | None: ...
    async def card_by_member(self, member_id: str) -> CardView | None: ...
    async def insert_card(self, card: NewCard, now: datetime) -> None: ...
    async def card_action(self, token: str, action: str, operator: str, now: datetime) -> tuple[str, str]:
        """Apply ``lost|freeze|close|unlock-pin``; returns (old status, new status); journaled as an operator
        action. A closed card refuses everything but ``close``; a lost card cannot be frozen (only closed)."""
        ...

    # --- bulk top-ups ---
    async def apply_topups(
        self, items: Sequence[TopupItem], *, now: datetime, business_date: date, balance_cap: int
    ) -> list[TopupOutcome]: ...

    # --- clearing ---
    async def clearing_file(self, business_date: date) -> ClearingFileRecord | None: ...
    async def record_clearing_file(self, rec: ClearingFileRecord) -> None: ...
    def clearing_rows(self, business_date: date, batch_size: int) -> AsyncIterator[Sequence[ClearingRow]]: ...

    # --- rebates ---
    async def rebate_spend(self, start: date, end: date) -> list[tuple[str, str, int, int]]: ...
    async def post_rebates(
        self, items: Sequence[RebateItem], *, month: str, now: datetime, business_date: date
    ) -> tuple[int, int, int]:
        """Credit each item once per (card, month); returns (credited now, fen credited now, already done)."""
        ...

    # --- SMS outbox ---
    async def pending_notices(self, limit: int) -> list[Notice]: ...
    async def mark_notices_sent(self, ids: Sequence[str], now: datetime) -> None: ...

    # --- reports ---
    async def card_statement(self, token: str, start: date, end: date) -> tuple[int, list[StatementLine]]: ...
    async def employer_statement(self, employer_id: str, start: date, end: date) -> list[EmployerLine]: ...
