"""MAC algorithms (SPEC §3): UnionPay "ECB" MAC, and ISO 9797-1 algorithm 3 (retail MAC).

Both take the MAC key as bytes; only the HSM simulator and the terminal simulator hold clear MAKs.
"""

from __future__ import annotations

from switch.crypto.des import decrypt_ecb, encrypt_ecb, xor


def xor_blocks(data: bytes) -> bytes:
    """Pad ``data`` with ``00`` to a multiple of 8 and XOR all 8-byte blocks together."""
    if len(data) % 8:
        data += bytes(8 - len(data) % 8)
    acc = 0
    for i in range(0, len(data), 8):
        acc ^= int.from_bytes(data[i : i + 8], "big")
    return acc.to_bytes(8, "big")


def mac_unionpay_ecb(mak: bytes, mab: bytes) -> bytes:
    """UnionPay ECB MAC of ``mab``: 8 ASCII hex characters (uppercase), as carried in field 64.

    R = XOR of the zero-padded 8-byte blocks; H = uppercase hex of R (16 ASCII bytes);
    E1 = E(MAK, H[0:8]); E2 = E(MAK, E1 XOR H[8:16]); MAC = first 8 characters of hex(E2).
    """
    h = xor_blocks(mab).hex().upper().encode("ascii")
    e1 = encrypt_ecb(mak, h[:8])
    e2 = encrypt_ecb(mak, xor(e1, h[8:]))
    return e2.hex().upper()[:8].encode("ascii")


def pad_iso9797(data: bytes, method: int) -> bytes:
    """ISO 9797-1 padding: method 1 (zeros; none if aligned, one zero block if empty), 2 (``80`` then zeros),
    3 (a block holding the data length in bits, then the data zero-padded)."""
    if method == 3:
        return (len(data) * 8).to_bytes(8, "big") + (data + bytes(-len(data) % 8))
    if method == 2:
        data += b"\x80"
    elif method != 1:
        raise ValueError("ISO 9797-1 padding method must be 1, 2 or 3")
    if len(data) % 8 or not data:
        data += bytes(8 - len(data) % 8)
    return data


def mac_iso9797_alg1(key: bytes, data: bytes, padding: int = 1) -> bytes:
    """ISO 9797-1 MAC algorithm 1 (CBC-MAC) under ``key`` (DES for 8 bytes, 3DES for 16/24): 8 bytes."""
    data = pad_iso9797(data, padding)
    h = bytes(8)
    for i in range(0, len(data), 8):
        h = encrypt_ecb(key, xor(h, data[i : i + 8]))
    return h


def mac_iso9797_alg3(key: bytes, data: bytes, padding: int = 1) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC) with a double-length key: 8 bytes.

    Single-DES CBC under K1 over all blocks, then decrypt under K2 and encrypt under K1 the last block.
    """
    if len(key) != 16:
        raise ValueError("ISO 9797-1 algorithm 3 needs a double-length key")
    k1, k2 = key[:8], key[8:]
    data = pad_iso9797(data, padding)
    h = bytes(8)
    for i in range(0, len(data), 8):
        h = encrypt_ecb(k1, xor(h, data[i : i + 8]))
    return encrypt_ecb(k1, decrypt_ecb(k2, h))
