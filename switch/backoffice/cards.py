"""Card issuance and card operations (SPEC §7).

``issue_cards``: for each valid member line, PAN = BIN + sequence + Luhn; the initial PIN is generated inside
the HSM (``JA``), only its IBM 3624 offset leaves it (``DE``), and the HSM prints the PIN mailer (``PE``) to
its owner-only mailer file; then the card is stored INACTIVE (it becomes ACTIVE at the first PIN change).
The PIN mailer is printed before the card row is committed, so a stored card always has a mailer.

The output file (``--out CARDS.csv``) is the issuance report: one line per input line with the result, the
masked PAN and the card token; it never carries the full PAN (docs/DECISIONS.md, "Back office") and is
written owner-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from switch.backoffice.csvio import AtomicCsvWriter, BadLine, count_data_lines, parse_members
from switch.backoffice.oplog import get_logger
from switch.backoffice.ports import BackofficeStore, CardView, NewCard
from switch.backoffice.progress import Progress
from switch.backoffice.tokens import card_token, make_pan
from switch.errors import HandledError

log = get_logger(__name__)

CARD_COLUMNS = ("line", "member_id", "name", "employer_id", "result", "masked_pan", "card_token", "expiry")
CARD_VALIDITY_YEARS = 5
PAN_LENGTH = 16

#: operator actions → status they set (``unlock-pin`` resets the PIN try counter, status unchanged)
CARD_ACTIONS = ("lost", "freeze", "close", "unlock-pin")


class IssuerHsm(Protocol):
    """The three HSM steps of issuance; the clear PIN never leaves the HSM."""

    async def new_pin(self, pan: str) -> str:
        """``JA``: a random PIN, returned encrypted under the LMK."""
        ...

    async def offset_of(self, pan: str, pin_lmk: str) -> str:
        """``DE``: the IBM 3624 offset of that PIN."""
        ...

    async def print_mailer(self, pan: str, pin_lmk: str, lines: list[str]) -> None:
        """``PE``: print the PIN mailer (owner-only file on the simulator)."""
        ...


@dataclass(slots=True)
class IssueSummary:
    lines: int = 0
    issued: int = 0
    duplicate: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items()))
        return (
            f"cards issue: {self.lines} lines, {self.issued} issued, {self.duplicate} duplicate, "
            f"{self.rejected} rejected" + (f" ({reasons})" if reasons else "")
        )

    def reject(self, reason: str) -> str:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        return f"rejected:{reason}"


def expiry_for(now_local: datetime, years: int = CARD_VALIDITY_YEARS) -> str:
    """YYMM, ``years`` after the issue month."""
    return f"{(now_local.year + years) % 100:02d}{now_local.month:02d}"


async def issue_cards(
    store: BackofficeStore,
    hsm: IssuerHsm,
    *,
    members_path: Path,
    out_path: Path,
    bin_: str,
    token_key: str,
    now: Callable[[], datetime],
    progress: bool = True,
) -> IssueSummary:
    summary = IssueSummary()
    seen: set[str] = set()
    bar = Progress("cards issue", count_data_lines(members_path), enabled=progress)
    with AtomicCsvWriter(out_path, CARD_COLUMNS) as out:
        for rec in parse_members(members_path):
            summary.lines += 1
            if isinstance(rec, BadLine):
                out.row([rec.line, rec.key, "", "", summary.reject(rec.reason), "", "", ""])
                continue
            if rec.member_id in seen:
                reason = summary.reject("duplicate_member_id")
                out.row([rec.line, rec.member_id, rec.name, rec.employer_id, reason, "", "", ""])
                continue
            seen.add(rec.member_id)
            existing = await store.card_by_member(rec.member_id)
            if existing is not None:
                summary.duplicate += 1
                out.row(_card_row(rec.line, existing, "duplicate"))
                continue
            ts = now()
            expiry = expiry_for(ts)
            for _attempt in range(100):
                seq = await store.next_card_sequence(bin_)
                try:
                    pan = make_pan(bin_, seq, PAN_LENGTH)
                except ValueError as exc:
                    raise HandledError(f"card number range of BIN {bin_} is exhausted") from exc
                token = card_token(pan, token_key)
                if await store.card_by_token(token) is None:
                    break
            else:  # pragma: no cover - 100 provisioned cards in a row
                raise HandledError("no free card sequence found")
            pin_lmk = await hsm.new_pin(pan)
            offset = await hsm.offset_of(pan, pin_lmk)
            masked = f"{pan[:6]}******{pan[-4:]}"
            await hsm.print_mailer(pan, pin_lmk, [rec.name, rec.member_id, rec.employer_id, masked])
            card = NewCard(
                token=token,
                first6=pan[:6],
                last4=pan[-4:],
                sequence=seq,
                expiry=expiry,
                pin_offset=offset,
                member_id=rec.member_id,
                name=rec.name,
                mobile=rec.mobile,
                employer_id=rec.employer_id,
            )
            del pan
            await store.insert_card(card, ts)
            summary.issued += 1
            out.row(
                [
                    rec.line,
                    rec.member_id,
                    rec.name,
                    rec.employer_id,
                    "issued",
                    masked,
                    token,
                    expiry,
                ]
            )
            bar.update(summary.lines, issued=summary.issued, rejected=summary.rejected)
    bar.finish(issued=summary.issued, duplicate=summary.duplicate, rejected=summary.rejected)
    log.info("cards_issued", lines=summary.lines, issued=summary.issued, rejected=summary.rejected)
    return summary


def _card_row(line: int, c: CardView, result: str) -> list[object]:
    return [line, c.member_id, c.name, c.employer_id, result, c.masked_pan, c.token, c.expiry]


def show_card_text(c: CardView) -> str:
    from switch.backoffice.money import format_yuan

    rows = [
        ("card", c.masked_pan),
        ("token", c.token),
        ("status", c.status),
        ("expiry", c.expiry),
        ("balance", format_yuan(c.balance)),
        ("pin_tries", str(c.pin_tries)),
        ("member_id", c.member_id),
        ("name", c.name),
        ("mobile", _mask_mobile(c.mobile)),
        ("employer_id", c.employer_id),
    ]
    return "".join(f"{k:<12}{v}\n" for k, v in rows)


def _mask_mobile(mobile: str) -> str:
    return mobile[:3] + "****" + mobile[-4:] if len(mobile) == 11 else mobile
