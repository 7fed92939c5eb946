"""The reply's bytes, cheaply: ``encode_message(reply)`` with the encoded form of repeated values memoised.

A reply re-encodes the same values over and over: the echoed 3/25/41/42/49/60 of a terminal, the date
fields, the acquirer id, the response code, the MAC placeholder, the cup TPDU and header. :class:`ReplyEncoder`
keeps the encoded bytes of those per ``(field, value)`` (bounded: emptied when full) and encodes the values
that change with every reply (4, 11, 12, 37, 38, 54 ...) through the codec's own field encoder, so the result
is byte for byte ``encode_message`` of the same message (tests/e2e/test_replycodec.py checks it on every
route's replies and random values). Errors are the codec's :class:`~switch.iso.codec.CodecError`.
"""

from __future__ import annotations

from switch.iso.codec import CodecError, _bitmap_bytes, _encode_field
from switch.iso.layout import CHECK_DIGITS, CHECK_NONE, FieldLayout
from switch.iso.message import IsoMessage
from switch.iso.profiles import WireProfile

#: fields whose values repeat across replies (per terminal, per day, per program): worth memoising
_REPEATING = frozenset({3, 13, 15, 25, 32, 39, 41, 42, 48, 49, 60, 64})
_MAX_MEMO = 8192


class ReplyEncoder:
    """``encode(msg)`` == ``switch.iso.codec.encode_message(msg, profile)`` for one profile."""

    __slots__ = ("_binary_mti", "_bitmap", "_codec", "_fields", "_memo", "_mti", "_prefix", "_profile", "_table")

    def __init__(self, profile: WireProfile) -> None:
        lay = profile.layout
        self._profile = profile
        self._table = lay.fields
        self._binary_mti = lay.mti_binary
        self._codec = lay.mti_codec
        self._bitmap = (lay.bitmap_binary, lay.bitmap_codec)
        #: field key -> (number, layout, memo of its encodings or None, direct conversion kind)
        self._fields: dict[str, tuple[int, FieldLayout, dict[str, bytes] | None, int]] = {}
        self._memo: list[dict[str, bytes]] = []
        for f in lay.fields:
            if f is None or f.number < 2:
                continue
            memo: dict[str, bytes] | None = None
            if f.number in _REPEATING:
                memo = {}
                self._memo.append(memo)
            self._fields[f.key] = (f.number, f, memo, _direct_kind(f))
        self._mti: dict[str, bytes] = {}
        self._prefix: dict[tuple[object, object], bytes] = {}

    def encode(self, msg: IsoMessage) -> bytes:
        profile = self._profile
        parts: list[bytes] = []
        if profile.has_tpdu or profile.has_header:
            key = (msg.tpdu, msg.header)
            prefix = self._prefix.get(key)
            if prefix is None:
                prefix = self._encode_prefix(msg)
                if len(self._prefix) >= _MAX_MEMO:
                    self._prefix.clear()
                self._prefix[key] = prefix
            parts.append(prefix)
        mti = self._mti.get(msg.mti)
        if mti is None:
            m = msg.mti
            if not (isinstance(m, str) and len(m) == 4 and m.isascii() and m.isdigit()):
                raise CodecError("t", -1, "MTI must be 4 digits")
            mti = self._mti[m] = bytes.fromhex(m) if self._binary_mti else m.encode(self._codec)
        parts.append(mti)
        known = self._fields
        fields = msg.fields
        plan = []
        for k in fields:
            info = known.get(k) if type(k) is str else None
            if info is None:
                self._reject_key(k)
            plan.append(info)
        plan.sort(key=_number)
        primary = secondary = 0
        for info in plan:
            number = info[0]  # type: ignore[index]
            if number <= 64:
                primary |= 1 << (64 - number)
            else:
                secondary |= 1 << (128 - number)
        if secondary:
            primary |= 1 << 63
        binary, codec = self._bitmap
        parts.append(primary.to_bytes(8, "big") if binary else _bitmap_bytes(primary, binary, codec))
        if secondary:
            lay = profile.layout
            parts.append(_bitmap_bytes(secondary, lay.secondary_binary, lay.secondary_codec))
        for _n, f, memo, direct in plan:  # type: ignore[misc]
            value = fields[f.key]
            if memo is not None and type(value) is str:
                data = memo.get(value)
                if data is None:
                    data = _encode_field(value, f)
                    if len(memo) >= _MAX_MEMO:
                        memo.clear()
                    memo[value] = data
            elif direct and type(value) is str and len(value) == f.max_len and value.isascii():
                # fixed-length values that need only a conversion when well-formed; else the codec decides
                if direct == _BCD and value.isdigit():
                    data = bytes.fromhex(value)
                elif direct == _TEXT:
                    data = value.encode("ascii")
                else:
                    data = _encode_field(value, f)
            else:
                data = _encode_field(value, f)
            parts.append(data)
        return b"".join(parts)

    def _reject_key(self, k: object) -> None:
        """The codec's error for a field key this profile cannot encode."""
        if not (isinstance(k, str) and k.isascii() and k.isdigit() and k[0] != "0"):
            raise CodecError("?", -1, "field keys must be data element numbers")
        raise CodecError(k, -1, "field not defined in this profile")

    def _encode_prefix(self, msg: IsoMessage) -> bytes:
        out = b""
        if self._profile.has_tpdu:
            if msg.tpdu is None:
                raise CodecError("tpdu", -1, "TPDU required by this profile")
            out += msg.tpdu.encode()
        if self._profile.has_header:
            if msg.header is None:
                raise CodecError("header", -1, "header required by this profile")
            out += msg.header.encode()
        return out


_BCD, _TEXT = 1, 2


def _direct_kind(f: FieldLayout) -> int:
    """Fixed-length fields whose well-formed value encodes by a plain conversion: even-length BCD digits,
    ASCII text without a content check (the codec would give the same bytes)."""
    if f.len_type:
        return 0
    if f.binary and f.nibbles and f.check == CHECK_DIGITS and f.max_len % 2 == 0:
        return _BCD
    if not f.binary and f.check == CHECK_NONE and f.data_codec == "ascii":
        return _TEXT
    return 0


def _number(info: tuple[int, FieldLayout, dict[str, bytes] | None, int] | None) -> int:
    assert info is not None
    return info[0]
