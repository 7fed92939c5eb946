"""Cheap encode and MAC for the load generator, exact by construction.

:class:`FieldCache` assembles a request from per-field byte strings produced by the switch's own codec
(``encode_message`` of a one-field message, header and bitmap sliced off) and memoised: a terminal sends
the same TID, MID, batch, card, PIN block and amounts over and over, so almost every field is a dictionary
hit and only the bitmap is computed; fixed-length binary and digit fields (STAN, amount, PIN block), whose
values change, are converted directly. The result is byte-for-byte what ``encode_message`` gives (tested).
Profiles whose bitmap is not binary, and fields above 64, go through ``encode_message`` directly.

:class:`EcbMac` is the UnionPay ECB MAC of SPEC §3 with one long-lived ECB encryptor per MAK (building a
cipher context costs more than the two DES blocks it encrypts).
"""

from __future__ import annotations

import re

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, modes

from switch.crypto.des import expand_key
from switch.iso.codec import encode_message
from switch.iso.header import CupHeader
from switch.iso.layout import CHECK_DIGITS
from switch.iso.message import IsoMessage
from switch.iso.profiles import WireProfile
from switch.iso.tpdu import Tpdu

#: memoised field encodings kept per profile before the cache starts afresh
CACHE_LIMIT = 200_000
_HEX, _BCD, _ASCII_DIGITS = 1, 2, 3
_HEX_RE = re.compile(r"[0-9A-Fa-f]*")


class FieldCache:
    """Encodes requests of one profile with one TPDU/header from memoised field encodings."""

    def __init__(self, profile: WireProfile, tpdu: Tpdu | None, header: CupHeader | None) -> None:
        self.profile = profile
        self.tpdu, self.header = tpdu, header
        self.exact = profile.layout.bitmap_binary
        self._fields: dict[tuple[str, str], bytes] = {}
        self._heads: dict[str, bytes] = {}
        self._direct = self._direct_kinds()

    def _head(self, mti: str) -> bytes:
        """TPDU + header + MTI (without the bitmap)."""
        head = self._heads.get(mti)
        if head is None:
            head = encode_message(IsoMessage(mti, {}, self.tpdu, self.header), self.profile)[:-8]
            self._heads[mti] = head
        return head

    def _direct_kinds(self) -> dict[str, int]:
        """Fixed-length fields whose encoding is a plain conversion of a well-formed value: binary (52, 64),
        BCD digits of even length (cup), ASCII digits (iso87). Anything else goes through the codec."""
        out: dict[str, int] = {}
        for f in self.profile.layout.fields:
            if f is None or f.len_type or f.number > 64:
                continue
            if f.binary and not f.nibbles:
                out[f.key] = _HEX
            elif f.binary and f.nibbles and f.check == CHECK_DIGITS and f.max_len % 2 == 0:
                out[f.key] = _BCD
            elif not f.binary and f.check == CHECK_DIGITS and f.data_codec == "ascii":
                out[f.key] = _ASCII_DIGITS
        return out

    def _field(self, key: str, value: str) -> bytes:
        kind = self._direct.get(key)
        if kind is not None:
            f = self.profile.layout.fields[int(key)]
            assert f is not None
            if kind == _HEX:
                if len(value) == 2 * f.max_len and _HEX_RE.fullmatch(value):
                    return bytes.fromhex(value)
            elif len(value) == f.max_len and value.isascii() and value.isdigit():
                return bytes.fromhex(value) if kind == _BCD else value.encode("ascii")
        k = (key, value)
        data = self._fields.get(k)
        if data is None:
            base = self._head("0800")
            full = encode_message(IsoMessage("0800", {key: value}, self.tpdu, self.header), self.profile)
            data = full[len(base) + 8 :]
            if len(self._fields) >= CACHE_LIMIT:
                self._fields.clear()
            self._fields[k] = data
        return data

    def encode(self, mti: str, fields: dict[str, str]) -> bytes:
        """The body ``encode_message`` would produce (``CodecError`` for values it would refuse)."""
        numbers = sorted(int(k) for k in fields)
        if not self.exact or (numbers and numbers[-1] > 64):
            return encode_message(IsoMessage(mti, dict(fields), self.tpdu, self.header), self.profile)
        bitmap = 0
        for n in numbers:
            bitmap |= 1 << (64 - n)
        parts = [self._head(mti), bitmap.to_bytes(8, "big")]
        field = self._field
        for n in numbers:
            key = str(n)
            parts.append(field(key, fields[key]))
        return b"".join(parts)


def xor_fold(data: bytes) -> bytes:
    """XOR of the 8-byte blocks of ``data`` zero-padded (as ``switch.crypto.mac.xor_blocks``), folding one
    big integer in halves: zero blocks added up to a power of two change nothing."""
    blocks = -(-len(data) // 8) or 1
    size = 1 << (blocks - 1).bit_length()
    x = int.from_bytes(data.ljust(size * 8, b"\0"), "big")
    bits = size * 64
    while bits > 64:
        bits >>= 1
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
    return x.to_bytes(8, "big")


class EcbMac:
    """UnionPay ECB MAC under one MAK, with a reusable ECB encryptor."""

    __slots__ = ("_enc",)

    def __init__(self, mak: bytes) -> None:
        cipher = Cipher(TripleDES(expand_key(mak)), modes.ECB())  # noqa: S305 - the MAC algorithm is ECB
        self._enc: CipherContext = cipher.encryptor()

    def mac(self, mab: bytes) -> bytes:
        """8 ASCII hex characters, as ``switch.crypto.mac.mac_unionpay_ecb``."""
        h = xor_fold(mab).hex().upper().encode("ascii")
        e1 = self._enc.update(h[:8])
        x = (int.from_bytes(e1, "big") ^ int.from_bytes(h[8:], "big")).to_bytes(8, "big")
        return self._enc.update(x).hex().upper()[:8].encode("ascii")
