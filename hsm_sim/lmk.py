"""The Local Master Key set and payShield's variant method (SPEC §10b).

An LMK set is 20 double-length DES key pairs (00-01 .. 38-39). A key under the LMK is encrypted with the LMK
pair its key type selects, after two XOR variants are applied to that pair:

- the **key-type variant** (first digit of the 3-digit key type code: 0-9 → ``00 A6 5A 6A DE 2B 50 74 9C FA``)
  on the pair's first byte;
- the **key-scheme variant** on the pair's ninth byte, one per key part: ``U`` (double length) ``A6``/``5A``,
  ``T`` (triple length) ``6A``/``DE``/``2B``. Schemes ``X``/``Y`` (ANSI X9.17 style, legacy) and single-length
  keys (``Z`` or no prefix) use no scheme variant.

Each part is 3DES-ECB encrypted under the resulting pair (K1 K2 K1). Checked against public vectors (the
ThalesSim suites and a captured payShield-compatible tool) in ``tests/hsm/test_lmk.py``.

PINs under the LMK use pair 02-03. payShield's own PIN-under-LMK encoding is not published; this simulator
uses 16 hex characters: 3DES-ECB under pair 02-03 of the ISO 9564 format 0 block of the PIN with the
command's 12-digit account number (documented in ``docs/HSM.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from switch.crypto.des import decrypt_ecb, encrypt_ecb, has_odd_parity, kcv

#: the standard Thales test LMK set (ThalesSim, jPOS ``secret.lmk``), pairs 00-01 .. 38-39
TEST_LMK_PAIRS: tuple[str, ...] = (
    "01010101010101017902CD1FD36EF8BA",
    "20202020202020203131313131313131",
    "40404040404040405151515151515151",
    "61616161616161617070707070707070",
    "80808080808080809191919191919191",
    "A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0",
    "C1C1010101010101D0D0010101010101",
    "E0E0010101010101F1F1010101010101",
    "1C587F1C13924FEF0101010101010101",
    "01010101010101010101010101010101",
    "02020202020202020404040404040404",
    "07070707070707071010101010101010",
    "13131313131313131515151515151515",
    "16161616161616161919191919191919",
    "1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C",
    "23232323232323232525252525252525",
    "26262626262626262929292929292929",
    "2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C",
    "2F2F2F2F2F2F2F2F3131313131313131",
    "01010101010101010101010101010101",
)
LMK_PAIR_COUNT = 20

#: key-type variants, indexed by the first digit of the key type code
TYPE_VARIANTS = (0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA)
#: key-scheme variants per key part
SCHEME_VARIANTS: dict[str, tuple[int, ...]] = {
    "": (0x00,),
    "Z": (0x00,),
    "U": (0xA6, 0x5A),
    "X": (0x00, 0x00),
    "T": (0x6A, 0xDE, 0x2B),
    "Y": (0x00, 0x00, 0x00),
}
#: key length in bytes per scheme
SCHEME_LENGTH = {"": 8, "Z": 8, "U": 16, "X": 16, "T": 24, "Y": 24}
#: the last two digits of a key type code -> LMK pair index (00 -> pair 04-05, 02 -> pair 14-15, ...)
TYPE_PAIRS = {
    "00": 2,  # ZMK
    "01": 3,  # ZPK
    "02": 7,  # TMK, TPK, PVK (and CVK with variant 4)
    "03": 8,  # TAK
    "04": 9,
    "05": 10,
    "06": 11,
    "07": 12,
    "08": 13,  # ZAK
    "09": 14,  # BDK
    "0A": 15,  # ZEK
    "0B": 16,  # TEK / DEK (the switch's TDK)
    "0C": 17,
    "0D": 18,
    "0E": 19,
}
#: LMK pair 02-03 encrypts PINs
PIN_PAIR = 1


class LmkError(ValueError):
    """A problem with an LMK file or a key under the LMK. ``code`` is the payShield error code to answer."""

    def __init__(self, reason: str, code: str = "15") -> None:
        super().__init__(reason)
        self.code = code


def key_type_pair(key_type: str) -> tuple[int, int]:
    """``"402"`` -> (LMK pair index, key-type variant byte); :class:`LmkError` (``04``) when unknown."""
    if len(key_type) != 3 or not key_type[0].isdigit() or key_type[1:].upper() not in TYPE_PAIRS:
        raise LmkError("invalid key type code", "04")
    return TYPE_PAIRS[key_type[1:].upper()], TYPE_VARIANTS[int(key_type[0])]


def split_scheme(text: str) -> tuple[str, str]:
    """``"U0123..."`` -> (``"U"``, hex); 16 hex characters without a prefix are a single-length key."""
    if text[:1] in SCHEME_LENGTH and text[:1]:
        return text[0], text[1:]
    return "", text


class Lmk:
    """One LMK set; ``is_test`` marks the public test set (the simulator then warns it is a test device)."""

    __slots__ = ("_cache", "_pairs", "_variants", "is_test")

    _CACHE_MAX = 65536

    def __init__(self, pairs: Sequence[bytes], *, is_test: bool = False) -> None:
        if len(pairs) != LMK_PAIR_COUNT or any(len(p) != 16 for p in pairs):
            raise LmkError(f"an LMK set is {LMK_PAIR_COUNT} pairs of 16 bytes")
        if not all(has_odd_parity(p) for p in pairs):
            raise LmkError("LMK pair without odd parity")
        self._pairs = tuple(pairs)
        self.is_test = is_test
        self._variants: dict[tuple[int, int, int], bytes] = {}
        self._cache: dict[tuple[str, str], bytes] = {}

    @classmethod
    def test_set(cls) -> Lmk:
        return cls([bytes.fromhex(p) for p in TEST_LMK_PAIRS], is_test=True)

    @classmethod
    def from_text(cls, text: str) -> Lmk:
        """20 lines of 32 hex characters (blank lines and lines starting with ``;`` or ``#`` ignored)."""
        pairs: list[bytes] = []
        for line in text.splitlines():
            s = line.strip().replace(" ", "")
            if not s or s[0] in ";#":
                continue
            try:
                pairs.append(bytes.fromhex(s))
            except ValueError:
                raise LmkError(f"LMK file line {len(pairs) + 1} is not hex") from None
        test = [p.hex().upper() for p in pairs] == list(TEST_LMK_PAIRS)
        return cls(pairs, is_test=test)

    @classmethod
    def from_file(cls, path: str | Path) -> Lmk:
        return cls.from_text(Path(path).read_text(encoding="ascii"))

    def check_value(self) -> str:
        """LMK check value (16H): pair 00-01 encrypting eight zero bytes."""
        return kcv(self._pairs[0], 8).hex().upper()

    def _variant(self, pair: int, type_variant: int, scheme_variant: int) -> bytes:
        k = (pair, type_variant, scheme_variant)
        v = self._variants.get(k)
        if v is None:
            b = bytearray(self._pairs[pair])
            b[0] ^= type_variant
            b[8] ^= scheme_variant
            v = self._variants[k] = bytes(b)
        return v

    def encrypt_key(self, key_type: str, clear: bytes, scheme: str) -> str:
        """``clear`` under the LMK for ``key_type`` in ``scheme`` (``Z``/""/``U``/``X``/``T``/``Y``)."""
        pair, tv = key_type_pair(key_type)
        if SCHEME_LENGTH.get(scheme) != len(clear):
            raise LmkError("key scheme does not match the key length")
        out = b"".join(
            encrypt_ecb(self._variant(pair, tv, sv), clear[i * 8 : i * 8 + 8])
            for i, sv in enumerate(SCHEME_VARIANTS[scheme])
        )
        return ("" if scheme == "Z" else scheme) + out.hex().upper()

    def decrypt_key(self, key_type: str, text: str) -> bytes:
        """The clear key of ``text`` (as carried in a command: scheme prefix + hex). Cached per key."""
        ck = (key_type, text)
        clear = self._cache.get(ck)
        if clear is not None:
            return clear
        pair, tv = key_type_pair(key_type)
        scheme, hexpart = split_scheme(text)
        n = SCHEME_LENGTH[scheme]
        try:
            data = bytes.fromhex(hexpart)
        except ValueError:
            raise LmkError("key is not hex") from None
        if len(data) != n:
            raise LmkError("key length does not match its scheme")
        clear = b"".join(
            decrypt_ecb(self._variant(pair, tv, sv), data[i * 8 : i * 8 + 8])
            for i, sv in enumerate(SCHEME_VARIANTS[scheme])
        )
        if len(self._cache) >= self._CACHE_MAX:
            self._cache.clear()
        self._cache[ck] = clear
        return clear

    def encrypt_pin_block(self, block: bytes) -> str:
        """A clear 8-byte PIN block under LMK pair 02-03 (16H)."""
        return encrypt_ecb(self._pairs[PIN_PAIR], block).hex().upper()

    def decrypt_pin_block(self, text: str) -> bytes:
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise LmkError("PIN under LMK is not hex") from None
        if len(data) != 8:
            raise LmkError("PIN under LMK must be 16 hex characters")
        return decrypt_ecb(self._pairs[PIN_PAIR], data)
