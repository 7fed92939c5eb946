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
from switch.iso.message import IsoMessage
from switch.iso.profiles import WireProfile

#: fields whose values repeat across replies (per terminal, per day, per program): worth memoising
_REPEATING = frozenset({3, 13, 15, 25, 32, 39, 41, 42, 48, 49, 60, 64})
_MAX_MEMO = 8192


class ReplyEncoder:
    """``encode(msg)`` == ``switch.iso.codec.encode_message(msg, profile)`` for one profile."""

    __slots__ = ("_binary_mti", "_bitmap", "_codec", "_memo", "_mti", "_prefix", "_profile", "_table")

    def __init__(self, profile: WireProfile) -> None:
        lay = profile.layout
        self._profile = profile
        self._table = lay.fields
        self._binary_mti = lay.mti_binary
        self._codec = lay.mti_codec
        self._bitmap = (lay.bitmap_binary, lay.bitmap_codec)
        self._memo: dict[tuple[int, str], bytes] = {}
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
        table = self._table
        fields = msg.fields
        numbers: list[int] = []
        for k in fields:
            if not (isinstance(k, str) and k.isascii() and k.isdigit() and k[0] != "0"):
                raise CodecError("?", -1, "field keys must be data element numbers")
            number = int(k)
            if number < 2 or number >= len(table) or table[number] is None:
                raise CodecError(k, -1, "field not defined in this profile")
            numbers.append(number)
        numbers.sort()
        primary = secondary = 0
        for number in numbers:
            if number <= 64:
                primary |= 1 << (64 - number)
            else:
                secondary |= 1 << (128 - number)
        if secondary:
            primary |= 1 << 63
        binary, codec = self._bitmap
        parts.append(_bitmap_bytes(primary, binary, codec))
        if secondary:
            lay = profile.layout
            parts.append(_bitmap_bytes(secondary, lay.secondary_binary, lay.secondary_codec))
        memo = self._memo
        for number in numbers:
            f = table[number]
            assert f is not None
            value = fields[f.key]
            if number in _REPEATING and type(value) is str:
                key2 = (number, value)
                data = memo.get(key2)
                if data is None:
                    data = _encode_field(value, f)
                    if len(memo) >= _MAX_MEMO:
                        memo.clear()
                    memo[key2] = data
                parts.append(data)
            else:
                parts.append(_encode_field(value, f))
        return b"".join(parts)

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
