"""The POS money rules (SPEC §5 rules 8-10 and the void/refund/reversal/settlement matching), written once
against :class:`~switch.ledger.tx.Tx` and run inside one transaction on either backend.

Each ``execute`` writes exactly one journal row under the request's idempotency key, and for an approved
money movement also its double-entry postings, the card balance, the daily purchase counters and the SMS
outbox row. The reply fields it returns (37, 38, 54, 15, 48 as SPEC §4 lists them) are stored with the row,
so a retransmission gets them again. Posting legs (card side positive = money on the card):

- purchase ``A`` with fee ``f``: card −A, merchant payable +(A−f), fee income +f
- void / refund: the opposite legs for the amount (fee returned on the amount)
- top-up: card +A, program float −A; reversal: the original's legs negated
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from switch.backoffice.money import mdr_fee
from switch.config import ProgramConfig
from switch.iso.fields import format_balance54, parse_settlement48
from switch.ledger.journal import Entry, add_notice, cancel_notice, insert_entry, post, reply_json
from switch.ledger.keys import FEE_INCOME_ACCOUNT, FLOAT_ACCOUNT, auth_code_of, format_rrn, pos_key

__all__ = ["Env", "execute", "find_reply", "pos_key", "stored_outcome"]
from switch.ledger.tx import Row, Tx, date_int, int_date, open_business_date
from switch.pipeline.ports import CardRef, MerchantRef, Outcome, Request, StoredReply, TerminalRef, WorkingKeys


@dataclass(frozen=True, slots=True)
class Env:
    """What the rules need besides the transaction: the program settings and the clock (``now()``,
    ``business_date()``, ``tz``)."""

    program: ProgramConfig
    clock: Any


#: (MTI, processing code) of the types whose reply carries field 15 (SPEC §4)
_WITH_F15 = frozenset({("0200", "000000"), ("0200", "200000"), ("0220", "200000"), ("0200", "630000")})
#: (MTI, processing code) → journal kind, for rows of requests declined before the ledger
_KIND_OF = {
    ("0200", "310000"): "balance",
    ("0200", "000000"): "purchase",
    ("0200", "200000"): "void",
    ("0220", "200000"): "refund",
    ("0200", "630000"): "topup",
    ("0200", "700000"): "pinchange",
}
_STATUS_DECLINE = {
    "inactive": ("21", "card_inactive"),
    "lost": ("41", "card_lost"),
    "frozen": ("62", "card_restricted"),
    "closed": ("62", "card_restricted"),
}


def mmdd(bdate: int) -> str:
    return f"{bdate % 10000:04d}"


def kind_of(req: Request) -> str:
    if req.mti.startswith("04"):
        return "reversal"
    if req.mti.startswith("05"):
        return "settlement"
    return _KIND_OF.get((req.mti, req.pcode), req.kind)


# ------------------------------------------------------------------------------------------------ rows
@dataclass(slots=True)
class CardRow:
    token: str
    status: str
    account_id: int
    balance: int
    daily_date: int
    daily_amount: int
    daily_count: int
    limit_daily_amount: int | None
    limit_daily_count: int | None
    mobile: str
    last4: str
    pin_tries: int = 0

    def daily(self, bdate: int) -> tuple[int, int]:
        """Purchase amount and count already counted for business date ``bdate``."""
        return (self.daily_amount, self.daily_count) if self.daily_date == bdate else (0, 0)


CARD_ROW_SQL = (
    "SELECT c.token, c.status, c.account_id, a.balance, c.daily_date, c.daily_amount, c.daily_count, "
    "c.limit_daily_amount, c.limit_daily_count, c.mobile, c.last4, c.pin_tries "
    "FROM cards c JOIN accounts a ON a.id = c.account_id"
)
CARD_ROW_SQL_BY_TOKEN = CARD_ROW_SQL + " WHERE c.token = $1"
CARD_ROW_SQL_BY_TOKEN_LOCK = CARD_ROW_SQL_BY_TOKEN + " FOR UPDATE"


async def card_row(tx: Tx, token: str, *, lock: bool) -> CardRow | None:
    if not token:
        return None
    r = await tx.fetchrow(CARD_ROW_SQL_BY_TOKEN_LOCK if lock else CARD_ROW_SQL_BY_TOKEN, token)
    if r is None:
        return None
    # positional: both drivers' rows index by position, and by name ~3x slower (hot path); INTEGER columns
    # come back as int from both
    return CardRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11])


@dataclass(slots=True)
class Original:
    """A journal row a void, refund or reversal refers to."""

    id: int
    kind: str
    rc: str
    status: str
    tid: str
    mid: str
    batch: str
    stan: str
    card_token: str
    amount: int
    fee: int
    refunded: int
    rrn: str
    auth_code: str
    business_date: int
    orig_id: int | None


_ORIGINAL_COLS = (
    "id, kind, rc, status, tid, mid, batch, stan, card_token, amount, fee, refunded, rrn, auth_code, "
    "business_date, orig_id"
)


def _original(r: Row | None) -> Original | None:
    if r is None:
        return None
    return Original(
        int(r["id"]),
        r["kind"],
        r["rc"],
        r["status"],
        r["tid"],
        r["mid"],
        r["batch"],
        r["stan"],
        r["card_token"],
        int(r["amount"]),
        int(r["fee"]),
        int(r["refunded"]),
        r["rrn"],
        r["auth_code"],
        int(r["business_date"]),
        None if r["orig_id"] is None else int(r["orig_id"]),
    )


async def original_by_id(tx: Tx, journal_id: int) -> Original | None:
    return _original(await tx.fetchrow(f"SELECT {_ORIGINAL_COLS} FROM journal WHERE id = $1", journal_id))


async def purchase_by_rrn(tx: Tx, rrn: str) -> Original | None:
    if not rrn:
        return None
    return _original(
        await tx.fetchrow(
            f"SELECT {_ORIGINAL_COLS} FROM journal WHERE rrn = $1 AND kind = 'purchase' AND rc = '00'", rrn
        )
    )


MERCHANT_TERMS_SQL = "SELECT account_id, mdr_bps, fee_cap, status FROM merchants WHERE mid = $1"


async def merchant_terms(tx: Tx, mid: str) -> tuple[int, int, int, str] | None:
    """(payable account id, MDR bps, fee cap, status) of a merchant; read once per transaction (a group
    commit's operations share one: nothing in a POS transaction changes a merchant)."""
    memo = tx.memo
    key = ("merchant", mid)
    if key in memo:
        terms: tuple[int, int, int, str] | None = memo[key]
        return terms
    r = await tx.fetchrow(MERCHANT_TERMS_SQL, mid)
    terms = None if r is None else (int(r[0]), int(r[1]), int(r[2]), r[3])
    memo[key] = terms
    return terms


# ------------------------------------------------------------------------------------------------ helpers
class _Ctx:
    """Per-request values shared by the rules: key, time, business date, the entry being built."""

    __slots__ = ("bdate", "env", "key", "now", "req", "tx")

    def __init__(self, tx: Tx, env: Env, req: Request, key: str, bdate: int, now: datetime) -> None:
        self.tx = tx
        self.env = env
        self.req = req
        self.key = key
        self.bdate = bdate
        self.now = now

    def entry(self, kind: str, rc: str, rrn: str, **values: Any) -> Entry:
        r = self.req
        base: dict[str, Any] = {
            "fingerprint": r.fingerprint,
            "mti": r.mti,
            "pcode": r.pcode,
            "tid": r.tid,
            "mid": r.mid,
            "batch": r.batch,
            "stan": r.stan,
            "card_token": r.card_token,
            "amount": r.amount,
        }
        base.update(values)
        return Entry(
            idem_key=self.key,
            kind=kind,
            source="pos",
            rc=rc,
            business_date=self.bdate,
            created_at=self.tx.ts(self.now),
            rrn=rrn,
            **base,
        )

    def f15(self, fields: dict[str, str]) -> dict[str, str]:
        if (self.req.mti, self.req.pcode) in _WITH_F15:
            fields["15"] = mmdd(self.bdate)
        return fields

    async def rrn(self) -> tuple[int, str]:
        n = await self.tx.next_rrn()
        return n, format_rrn(n)

    async def decline(self, rc: str, reason: str, extra: dict[str, str] | None = None, **values: Any) -> Outcome:
        """Journal a declined request (no money moves) and answer it."""
        _, rrn = await self.rrn()
        fields = self.f15({"37": rrn, **(extra or {})})
        await insert_entry(
            self.tx, self.entry(kind_of(self.req), rc, rrn, reason=reason, reply=reply_json(fields), **values)
        )
        return Outcome(rc, fields, reason)

    async def notice(self, journal_id: int, rrn: str, kind: str, card: CardRow, balance: int) -> None:
        await add_notice(
            self.tx,
            journal_id=journal_id,
            rrn=rrn,
            kind=kind,
            mobile=card.mobile,
            last4=card.last4,
            now=self.now,
            tz=self.env.clock.tz,
            amount=self.req.amount,
            balance=balance,
        )


async def _card_gate(c: _Ctx, card: CardRow, *, inactive_ok: bool = False) -> Outcome | None:
    """SPEC §5 rule 6 again on the locked card row: status, then PIN lock (the engine decided them on a ref
    read that may be up to ``database.refdata_ttl_ms`` old, so a card frozen or PIN-locked by another process
    meanwhile is declined here, never charged). A right PIN (``req.pin_ok``) clears a try count found here."""
    if card.status != "active" and not (inactive_ok and card.status == "inactive"):
        return await c.decline(*_STATUS_DECLINE.get(card.status, ("62", "card_restricted")))
    if card.pin_tries >= c.env.program.pin_max_tries:
        return await c.decline("75", "pin_locked")
    if c.req.pin_ok and card.pin_tries:
        await c.tx.execute("UPDATE cards SET pin_tries = 0 WHERE token = $1", card.token)
        card.pin_tries = 0
    return None


async def _move_card(tx: Tx, card: CardRow, delta: int) -> int:
    await tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", delta, card.account_id)
    card.balance += delta
    return card.balance


async def _set_daily(tx: Tx, card: CardRow, bdate: int, amount: int, count: int) -> None:
    await tx.execute(
        "UPDATE cards SET daily_date = $1, daily_amount = $2, daily_count = $3 WHERE token = $4",
        bdate,
        max(amount, 0),
        max(count, 0),
        card.token,
    )


async def _undo_daily(tx: Tx, card: CardRow, purchase_date: int, amount: int, sign: int) -> None:
    """Take a purchase out of (sign −1) or back into (+1) the daily counters, if it counted today."""
    if card.daily_date == purchase_date:
        await _set_daily(tx, card, card.daily_date, card.daily_amount + sign * amount, card.daily_count + sign)


# ------------------------------------------------------------------------------------------------ rules
async def _balance(c: _Ctx) -> Outcome:
    card = await card_row(c.tx, c.req.card_token, lock=False)
    if card is None:
        return await c.decline("14", "card_unknown")
    gate = await _card_gate(c, card)
    if gate is not None:
        return gate
    _, rrn = await c.rrn()
    fields = {"37": rrn, "54": format_balance54(card.balance)}
    await insert_entry(c.tx, c.entry("balance", "00", rrn, reply=reply_json(fields)))
    return Outcome("00", fields)


async def _purchase(c: _Ctx) -> Outcome:
    tx, req, program = c.tx, c.req, c.env.program
    card = await card_row(tx, req.card_token, lock=True)
    if card is None:
        return await c.decline("14", "card_unknown")
    gate = await _card_gate(c, card)
    if gate is not None:
        return gate
    day_amount, day_count = card.daily(c.bdate)
    amount_limit = card.limit_daily_amount if card.limit_daily_amount is not None else program.daily_amount_limit
    count_limit = card.limit_daily_count if card.limit_daily_count is not None else program.daily_count_limit
    if day_amount + req.amount > amount_limit:
        return await c.decline("61", "over_daily_amount")
    if day_count + 1 > count_limit:
        return await c.decline("65", "over_daily_count")
    if req.amount > card.balance:
        return await c.decline("51", "insufficient_funds", {"54": format_balance54(card.balance)})
    terms = await merchant_terms(tx, req.mid)
    if terms is None or terms[3] != "active":
        return await c.decline("03", "merchant_not_active")
    merchant_account, mdr_bps, fee_cap, _status = terms
    fee = mdr_fee(req.amount, mdr_bps, fee_cap)
    n, rrn = await c.rrn()
    auth = auth_code_of(n)
    balance = await _move_card(tx, card, -req.amount)
    await _set_daily(tx, card, c.bdate, day_amount + req.amount, day_count + 1)
    fields = c.f15({"37": rrn, "38": auth, "54": format_balance54(balance)})
    jid = await insert_entry(tx, c.entry("purchase", "00", rrn, fee=fee, auth_code=auth, reply=reply_json(fields)))
    await post(
        tx, jid, [(card.account_id, -req.amount), (merchant_account, req.amount - fee), (FEE_INCOME_ACCOUNT, fee)]
    )
    await c.notice(jid, rrn, "purchase", card, balance)
    return Outcome("00", fields)


async def _topup(c: _Ctx) -> Outcome:
    tx, req = c.tx, c.req
    card = await card_row(tx, req.card_token, lock=True)
    if card is None:
        return await c.decline("14", "card_unknown")
    gate = await _card_gate(c, card)
    if gate is not None:
        return gate
    if card.balance + req.amount > c.env.program.balance_cap:
        return await c.decline("61", "over_balance_cap")
    n, rrn = await c.rrn()
    auth = auth_code_of(n)
    balance = await _move_card(tx, card, req.amount)
    fields = c.f15({"37": rrn, "38": auth, "54": format_balance54(balance)})
    jid = await insert_entry(tx, c.entry("topup", "00", rrn, auth_code=auth, reply=reply_json(fields)))
    await post(tx, jid, [(card.account_id, req.amount), (FLOAT_ACCOUNT, -req.amount)])
    await c.notice(jid, rrn, "topup", card, balance)
    return Outcome("00", fields)


async def _void(c: _Ctx) -> Outcome:
    tx, req = c.tx, c.req
    card = await card_row(tx, req.card_token, lock=True)
    if card is not None and (gate := await _card_gate(c, card)) is not None:
        return gate
    orig = await purchase_by_rrn(tx, req.orig_rrn)
    if (
        orig is None
        or card is None
        or orig.stan != req.orig_stan
        or orig.batch != req.orig_batch
        or orig.card_token != card.token
    ):
        return await c.decline("25", "original_not_found")
    if orig.amount != req.amount:
        return await c.decline("64", "original_amount_mismatch", orig_id=orig.id, orig_rrn=orig.rrn)
    settled = await tx.fetchval(
        "SELECT 1 FROM terminals WHERE tid = $1 AND batch = $2 AND batch_status = 'settled'", req.tid, req.batch
    )
    if orig.status != "ok" or orig.tid != req.tid or orig.batch != req.batch or orig.refunded or settled:
        return await c.decline("12", "original_not_voidable", orig_id=orig.id, orig_rrn=orig.rrn)
    terms = await merchant_terms(tx, orig.mid)
    assert terms is not None, "a journaled purchase has its merchant"
    fee = orig.fee
    _, rrn = await c.rrn()
    balance = await _move_card(tx, card, orig.amount)
    await _undo_daily(tx, card, orig.business_date, orig.amount, -1)
    await tx.execute("UPDATE journal SET status = 'voided' WHERE id = $1", orig.id)
    fields = c.f15({"37": rrn, "38": orig.auth_code, "54": format_balance54(balance)})
    jid = await insert_entry(
        tx,
        c.entry(
            "void",
            "00",
            rrn,
            fee=fee,
            auth_code=orig.auth_code,
            reply=reply_json(fields),
            orig_id=orig.id,
            orig_rrn=orig.rrn,
            orig_date=orig.business_date,
            orig_kind="purchase",
        ),
    )
    await post(tx, jid, [(card.account_id, orig.amount), (terms[0], fee - orig.amount), (FEE_INCOME_ACCOUNT, -fee)])
    await c.notice(jid, rrn, "void", card, balance)
    return Outcome("00", fields)


async def _refund(c: _Ctx) -> Outcome:
    tx, req, program = c.tx, c.req, c.env.program
    card = await card_row(tx, req.card_token, lock=True)
    if card is not None and (gate := await _card_gate(c, card)) is not None:
        return gate
    orig = await purchase_by_rrn(tx, req.orig_rrn)
    oldest = date_int(int_date(c.bdate) - timedelta(days=program.refund_days))
    if (
        orig is None
        or card is None
        or orig.card_token != card.token
        or orig.mid != req.mid
        or orig.status != "ok"
        or orig.business_date < oldest
    ):
        return await c.decline("25", "original_not_found")
    if orig.refunded + req.amount > orig.amount:
        return await c.decline("13", "refund_exceeds_original", orig_id=orig.id, orig_rrn=orig.rrn)
    terms = await merchant_terms(tx, orig.mid)
    assert terms is not None, "a journaled purchase has its merchant"
    returned = int(
        await tx.fetchval(
            "SELECT COALESCE(SUM(fee), 0) FROM journal WHERE orig_id = $1 AND kind = 'refund' AND rc = '00'", orig.id
        )
    )
    # the fee on the refunded amount, never more than what is left of the fee the purchase paid
    fee = min(mdr_fee(req.amount, terms[1], terms[2]), orig.fee - returned)
    _, rrn = await c.rrn()
    balance = await _move_card(tx, card, req.amount)
    await tx.execute("UPDATE journal SET refunded = refunded + $1 WHERE id = $2", req.amount, orig.id)
    fields = c.f15({"37": rrn})
    jid = await insert_entry(
        tx,
        c.entry(
            "refund",
            "00",
            rrn,
            fee=fee,
            reply=reply_json(fields),
            orig_id=orig.id,
            orig_rrn=orig.rrn,
            orig_date=orig.business_date,
            orig_kind="purchase",
        ),
    )
    await post(tx, jid, [(card.account_id, req.amount), (terms[0], fee - req.amount), (FEE_INCOME_ACCOUNT, -fee)])
    await c.notice(jid, rrn, "refund", card, balance)
    return Outcome("00", fields)


async def _reversal(c: _Ctx) -> Outcome:
    tx, req = c.tx, c.req
    found = _original(
        await tx.fetchrow(
            f"SELECT {_ORIGINAL_COLS} FROM journal WHERE tid = $1 AND batch = $2 AND stan = $3 AND mid = $4 "
            "AND mti = '0200' AND pcode = $5 AND kind IN ('purchase', 'void', 'topup') ORDER BY id DESC",
            req.tid,
            req.batch,
            req.orig_stan or req.stan,
            req.mid,
            req.pcode,
        )
    )
    card = await card_row(tx, found.card_token, lock=True) if found is not None else None
    # re-read under the card's lock: a concurrent void or reversal of the same original is settled by it
    orig = await original_by_id(tx, found.id) if found is not None else None
    if orig is None or card is None or orig.rc != "00" or orig.status != "ok" or orig.refunded:
        why = "original_not_found" if orig is None else f"original_{orig.status if orig.rc == '00' else 'declined'}"
        return await _reversal_no_effect(c, orig, why)
    if orig.amount != req.amount:
        return await c.decline("25", "reversal_amount_mismatch", orig_id=orig.id, orig_rrn=orig.rrn)
    card_delta = -sum(
        int(r["amount"])
        for r in await tx.fetch("SELECT account_id, amount FROM postings WHERE journal_id = $1", orig.id)
        if int(r["account_id"]) == card.account_id
    )
    if card.balance + card_delta < 0:
        # the credit being reversed has been spent meanwhile: undoing it would overdraw the card
        return await c.decline("51", "insufficient_funds", orig_id=orig.id, orig_rrn=orig.rrn)
    legs = [
        (int(r["account_id"]), -int(r["amount"]))
        for r in await tx.fetch("SELECT account_id, amount FROM postings WHERE journal_id = $1", orig.id)
    ]
    await _move_card(tx, card, card_delta)
    await tx.execute("UPDATE journal SET status = 'reversed', reversed_date = $1 WHERE id = $2", c.bdate, orig.id)
    if orig.kind == "purchase":
        await _undo_daily(tx, card, orig.business_date, orig.amount, -1)
    elif orig.kind == "void" and orig.orig_id is not None:
        purchase = await original_by_id(tx, orig.orig_id)
        assert purchase is not None
        await tx.execute("UPDATE journal SET status = 'ok' WHERE id = $1", purchase.id)
        await _undo_daily(tx, card, purchase.business_date, purchase.amount, +1)
    await cancel_notice(tx, orig.id)
    _, rrn = await c.rrn()
    fields = {"37": rrn}
    jid = await insert_entry(
        tx,
        c.entry(
            "reversal",
            "00",
            rrn,
            card_token=orig.card_token,
            fee=orig.fee,
            reply=reply_json(fields),
            orig_id=orig.id,
            orig_rrn=orig.rrn,
            orig_date=orig.business_date,
            orig_kind=orig.kind,
            detail=req.reversal_reason,
        ),
    )
    await post(tx, jid, legs)
    return Outcome("00", fields)


async def _reversal_no_effect(c: _Ctx, orig: Original | None, why: str) -> Outcome:
    """SPEC §5: unknown, already reversed or declined original → ``00`` with no effect (journaled)."""
    _, rrn = await c.rrn()
    fields = {"37": rrn}
    values: dict[str, Any] = {"orig_id": orig.id, "orig_rrn": orig.rrn} if orig is not None else {}
    await insert_entry(
        c.tx,
        c.entry(
            "reversal",
            "00",
            rrn,
            status="noop",
            reason=why,
            reply=reply_json(fields),
            detail=c.req.reversal_reason,
            **values,
        ),
    )
    return Outcome("00", fields)


async def _settlement(c: _Ctx) -> Outcome:
    tx, req = c.tx, c.req
    rows = await tx.fetch(
        "SELECT kind, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM journal "
        "WHERE tid = $1 AND batch = $2 AND rc = '00' AND status = 'ok' AND kind IN ('purchase', 'refund', 'topup') "
        "GROUP BY kind",
        req.tid,
        req.batch,
    )
    sums = {r["kind"]: (int(r["total"]), int(r["n"])) for r in rows}
    debit_amount, debit_count = sums.get("purchase", (0, 0))
    credit_amount = sums.get("refund", (0, 0))[0] + sums.get("topup", (0, 0))[0]
    credit_count = sums.get("refund", (0, 0))[1] + sums.get("topup", (0, 0))[1]
    theirs = parse_settlement48(req.totals48)
    other = theirs.other
    balanced = (theirs.debit_amount, theirs.debit_count, theirs.credit_amount, theirs.credit_count) == (
        debit_amount,
        debit_count,
        credit_amount,
        credit_count,
    ) and (other.debit_amount, other.debit_count, other.credit_amount, other.credit_count) == (0, 0, 0, 0)
    code = "1" if balanced else "2"
    group = f"{debit_amount:012d}{min(debit_count, 999):03d}{credit_amount:012d}{min(credit_count, 999):03d}{code}"
    await tx.execute("UPDATE terminals SET batch_status = 'settled' WHERE tid = $1 AND batch = $2", req.tid, req.batch)
    _, rrn = await c.rrn()
    fields = {"48": group + "0" * 30 + code, "15": mmdd(c.bdate)}
    await insert_entry(
        tx,
        c.entry(
            "settlement",
            "00",
            rrn,
            reason="balanced" if balanced else "not_balanced",
            reply=reply_json(fields),
            detail=req.totals48,
        ),
    )
    return Outcome("00", fields)


async def _pinchange(c: _Ctx) -> Outcome:
    tx, req = c.tx, c.req
    card = await card_row(tx, req.card_token, lock=True)
    if card is None:
        return await c.decline("14", "card_unknown")
    gate = await _card_gate(c, card, inactive_ok=True)
    if gate is not None:
        return gate
    await tx.execute(
        "UPDATE cards SET pin_offset = $1, pin_tries = 0, updated_at = $2, "
        "status = CASE WHEN status = 'inactive' AND $3 = 1 THEN 'active' ELSE status END WHERE token = $4",
        req.new_pin_offset,
        tx.ts(c.now),
        1 if req.activate else 0,
        card.token,
    )
    _, rrn = await c.rrn()
    fields = {"37": rrn}
    await insert_entry(
        tx, c.entry("pinchange", "00", rrn, reply=reply_json(fields), detail="activated" if req.activate else "")
    )
    return Outcome("00", fields)


async def _declined(c: _Ctx) -> Outcome:
    req = c.req
    if req.pin_ok and req.card_token:
        # a right PIN resets the count even when a later rule declines (SPEC §5 rule 7); the engine skipped
        # that write if its card ref (maybe up to refdata_ttl_ms old) showed no tries; never unlocks a card
        await c.tx.execute(
            "UPDATE cards SET pin_tries = 0 WHERE token = $1 AND pin_tries <> 0 AND pin_tries < $2",
            req.card_token,
            c.env.program.pin_max_tries,
        )
    return await c.decline(req.rc, req.reason)


_RULES: dict[str, Callable[[_Ctx], Awaitable[Outcome]]] = {
    "balance": _balance,
    "purchase": _purchase,
    "topup": _topup,
    "void": _void,
    "refund": _refund,
    "reversal": _reversal,
    "settlement": _settlement,
    "pinchange": _pinchange,
    "declined": _declined,
}


async def execute(tx: Tx, env: Env, req: Request) -> Outcome:
    """Apply one POS request (see module docstring). Raises ``DuplicateKey`` if its key is journaled."""
    rule = _RULES.get(req.kind)
    if rule is None:
        raise ValueError(f"unknown ledger request kind {req.kind!r}")
    # one clock reading per transaction: a group commit's operations share the instant of their commit (and
    # reading the zoned clock and the business calendar per operation cost more than the rest of a rule)
    moment: tuple[datetime, int] | None = tx.memo.get("pos_moment")
    if moment is None:
        now = env.clock.now()
        moment = tx.memo["pos_moment"] = (now, await open_business_date(tx, env.clock.business_date()))
    return await rule(_Ctx(tx, env, req, pos_key(req.dup_key), moment[1], moment[0]))


async def stored_outcome(tx: Tx, key: str) -> Outcome | None:
    r = await tx.fetchrow("SELECT rc, reason, reply FROM journal WHERE idem_key = $1", key)
    return None if r is None else Outcome(r["rc"], json.loads(r["reply"]), r["reason"])


# ------------------------------------------------------------------------------------------------ reads
FIND_REPLY_SQL = "SELECT fingerprint, rc, reply FROM journal WHERE idem_key = $1"
TERMINAL_REF_SQL = (
    "SELECT tid, mid, kind, status, tmk_lmk, pik_lmk, mak_lmk, batch, mac_failures FROM terminals WHERE tid = $1"
)
MERCHANT_REF_SQL = "SELECT mid, status FROM merchants WHERE mid = $1"
CARD_REF_SQL = "SELECT token, expiry, status, pin_offset, pin_tries, pvk_ref FROM cards WHERE token = $1"


#: the duplicate lookup and the card ref in one statement (both are needed by every card request)
FIND_REPLY_AND_CARD_SQL = (
    "SELECT j.fingerprint, j.rc, j.reply, c.token, c.expiry, c.status, c.pin_offset, c.pin_tries, c.pvk_ref "
    "FROM (SELECT CAST($1 AS TEXT) AS k, CAST($2 AS TEXT) AS t) q "
    "LEFT JOIN journal j ON j.idem_key = q.k LEFT JOIN cards c ON c.token = q.t"
)


def reply_and_card_of(r: Row | None) -> tuple[StoredReply | None, CardRef | None]:
    if r is None:
        return None, None
    stored = None if r[0] is None else StoredReply(r[0], r[1], json.loads(r[2]))
    card = None if r[3] is None else CardRef(r[3], r[4], r[5], r[6], int(r[7]), r[8])
    return stored, card


def stored_reply_of(r: Row | None) -> StoredReply | None:
    return None if r is None else StoredReply(r[0], r[1], json.loads(r[2]))


def terminal_ref_of(r: Row | None) -> TerminalRef | None:
    if r is None:
        return None
    return TerminalRef(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], int(r[8]))


