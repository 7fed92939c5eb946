"""IBM 3624 PIN offset method (SPEC §3): natural PIN, offsets, verification.

Natural PIN: the validation block (16 hex) encrypted under the PVK, its hex digits mapped through the
decimalization table, the first *PIN length* digits. Offset = PIN - natural PIN, digit by digit, modulo 10.
"""

from __future__ import annotations

import hmac

from hsm_sim.errors import INVALID_INPUT, CommandError
from switch.crypto.des import encrypt_ecb


def validation_block(validation_data: str, account: str) -> bytes:
    """payShield PIN validation data (12 characters, ``N`` = the account number's last 5 digits) padded
    on the right with ``F`` to 16 hex characters."""
    data = validation_data.upper().replace("N", account[-5:]).ljust(16, "F")
    if len(data) != 16:
        raise CommandError(INVALID_INPUT, "PIN validation data")
    try:
        return bytes.fromhex(data)
    except ValueError:
        raise CommandError(INVALID_INPUT, "PIN validation data") from None


def check_decimalization_table(table: str) -> None:
    if len(table) != 16 or not table.isdigit():
        raise CommandError(INVALID_INPUT, "decimalization table")


def natural_pin(pvk: bytes, block: bytes, table: str, length: int) -> str:
    enc = encrypt_ecb(pvk, block).hex()
    return "".join(table[int(c, 16)] for c in enc[:length])


def offset_of(pin: str, natural: str) -> str:
    return "".join(str((int(p) - int(n)) % 10) for p, n in zip(pin, natural, strict=True))


def apply_offset(natural: str, offset: str) -> str:
    return "".join(str((int(n) + int(o)) % 10) for n, o in zip(natural, offset, strict=True))


def offset_field(offset: str) -> str:
    """An offset as payShield carries it: left-justified in 12H, padded with ``F``."""
    return offset.ljust(12, "F")


def parse_offset_field(field: str) -> str:
    """The offset digits of a 12H offset field (digits, then ``F`` padding); ``15`` otherwise."""
    offset = field.rstrip("F")
    if not 4 <= len(offset) <= 12 or not offset.isdigit():
        raise CommandError(INVALID_INPUT, "offset")
    return offset


def verify(pin: str, natural: str, offset: str) -> bool:
    """Constant-time comparison of ``pin`` with natural PIN + offset. A PIN whose length differs from the
    offset's is wrong: otherwise the first 4 digits of a 6-digit PIN would verify against its offset."""
    if len(pin) != len(offset):
        return False
    return hmac.compare_digest(apply_offset(natural, offset).encode(), pin.encode())
