"""Encode and decode POS messages of either wire profile to/from :class:`~switch.iso.message.IsoMessage`.

Pure functions over a :class:`~switch.iso.profiles.WireProfile` (its compiled ``layout``); no I/O.

Decoding (:func:`decode_message`) takes a frame body (without the 2-byte length) and validates:

- cup: TPDU (5 bytes, ID ``0x60``) and header (6 bytes of BCD);
- MTI (4 digits, BCD on cup / ASCII on iso87), primary bitmap; bit 1 (secondary bitmap) is an error on cup,
  accepted on iso87 (even all-zero) with fields 66..128 decoded per the spec; bit 65 (a tertiary bitmap)
  is rejected;
- every field: length prefixes must be digits (ASCII or BCD) and within ``max_len``; data may not be
  truncated; fixed lengths are exact; BCD nibbles must be 0-9 in numeric fields (pyiso8583 does not check);
  pad nibbles must be the spec's pad digit; text must decode; numeric/track/hex-text checks of the profile;
- no bytes after the last field.

Errors are :class:`CodecError` and nothing else. Its text names the field and byte position (offset in the
body, counted from the first TPDU byte on cup), never a value; when a message has several problems the
first one is reported. Its ``partial`` holds whatever of the MTI (``"t"``), 11, 41 and 42 could be read:
after a *content* error (bad digit, bad pad, bad text) decoding carries on to the end of the message, so
those are usually there; after a *structural* error (bad or oversize length, truncation, undefined field)
only the fields before the error are known.

``mac_data`` of a decoded message is the MAB of SPEC §3: the bytes from the first byte of the MTI up to the
start of field 64 (``b""`` when field 64 is absent). :func:`mac_block` computes the same for an encoded
body whose last field is 64 and :func:`replace_mac` patches its last 8 bytes.

Encoding (:func:`encode_message`) applies the same checks to the values it is given and raises
:class:`CodecError` naming the field. Field 64 is written as given (16 hex digits); callers MAC the result
with :func:`mac_block` and patch it with :func:`replace_mac`.
"""

from __future__ import annotations

import re

from switch.iso.header import HEADER_LEN, PROCESSING_NONE, CupHeader
from switch.iso.layout import (
    CHECK_DIGITS,
    CHECK_HEX_TEXT,
    CHECK_NONE,
    CHECK_TRACK,
    LEN_BCD,
    LEN_TEXT,
    FieldLayout,
)
from switch.iso.message import IsoMessage, reply_mti
from switch.iso.profiles import WireProfile
from switch.iso.tpdu import TPDU_LEN, Tpdu

__all__ = [
    "ECHOED_FIELDS",
    "MAC_LEN",
    "PARTIAL_FIELDS",
    "CodecError",
    "decode_message",
    "encode_message",
    "mac_block",
    "replace_mac",
    "reply_to",
]

#: fields every reply echoes from its request when present (SPEC §4)
ECHOED_FIELDS: tuple[str, ...] = ("3", "4", "11", "25", "41", "42", "49", "60")
#: size of field 64
MAC_LEN = 8
#: the fields a caller needs to answer RC 30 to a message it could not fully decode
PARTIAL_FIELDS: tuple[str, ...] = ("11", "41", "42")

_TRACK_RE = re.compile(r"[0-9D=]*")
_HEX_RE = re.compile(r"[0-9A-Fa-f]*")
_HEX_PAIRS_RE = re.compile(r"(?:[0-9A-Fa-f]{2})*")

#: for each byte value, the 1-based bit numbers set in it, most significant first
_BITS: tuple[tuple[int, ...], ...] = tuple(
    tuple(bit for bit in range(1, 9) if byte & (0x80 >> (bit - 1))) for byte in range(256)
)


