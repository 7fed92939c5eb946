"""The back office's store (``switch.backoffice.ports.BackofficeStore``) over the ledger's own tables, on both
backends: business date and manual cut-over, cards, bulk top-ups, clearing rows, rebates, SMS outbox,
statements.

Money moves exactly as on the POS side: journal row (with its idempotency key and RRN) + double-entry postings
+ card balance + SMS outbox row in one transaction. Bulk work is batched: a chunk of top-ups is one
transaction with a handful of set-based statements (cards locked in token order), clearing rows stream
through a cursor, rebates are credited in chunks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from switch.backoffice.gateway import Notice
from switch.backoffice.ports import (
    BusinessDay,
    CardView,
    ClearingFileRecord,
    EmployerLine,
    NewCard,
    RebateItem,
    StatementLine,
    TopupItem,
    TopupOutcome,
)
from switch.backoffice.smstext import render_sms
from switch.backoffice.timeutil import BusinessCalendar
from switch.clearing.build import ClearingRow
from switch.config import ProgramConfig
from switch.errors import HandledError
from switch.ledger.backends import open_backend
from switch.ledger.errors import LedgerError
from switch.ledger.journal import INSERT_JOURNAL_WITH_ID, Entry, entry_row, insert_entry, post
from switch.ledger.keys import (
    FLOAT_ACCOUNT,
    REBATE_EXPENSE_ACCOUNT,
    auth_code_of,
    format_rrn,
    notice_id,
    rebate_key,
    topup_key,
)
from switch.ledger.postgres import BUSINESS_DAY_LOCK
from switch.ledger.store import Backend
from switch.ledger.tx import Row, Tx, as_datetime, date_int, int_date, next_date_int, open_business_date

#: card actions → the status they set (``unlock-pin`` resets the PIN try counter only)
_ACTION_STATUS = {"lost": "lost", "freeze": "frozen", "close": "closed"}
REBATE_CHUNK = 1000


async def open_backoffice_store(dsn: str, *, calendar: BusinessCalendar | None = None) -> SqlBackofficeStore:
    """The back-office store on ``dsn``; ``calendar`` gives the calendar business date (SPEC §6), by default
    the program's default calendar (23:20 cut-over, Asia/Shanghai)."""
    try:
        name, backend = await open_backend(dsn, pool_size=4)
    except LedgerError as exc:  # schema missing / database unreachable: a one-line CLI error
        raise HandledError(str(exc)) from None
    return SqlBackofficeStore(backend, name, calendar or BusinessCalendar.from_config(ProgramConfig()))


def _in(tx: Tx, column: str, values: Sequence[str], first: int) -> tuple[str, list[Any]]:
    """``column IN (...)`` for a list of text values, as each backend does it best (parameters from ``first``)."""
    if tx.dialect == "postgres":
        return f"{column} = ANY(${first}::text[])", [list(values)]
    marks = ", ".join(f"${first + i}" for i in range(len(values)))
    return f"{column} IN ({marks})", list(values)


async def _journal_ids(tx: Tx, n: int) -> list[int]:
    """``n`` fresh journal ids inside this transaction (bulk inserts need them before inserting)."""
    if n <= 0:
        return []
    if tx.dialect == "postgres":
        rows = await tx.fetch(
            "SELECT nextval(pg_get_serial_sequence('journal', 'id')) FROM generate_series(1, $1::int)", n
        )
        return [int(r[0]) for r in rows]
    top = int(await tx.fetchval("SELECT COALESCE(MAX(id), 0) FROM journal"))  # under the write lock
    return list(range(top + 1, top + n + 1))


@dataclass(slots=True)
class _BulkCard:
    token: str
    status: str
    account_id: int
    balance: int
    mobile: str
    last4: str
    delta: int = 0


_CARD_VIEW_SQL = (
    "SELECT c.token, c.first6, c.last4, c.expiry, c.status, a.balance, c.pin_tries, c.member_id, c.name, "
    "c.mobile, c.employer_id FROM cards c JOIN accounts a ON a.id = c.account_id"
)


