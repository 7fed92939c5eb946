"""Visa PIN verification value (PVV) and card verification value (CVV), with a double-length key pair."""

from __future__ import annotations

from switch.crypto.des import decrypt_ecb, encrypt_ecb, xor


def _decimalize(hex_text: str, count: int) -> str:
    """Decimal digits of ``hex_text`` left to right, then its letters minus 10, the first ``count``."""
    digits = [c for c in hex_text if c.isdigit()]
    digits += [str(int(c, 16) - 10) for c in hex_text if not c.isdigit()]
    return "".join(digits[:count])


def pvv(pvk: bytes, account: str, pvki: str, pin: str) -> str:
    """Visa PVV: TSP = the 11 rightmost digits of the 12-digit account number + PVKI + 4 leftmost PIN digits."""
    tsp = account[-11:] + pvki + pin[:4]
    return _decimalize(encrypt_ecb(pvk, bytes.fromhex(tsp)).hex().upper(), 4)


def cvv(cvk: bytes, pan: str, expiry: str, service_code: str) -> str:
    """Visa CVV/CVC/iCVV over PAN + expiry + service code (zero-padded to 32 digits)."""
    data = bytes.fromhex((pan + expiry + service_code).ljust(32, "0")[:32])
    ka, kb = cvk[:8], cvk[8:16]
    r = encrypt_ecb(ka, xor(encrypt_ecb(ka, data[:8]), data[8:]))
    r = encrypt_ecb(ka, decrypt_ecb(kb, r))
    return _decimalize(r.hex().upper(), 3)
