"""Field definitions of both wire profiles as pyiso8583 spec dicts (plain data).

Each spec maps a field key (``"t"`` MTI, ``"p"`` primary bitmap, ``"1"`` secondary bitmap, ``"2"``..) to a
pyiso8583 field definition: ``data_enc`` (``"b"`` = binary/BCD, else a text codec), ``len_enc`` (``"b"``,
``"bcd"`` or a text codec), ``len_type`` (width of the length prefix in bytes, 0 = fixed), ``max_len``,
``len_count`` (``"bytes"`` or ``"nibbles"``) and ``left_pad``/``right_pad`` for odd nibble counts. The codec
(``switch.iso.layout``) interprets them exactly as pyiso8583 does; the tests check it against pyiso8583.

``ISO87_SPEC`` (``iso87`` profile, SPEC §2.2) is a deep copy of ``iso8583.specs.default``: ASCII MTI and
data, binary primary/secondary bitmaps, ASCII LL/LLL prefixes, binary 52/64/55/96/128.

``CUP_SPEC`` (``cup`` profile, SPEC §2.1, UnionPay POS style):

- MTI 2 bytes BCD; primary bitmap 8 bytes binary; no secondary bitmap (``"1"`` is defined so the layout is
  complete, but the profile rejects a message with bit 1 set).
- Numeric fields are BCD. Fixed ``n`` fields: ``max_len`` in digits, data **left-aligned, right-padded
  with 0** to whole bytes. *Deviation from the SPEC text*, which says "right-aligned, left-padded": the
  worked example frame ``cup_purchase_frame_hex`` (``vectors/spec_examples.json``) encodes field 22
  ``"021"`` as bytes ``02 10``, i.e. left-aligned with a trailing ``0`` nibble, which is also what
  UnionPay POS terminals send. We follow the vector byte for byte. Only the odd-length fixed fields are
  affected (19-24 n3, 27 n1); every field the switch uses except 22 has an even digit count.
- LLVAR ``n`` (2, 32, 33): 1-byte BCD length counted in digits; data left-aligned, right-padded ``0``.
- LLLVAR ``n`` (48 n...322, 60 n...017, 61 n...029): 2-byte BCD length counted in digits, same padding.
- 35 z..37 (LLVAR) and 36 z..104 (LLLVAR): BCD with the separator as nibble ``D``; length in nibbles;
  right-padded ``0``.
- ASCII: 28-31 (x+n 8 as 9 characters), 37, 38, 39, 40, 41, 42, 43, 49, 50, 51 fixed; 34, 44, 45 LLVAR with a
  1-byte BCD length; 46, 47, 54 (an...020), 56-59, 63 (ans...163) LLLVAR with a 2-byte BCD length
  (counted in bytes).
- Binary: 52 and 64 fixed 8 bytes; 55 b...255 and 62 b...512 LLLVAR with a 2-byte BCD length counted in
  bytes.

Fields the SPEC does not name follow common China UnionPay POS (CUPS 8583) conventions for the primary
bitmap.
"""

from __future__ import annotations

import copy
from typing import Any

import iso8583.specs

__all__ = ["CUP_SPEC", "ISO87_SPEC", "SpecDict"]

#: a pyiso8583 specification: field key -> field definition
SpecDict = dict[str, dict[str, Any]]

#: ``iso87`` profile: exactly pyiso8583's ``default`` spec (a private deep copy; the library's is untouched)
ISO87_SPEC: SpecDict = copy.deepcopy(iso8583.specs.default)


# spec dicts as compact records, like pyiso8583's own specs
# fmt: off
def _n(max_digits: int, desc: str) -> dict[str, Any]:
    """Fixed numeric, BCD, left-aligned, right pad 0 (see the module docstring)."""
    return {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": max_digits,
            "len_count": "nibbles", "right_pad": "0", "desc": desc}


def _n_var(len_type: int, max_digits: int, desc: str) -> dict[str, Any]:
    """LL/LLL numeric (or track ``z``): BCD length in digits, BCD data left-aligned, right pad 0."""
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_digits,
            "len_count": "nibbles", "right_pad": "0", "desc": desc}
# fmt: on


def _a(max_chars: int, desc: str) -> dict[str, Any]:
    """Fixed ASCII."""
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": 0, "max_len": max_chars, "desc": desc}


def _a_var(len_type: int, max_chars: int, desc: str) -> dict[str, Any]:
    """LL/LLL ASCII with a BCD length counted in bytes."""
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": len_type, "max_len": max_chars, "desc": desc}


