"""Compile a pyiso8583 spec dict into flat field descriptors the codec walks quickly.

The codec does not call ``iso8583.decode``/``encode`` on the hot path: it walks these descriptors, which
carry exactly pyiso8583's semantics for the options our specs use (the tests decode and encode the same
messages with pyiso8583 and compare). Compiling once per profile gives the codec what pyiso8583 cannot:
byte offsets (for the MAC block), per-field content checks (BCD nibbles > 9, pad nibbles, ASCII digits in
length prefixes), and decoding that continues past a content error so that MTI, 11, 41 and 42 can still be
reported to the caller.

Supported definitions: ``data_enc`` ``"b"`` or any text codec; ``len_enc`` ``"b"``, ``"bcd"`` or a text
codec; ``len_type`` 0..4; ``len_count`` ``"bytes"`` (any data) or ``"nibbles"`` (binary data only), with
``left_pad`` or ``right_pad`` for odd nibble counts. ``"h"`` (a pyiso8583 header) must be absent or of
``max_len`` 0: the cup TPDU and header are handled outside the spec. Anything else raises ``ValueError``
when the profile is built, never at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHECK_DIGITS",
    "CHECK_HEX_TEXT",
    "CHECK_NONE",
    "CHECK_TRACK",
    "LEN_BCD",
    "LEN_BIN",
    "LEN_TEXT",
    "FieldLayout",
    "FieldPlan",
    "MessageLayout",
    "compile_spec",
]

# length prefix kinds
LEN_BIN = 1
LEN_BCD = 2
LEN_TEXT = 3

# content checks applied after decoding / before encoding
CHECK_NONE = 0
#: ASCII digits only (numeric ``n`` fields)
CHECK_DIGITS = 1
#: digits and the track-2 separators ``D`` / ``=`` (``z`` fields)
CHECK_TRACK = 2
#: hex text, normalised to uppercase (binary content carried in an ASCII field, e.g. 62 in iso87)
CHECK_HEX_TEXT = 3


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """One compiled field definition (data element ``number``)."""

    number: int
    key: str
    desc: str
    len_type: int
    len_kind: int
    len_codec: str
    max_len: int
    nibbles: bool
    binary: bool
    data_codec: str
    #: pad position for odd nibble counts: ``"L"``, ``"R"`` or ``""`` (odd counts impossible)
    pad_side: str
    pad_char: str
    check: int

    @property
    def fixed(self) -> bool:
        """True for a fixed-length field (no length prefix)."""
        return self.len_type == 0


#: the decoder's flat view of a field, unpacked in one step on the hot path:
#: (key, len_type, len_kind, len_codec, max_len, nibbles, binary, data_codec, pad_side, pad_char_lower, check)
FieldPlan = tuple[str, int, int, str, int, bool, bool, str, str, str, int]


def _plan(f: FieldLayout) -> FieldPlan:
    return (
        f.key,
        f.len_type,
        f.len_kind,
        f.len_codec,
        f.max_len,
        f.nibbles,
        f.binary,
        f.data_codec,
        f.pad_side,
        f.pad_char.lower(),
        f.check,
    )


@dataclass(frozen=True, slots=True)
class MessageLayout:
    """A compiled spec: MTI and bitmap encodings plus a descriptor per data element (index = number)."""

    mti_binary: bool
    mti_codec: str
    bitmap_binary: bool
    bitmap_codec: str
    secondary_binary: bool
    secondary_codec: str
    fields: tuple[FieldLayout | None, ...]
    #: ``fields`` as :data:`FieldPlan` tuples (same indexes)
    plans: tuple[FieldPlan | None, ...]


def _text_codec(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"spec {where}: encoding must be a codec name")
    try:
        "0".encode(value)
    except LookupError:
        raise ValueError(f"spec {where}: unknown codec") from None
    return value


def _compile_field(number: int, key: str, d: Mapping[str, Any], check: int) -> FieldLayout:
    data_enc = d["data_enc"]
    len_enc = d["len_enc"]
    len_type = int(d["len_type"])
    max_len = int(d["max_len"])
    len_count = d.get("len_count", "bytes")
    if not 0 <= len_type <= 4:
        raise ValueError(f"spec field {key}: len_type must be 0..4")
    if max_len <= 0:
        raise ValueError(f"spec field {key}: max_len must be positive")
    if len_count not in ("bytes", "nibbles"):
        raise ValueError(f"spec field {key}: len_count must be bytes or nibbles")
    binary = data_enc == "b"
    nibbles = len_count == "nibbles"
    if nibbles and not binary:
        raise ValueError(f"spec field {key}: nibble counts are supported for binary data only")
    if len_enc == "b":
        len_kind, len_codec = LEN_BIN, ""
    elif len_enc == "bcd":
        len_kind, len_codec = LEN_BCD, ""
    else:
        len_kind, len_codec = LEN_TEXT, _text_codec(len_enc, f"field {key} len_enc")
    if len_type:
        # the largest length the prefix can express must cover max_len, else encode could not succeed
        if len_kind == LEN_BIN:
            cap = (1 << (8 * len_type)) - 1
        else:
            cap = 10 ** (len_type * (2 if len_kind == LEN_BCD else 1)) - 1
        if max_len > cap:
            raise ValueError(f"spec field {key}: max_len does not fit the length prefix")
    left = str(d.get("left_pad", ""))[:1]
    right = str(d.get("right_pad", ""))[:1]
    pad_side, pad_char = ("L", left) if left else (("R", right) if right else ("", ""))
    if pad_char and pad_char.upper() not in "0123456789ABCDEF":
        raise ValueError(f"spec field {key}: pad must be one hex digit")
    if nibbles and not pad_side and (len_type or max_len % 2):
        raise ValueError(f"spec field {key}: odd nibble counts need left_pad or right_pad")
    if check == CHECK_HEX_TEXT and binary:
        raise ValueError(f"spec field {key}: hex-text check applies to text fields only")
    return FieldLayout(
        number=number,
        key=key,
        desc=str(d.get("desc", "")),
        len_type=len_type,
        len_kind=len_kind,
        len_codec=len_codec,
        max_len=max_len,
        nibbles=nibbles,
        binary=binary,
        data_codec="" if binary else _text_codec(data_enc, f"field {key} data_enc"),
        pad_side=pad_side,
        pad_char=pad_char.upper(),
        check=check,
    )


def _fixed_part(spec: Mapping[str, Mapping[str, Any]], key: str) -> tuple[bool, str]:
    d = spec[key]
    if d["data_enc"] == "b":
        return True, ""
    return False, _text_codec(d["data_enc"], f"field {key} data_enc")


def compile_spec(
    spec: Mapping[str, Mapping[str, Any]],
    *,
    max_field: int,
    checks: Mapping[str, int],
) -> MessageLayout:
    """Compile ``spec`` for fields ``2..max_field`` (64 or 128); ``checks`` maps field keys to a check kind.

    Field 65 (pyiso8583's tertiary-bitmap marker) is never compiled: a message using it is rejected.
    """
    if max_field not in (64, 128):
        raise ValueError("max_field must be 64 or 128")
    header = spec.get("h")
    if header is not None and int(header.get("max_len", 0)) > 0:
        raise ValueError("spec header 'h' is not supported (TPDU/header are handled by the profile)")
    for key in ("t", "p"):
        if key not in spec:
            raise ValueError(f"spec lacks field {key}")
    mti_binary, mti_codec = _fixed_part(spec, "t")
    bitmap_binary, bitmap_codec = _fixed_part(spec, "p")
    if max_field > 64 and "1" not in spec:
        raise ValueError("spec lacks the secondary bitmap '1'")
    secondary_binary, secondary_codec = _fixed_part(spec, "1") if "1" in spec else (True, "")
    unknown = set(checks) - {str(i) for i in range(2, max_field + 1)}
    if unknown:
        raise ValueError(f"checks name fields outside 2..{max_field}: {sorted(unknown, key=int)}")
    table: list[FieldLayout | None] = [None] * (max_field + 1)
    for number in range(2, max_field + 1):
        key = str(number)
        if number == 65 or key not in spec:
            continue
        table[number] = _compile_field(number, key, spec[key], checks.get(key, CHECK_NONE))
    return MessageLayout(
        mti_binary=mti_binary,
        mti_codec=mti_codec,
        bitmap_binary=bitmap_binary,
        bitmap_codec=bitmap_codec,
        secondary_binary=secondary_binary,
        secondary_codec=secondary_codec,
        fields=tuple(table),
        plans=tuple(None if f is None else _plan(f) for f in table),
    )