def _card_view(r: Row | None) -> CardView | None:
    if r is None:
        return None
    return CardView(
        token=r["token"],
        first6=r["first6"],
        last4=r["last4"],
        expiry=r["expiry"],
        status=r["status"],
        balance=int(r["balance"]),
        pin_tries=int(r["pin_tries"]),
        member_id=r["member_id"],
        name=r["name"],
        mobile=r["mobile"],
        employer_id=r["employer_id"],
    )


class SqlBackofficeStore:
    """:class:`switch.backoffice.ports.BackofficeStore` on SQLite or PostgreSQL (see module docstring)."""

    def __init__(self, backend: Backend, backend_name: str, calendar: BusinessCalendar) -> None:
        self.backend = backend
        self.backend_name = backend_name
        self.calendar = calendar

    async def close(self) -> None:
        await self.backend.close()

    # ------------------------------------------------------------------------------------------ business date
    async def business_day(self, now: datetime) -> BusinessDay:
        last = await self.backend.read(lambda tx: tx.fetchval("SELECT last_closed FROM business_day WHERE id = 1"))
        cal = date_int(self.calendar.business_date(now))
        open_date = next_date_int(int(last)) if last is not None and int(last) >= cal else cal
        return BusinessDay(int_date(open_date), None if last is None else int_date(int(last)))

    async def close_business_day(self, now: datetime) -> tuple[date, date]:
        """Close the open business date now (money transactions in flight finish first) and open the next."""

        async def close(tx: Tx) -> tuple[date, date]:
            if tx.dialect == "postgres":  # wait for money transactions holding the date, keep new ones out
                await tx.execute("SELECT pg_advisory_xact_lock($1)", BUSINESS_DAY_LOCK)
            closing = await open_business_date(tx, self.calendar.business_date(now))
            await tx.execute(
                "UPDATE business_day SET last_closed = $1, closed_at = $2 WHERE id = 1", closing, tx.ts(now)
            )
            return int_date(closing), int_date(next_date_int(closing))

        return await self.backend.write(close)

    # ------------------------------------------------------------------------------------------ cards
    async def next_card_sequence(self, bin_: str) -> int:
        name = f"card_seq|{bin_}"
        value = await self.backend.write(
            lambda tx: tx.fetchval(
                "INSERT INTO counters (name, value) VALUES ($1, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                name,
            )
        )
        return int(value)

    async def card_by_token(self, token: str) -> CardView | None:
        return _card_view(
            await self.backend.read(lambda tx: tx.fetchrow(_CARD_VIEW_SQL + " WHERE c.token = $1", token))
        )

    async def card_by_member(self, member_id: str) -> CardView | None:
        sql = _CARD_VIEW_SQL + " WHERE c.member_id = $1 ORDER BY c.created_at DESC, c.token LIMIT 1"
        return _card_view(await self.backend.read(lambda tx: tx.fetchrow(sql, member_id)))

    async def insert_card(self, card: NewCard, now: datetime) -> None:
        async def insert(tx: Tx) -> None:
            if await tx.fetchval("SELECT 1 FROM cards WHERE token = $1", card.token):
                raise HandledError("card already exists")
            account = int(
                await tx.fetchval(
                    "INSERT INTO accounts (kind, ref, balance) VALUES ('card', $1, 0) RETURNING id", card.token
                )
            )
            ts = tx.ts(now)
            await tx.execute(
                "INSERT INTO cards (token, first6, status, last4, name, expiry, member_id, sequence, pin_offset, "
                "mobile, employer_id, account_id, created_at, updated_at) "
                "VALUES ($1, $2, 'inactive', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
                card.token,
                card.first6,
                card.last4,
                card.name,
                card.expiry,
                card.member_id,
                card.sequence,
                card.pin_offset,
                card.mobile,
                card.employer_id,
                account,
                ts,
            )
            await _operator_entry(tx, now, self.calendar, "card_issue", card.token, "issued")

        await self.backend.write(insert)

    async def card_action(self, token: str, action: str, operator: str, now: datetime) -> tuple[str, str]:
        if action not in (*_ACTION_STATUS, "unlock-pin"):
            raise HandledError(f"unknown card action {action}")

        async def apply(tx: Tx) -> tuple[str, str]:
            old = await tx.fetchval("SELECT status FROM cards WHERE token = $1 FOR UPDATE", token)
            if old is None:
                raise HandledError("unknown card")
            if old == "closed" and action != "close":
                raise HandledError("card is closed")
            if old == "lost" and action == "freeze":
                raise HandledError("card is reported lost; it can only be closed")
            if action == "unlock-pin":
                new = old
                await tx.execute("UPDATE cards SET pin_tries = 0, updated_at = $1 WHERE token = $2", tx.ts(now), token)
            else:
                new = _ACTION_STATUS[action]
                await tx.execute(
                    "UPDATE cards SET status = $1, updated_at = $2 WHERE token = $3", new, tx.ts(now), token
                )
            await _operator_entry(tx, now, self.calendar, "card_action", token, f"{action} by {operator}: {old}->{new}")
            return str(old), str(new)

        return await self.backend.write(apply)

    # ------------------------------------------------------------------------------------------ bulk top-ups
    async def apply_topups(
        self, items: Sequence[TopupItem], *, now: datetime, business_date: date, balance_cap: int
    ) -> list[TopupOutcome]:
        """One chunk of employer orders in one transaction (see ``switch.backoffice.topup``)."""
        if not items:
            return []
        tz = self.calendar.tz
        return await self.backend.write(lambda tx: _apply_topups(tx, items, now, business_date, balance_cap, tz))

    # ------------------------------------------------------------------------------------------ clearing
    async def clearing_file(self, business_date: date) -> ClearingFileRecord | None:
        r = await self.backend.read(
            lambda tx: tx.fetchrow(
                "SELECT business_date, file_id, created_at, sha256, d_count FROM clearing_files "
                "WHERE business_date = $1",
                date_int(business_date),
            )
        )
        if r is None:
            return None
        return ClearingFileRecord(
            int_date(int(r["business_date"])),
            r["file_id"],
            datetime.fromisoformat(r["created_at"]),
            r["sha256"],
            int(r["d_count"]),
        )

    async def record_clearing_file(self, rec: ClearingFileRecord) -> None:
        await self.backend.write(
            lambda tx: tx.execute(
                "INSERT INTO clearing_files (business_date, file_id, created_at, sha256, d_count) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (business_date) DO NOTHING",
                date_int(rec.business_date),
                rec.file_id,
                rec.created_at.isoformat(),
                rec.sha256,
                rec.d_count,
            )
        )

    async def clearing_rows(self, business_date: date, batch_size: int) -> AsyncIterator[Sequence[ClearingRow]]:
        """The date's approved movements not reversed that same date, and the reversals of earlier dates'
        movements journaled on it (ADJUSTMENTs), in journal order."""
        sql = (
            "SELECT j.kind, j.rrn, j.stan, j.batch, j.tid, j.mid, c.first6, c.last4, j.card_token, j.amount, "
            "j.fee, j.created_at, j.auth_code, j.orig_rrn, j.orig_date, j.orig_kind "
            "FROM journal j LEFT JOIN cards c ON c.token = j.card_token "
            "WHERE j.business_date = $1 AND j.rc = '00' AND ("
            "(j.kind IN ('purchase', 'void', 'refund', 'topup', 'rebate') "
            "AND (j.reversed_date IS NULL OR j.reversed_date <> j.business_date)) "
            "OR (j.kind = 'reversal' AND j.status = 'ok' AND j.orig_date < j.business_date)) "
            "ORDER BY j.id"
        )
        dates: dict[int, date] = {}
        sqlite = self.backend_name == "sqlite"
        parse = datetime.fromisoformat
        async for rows in self.backend.stream(sql, (date_int(business_date),), batch_size):
            out = []
            for r in rows:
                od = r[14]
                orig_date = None
                if od is not None:
                    orig_date = dates.get(od)
                    if orig_date is None:
                        orig_date = dates[od] = int_date(int(od))
                ts = parse(r[11]) if sqlite else r[11]
                out.append(
                    ClearingRow(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        r[5],
                        r[6] or "",
                        r[7] or "",
                        r[8],
                        r[9],
                        r[10],
                        ts,
                        r[12],
                        r[13],
                        orig_date,
                        r[15],
                    )
                )
            yield out

    # ------------------------------------------------------------------------------------------ rebates
    async def rebate_spend(self, start: date, end: date) -> list[tuple[str, str, int, int]]:
        rows = await self.backend.read(
            lambda tx: tx.fetch(
                "SELECT j.card_token, j.mid, "
                "SUM(CASE WHEN j.kind = 'purchase' THEN j.amount ELSE -j.amount END), m.rebate_bps "
                "FROM journal j JOIN merchants m ON m.mid = j.mid "
                "WHERE j.business_date >= $1 AND j.business_date < $2 AND j.rc = '00' "
                "AND j.kind IN ('purchase', 'void', 'refund') AND j.status <> 'reversed' "
                "GROUP BY j.card_token, j.mid, m.rebate_bps ORDER BY j.card_token, j.mid",
                date_int(start),
                date_int(end),
            )
        )
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    async def post_rebates(
        self, items: Sequence[RebateItem], *, month: str, now: datetime, business_date: date
    ) -> tuple[int, int, int]:
        credited = credited_fen = already = 0
        tz = self.calendar.tz
        for i in range(0, len(items), REBATE_CHUNK):
            chunk = items[i : i + REBATE_CHUNK]

            async def credit(tx: Tx, chunk: Sequence[RebateItem] = chunk) -> tuple[int, int, int]:
                return await _post_rebates(tx, chunk, month, now, business_date, tz)

            c, fen, a = await self.backend.write(credit)
            credited += c
            credited_fen += fen
            already += a
        return credited, credited_fen, already

    # ------------------------------------------------------------------------------------------ SMS outbox
    async def pending_notices(self, limit: int) -> list[Notice]:
        rows = await self.backend.read(
            lambda tx: tx.fetch(
                "SELECT id, kind, mobile, text, created_at FROM notices WHERE status = 'pending' "
                "ORDER BY journal_id LIMIT $1",
                limit,
            )
        )
        tz = self.calendar.tz
        return [
            Notice(r[0], r[1], r[2], r[3], as_datetime(r[4]).astimezone(tz).isoformat(timespec="seconds")) for r in rows
        ]

    async def mark_notices_sent(self, ids: Sequence[str], now: datetime) -> None:
        rrns = [(i.removeprefix("sms-"),) for i in ids if i.startswith("sms-")]
        if not rrns:
            return

        async def mark(tx: Tx) -> None:
            await tx.executemany(
                "UPDATE notices SET status = 'sent', sent_at = $2 "
                "WHERE journal_id = (SELECT id FROM journal WHERE rrn = $1) AND status = 'pending'",
                [(r, tx.ts(now)) for (r,) in rrns],
            )

        await self.backend.write(mark)

    # ------------------------------------------------------------------------------------------ reports
    async def card_statement(self, token: str, start: date, end: date) -> tuple[int, list[StatementLine]]:
        """Opening balance before ``start`` and the card's movements of business dates ``start``..``end``
        (inclusive), oldest first, each with the balance after it."""

        async def read(tx: Tx) -> tuple[int, list[Row]]:
            account = await tx.fetchval("SELECT account_id FROM cards WHERE token = $1", token)
            if account is None:
                return 0, []
            opening = await tx.fetchval(
                "SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN journal j ON j.id = p.journal_id "
                "WHERE p.account_id = $1 AND j.business_date < $2",
                account,
                date_int(start),
            )
            rows = await tx.fetch(
                "SELECT j.created_at, j.business_date, j.kind, p.amount, COALESCE(m.name, ''), j.rrn, j.idem_key, "
                "j.source FROM postings p JOIN journal j ON j.id = p.journal_id LEFT JOIN merchants m ON m.mid = j.mid "
                "WHERE p.account_id = $1 AND j.business_date >= $2 AND j.business_date <= $3 ORDER BY j.id",
                account,
                date_int(start),
                date_int(end),
            )
            return int(opening), rows

        opening, rows = await self.backend.read(read, snapshot=True)
        balance = opening
        lines = []
        for r in rows:
            balance += int(r[3])
            lines.append(
                StatementLine(
                    when=as_datetime(r[0]),
                    business_date=int_date(int(r[1])),
                    kind=r[2],
                    amount=int(r[3]),
                    balance_after=balance,
                    merchant=r[4],
                    reference=_reference(r[5], r[6], r[7]),
                )
            )
        return opening, lines

    async def employer_statement(self, employer_id: str, start: date, end: date) -> list[EmployerLine]:
        """Applied top-up orders of ``employer_id`` with business dates in [start, end)."""
        rows = await self.backend.read(
            lambda tx: tx.fetch(
                "SELECT j.created_at, o.order_id, c.first6, c.last4, c.member_id, c.name, o.amount, o.item, o.note "
                "FROM topup_orders o JOIN journal j ON j.id = o.journal_id JOIN cards c ON c.token = o.card_token "
                "WHERE o.employer_id = $1 AND j.business_date >= $2 AND j.business_date < $3 ORDER BY j.id",
                employer_id,
                date_int(start),
                date_int(end),
            )
        )
        return [EmployerLine(as_datetime(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7], r[8]) for r in rows]


