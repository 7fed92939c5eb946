"""Rebates, SMS delivery, statements and the manual cut-over, over :class:`BackofficeStore`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from switch.backoffice.gateway import Gateway
from switch.backoffice.money import format_yuan
from switch.backoffice.oplog import get_logger
from switch.backoffice.ports import BackofficeStore, RebateItem
from switch.backoffice.rebatecalc import card_rebates, month_bounds
from switch.backoffice.render import render_csv, render_table
from switch.clearing.records import yyyymmdd
from switch.errors import HandledError, UsageError

log = get_logger(__name__)


# ---------------------------------------------------------------------------------------------- day close
async def close_day(store: BackofficeStore, now: datetime) -> tuple[date, date]:
    closed, opened = await store.close_business_day(now)
    log.info("day_closed", closed=yyyymmdd(closed), opened=yyyymmdd(opened))
    return closed, opened


# ---------------------------------------------------------------------------------------------- rebates
@dataclass(frozen=True, slots=True)
class RebateSummary:
    month: str
    cards: int
    credited: int
    already: int
    total_fen: int

    def text(self) -> str:
        return (
            f"rebates {self.month}: {self.cards} cards earned cashback, {self.credited} credited now "
            f"({format_yuan(self.total_fen)}), {self.already} already credited"
        )


async def run_rebates(store: BackofficeStore, *, month: str, now: datetime) -> RebateSummary:
    try:
        start, end = month_bounds(month)
    except ValueError as exc:
        raise UsageError(f"--month: {exc}") from exc
    day = await store.business_day(now)
    if day.open_date < end:
        raise HandledError(f"month {month} is not over: business date {yyyymmdd(day.open_date)} is open")
    amounts = card_rebates(await store.rebate_spend(start, end))
    items = [RebateItem(token, amount) for token, amount in sorted(amounts.items())]
    credited, credited_fen, already = await store.post_rebates(items, month=month, now=now, business_date=day.open_date)
    log.info("rebates_posted", month=month, cards=len(items), credited=credited, already=already)
    return RebateSummary(month, len(items), credited, already, credited_fen)


# ---------------------------------------------------------------------------------------------- SMS
async def send_notices(
    store: BackofficeStore, gateway: Gateway, *, now: Callable[[], datetime], batch: int = 500
) -> tuple[int, int]:
    """Deliver pending notices until none is left or the gateway stops accepting; (sent, still pending)."""
    sent = 0
    while True:
        notices = await store.pending_notices(batch)
        if not notices:
            return sent, 0
        accepted = gateway.deliver(notices)
        if accepted:
            await store.mark_notices_sent([n.id for n in notices[:accepted]], now())
            sent += accepted
        if accepted < len(notices):
            rest = len(await store.pending_notices(1_000_000))
            return sent, rest


# ---------------------------------------------------------------------------------------------- reports
CARD_STATEMENT_COLUMNS = ("time", "business_date", "type", "amount", "balance", "merchant", "reference")
EMPLOYER_COLUMNS = ("time", "order_id", "masked_pan", "member_id", "name", "amount", "item", "note")


async def card_statement_text(
    store: BackofficeStore, token: str, start: date, end: date, *, fmt: str, tz_local: Callable[[datetime], datetime]
) -> str:
    card = await store.card_by_token(token)
    if card is None:
        raise HandledError("unknown card")
    opening, lines = await store.card_statement(token, start, end)
    rows = [
        [
            tz_local(x.when).strftime("%Y-%m-%d %H:%M:%S"),
            yyyymmdd(x.business_date),
            x.kind,
            format_yuan(x.amount),
            format_yuan(x.balance_after),
            x.merchant,
            x.reference,
        ]
        for x in lines
    ]
    credits = sum(x.amount for x in lines if x.amount > 0)
    debits = -sum(x.amount for x in lines if x.amount < 0)
    closing = lines[-1].balance_after if lines else opening
    if fmt == "csv":
        return render_csv(CARD_STATEMENT_COLUMNS, rows)
    head = (
        f"card {card.masked_pan}  {card.name}  member {card.member_id}  employer {card.employer_id}\n"
        f"period {start.isoformat()} .. {end.isoformat()} (business dates)\n"
        f"opening balance {format_yuan(opening)}\n"
    )
    foot = (
        f"credits {format_yuan(credits)}  debits {format_yuan(debits)}  closing balance {format_yuan(closing)}  "
        f"({len(rows)} transactions)\n"
    )
    return head + render_table(CARD_STATEMENT_COLUMNS, rows, numeric=(3, 4)) + foot


async def employer_statement_text(
    store: BackofficeStore, employer_id: str, month: str, *, fmt: str, tz_local: Callable[[datetime], datetime]
) -> str:
    try:
        start, end = month_bounds(month)
    except ValueError as exc:
        raise UsageError(f"--month: {exc}") from exc
    lines = await store.employer_statement(employer_id, start, end)
    rows = [
        [
            tz_local(x.when).strftime("%Y-%m-%d %H:%M:%S"),
            x.order_id,
            f"{x.first6}******{x.last4}",
            x.member_id,
            x.name,
            format_yuan(x.amount),
            x.item,
            x.note,
        ]
        for x in lines
    ]
    if fmt == "csv":
        return render_csv(EMPLOYER_COLUMNS, rows)
    total = sum(x.amount for x in lines)
    cards = len({(x.first6, x.last4, x.member_id) for x in lines})
    return (
        f"employer {employer_id}  top-ups {month}\n"
        + render_table(EMPLOYER_COLUMNS, rows, numeric=(5,))
        + f"{len(rows)} orders, {cards} cards, total {format_yuan(total)}\n"
    )