def _b(max_bytes: int, desc: str) -> dict[str, Any]:
    """Fixed binary."""
    return {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": max_bytes, "desc": desc}


def _b_var(len_type: int, max_bytes: int, desc: str) -> dict[str, Any]:
    """LL/LLL binary with a BCD length counted in bytes."""
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_bytes, "desc": desc}


#: ``cup`` profile (SPEC §2.1); see the module docstring for the encodings and the field-22 deviation
CUP_SPEC: SpecDict = {
    "h": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 0, "desc": "Message Header"},
    "t": {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": 2, "desc": "Message Type"},
    "p": {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": 8, "desc": "Bitmap, Primary"},
    "1": _b(8, "Bitmap, Secondary"),
    "2": _n_var(1, 19, "Primary Account Number (PAN)"),
    "3": _n(6, "Processing Code"),
    "4": _n(12, "Amount, Transaction"),
    "5": _n(12, "Amount, Settlement"),
    "6": _n(12, "Amount, Cardholder Billing"),
    "7": _n(10, "Transmission Date and Time"),
    "8": _n(8, "Amount, Cardholder Billing Fee"),
    "9": _n(8, "Conversion Rate, Settlement"),
    "10": _n(8, "Conversion Rate, Cardholder Billing"),
    "11": _n(6, "System Trace Audit Number"),
    "12": _n(6, "Time, Local Transaction"),
    "13": _n(4, "Date, Local Transaction"),
    "14": _n(4, "Date, Expiration"),
    "15": _n(4, "Date, Settlement"),
    "16": _n(4, "Date, Conversion"),
    "17": _n(4, "Date, Capture"),
    "18": _n(4, "Merchant Type"),
    "19": _n(3, "Acquiring Institution Country Code"),
    "20": _n(3, "PAN Country Code"),
    "21": _n(3, "Forwarding Institution Country Code"),
    "22": _n(3, "Point-of-Service Entry Mode"),
    "23": _n(3, "PAN Sequence Number"),
    "24": _n(3, "Network International ID (NII)"),
    "25": _n(2, "Point-of-Service Condition Code"),
    "26": _n(2, "Point-of-Service PIN Capture Code"),
    "27": _n(1, "Authorizing ID Response Length"),
    "28": _a(9, "Amount, Transaction Fee"),
    "29": _a(9, "Amount, Settlement Fee"),
    "30": _a(9, "Amount, Transaction Processing Fee"),
    "31": _a(9, "Amount, Settlement Processing Fee"),
    "32": _n_var(1, 11, "Acquiring Institution ID Code"),
    "33": _n_var(1, 11, "Forwarding Institution ID Code"),
    "34": _a_var(1, 28, "Primary Account Number, Extended"),
    "35": _n_var(1, 37, "Track 2 Data"),
    "36": _n_var(2, 104, "Track 3 Data"),
    "37": _a(12, "Retrieval Reference Number"),
    "38": _a(6, "Authorization ID Response"),
    "39": _a(2, "Response Code"),
    "40": _a(3, "Service Restriction Code"),
    "41": _a(8, "Card Acceptor Terminal ID"),
    "42": _a(15, "Card Acceptor ID Code"),
    "43": _a(40, "Card Acceptor Name/Location"),
    "44": _a_var(1, 25, "Additional Response Data"),
    "45": _a_var(1, 76, "Track 1 Data"),
    "46": _a_var(2, 999, "Additional Data - ISO"),
    "47": _a_var(2, 999, "Additional Data - National"),
    "48": _n_var(2, 322, "Additional Data - Private (settlement totals)"),
    "49": _a(3, "Currency Code, Transaction"),
    "50": _a(3, "Currency Code, Settlement"),
    "51": _a(3, "Currency Code, Cardholder Billing"),
    "52": _b(8, "PIN Data"),
    "53": _n(16, "Security-Related Control Information"),
    "54": _a_var(2, 20, "Additional Amounts (balance)"),
    "55": _b_var(2, 255, "ICC System Related Data"),
    "56": _a_var(2, 999, "Reserved ISO"),
    "57": _a_var(2, 999, "Reserved National"),
    "58": _a_var(2, 100, "Reserved National (PBOC electronic cash)"),
    "59": _a_var(2, 999, "Reserved National"),
    "60": _n_var(2, 17, "Reserved Private (type, batch, network management code)"),
    "61": _n_var(2, 29, "Original Message (batch, STAN, date)"),
    "62": _b_var(2, 512, "Reserved Private (working keys, new PIN block)"),
    "63": _a_var(2, 163, "Reserved Private (operator)"),
    "64": _b(8, "Message Authentication Code"),
}