class CodecError(ValueError):
    """A message that cannot be decoded (or a value that cannot be encoded).

    Attributes:

    - ``field``: ``"t"``, ``"p"``, ``"1"``, ``"2"``..``"128"``, ``"tpdu"``, ``"header"`` or ``"?"``;
    - ``pos``: byte offset in the body (TPDU included) where the field starts; -1 when not applicable
      (encoding);
    - ``reason``: fixed text, never a value;
    - ``partial``: the MTI as ``"t"``, and 11, 41, 42 when they could be read.
    """

    def __init__(self, field: str, pos: int, reason: str, partial: dict[str, str] | None = None) -> None:
        super().__init__(f"{reason}: field {field} pos {pos}")
        self.field = field
        self.pos = pos
        self.reason = reason
        self.partial: dict[str, str] = partial if partial is not None else {}


# --------------------------------------------------------------------------------------------- decode


def _partial(mti: str, fields: dict[str, str]) -> dict[str, str]:
    out = {k: fields[k] for k in PARTIAL_FIELDS if k in fields}
    if mti:
        out["t"] = mti
    return out


def _check_value(value: str, check: int) -> str | None:
    """Apply a content check; return the (possibly normalised) value, or None when it fails."""
    if check == CHECK_DIGITS:
        if value and not (value.isascii() and value.isdigit()):
            return None
        return value
    if check == CHECK_TRACK:
        return value if _TRACK_RE.fullmatch(value) else None
    if check == CHECK_HEX_TEXT:
        return value.upper() if _HEX_PAIRS_RE.fullmatch(value) else None
    return value


def decode_message(body: bytes | bytearray | memoryview, profile: WireProfile) -> IsoMessage:
    """Decode one frame body (no length prefix) of ``profile``; raises :class:`CodecError` only."""
    try:
        data = body if type(body) is bytes else bytes(body)
        return _decode(data, profile)
    except CodecError:
        raise
    except Exception:
        # defensive: a bug must not leak another exception type (or a value in its text)
        raise CodecError("?", -1, "undecodable message") from None


