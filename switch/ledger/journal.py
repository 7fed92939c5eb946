"""Journal rows, postings and SMS outbox rows: the writes every money rule shares (over :class:`Tx`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, tzinfo
from operator import attrgetter
from typing import Any

from switch.backoffice.smstext import render_sms
from switch.ledger.keys import notice_id
from switch.ledger.tx import Tx


@dataclass(slots=True)
class Entry:
    """One journal row (column names as in the schema)."""

    idem_key: str
    kind: str
    source: str
    rc: str
    business_date: int
    created_at: Any  # backend timestamp (Tx.ts)
    rrn: str
    fingerprint: str = ""
    reason: str = ""
    mti: str = ""
    pcode: str = ""
    tid: str = ""
    mid: str = ""
    batch: str = ""
    stan: str = ""
    card_token: str = ""
    amount: int = 0
    fee: int = 0
    auth_code: str = ""
    reply: str = "{}"
    status: str = "ok"
    orig_id: int | None = None
    orig_rrn: str = ""
    orig_date: int | None = None
    orig_kind: str = ""
    detail: str = ""


_COLUMNS = tuple(f.name for f in fields(Entry))
#: the entry's values in column order (dataclasses.astuple deep-copies: far slower on the hot path)
_values = attrgetter(*_COLUMNS)
INSERT_JOURNAL = (
    f"INSERT INTO journal ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))}) RETURNING id"
)
#: the same insert without RETURNING, for executemany with ids given (bulk paths)
INSERT_JOURNAL_WITH_ID = (
    f"INSERT INTO journal (id, {', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 2))})"
)


def reply_json(fields_: dict[str, str]) -> str:
    """``json.dumps(fields_, separators=(",", ":"), sort_keys=True)``; written directly when every key and value
    is plain ASCII letters/digits (the reply fields: 15, 37, 38, 48, 54), where the two are the same text."""
    for k, v in fields_.items():
        if not (type(v) is str and v.isascii() and v.isalnum() and k.isascii() and k.isalnum()):
            return json.dumps(fields_, separators=(",", ":"), sort_keys=True)
    return "{" + ",".join([f'"{k}":"{fields_[k]}"' for k in sorted(fields_)]) + "}"


async def insert_entry(tx: Tx, e: Entry) -> int:
    return int(await tx.fetchval(INSERT_JOURNAL, *_values(e)))


def entry_row(journal_id: int, e: Entry) -> tuple[Any, ...]:
    return (journal_id, *_values(e))


_POSTINGS_SQL: dict[int, str] = {}


def _postings_sql(n: int) -> str:
    sql = _POSTINGS_SQL.get(n)
    if sql is None:
        values = ", ".join(f"($1, ${2 * i + 2}, ${2 * i + 3})" for i in range(n))
        sql = _POSTINGS_SQL[n] = f"INSERT INTO postings (journal_id, account_id, amount) VALUES {values}"
    return sql


async def post(tx: Tx, journal_id: int, legs: Sequence[tuple[int, int]]) -> None:
    """Double-entry postings of one journal row: ``(account_id, signed amount)`` legs summing to zero.

    One posting per account (legs to the same account are added up); zero legs are left out (a fee of 0
    posts nothing to fee income).
    """
    merged: dict[int, int] = {}
    for account, amount in legs:
        merged[account] = merged.get(account, 0) + amount
    legs = [(a, m) for a, m in merged.items() if m != 0]
    if sum(m for _, m in legs) != 0:
        raise AssertionError("postings of one journal row must sum to zero")
    if not legs:
        return
    args: list[int] = [journal_id]
    for account, amount in legs:
        args.extend((account, amount))
    await tx.execute(_postings_sql(len(legs)), *args)


async def add_notice(
    tx: Tx,
    *,
    journal_id: int,
    rrn: str,
    kind: str,
    mobile: str,
    last4: str,
    now: datetime,
    tz: tzinfo,
    amount: int,
    balance: int,
) -> None:
    """The SMS outbox row of a money movement (none when the card has no mobile number)."""
    if not mobile:
        return
    text = render_sms(kind, last4, now.astimezone(tz), amount, balance)
    await tx.execute(
        "INSERT INTO notices (id, journal_id, kind, mobile, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        notice_id(rrn),
        journal_id,
        kind,
        mobile,
        text,
        tx.ts(now),
    )


async def cancel_notice(tx: Tx, journal_id: int) -> None:
    """A reversed movement's notice is not sent if it is still pending."""
    await tx.execute("UPDATE notices SET status = 'cancelled' WHERE journal_id = $1 AND status = 'pending'", journal_id)
