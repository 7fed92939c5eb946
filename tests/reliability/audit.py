"""What the terminals were told, checked against the ledger: the proof that nothing was lost or created.

:func:`audit` returns an :class:`AuditReport` whose ``problems`` must be empty:

- the ledger's own invariants hold (postings of every row sum to zero, card balances equal their postings,
  no posting without its journal row, no key journaled twice, nothing reversed twice ...);
- every approval a terminal accepted (RC 00, reply MAC good) is journaled exactly once under its request's
  key, with the RRN and amount the terminal was given, and is still in force (a purchase is voided exactly
  when the terminal accepted its void; its refunded total is the refunds the terminal accepted);
- no money row is in force in the ledger that no terminal accepted (what went unanswered was reversed, by
  the terminal's own reversal);
- every reversal answered 00 left its original out of force;
- each card's balance is its opening balance plus the accepted approvals, and all postings sum to zero
  (``money_lost`` = the sum of the differences, in fen: 0);
- RRNs never repeat: one RRN per request key, never the same RRN for two requests;
- every terminal settled its batch balanced (its totals = the switch's).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from switch.ledger import LedgerStore
from terminal_sim.messages import TYPES
from tests.reliability.fleet import Seen
from tests.reliability.world import WorldCard

Key = tuple[str, str, str, str, str]
_JOURNAL_SQL = (
    "SELECT tid, mti, batch, stan, pcode, kind, rc, status, amount, rrn, refunded, card_token "
    "FROM journal WHERE source = 'pos' AND kind <> 'signon'"
)
_EFFECT = {"purchase": -1, "void": 1, "refund": 1, "topup": 1}


@dataclass
class AuditReport:
    approvals_checked: int = 0
    reversals_sent: int = 0
    reversals_honoured: int = 0
    rrns_checked: int = 0
    money_lost: int = 0
    settled_balanced: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


@dataclass(frozen=True)
class _Row:
    kind: str
    rc: str
    status: str
    amount: int
    rrn: str
    refunded: int
    token: str


async def _journal(store: LedgerStore) -> dict[Key, _Row]:
    rows: list[Any] = await store.read(lambda tx: tx.fetch(_JOURNAL_SQL))
    out: dict[Key, _Row] = {}
    for r in rows:
        out[(r[0], r[1], r[2], r[3], r[4])] = _Row(r[5], r[6], r[7], int(r[8]), r[9], int(r[10]), r[11])
    return out


def _key_of_original(s: Seen, mti: str) -> Key:
    return (s.tid, mti, s.orig_batch, s.orig_stan, "000000")


async def audit(
    store: LedgerStore, seen: list[Seen], cards: tuple[WorldCard, ...], settlements: dict[str, Seen | None]
) -> AuditReport:
    report = AuditReport()
    for p in await store.check_invariants():
        report.problem(f"ledger invariant: {p}")
    rows = await _journal(store)

    accepted: dict[Key, Seen] = {}
    for s in seen:
        if s.accepted_approval:
            if s.key in accepted and accepted[s.key].rrn != s.rrn:
                report.problem(f"{s.kind} {s.tid}/{s.stan}: two approvals with different RRNs")
            accepted[s.key] = s
    voided = {_key_of_original(s, "0200") for s in accepted.values() if s.kind == "void"}
    refunds: dict[Key, int] = defaultdict(int)
    for s in accepted.values():
        if s.kind == "refund":
            refunds[_key_of_original(s, "0200")] += s.amount

    # every accepted approval: in the ledger exactly once (the key is unique), with its RRN and amount, in force
    for key, s in accepted.items():
        report.approvals_checked += 1
        row = rows.get(key)
        what = f"{s.kind} {s.tid}/{s.batch}/{s.stan} (RRN {s.rrn})"
        if row is None:
            report.problem(f"{what}: approved to the terminal, not in the ledger")
            continue
        if (row.kind, row.rc, row.rrn, row.amount) != (s.kind, "00", s.rrn, s.amount):
            report.problem(f"{what}: ledger has {row.kind} rc {row.rc} RRN {row.rrn} amount {row.amount}")
        status = "voided" if key in voided else "ok"
        if row.status != status:
            report.problem(f"{what}: status {row.status}, expected {status}")
        if s.kind == "purchase" and row.refunded != refunds.get(key, 0):
            report.problem(f"{what}: refunded {row.refunded}, terminals accepted {refunds.get(key, 0)}")

    # nothing in force that no terminal accepted
    for key, row in rows.items():
        if row.kind in _EFFECT and row.rc == "00" and row.status in ("ok", "voided") and key not in accepted:
            report.problem(
                f"{row.kind} {key[0]}/{key[2]}/{key[3]} (RRN {row.rrn}) is in force, no terminal accepted it"
            )

    # reversals answered 00: their original is not in force
    for s in seen:
        if s.kind != "reversal":
            continue
        report.reversals_sent += s.status != "not_sent"
        if s.status != "ok" or s.rc != "00":
            continue
        report.reversals_honoured += 1
        okey = (s.tid, TYPES[s.of_kind].mti, s.batch, s.stan, s.pcode)
        orig = rows.get(okey)
        if orig is not None and orig.rc == "00" and orig.status in ("ok", "voided"):
            report.problem(f"reversal of {s.of_kind} {s.tid}/{s.batch}/{s.stan} answered 00, original in force")
        if okey in accepted:
            report.problem(f"{s.of_kind} {s.tid}/{s.batch}/{s.stan} was accepted and then reversed")

    # money: each card = opening + accepted approvals; all postings sum to zero
    expected = {store.token(c.pan): c.balance for c in cards}
    for s in accepted.values():
        expected[store.token(s.pan)] += _EFFECT[s.kind] * s.amount
    for token, want in expected.items():
        got = await store.balance(token)
        if got != want:
            report.money_lost += abs((got or 0) - want)
            report.problem(f"card {token[:8]}…: balance {got}, expected {want}")
    total = await store.read(lambda tx: tx.fetchval("SELECT COALESCE(SUM(amount), 0) FROM postings"))
    if int(total) != 0:
        report.money_lost += abs(int(total))
        report.problem(f"all postings sum to {total}, not 0")

    # RRNs: one per request, never shared
    by_key: dict[Key, str] = {}
    by_rrn: dict[str, Key] = {}
    for s in seen:
        if not s.rrn:
            continue
        if by_key.setdefault(s.key, s.rrn) != s.rrn:
            report.problem(f"{s.kind} {s.tid}/{s.stan}: answered with RRN {by_key[s.key]} and {s.rrn}")
        if by_rrn.setdefault(s.rrn, s.key) != s.key:
            report.problem(f"RRN {s.rrn} given to two requests: {by_rrn[s.rrn]} and {s.key}")
    report.rrns_checked = len(by_rrn)

    for tid, st in settlements.items():
        if st is None or st.rc != "00":
            report.problem(f"terminal {tid}: batch not settled ({st.rc if st else 'no answer'})")
        elif st.settle_code != "1":
            report.problem(f"terminal {tid}: settlement not balanced (code {st.settle_code})")
        else:
            report.settled_balanced += 1
    return report