def _decode(body: bytes, profile: WireProfile) -> IsoMessage:
    lay = profile.layout
    n = len(body)
    pos = 0
    tpdu: Tpdu | None = None
    header: CupHeader | None = None
    if profile.has_tpdu:
        try:
            tpdu = Tpdu.parse(body[:TPDU_LEN])
        except ValueError:
            raise CodecError("tpdu", 0, "invalid TPDU") from None
        pos = TPDU_LEN
    if profile.has_header:
        try:
            header = CupHeader.parse(body[pos : pos + HEADER_LEN])
        except ValueError:
            raise CodecError("header", pos, "invalid header") from None
        pos += HEADER_LEN
    start = pos
    fields: dict[str, str] = {}
    # first content error: (field, pos, reason); decoding continues to collect 11/41/42
    content_error: tuple[str, int, str] | None = None
    try:
        # MTI
        mti = ""
        if lay.mti_binary:
            chunk = body[pos : pos + 2]
            if len(chunk) != 2:
                raise CodecError("t", pos, "MTI truncated")
            mti = chunk.hex()
        else:
            chunk = body[pos : pos + 4]
            if len(chunk) != 4:
                raise CodecError("t", pos, "MTI truncated")
            try:
                mti = chunk.decode(lay.mti_codec)
            except (UnicodeDecodeError, ValueError):
                mti = ""
        if not (len(mti) == 4 and mti.isascii() and mti.isdigit()):
            mti = ""
            content_error = ("t", pos, "MTI is not 4 digits")
        pos += len(chunk)

        # primary bitmap
        bitmap = _read_bitmap(body, pos, lay.bitmap_binary, lay.bitmap_codec)
        if isinstance(bitmap, str):
            raise CodecError("p", pos, bitmap, _partial(mti, fields))
        pos += 8 if lay.bitmap_binary else 16
        numbers = [i * 8 + bit for i, byte in enumerate(bitmap) if byte for bit in _BITS[byte]]
        if numbers and numbers[0] == 1:
            del numbers[0]
            if profile.max_field == 64:
                if content_error is None:
                    content_error = ("1", pos, "secondary bitmap not allowed in this profile")
            else:
                secondary = _read_bitmap(body, pos, lay.secondary_binary, lay.secondary_codec)
                if isinstance(secondary, str):
                    raise CodecError("1", pos, secondary, _partial(mti, fields))
                if secondary[0] & 0x80:
                    raise CodecError("65", pos, "tertiary bitmap not supported", _partial(mti, fields))
                pos += 8 if lay.secondary_binary else 16
                numbers += [64 + i * 8 + b for i, byte in enumerate(secondary) if byte for b in _BITS[byte]]

        mac_start = -1
        key = "p"
        plans = lay.plans
        nplans = len(plans)
        for number in numbers:
            plan = plans[number] if number < nplans else None
            if plan is None:
                key = str(number)
                raise CodecError(key, pos, "field not defined in this profile", _partial(mti, fields))
            key, len_type, len_kind, len_codec, max_len, nibbles, binary, codec, pad_side, pad, check = plan
            field_start = pos
            if len_type:
                end = pos + len_type
                if end > n:
                    raise CodecError(key, pos, "length prefix truncated", _partial(mti, fields))
                raw_len = body[pos:end]
                if len_kind == LEN_BCD:
                    digits = raw_len.hex()
                    if not digits.isdigit():
                        raise CodecError(key, pos, "length prefix is not BCD", _partial(mti, fields))
                    length = int(digits)
                elif len_kind == LEN_TEXT:
                    length = _text_length(raw_len, len_codec)
                    if length < 0:
                        raise CodecError(key, pos, "length prefix is not numeric", _partial(mti, fields))
                else:
                    length = int.from_bytes(raw_len, "big")
                if length > max_len:
                    raise CodecError(key, pos, "length exceeds the field maximum", _partial(mti, fields))
                pos = end
            else:
                length = max_len
            end = pos + ((length + 1) >> 1 if nibbles else length)
            if end > n:
                raise CodecError(key, pos, "field data truncated", _partial(mti, fields))
            value: str | None
            reason = "invalid content"
            if binary:
                value = body[pos:end].hex()
                if nibbles and length & 1:
                    if pad_side == "R":
                        value = value[:-1] if value[-1] == pad else None
                    else:
                        value = value[1:] if value[0] == pad else None
                    if value is None:
                        reason = "invalid pad nibble"
                if value is not None and check != CHECK_DIGITS:
                    value = value.upper()
            else:
                try:
                    value = body[pos:end].decode(codec)
                except (UnicodeDecodeError, ValueError):
                    value = None
                    reason = "invalid text"
            if check and value is not None:
                if check == CHECK_DIGITS:
                    if value and not (value.isascii() and value.isdigit()):
                        value = None
                else:
                    value = _check_value(value, check)
                if value is None:
                    reason = _CHECK_REASON[check]
            if value is None:
                if content_error is None:
                    content_error = (key, field_start, reason)
            else:
                fields[key] = value
            if number == 64:
                mac_start = field_start
            pos = end

        if pos != n:
            raise CodecError(key, pos, "extra data after the last field", _partial(mti, fields))
        if content_error is not None:
            fkey, fpos, reason = content_error
            raise CodecError(fkey, fpos, reason, _partial(mti, fields))
    except CodecError as exc:
        # report the first problem in the message; the partial fields come from the furthest point reached
        if content_error is not None and (exc.field, exc.pos, exc.reason) != content_error:
            raise CodecError(*content_error, exc.partial) from None
        raise
    return IsoMessage(
        mti=mti,
        fields=fields,
        tpdu=tpdu,
        header=header,
        raw=body,
        mac_data=body[start:mac_start] if mac_start >= 0 else b"",
    )


_CHECK_REASON = {
    CHECK_DIGITS: "non-numeric data in a numeric field",
    CHECK_TRACK: "invalid track data",
    CHECK_HEX_TEXT: "invalid hex text",
}