def merchant_ref_of(r: Row | None) -> MerchantRef | None:
    return None if r is None else MerchantRef(r[0], r[1])


def card_ref_of(r: Row | None) -> CardRef | None:
    return None if r is None else CardRef(r[0], r[1], r[2], r[3], int(r[4]), r[5])


async def find_reply(tx: Tx, dup_key: tuple[str, ...]) -> StoredReply | None:
    return stored_reply_of(await tx.fetchrow(FIND_REPLY_SQL, pos_key(dup_key)))


async def terminal_ref(tx: Tx, tid: str) -> TerminalRef | None:
    return terminal_ref_of(await tx.fetchrow(TERMINAL_REF_SQL, tid))


async def merchant_ref(tx: Tx, mid: str) -> MerchantRef | None:
    return merchant_ref_of(await tx.fetchrow(MERCHANT_REF_SQL, mid))


async def card_ref(tx: Tx, token: str) -> CardRef | None:
    return card_ref_of(await tx.fetchrow(CARD_REF_SQL, token))


# ------------------------------------------------------------------------------------------------ terminal / PIN
async def signon(tx: Tx, env: Env, tid: str, keys: WorkingKeys) -> tuple[str, str]:
    """Store the new working keys (under the LMK), reset MAC failures, open the next batch; (batch, RRN)."""
    r = await tx.fetchrow("SELECT mid, batch FROM terminals WHERE tid = $1 FOR UPDATE", tid)
    if r is None:
        raise LookupError("sign-on of an unknown terminal")
    current = int(r["batch"]) if str(r["batch"]).isdigit() else 0
    batch = f"{current % 999_999 + 1:06d}"
    now = env.clock.now()
    await tx.execute(
        "UPDATE terminals SET pik_lmk = $1, mak_lmk = $2, tdk_lmk = $3, keys_at = $4, mac_failures = 0, "
        "batch = $5, batch_status = 'open' WHERE tid = $6",
        keys.pik_lmk,
        keys.mak_lmk,
        keys.tdk_lmk,
        tx.ts(now),
        batch,
        tid,
    )
    n = await tx.next_rrn()
    rrn = format_rrn(n)
    bdate = await open_business_date(tx, env.clock.business_date())
    fields = {"37": rrn}
    await insert_entry(
        tx,
        Entry(
            idem_key=f"signon|{tid}|{rrn}",
            kind="signon",
            source="pos",
            rc="00",
            business_date=bdate,
            created_at=tx.ts(now),
            rrn=rrn,
            tid=tid,
            mid=r["mid"],
            batch=batch,
            mti="0800",
            reply=reply_json(fields),
        ),
    )
    return batch, rrn