def _reference(rrn: str, key: str, source: str) -> str:
    if source == "bulk":
        return key.removeprefix("topup|")
    if source == "rebate":
        return key.rsplit("|", 1)[-1]
    return rrn


async def _operator_entry(
    tx: Tx, now: datetime, calendar: BusinessCalendar, kind: str, token: str, detail: str
) -> None:
    """Journal an operator action on a card (no money moves)."""
    rrn = format_rrn(await tx.next_rrn())
    bdate = await open_business_date(tx, calendar.business_date(now))
    await insert_entry(
        tx,
        Entry(
            idem_key=f"{kind}|{rrn}",
            kind=kind,
            source="operator",
            rc="00",
            business_date=bdate,
            created_at=tx.ts(now),
            rrn=rrn,
            card_token=token,
            detail=detail,
        ),
    )


async def _lock_cards(tx: Tx, tokens: Sequence[str]) -> dict[str, _BulkCard]:
    """Lock the cards' rows in token order (no deadlock with other multi-card transactions)."""
    ordered = sorted(set(tokens))
    where, args = _in(tx, "c.token", ordered, 1)
    rows = await tx.fetch(
        "SELECT c.token, c.status, c.account_id, a.balance, c.mobile, c.last4 FROM cards c "
        f"JOIN accounts a ON a.id = c.account_id WHERE {where} ORDER BY c.token FOR UPDATE",
        *args,
    )
    return {r[0]: _BulkCard(r[0], r[1], int(r[2]), int(r[3]), r[4], r[5]) for r in rows}