def _text_length(raw_len: bytes, codec: str) -> int:
    """Decode a text length prefix; -1 unless it is all ASCII digits (``int()`` alone accepts ``" 1"``)."""
    if codec == "ascii":
        return int(raw_len) if raw_len.isdigit() else -1
    try:
        text = raw_len.decode(codec)
    except (UnicodeDecodeError, ValueError):
        return -1
    return int(text) if len(text) == len(raw_len) and text.isascii() and text.isdigit() else -1


def _read_bitmap(body: bytes, pos: int, binary: bool, codec: str) -> bytes | str:
    """The 8 bitmap bytes at ``pos`` (binary, or 16 hex characters), or the reason they cannot be read."""
    if binary:
        chunk = body[pos : pos + 8]
        return chunk if len(chunk) == 8 else "bitmap truncated"
    chunk = body[pos : pos + 16]
    if len(chunk) != 16:
        return "bitmap truncated"
    try:
        text = chunk.decode(codec)
    except (UnicodeDecodeError, ValueError):
        text = ""
    if len(text) != 16 or not _HEX_RE.fullmatch(text):
        return "bitmap is not hex"
    return bytes.fromhex(text)


# --------------------------------------------------------------------------------------------- encode


def encode_message(msg: IsoMessage, profile: WireProfile) -> bytes:
    """Encode ``msg`` as a frame body of ``profile`` (TPDU + header included on cup, no length prefix).

    Raises :class:`CodecError` (naming the field, never a value) for a value the profile cannot carry.
    """
    try:
        return _encode(msg, profile)
    except CodecError:
        raise
    except Exception:
        raise CodecError("?", -1, "unencodable message") from None


def _encode(msg: IsoMessage, profile: WireProfile) -> bytes:
    lay = profile.layout
    out = bytearray()
    if profile.has_tpdu:
        if msg.tpdu is None:
            raise CodecError("tpdu", -1, "TPDU required by this profile")
        out += msg.tpdu.encode()
    if profile.has_header:
        if msg.header is None:
            raise CodecError("header", -1, "header required by this profile")
        out += msg.header.encode()
    mti = msg.mti
    if not (isinstance(mti, str) and len(mti) == 4 and mti.isascii() and mti.isdigit()):
        raise CodecError("t", -1, "MTI must be 4 digits")
    out += bytes.fromhex(mti) if lay.mti_binary else mti.encode(lay.mti_codec)

    table = lay.fields
    numbers: list[int] = []
    for k in msg.fields:
        if not (isinstance(k, str) and k.isascii() and k.isdigit() and k[0] != "0"):
            raise CodecError("?", -1, "field keys must be data element numbers")
        number = int(k)
        if number < 2 or number >= len(table) or table[number] is None:
            raise CodecError(k, -1, "field not defined in this profile")
        numbers.append(number)
    numbers.sort()

    primary = 0
    secondary = 0
    for number in numbers:
        if number <= 64:
            primary |= 1 << (64 - number)
        else:
            secondary |= 1 << (128 - number)
    if secondary:
        primary |= 1 << 63
    out += _bitmap_bytes(primary, lay.bitmap_binary, lay.bitmap_codec)
    if secondary:
        out += _bitmap_bytes(secondary, lay.secondary_binary, lay.secondary_codec)

    fields = msg.fields
    for number in numbers:
        f = table[number]
        assert f is not None
        out += _encode_field(fields[f.key], f)
    return bytes(out)


def _bitmap_bytes(bits: int, binary: bool, codec: str) -> bytes:
    if binary:
        return bits.to_bytes(8, "big")
    return f"{bits:016X}".encode(codec)


