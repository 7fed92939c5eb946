"""``M6`` generate / ``M8`` verify a MAC with a TAK or ZAK.

Fields: mode flag 1N (``0``: the whole message in one command; others are not supported → 15), input format
1N (0 binary, 1 hex-encoded, 2 text), MAC size 1N (0: 8H, 1: 16H), MAC algorithm 1N, padding method 1N
(0 none, 1/2/3 ISO 9797-1 methods), key type 3H (003 TAK, 008 ZAK), key, message length 4H (characters of
the message field), message; M8 adds the MAC (8H or 16H).

Algorithms: ``1`` ISO 9797-1 algorithm 1 (CBC-MAC under the whole key), ``3`` ISO 9797-1 algorithm 3 (retail
MAC, double-length key), and ``9`` — a simulator extension, not in payShield — the UnionPay POS "ECB" MAC of
SPEC §3 (padding method must be 1): the 8H MAC is exactly the 8 ASCII characters of field 64.
"""

from __future__ import annotations

import hmac
import re

from hsm_sim.device import Device
from hsm_sim.errors import INVALID_INPUT, SOURCE_KEY_PARITY, VERIFICATION_FAILURE, CommandError
from hsm_sim.fields import Fields
from hsm_sim.lmk import SCHEME_LENGTH
from switch.crypto.des import encrypt_ecb, xor
from switch.crypto.mac import mac_iso9797_alg1, mac_iso9797_alg3, pad_iso9797

MAC_KEY_TYPES = ("003", "008")
UNIONPAY_ECB = "9"


def unionpay_ecb(mak: bytes, data: bytes) -> bytes:
    """SPEC §3 UnionPay ECB MAC: the full 8-byte E2 (its first 4 bytes in hex are field 64)."""
    h = _xor_fold(data).hex().upper().encode("ascii")
    return encrypt_ecb(mak, xor(encrypt_ecb(mak, h[:8]), h[8:]))


def _xor_fold(data: bytes) -> bytes:
    """= ``xor_blocks(data)``: the zero-padded 8-byte blocks XORed, as one big integer folded in halves (zero
    blocks up to a power of two change nothing); a few big-int operations instead of a loop per block."""
    blocks = -(-len(data) // 8) or 1
    size = 1 << (blocks - 1).bit_length()
    x = int.from_bytes(data.ljust(size * 8, b"\0"), "big")
    bits = size * 64
    while bits > 64:
        bits >>= 1
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
    return x.to_bytes(8, "big")


def _compute(dev: Device, f: Fields) -> tuple[bytes, int]:
    """Read the common M6/M8 fields and compute the MAC; returns (MAC bytes, hex characters wanted)."""
    mode = f.digits(1, "mode flag")
    if mode != "0":
        raise CommandError(INVALID_INPUT, "mode flag")
    input_format = f.digits(1, "input format flag")
    size = f.digits(1, "MAC size")
    algorithm = f.digits(1, "MAC algorithm")
    padding = int(f.digits(1, "padding method"))
    key_type = f.text(3, "key type").upper()
    if input_format not in "012" or size not in "01" or algorithm not in ("1", "3", UNIONPAY_ECB) or padding > 3:
        raise CommandError(INVALID_INPUT, "MAC parameters")
    if key_type not in MAC_KEY_TYPES:
        raise CommandError("04", "key type")
    key_text = f.key("key")
    length = int(f.hex(4, "message length"), 16)
    message = f.raw(length, "message")
    if input_format == "1":
        try:
            message = bytes.fromhex(message.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise CommandError(INVALID_INPUT, "message") from None
    key = dev.clear_key(key_type, key_text, SOURCE_KEY_PARITY)
    want = 8 if size == "0" else 16
    if algorithm == UNIONPAY_ECB:
        if padding != 1:
            raise CommandError(INVALID_INPUT, "padding method")
        return unionpay_ecb(key, message), want
    if padding == 0:
        if len(message) % 8 or not message:
            raise CommandError(INVALID_INPUT, "message length")
    else:
        message = pad_iso9797(message, padding)
    if algorithm == "3":
        if len(key) != 16:
            raise CommandError(INVALID_INPUT, "key length")
        return mac_iso9797_alg3(key, message, 1), want
    return mac_iso9797_alg1(key, message, 1), want


def m6_generate_mac(dev: Device, f: Fields) -> bytes:
    fast = _fast_ecb(dev, f, 0)
    if fast is not None:
        return fast.hex().upper()[:8].encode("ascii")
    mac, want = _compute(dev, f)
    f.end()
    return mac.hex().upper()[:want].encode("ascii")


def m8_verify_mac(dev: Device, f: Fields) -> bytes:
    fast = _fast_ecb(dev, f, 8)
    if fast is not None:
        given = f.tail(8)
        if not _HEX8.fullmatch(given):
            raise CommandError(INVALID_INPUT, "MAC: not hex")
        if not hmac.compare_digest(fast.hex().upper()[:8].encode("ascii"), given.upper()):
            raise CommandError(VERIFICATION_FAILURE, "MAC")
        return b""
    mac, want = _compute(dev, f)
    given_text = f.hex(want, "MAC")
    f.end()
    if not hmac.compare_digest(mac.hex().upper()[:want].encode("ascii"), given_text.encode("ascii")):
        raise CommandError(VERIFICATION_FAILURE, "MAC")
    return b""


#: mode 0, binary input, 8H MAC, algorithm 9 (UnionPay ECB), padding 1, key type 003 (TAK): what the switch
#: sends for every POS message
_ECB_HEAD = b"00091003"
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_HEX8 = re.compile(rb"[0-9A-Fa-f]{8}")


def _fast_ecb(dev: Device, f: Fields, trailer: int) -> bytes | None:
    """The MAC of the switch's own M6/M8 layout (``_ECB_HEAD``, a key already in use, the message and
    ``trailer`` MAC characters, nothing after), read in one go; ``None`` for anything else, which the general
    reader handles (so every error is the general reader's)."""
    data = f.peek(len(f))
    if not data.startswith(_ECB_HEAD):
        return None
    lead = data[8:9].decode("latin-1")
    size = SCHEME_LENGTH.get(lead)
    if size is None or lead == "":
        size, lead = 8, ""
    end = 8 + (1 if lead else 0) + 2 * size
    key = dev.cached_key("003", data[8:end].decode("latin-1"))
    length_text = data[end : end + 4]
    if key is None or not _HEX4.fullmatch(length_text):
        return None
    start = end + 4
    stop = start + int(length_text, 16)
    if len(data) != stop + trailer:
        return None
    f.skip(stop)
    return unionpay_ecb(key, data[start:stop])