async def _apply_topups(
    tx: Tx, items: Sequence[TopupItem], now: datetime, business_date: date, cap: int, tz: Any
) -> list[TopupOutcome]:
    bdate = await open_business_date(tx, business_date)
    cards = await _lock_cards(tx, [i.card_token for i in items])
    where, args = _in(tx, "order_id", sorted({i.order_id for i in items}), 1)
    seen = {r[0]: r[1] for r in await tx.fetch(f"SELECT order_id, digest FROM topup_orders WHERE {where}", *args)}
    outcomes: list[TopupOutcome] = []
    applied: list[tuple[TopupItem, _BulkCard, int]] = []
    for item in items:
        prior = seen.get(item.order_id)
        card = cards.get(item.card_token)
        if prior is not None:
            result = "duplicate" if prior == item.digest else "rejected:conflict"
            outcomes.append(TopupOutcome(item.line, result, card.balance if card and result == "duplicate" else None))
            continue
        if item.amount <= 0:
            outcomes.append(TopupOutcome(item.line, "rejected:bad_amount"))
            continue
        if card is None:
            outcomes.append(TopupOutcome(item.line, "rejected:unknown_card"))
            continue
        if card.status in ("lost", "frozen", "closed"):
            outcomes.append(TopupOutcome(item.line, f"rejected:card_{card.status}"))
            continue
        if card.balance + item.amount > cap:
            outcomes.append(TopupOutcome(item.line, "rejected:cap", card.balance))
            continue
        card.balance += item.amount
        card.delta += item.amount
        seen[item.order_id] = item.digest
        applied.append((item, card, card.balance))
        outcomes.append(TopupOutcome(item.line, "applied", card.balance))
    if not applied:
        return outcomes
    ids = await _journal_ids(tx, len(applied))
    ts = tx.ts(now)
    local = now.astimezone(tz)
    journal_rows, postings, orders, notices = [], [], [], []
    for jid, (item, card, balance) in zip(ids, applied, strict=True):
        n = await tx.next_rrn()
        rrn = format_rrn(n)
        journal_rows.append(
            entry_row(
                jid,
                Entry(
                    idem_key=topup_key(item.order_id),
                    kind="topup",
                    source="bulk",
                    rc="00",
                    business_date=bdate,
                    created_at=ts,
                    rrn=rrn,
                    card_token=card.token,
                    amount=item.amount,
                    auth_code=auth_code_of(n),
                    detail=item.employer_id,
                ),
            )
        )
        postings += [(jid, card.account_id, item.amount), (jid, FLOAT_ACCOUNT, -item.amount)]
        orders.append(
            (item.order_id, item.digest, item.employer_id, card.token, item.amount, item.item, item.note, jid)
        )
        if card.mobile:
            text = render_sms("topup", card.last4, local, item.amount, balance)
            notices.append((jid, notice_id(rrn), "topup", card.mobile, text, ts))
    await tx.executemany(INSERT_JOURNAL_WITH_ID, journal_rows)
    await tx.executemany("INSERT INTO postings (journal_id, account_id, amount) VALUES ($1, $2, $3)", postings)
    await tx.executemany(
        "INSERT INTO topup_orders (order_id, digest, employer_id, card_token, amount, item, note, journal_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        orders,
    )
    if notices:
        await tx.executemany(
            "INSERT INTO notices (journal_id, id, kind, mobile, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            notices,
        )
    await tx.executemany(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        [(c.delta, c.account_id) for c in cards.values() if c.delta],
    )
    return outcomes


