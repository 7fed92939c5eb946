"""Data-element names and the subfield layouts of SPEC §4 (pure string helpers, no wire encoding).

- :class:`DE`: field numbers by name (``DE.STAN == "11"``), usable directly as ``msg.fields`` keys.
- Field 60: ``60.1 type (2) | 60.2 batch (6) | 60.3 network management code (3) | rest``
  (:func:`parse_field60`, :func:`format_field60`).
- Field 61: ``original batch (6) | original STAN (6) | original date MMDD (4) | rest``; the date may be
  absent (12 digits), as UnionPay voids send it (:func:`parse_field61`, :func:`format_field61`).
- Field 54 (balance): ``10`` account type + ``02`` amount type + currency (3) + ``C``/``D`` + amount (12)
  (:func:`format_balance54`, :func:`parse_balance54`).
- Field 48 (batch settlement): ``debit_amount(12) debit_count(3) credit_amount(12) credit_count(3)
  code(1)`` twice, 62 digits (:func:`parse_settlement48`, :func:`format_settlement48`).
- Field 35 (track 2): ``PAN | D or = | YYMM | service code (3) | discretionary`` (:func:`parse_track2`).

Parsers raise :class:`FieldFormatError` (a ``ValueError``) whose text names the field only, never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DE",
    "Balance54",
    "Field60",
    "Field61",
    "FieldFormatError",
    "SettlementGroup",
    "SettlementTotals",
    "Track2",
    "format_balance54",
    "format_field60",
    "format_field61",
    "format_settlement48",
    "parse_balance54",
    "parse_field60",
    "parse_field61",
    "parse_settlement48",
    "parse_track2",
]


class DE(StrEnum):
    """ISO 8583 data elements used on the POS link, by name (values are ``IsoMessage.fields`` keys)."""

    PAN = "2"
    PCODE = "3"
    AMOUNT = "4"
    TRANSMISSION_DATETIME = "7"
    STAN = "11"
    LOCAL_TIME = "12"
    LOCAL_DATE = "13"
    EXPIRY = "14"
    SETTLEMENT_DATE = "15"
    POS_ENTRY_MODE = "22"
    CARD_SEQUENCE = "23"
    POS_CONDITION = "25"
    PIN_CAPTURE = "26"
    ACQUIRER_ID = "32"
    FORWARDER_ID = "33"
    TRACK2 = "35"
    TRACK3 = "36"
    RRN = "37"
    AUTH_CODE = "38"
    RC = "39"
    TID = "41"
    MID = "42"
    ADDITIONAL_RESPONSE = "44"
    TRACK1 = "45"
    SETTLEMENT_TOTALS = "48"
    CURRENCY = "49"
    PIN_BLOCK = "52"
    SECURITY_CONTROL = "53"
    BALANCE = "54"
    ICC_DATA = "55"
    RESERVED_60 = "60"
    ORIGINAL_DATA = "61"
    RESERVED_62 = "62"
    RESERVED_63 = "63"
    MAC = "64"


class FieldFormatError(ValueError):
    """A field value that does not have the layout its parser expects; ``field`` names it (no value)."""

    def __init__(self, field: str, reason: str = "bad format") -> None:
        super().__init__(f"field {field}: {reason}")
        self.field = field
        self.reason = reason


def _digits(value: str, width: int | None = None) -> bool:
    return value.isascii() and value.isdigit() and (width is None or len(value) == width)


# ----------------------------------------------------------------------------------------------- 60


@dataclass(frozen=True, slots=True)
class Field60:
    """Field 60: transaction type code (60.1), batch (60.2), network management code (60.3), the rest."""

    type_code: str
    batch: str
    nmic: str = ""
    extra: str = ""


def parse_field60(s: str) -> Field60:
    """Split field 60. 8 digits (type + batch) or 11..17 digits; all digits."""
    if not _digits(s) or not (len(s) == 8 or 11 <= len(s) <= 17):
        raise FieldFormatError(DE.RESERVED_60)
    return Field60(s[0:2], s[2:8], s[8:11], s[11:])


def format_field60(type_code: str, batch: str, nmic: str = "000", extra: str = "") -> str:
    """Join field 60 (``format_field60("22", "000001")`` -> ``"22000001000"``)."""
    ok = _digits(type_code, 2) and _digits(batch, 6) and _digits(nmic, 3)
    if not ok or (extra and not _digits(extra)):
        raise FieldFormatError(DE.RESERVED_60)
    s = type_code + batch + nmic + extra
    if len(s) > 17:
        raise FieldFormatError(DE.RESERVED_60, "too long")
    return s


# ----------------------------------------------------------------------------------------------- 61


@dataclass(frozen=True, slots=True)
class Field61:
    """Field 61: original batch, original STAN, original date MMDD (``""`` when absent), the rest."""

    orig_batch: str
    orig_stan: str
    orig_date: str = ""
    extra: str = ""


def parse_field61(s: str) -> Field61:
    """Split field 61: 12 digits (batch + STAN) or 16..29 digits (with the MMDD date)."""
    if not _digits(s) or not (len(s) == 12 or 16 <= len(s) <= 29):
        raise FieldFormatError(DE.ORIGINAL_DATA)
    date = s[12:16]
    if date and not ("01" <= date[:2] <= "12" and "01" <= date[2:] <= "31"):
        raise FieldFormatError(DE.ORIGINAL_DATA, "bad original date")
    return Field61(s[0:6], s[6:12], date, s[16:])


def format_field61(orig_batch: str, orig_stan: str, orig_date: str = "", extra: str = "") -> str:
    """Join field 61 (``format_field61("000001", "000123", "1122")`` -> ``"0000010001231122"``)."""
    if not (_digits(orig_batch, 6) and _digits(orig_stan, 6)):
        raise FieldFormatError(DE.ORIGINAL_DATA)
    if orig_date and not _digits(orig_date, 4):
        raise FieldFormatError(DE.ORIGINAL_DATA)
    if extra and (not orig_date or not _digits(extra)):
        raise FieldFormatError(DE.ORIGINAL_DATA)
    s = orig_batch + orig_stan + orig_date + extra
    if len(s) > 29:
        raise FieldFormatError(DE.ORIGINAL_DATA, "too long")
    return s


# ----------------------------------------------------------------------------------------------- 54

_MAX12 = 999_999_999_999


@dataclass(frozen=True, slots=True)
class Balance54:
    """Field 54: account type, amount type, currency and the signed amount in fen (negative = debit)."""

    account_type: str
    amount_type: str
    currency: str
    amount_fen: int


def format_balance54(amount_fen: int, currency: str = "156", *, sign: str | None = None) -> str:
    """``format_balance54(50000)`` -> ``"1002156C000000050000"`` (SPEC §4).

    ``sign`` defaults to ``C`` for amounts >= 0 and ``D`` (with the absolute value) for negative ones; an
    explicit ``sign`` (``"C"``/``"D"``) is written as given with ``abs(amount_fen)``.
    """
    if sign is None:
        sign = "D" if amount_fen < 0 else "C"
    if sign not in ("C", "D") or not _digits(currency, 3) or abs(amount_fen) > _MAX12:
        raise FieldFormatError(DE.BALANCE)
    return f"1002{currency}{sign}{abs(amount_fen):012d}"


def parse_balance54(s: str) -> Balance54:
    """Parse a 20-character field 54 (first amount only)."""
    if len(s) < 20 or not (_digits(s[0:7]) and s[7] in "CD" and _digits(s[8:20])):
        raise FieldFormatError(DE.BALANCE)
    amount = int(s[8:20])
    return Balance54(s[0:2], s[2:4], s[4:7], -amount if s[7] == "D" else amount)


# ----------------------------------------------------------------------------------------------- 48


@dataclass(frozen=True, slots=True)
class SettlementGroup:
    """One 31-digit group of field 48: debit/credit amounts (fen) and counts, and the settlement code."""

    debit_amount: int
    debit_count: int
    credit_amount: int
    credit_count: int
    code: str = "0"

    def format(self) -> str:
        """The 31 digits of this group."""
        if not (
            0 <= self.debit_amount <= _MAX12
            and 0 <= self.credit_amount <= _MAX12
            and 0 <= self.debit_count <= 999
            and 0 <= self.credit_count <= 999
            and _digits(self.code, 1)
        ):
            raise FieldFormatError(DE.SETTLEMENT_TOTALS)
        return (
            f"{self.debit_amount:012d}{self.debit_count:03d}{self.credit_amount:012d}{self.credit_count:03d}{self.code}"
        )


_GROUP_RE = re.compile(r"([0-9]{12})([0-9]{3})([0-9]{12})([0-9]{3})([0-9])")


def _parse_group(s: str) -> SettlementGroup:
    m = _GROUP_RE.fullmatch(s)
    if m is None:
        raise FieldFormatError(DE.SETTLEMENT_TOTALS)
    return SettlementGroup(int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5])


@dataclass(frozen=True, slots=True)
class SettlementTotals:
    """Field 48 of a batch settlement: the program-card group and the second (other cards) group."""

    program: SettlementGroup
    other: SettlementGroup = SettlementGroup(0, 0, 0, 0, "0")

    @classmethod
    def of(
        cls, debit_amount: int, debit_count: int, credit_amount: int, credit_count: int, code: str = "0"
    ) -> SettlementTotals:
        """Program totals with an all-zero second group carrying the same ``code``."""
        return cls(
            SettlementGroup(debit_amount, debit_count, credit_amount, credit_count, code),
            SettlementGroup(0, 0, 0, 0, code),
        )

    # convenience views of the program group
    @property
    def debit_amount(self) -> int:
        return self.program.debit_amount

    @property
    def debit_count(self) -> int:
        return self.program.debit_count

    @property
    def credit_amount(self) -> int:
        return self.program.credit_amount

    @property
    def credit_count(self) -> int:
        return self.program.credit_count

    @property
    def code(self) -> str:
        return self.program.code


def parse_settlement48(s: str) -> SettlementTotals:
    """Parse the 62-digit settlement field 48."""
    if len(s) != 62:
        raise FieldFormatError(DE.SETTLEMENT_TOTALS)
    return SettlementTotals(_parse_group(s[:31]), _parse_group(s[31:]))


def format_settlement48(totals: SettlementTotals) -> str:
    """The 62 digits of ``totals``."""
    return totals.program.format() + totals.other.format()


# ----------------------------------------------------------------------------------------------- 35

_TRACK2_RE = re.compile(r"([0-9]{12,19})[D=]([0-9]{4})([0-9]{3})?([0-9]*)")


@dataclass(frozen=True, slots=True)
class Track2:
    """Track 2 equivalent data. ``repr`` masks the PAN and hides the rest."""

    pan: str
    expiry_yymm: str
    service_code: str = ""
    discretionary: str = ""

    def __repr__(self) -> str:
        masked = self.pan[:6] + "*" * (len(self.pan) - 10) + self.pan[-4:]
        return f"Track2(pan={masked!r}, ...)"


def parse_track2(s: str) -> Track2:
    """Parse field 35 with either separator (``D`` as BCD on cup, ``=`` or ``D`` in ASCII on iso87).

    PAN 12..19 digits; expiry YYMM required; service code optional (3 digits); the rest is discretionary.
    """
    m = _TRACK2_RE.fullmatch(s)
    if m is None:
        raise FieldFormatError(DE.TRACK2)
    return Track2(m[1], m[2], m[3] or "", m[4])
