"""Ledger invariants and test/operator views: balances, PIN tries, and the checks SPEC's money rules promise.

``check_invariants`` returns the problems it found (empty = consistent):

- the postings of every journal row sum to zero;
- no card balance is below zero, and every card balance equals the sum of its postings;
- every posting has its journal row; approved money rows have postings, declined rows none;
- no idempotency key is journaled twice; no original is reversed twice; refunds never exceed their purchase
  and the ``refunded`` total equals the refund rows; a reversed row has its reversal.
"""

from __future__ import annotations

from switch.ledger.tx import Tx

_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "postings of journal row {0} sum to {1}, not 0",
        "SELECT journal_id, SUM(amount) FROM postings GROUP BY journal_id HAVING SUM(amount) <> 0",
    ),
    (
        "card account {0} has a negative balance {1}",
        "SELECT id, balance FROM accounts WHERE kind = 'card' AND balance < 0",
    ),
    (
        "card account {0} balance {1} differs from the sum of its postings {2}",
        "SELECT a.id, a.balance, COALESCE(SUM(p.amount), 0) FROM accounts a "
        "LEFT JOIN postings p ON p.account_id = a.id WHERE a.kind = 'card' "
        "GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM(p.amount), 0)",
    ),
    (
        "house account {0} carries a stored balance",
        "SELECT id FROM accounts WHERE kind <> 'card' AND balance IS NOT NULL",
    ),
    (
        "posting of account {1} refers to a missing journal row {0}",
        "SELECT p.journal_id, p.account_id FROM postings p LEFT JOIN journal j ON j.id = p.journal_id "
        "WHERE j.id IS NULL",
    ),
    (
        "idempotency key {0} is journaled {1} times",
        "SELECT idem_key, COUNT(*) FROM journal GROUP BY idem_key HAVING COUNT(*) > 1",
    ),
    (
        "approved {1} row {0} has no postings",
        "SELECT j.id, j.kind FROM journal j WHERE j.rc = '00' AND j.amount > 0 AND j.status <> 'noop' "
        "AND j.kind IN ('purchase', 'void', 'refund', 'topup', 'rebate', 'reversal') "
        "AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.journal_id = j.id)",
    ),
    (
        "row {0} (rc {1}, {2}) moved money",
        "SELECT j.id, j.rc, j.status FROM journal j WHERE (j.rc <> '00' OR j.status = 'noop' "
        "OR j.kind IN ('balance', 'pinchange', 'settlement', 'signon', 'card_action')) "
        "AND EXISTS (SELECT 1 FROM postings p WHERE p.journal_id = j.id)",
    ),
    (
        "journal row {0} is reversed {1} times",
        "SELECT orig_id, COUNT(*) FROM journal WHERE kind = 'reversal' AND rc = '00' AND status = 'ok' "
        "AND orig_id IS NOT NULL GROUP BY orig_id HAVING COUNT(*) > 1",
    ),
    (
        "reversed row {0} has no reversal",
        "SELECT j.id FROM journal j WHERE j.status = 'reversed' AND NOT EXISTS (SELECT 1 FROM journal r "
        "WHERE r.orig_id = j.id AND r.kind = 'reversal' AND r.rc = '00' AND r.status = 'ok')",
    ),
    (
        "purchase {0} refunded {1} of {2}",
        "SELECT id, refunded, amount FROM journal WHERE kind = 'purchase' AND (refunded > amount OR refunded < 0)",
    ),
    (
        "purchase {0} records {1} refunded but its refunds total {2}",
        "SELECT j.id, j.refunded, COALESCE(SUM(r.amount), 0) FROM journal j LEFT JOIN journal r "
        "ON r.orig_id = j.id AND r.kind = 'refund' AND r.rc = '00' WHERE j.kind = 'purchase' "
        "GROUP BY j.id, j.refunded HAVING j.refunded <> COALESCE(SUM(r.amount), 0)",
    ),
    (
        "voided purchase {0} has {1} live voids",
        "SELECT j.id, COUNT(v.id) FROM journal j LEFT JOIN journal v ON v.orig_id = j.id AND v.kind = 'void' "
        "AND v.rc = '00' AND v.status = 'ok' WHERE j.kind = 'purchase' AND j.status = 'voided' "
        "GROUP BY j.id HAVING COUNT(v.id) <> 1",
    ),
    (
        "top-up order {0} is applied {1} times",
        "SELECT order_id, COUNT(*) FROM topup_orders GROUP BY order_id HAVING COUNT(*) > 1",
    ),
)


async def check_invariants(tx: Tx, *, limit: int = 20) -> list[str]:
    """Problems found (see module docstring); at most ``limit`` per check."""
    problems: list[str] = []
    for text, sql in _CHECKS:
        for row in (await tx.fetch(sql))[:limit]:
            problems.append(text.format(*(row[i] for i in range(len(row)))))
    return problems


async def balance(tx: Tx, token: str) -> int | None:
    value = await tx.fetchval(
        "SELECT a.balance FROM cards c JOIN accounts a ON a.id = c.account_id WHERE c.token = $1", token
    )
    return None if value is None else int(value)


async def pin_tries(tx: Tx, token: str) -> int | None:
    value = await tx.fetchval("SELECT pin_tries FROM cards WHERE token = $1", token)
    return None if value is None else int(value)


async def account_balance(tx: Tx, account_id: int) -> int:
    """Any account's balance as the sum of its postings (house accounts have no stored balance)."""
    return int(await tx.fetchval("SELECT COALESCE(SUM(amount), 0) FROM postings WHERE account_id = $1", account_id))
