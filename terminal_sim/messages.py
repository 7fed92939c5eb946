"""Request fields per transaction type, exactly as SPEC §4 lists them (normalized ``IsoMessage`` fields:
numeric fields as digits, binary fields as uppercase hex). Pure functions, no state, no crypto: the
:class:`~terminal_sim.terminal.Terminal` supplies STAN, batch, PIN blocks and the MAC.

========== ====== ======== ==== ============== =====================================================
type       MTI    3        25   60.1 / 60.3    notes
========== ====== ======== ==== ============== =====================================================
signon     0800   -        -    00 / 003, 004  63 = operator
signoff    0820   -        -    00 / 002
echo       0820   -        -    00 / 301
balance    0200   310000   00   01             PIN
purchase   0200   000000   00   22             PIN
void       0200   200000   00   23             37, 38, 61 (original batch + STAN); PIN optional
refund     0220   200000   00   25             advice; 37 and 61 (with the original date)
topup      0200   630000   00   48             service-hall terminals only
pinchange  0200   700000   00   70             52 = current PIN, 62 = new PIN block
reversal   0400   as orig  as   as original    11 = original STAN, 39 = reason
settle     0500   -        -    00 / 201       48 = the terminal's totals, 63 = operator
========== ====== ======== ==== ============== =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.iso.fields import SettlementTotals, format_settlement48

CURRENCY = "156"
CONDITION = "00"
#: field 53: PIN with PAN (format 0), 3DES, track data clear
PIN_CONTROL = "2600000000000000"
#: track 2 after the expiry: service code 101, then discretionary data
TRACK2_TAIL = "1010000000000"
#: the fields of an original request that its reversal repeats (SPEC §4: "as original")
REVERSAL_FIELDS = ("3", "4", "11", "22", "25", "49", "60")


@dataclass(frozen=True, slots=True)
class TxnType:
    """How a transaction type looks on the wire and how the terminal treats it."""

    name: str
    mti: str
    pcode: str = ""
    type_code: str = "00"
    nmic: str = "000"
    #: request and reply carry field 64
    mac: bool = True
    #: an unanswered request must be reversed (UnionPay: purchase, void, top-up)
    reversible: bool = False
    #: an unanswered request is retransmitted as is (advices)
    advice: bool = False


TYPES: dict[str, TxnType] = {
    t.name: t
    for t in (
        TxnType("signon", "0800", nmic="004", mac=False),
        TxnType("signoff", "0820", nmic="002", mac=False),
        TxnType("echo", "0820", nmic="301", mac=False),
        TxnType("balance", "0200", "310000", "01"),
        TxnType("purchase", "0200", "000000", "22", reversible=True),
        TxnType("void", "0200", "200000", "23", reversible=True),
        TxnType("refund", "0220", "200000", "25", advice=True),
        TxnType("topup", "0200", "630000", "48", reversible=True),
        TxnType("pinchange", "0200", "700000", "70"),
        TxnType("reversal", "0400"),
        TxnType("settle", "0500", nmic="201", mac=False),
    )
}

#: transaction types a person or a scenario can ask for (reversals are the terminal's own business)
USER_TYPES = ("signon", "signoff", "echo", "balance", "purchase", "void", "refund", "topup", "pinchange", "settle")


def field60(t: TxnType, batch: str) -> str:
    return t.type_code + batch + t.nmic


def card_fields(pan: str, expiry: str, *, swipe: bool, pin: bool, track_separator: str = "D") -> dict[str, str]:
    """How the card enters: swiped (field 35, entry mode ``02x``) or keyed (2 and 14, ``01x``); the third digit
    of 22 says whether a PIN was entered (``1``) or not (``2``)."""
    pin_digit = "1" if pin else "2"
    if swipe and expiry:
        return {"22": "02" + pin_digit, "35": f"{pan}{track_separator}{expiry}{TRACK2_TAIL}"}
    out = {"22": "01" + pin_digit, "2": pan}
    if expiry:
        out["14"] = expiry
    return out


def amount(fen: int) -> str:
    if not 0 <= fen <= 999_999_999_999:
        raise ValueError("amount out of range for field 4")
    return f"{fen:012d}"


def management(t: TxnType, stan: str, tid: str, mid: str, batch: str, operator: str = "001") -> dict[str, str]:
    """Sign-on (with 63 operator), sign-off, echo."""
    f = {"11": stan, "41": tid, "42": mid, "60": field60(t, batch)}
    if t.name == "signon":
        f["63"] = operator
    return f


def financial(t: TxnType, stan: str, tid: str, mid: str, batch: str, card: dict[str, str]) -> dict[str, str]:
    """The fields every financial request shares: 3, 11, 25, 41, 42, 49, 60 and the card's."""
    return {
        "3": t.pcode,
        "11": stan,
        "25": CONDITION,
        "41": tid,
        "42": mid,
        "49": CURRENCY,
        "60": field60(t, batch),
        **card,
    }


def with_pin(fields: dict[str, str], pin_block_hex: str) -> dict[str, str]:
    fields["52"] = pin_block_hex
    fields["53"] = PIN_CONTROL
    return fields


def original(
    fields: dict[str, str], rrn: str, auth: str, orig_batch: str, orig_stan: str, orig_date: str = ""
) -> dict[str, str]:
    """Void / refund: 37 (original RRN), 38 (original auth code, voids), 61 (batch + STAN [+ MMDD])."""
    fields["37"] = rrn
    if auth:
        fields["38"] = auth
    fields["61"] = orig_batch + orig_stan + orig_date
    return fields


def reversal(orig: dict[str, str], reason: str) -> dict[str, str]:
    """A reversal of ``orig`` (the fields of the request as sent): same 3, 4, 11, 22, 25, 49, 60, + 39."""
    f = {k: orig[k] for k in REVERSAL_FIELDS if k in orig}
    f["39"] = reason
    f["41"] = orig["41"]
    f["42"] = orig["42"]
    return f


def settlement(
    stan: str, tid: str, mid: str, batch: str, totals: SettlementTotals, operator: str = "001"
) -> dict[str, str]:
    t = TYPES["settle"]
    return {
        "11": stan,
        "41": tid,
        "42": mid,
        "48": format_settlement48(totals),
        "49": CURRENCY,
        "60": field60(t, batch),
        "63": operator,
    }