def _encode_field(value: str, f: FieldLayout) -> bytes:
    key = f.key
    if not isinstance(value, str):
        raise CodecError(key, -1, "value must be a string")
    if f.check != CHECK_NONE:
        checked = _check_value(value, f.check)
        if checked is None:
            raise CodecError(key, -1, _CHECK_REASON[f.check])
        value = checked
    if f.binary:
        if f.check != CHECK_DIGITS and not _HEX_RE.fullmatch(value):
            raise CodecError(key, -1, "binary field value must be hex")
        if f.nibbles:
            length = len(value)
            if length & 1:
                value = value + f.pad_char if f.pad_side == "R" else f.pad_char + value
        else:
            if len(value) & 1:
                raise CodecError(key, -1, "binary field value has an odd number of hex digits")
            length = len(value) >> 1
        data = bytes.fromhex(value)
    else:
        try:
            data = value.encode(f.data_codec)
        except (UnicodeEncodeError, ValueError):
            raise CodecError(key, -1, "value cannot be encoded as text") from None
        length = len(data)
    len_type = f.len_type
    if not len_type:
        if length != f.max_len:
            raise CodecError(key, -1, f"value length {length}, expecting {f.max_len}")
        return data
    if length > f.max_len:
        raise CodecError(key, -1, f"value length {length} exceeds the maximum {f.max_len}")
    if f.len_kind == LEN_BCD:
        prefix = bytes.fromhex(f"{length:0{2 * len_type}d}")
    elif f.len_kind == LEN_TEXT:
        prefix = f"{length:0{len_type}d}".encode(f.len_codec)
        if len(prefix) != len_type:
            raise CodecError(key, -1, "length prefix does not fit")
    else:
        prefix = length.to_bytes(len_type, "big")
    return prefix + data


# ------------------------------------------------------------------------------------------------ MAC


def mac_block(body: bytes, profile: WireProfile) -> bytes:
    """The MAB (SPEC §3) of an encoded body whose last field is 64: the body without TPDU/header and
    without its last 8 bytes. Raises :class:`CodecError` when bit 64 is not set or bit 1 is."""
    lay = profile.layout
    start = profile.prefix_len
    bitmap_pos = start + (2 if lay.mti_binary else 4)
    bitmap_len = 8 if lay.bitmap_binary else 16
    if len(body) < bitmap_pos + bitmap_len + MAC_LEN:
        raise CodecError("64", -1, "message too short to carry a MAC")
    if lay.bitmap_binary:
        first, last = body[bitmap_pos] >> 7, body[bitmap_pos + 7] & 1
    else:
        try:
            first = int(chr(body[bitmap_pos]), 16) >> 3
            last = int(chr(body[bitmap_pos + 15]), 16) & 1
        except ValueError:
            raise CodecError("p", bitmap_pos, "bitmap is not hex") from None
    if not last:
        raise CodecError("64", -1, "field 64 absent")
    if first:
        raise CodecError("64", -1, "field 64 is not the last field (secondary bitmap present)")
    return bytes(body[start:-MAC_LEN])


def replace_mac(body: bytes, mac8: bytes) -> bytes:
    """``body`` with its last 8 bytes (field 64) replaced by ``mac8``."""
    if len(mac8) != MAC_LEN:
        raise ValueError("MAC must be 8 bytes")
    if len(body) <= MAC_LEN:
        raise ValueError("body too short to carry a MAC")
    return bytes(body[:-MAC_LEN]) + bytes(mac8)


# ---------------------------------------------------------------------------------------------- reply


def reply_to(request: IsoMessage) -> IsoMessage:
    """A new reply skeleton: MTI + 10, TPDU swapped, header echoed with processing requirement ``0``, and
    fields 3, 4, 11, 25, 41, 42, 49, 60 copied when present. Raises ``ValueError`` for a non-request MTI."""
    fields = request.fields
    return IsoMessage(
        mti=reply_mti(request.mti),
        fields={k: fields[k] for k in ECHOED_FIELDS if k in fields},
        tpdu=request.tpdu.swapped() if request.tpdu is not None else None,
        header=(None if request.header is None else request.header.with_processing_requirement(PROCESSING_NONE)),
    )