async def _post_rebates(
    tx: Tx, items: Sequence[RebateItem], month: str, now: datetime, business_date: date, tz: Any
) -> tuple[int, int, int]:
    bdate = await open_business_date(tx, business_date)
    cards = await _lock_cards(tx, [i.card_token for i in items])
    keys = [rebate_key(i.card_token, month) for i in items]
    where, args = _in(tx, "idem_key", keys, 1)
    done = {r[0] for r in await tx.fetch(f"SELECT idem_key FROM journal WHERE {where}", *args)}
    credited = credited_fen = already = 0
    ts = tx.ts(now)
    local = now.astimezone(tz)
    for item, key in zip(items, keys, strict=True):
        card = cards.get(item.card_token)
        if key in done:
            already += 1
            continue
        if card is None or item.amount <= 0:
            continue
        n = await tx.next_rrn()
        rrn = format_rrn(n)
        jid = await insert_entry(
            tx,
            Entry(
                idem_key=key,
                kind="rebate",
                source="rebate",
                rc="00",
                business_date=bdate,
                created_at=ts,
                rrn=rrn,
                card_token=card.token,
                amount=item.amount,
                detail=month,
            ),
        )
        await post(tx, jid, [(card.account_id, item.amount), (REBATE_EXPENSE_ACCOUNT, -item.amount)])
        await tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", item.amount, card.account_id)
        card.balance += item.amount
        if card.mobile:
            await tx.execute(
                "INSERT INTO notices (journal_id, id, kind, mobile, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                jid,
                notice_id(rrn),
                "rebate",
                card.mobile,
                render_sms("rebate", card.last4, local, item.amount, card.balance),
                ts,
            )
        done.add(key)
        credited += 1
        credited_fen += item.amount
    return credited, credited_fen, already