async def mac_failure(tx: Tx, tid: str, max_failures: int) -> int:
    """Count a consecutive MAC failure; at ``max_failures`` the working keys stop being valid (dropped)."""
    count = await tx.fetchval(
        "UPDATE terminals SET mac_failures = mac_failures + 1 WHERE tid = $1 RETURNING mac_failures", tid
    )
    if count is None:
        return 0
    if int(count) >= max_failures:
        await tx.execute("UPDATE terminals SET pik_lmk = '', mak_lmk = '', tdk_lmk = '' WHERE tid = $1", tid)
    return int(count)


async def mac_success(tx: Tx, tid: str) -> None:
    await tx.execute("UPDATE terminals SET mac_failures = 0 WHERE tid = $1 AND mac_failures <> 0", tid)


async def pin_result(tx: Tx, token: str, ok: bool, max_tries: int) -> int:
    if ok:
        # never unlocks: a card locked meanwhile (another process) stays locked; the money rules decline it
        await tx.execute(
            "UPDATE cards SET pin_tries = 0 WHERE token = $1 AND pin_tries <> 0 AND pin_tries < $2", token, max_tries
        )
        return 0
    tries = await tx.fetchval(
        "UPDATE cards SET pin_tries = CASE WHEN pin_tries < $2 THEN pin_tries + 1 ELSE pin_tries END "
        "WHERE token = $1 RETURNING pin_tries",
        token,
        max_tries,
    )
    return 0 if tries is None else int(tries)
