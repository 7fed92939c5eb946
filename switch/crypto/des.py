"""DES / 3DES-ECB with one cipher object per key, reused.

The installed ``cryptography`` deprecates two-key TDES (16-byte keys): every key is expanded here to three
keys (K -> KKK, K1K2 -> K1K2K1), which gives the same results. A cipher object costs ~9 µs to build and
~0.8 µs per block to use (``../shared/PERFORMANCE_NOTES.md``), so they are cached per key; so are the ECB
encryption / decryption contexts (ECB keeps no state between blocks, so one context serves every call with
whole blocks and is never finalized: ~2 µs a call instead of ~18 µs). Contexts are not thread-safe: each
thread has its own.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

_KEY_LENGTHS = (8, 16, 24)


class KeyLengthError(ValueError):
    """A DES key is not 8, 16 or 24 bytes long (the message never carries the key)."""


def expand_key(key: bytes) -> bytes:
    """8 -> 24 (K K K), 16 -> 24 (K1 K2 K1), 24 unchanged."""
    n = len(key)
    if n == 8:
        return key * 3
    if n == 16:
        return key + key[:8]
    if n == 24:
        return key
    raise KeyLengthError(f"DES key length {n} (expected {_KEY_LENGTHS})")


@lru_cache(maxsize=4096)
def _cipher(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(TripleDES(expand_key(key)), modes.ECB())  # noqa: S305 - payment standards specify ECB


def _check_blocks(data: bytes) -> None:
    if len(data) % 8:
        raise ValueError(f"ECB data length {len(data)} is not a multiple of 8")


_CONTEXTS_MAX = 4096


class _Contexts(threading.local):
    def __init__(self) -> None:
        self.enc: dict[bytes, Any] = {}
        self.dec: dict[bytes, Any] = {}


_contexts = _Contexts()


def _context(table: dict[bytes, Any], key: bytes, encrypt: bool) -> Any:
    ctx = table.get(key)
    if ctx is None:
        if len(table) >= _CONTEXTS_MAX:
            table.clear()
        cipher = _cipher(key)
        ctx = table[key] = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    """(T)DES-ECB encrypt ``data`` (a multiple of 8 bytes) under an 8/16/24-byte key."""
    _check_blocks(data)
    return bytes(_context(_contexts.enc, key, True).update(data))


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    """(T)DES-ECB decrypt ``data`` (a multiple of 8 bytes) under an 8/16/24-byte key."""
    _check_blocks(data)
    return bytes(_context(_contexts.dec, key, False).update(data))


def kcv(key: bytes, length: int = 4) -> bytes:
    """Key check value: the first ``length`` bytes of the key encrypting eight zero bytes (SPEC §3)."""
    return encrypt_ecb(key, bytes(8))[:length]


def has_odd_parity(key: bytes) -> bool:
    """True when every byte of ``key`` has an odd number of set bits (DES key parity)."""
    return all(bin(b).count("1") % 2 == 1 for b in key)


def with_odd_parity(key: bytes) -> bytes:
    """``key`` with each byte's low bit set so that the byte has odd parity."""
    return bytes((b & 0xFE) | (0 if bin(b & 0xFE).count("1") % 2 else 1) for b in key)


def xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two equal-length byte strings."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")
