"""``switch topup import ORDERS.csv --out RESULTS.csv``: employer bulk loads (SPEC §7).

Per line: ``applied``, ``duplicate`` (same order id and same content already applied) or ``rejected:<reason>``
(``bad_*`` validation reasons, ``unknown_card``, ``card_lost``, ``card_frozen``, ``card_closed``, ``conflict``
= the order id was applied with different content, ``cap`` = the card's balance would exceed the cap).
Orders are applied in chunks, each chunk one database transaction (journal + postings + balance + order row +
SMS outbox row per applied line). Refused whole, before anything is applied, inside the settlement window;
if the window opens while an import runs, the import stops after the current chunk (exit 1) and a re-run after
the window applies the rest (idempotent by order id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from switch.backoffice.csvio import AtomicCsvWriter, BadLine, Order, count_data_lines, parse_orders
from switch.backoffice.money import format_yuan
from switch.backoffice.oplog import get_logger
from switch.backoffice.ports import BackofficeStore, TopupItem, TopupOutcome
from switch.backoffice.progress import Progress
from switch.backoffice.timeutil import BusinessCalendar
from switch.backoffice.tokens import card_token
from switch.errors import HandledError
from switch.telemetry.masking import mask_pan, mask_pans_in_text

log = get_logger(__name__)

RESULT_COLUMNS = ("line", "order_id", "employer_id", "masked_pan", "amount", "result")
CHUNK = 2000


@dataclass(slots=True)
class TopupSummary:
    lines: int = 0
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    applied_fen: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, result: str) -> None:
        self.lines += 1
        if result == "applied":
            self.applied += 1
        elif result == "duplicate":
            self.duplicate += 1
        else:
            self.rejected += 1
            reason = result.partition(":")[2]
            self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def text(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items()))
        return (
            f"topup import: {self.lines} lines, {self.applied} applied ({format_yuan(self.applied_fen)}), "
            f"{self.duplicate} duplicate, {self.rejected} rejected" + (f" ({reasons})" if reasons else "")
        )


def order_digest(o: Order, token: str) -> str:
    """Content hash of an order (everything but the order id and line number)."""
    data = "\x1f".join((o.employer_id, token, str(o.amount_fen), o.item, o.note))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


async def import_topups(
    store: BackofficeStore,
    *,
    orders_path: Path,
    out_path: Path,
    token_key: str,
    balance_cap: int,
    calendar: BusinessCalendar,
    now: Callable[[], datetime],
    progress: bool = True,
    chunk: int = CHUNK,
) -> TopupSummary:
    if calendar.in_settlement_window(now()):
        raise HandledError("top-ups are paused during the settlement window; nothing was applied")
    total = count_data_lines(orders_path)
    bar = Progress("topup import", total, enabled=progress)
    summary = TopupSummary()
    pending: list[tuple[Order | BadLine, TopupItem | None]] = []

    async def flush(writer: AtomicCsvWriter) -> None:
        items = [item for _, item in pending if item is not None]
        outcomes: dict[int, TopupOutcome] = {}
        if items:
            t = now()
            if calendar.in_settlement_window(t):
                raise HandledError(
                    f"settlement window opened during the import: {summary.applied} lines applied, "
                    f"the rest not; re-run after the window (applied lines report duplicate)"
                )
            results = await store.apply_topups(
                items, now=t, business_date=calendar.business_date(t), balance_cap=balance_cap
            )
            outcomes = {r.line: r for r in results}
        for rec, item in pending:
            if isinstance(rec, BadLine):
                result = f"rejected:{rec.reason}"
                writer.row(
                    [rec.line, rec.key, rec.employer_id, mask_pan(rec.pan), mask_pans_in_text(rec.amount_text), result]
                )
            else:
                assert item is not None
                result = outcomes[rec.line].result
                if result == "applied":
                    summary.applied_fen += rec.amount_fen
                writer.row(
                    [rec.line, rec.order_id, rec.employer_id, mask_pan(rec.pan), format_yuan(rec.amount_fen), result]
                )
            summary.count(result)
        pending.clear()
        bar.update(summary.lines, applied=summary.applied, duplicate=summary.duplicate, rejected=summary.rejected)

    with AtomicCsvWriter(out_path, RESULT_COLUMNS) as writer:
        for rec in parse_orders(orders_path):
            if isinstance(rec, BadLine):
                pending.append((rec, None))
            else:
                token = card_token(rec.pan, token_key)
                pending.append(
                    (
                        rec,
                        TopupItem(
                            line=rec.line,
                            order_id=rec.order_id,
                            employer_id=rec.employer_id,
                            card_token=token,
                            amount=rec.amount_fen,
                            item=rec.item,
                            note=rec.note,
                            digest=order_digest(rec, token),
                        ),
                    )
                )
            if len(pending) >= chunk:
                await flush(writer)
        await flush(writer)
    bar.finish(applied=summary.applied, duplicate=summary.duplicate, rejected=summary.rejected)
    log.info(
        "topup_import",
        lines=summary.lines,
        applied=summary.applied,
        duplicate=summary.duplicate,
        rejected=summary.rejected,
        applied_fen=summary.applied_fen,
    )
    return summary
