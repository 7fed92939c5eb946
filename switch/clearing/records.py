"""Clearing file records (SPEC §8), pure: H/D/M/T lines, merchant summaries, running SHA-256.

```
H|1|<file_id>|<program_id>|<business_date>|<created_at ISO 8601>
D|<seq>|<type>|<DR or CR>|<rrn>|<stan>|<batch>|<tid>|<mid>|<masked_pan>|<card_token>|<amount>|<fee>|<net>|156|
  <local_datetime>|<auth_code>|<orig_rrn>|<orig_business_date>
M|<mid>|<count>|<purchases>|<credits>|<fees>|<net_payable>
T|<d_count>|<total_dr>|<total_cr>|<total_fees>|<net>|<sha256 hex of all preceding lines incl. LF>
```

Conventions (docs/DECISIONS.md, "Back office"): amounts in fen; ``fee`` on a line is the unsigned fee of that
line (charged on DR merchant lines, returned on CR merchant lines) and 0 on non-merchant lines; ``net`` =
amount − fee on merchant lines, amount otherwise. Merchant lines are PURCHASE, VOID, REFUND and the
ADJUSTMENTs of those; TOPUP, REBATE and top-up adjustments are program lines and not part of any ``M`` line.
``M``: purchases = Σ amount of DR merchant lines, credits = Σ amount of CR merchant lines, fees = Σ fee of DR
lines − Σ fee of CR lines, net_payable = purchases − credits − fees; sorted by MID. ``T``: totals over all
``D`` lines; total_fees = Σ of the ``M`` fees; net = total_dr − total_cr − total_fees (= Σ of the signed
``net`` of every ``D`` line). Dates are ``YYYYMMDD``; ``local_datetime`` is ISO 8601 with offset, seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime

CURRENCY = "156"

PURCHASE = "PURCHASE"
VOID = "VOID"
REFUND = "REFUND"
TOPUP = "TOPUP"
REBATE = "REBATE"
ADJUSTMENT = "ADJUSTMENT"
TYPES = frozenset({PURCHASE, VOID, REFUND, TOPUP, REBATE, ADJUSTMENT})

DR = "DR"
CR = "CR"


def masked_pan(first6: str, last4: str) -> str:
    """SPEC §8: first 6 + ``******`` + last 4."""
    return f"{first6}******{last4}"


def yyyymmdd(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def iso_seconds(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds")


def header_line(file_id: str, program_id: str, business_date: date, created_at: datetime) -> str:
    return f"H|1|{file_id}|{program_id}|{yyyymmdd(business_date)}|{iso_seconds(created_at)}\n"


@dataclass(slots=True)
class DetailRecord:
    """One ``D`` line before numbering. ``merchant`` says whether it belongs to the merchant's settlement."""

    type: str
    side: str  # DR | CR (card's side)
    rrn: str
    stan: str
    batch: str
    tid: str
    mid: str
    masked_pan: str
    card_token: str
    amount: int
    fee: int
    merchant: bool
    local_datetime: str  # already formatted
    auth_code: str = ""
    orig_rrn: str = ""
    orig_business_date: str = ""


def detail_line(seq: int, r: DetailRecord) -> str:
    net = r.amount - r.fee if r.merchant else r.amount
    return (
        f"D|{seq}|{r.type}|{r.side}|{r.rrn}|{r.stan}|{r.batch}|{r.tid}|{r.mid}|{r.masked_pan}|{r.card_token}|"
        f"{r.amount}|{r.fee}|{net}|{CURRENCY}|{r.local_datetime}|{r.auth_code}|{r.orig_rrn}|{r.orig_business_date}\n"
    )


@dataclass(slots=True)
class MerchantTotals:
    count: int = 0
    purchases: int = 0
    credits: int = 0
    fees: int = 0

    @property
    def net_payable(self) -> int:
        return self.purchases - self.credits - self.fees


@dataclass(slots=True)
class ClearingAccumulator:
    """Running totals and hash while ``D`` lines stream out; produces the ``M`` and ``T`` lines."""

    d_count: int = 0
    total_dr: int = 0
    total_cr: int = 0
    merchants: dict[str, MerchantTotals] = field(default_factory=dict)
    _sha: hashlib._Hash = field(default_factory=hashlib.sha256)

    def feed_text(self, text: str) -> bytes:
        """Hash already formatted line(s) and return their bytes (for the writer)."""
        data = text.encode("utf-8")
        self._sha.update(data)
        return data

    def add(self, r: DetailRecord) -> str:
        """Number ``r``, account for it and return its line (not yet hashed: use :meth:`feed_text`)."""
        self.d_count += 1
        if r.side == DR:
            self.total_dr += r.amount
        else:
            self.total_cr += r.amount
        if r.merchant:
            m = self.merchants.get(r.mid)
            if m is None:
                m = self.merchants[r.mid] = MerchantTotals()
            m.count += 1
            if r.side == DR:
                m.purchases += r.amount
                m.fees += r.fee
            else:
                m.credits += r.amount
                m.fees -= r.fee
        return detail_line(self.d_count, r)

    def merchant_lines(self) -> str:
        return "".join(
            f"M|{mid}|{m.count}|{m.purchases}|{m.credits}|{m.fees}|{m.net_payable}\n"
            for mid, m in sorted(self.merchants.items())
        )

    @property
    def total_fees(self) -> int:
        return sum(m.fees for m in self.merchants.values())

    def trailer_line(self) -> str:
        """``T`` line; call after every preceding line went through :meth:`feed_text`."""
        fees = self.total_fees
        net = self.total_dr - self.total_cr - fees
        return f"T|{self.d_count}|{self.total_dr}|{self.total_cr}|{fees}|{net}|{self._sha.hexdigest()}\n"


def verify_clearing_text(text: str) -> bool:
    """True when the trailer's hash and totals match the lines before it (used by tests and ``clearing run``)."""
    lines = text.split("\n")
    if not lines or lines[-1] != "" or len(lines) < 3:
        return False
    body, trailer = lines[:-2], lines[-2]
    if not trailer.startswith("T|") or not body or not body[0].startswith("H|"):
        return False
    t = trailer.split("|")
    digest = hashlib.sha256("".join(line + "\n" for line in body).encode("utf-8")).hexdigest()
    details = [ln.split("|") for ln in body if ln.startswith("D|")]
    total_dr = sum(int(d[11]) for d in details if d[3] == DR)
    total_cr = sum(int(d[11]) for d in details if d[3] == CR)
    fees = sum(int(m.split("|")[5]) for m in body if m.startswith("M|"))
    return t[1:] == [
        str(len(details)),
        str(total_dr),
        str(total_cr),
        str(fees),
        str(total_dr - total_cr - fees),
        digest,
    ]
