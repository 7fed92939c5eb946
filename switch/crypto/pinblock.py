"""ISO 9564-1 format 0 PIN blocks (SPEC §3): PIN field XOR PAN field.

PIN field = ``0`` + length nibble + PIN digits, padded with ``F`` to 16 nibbles; PAN field = ``0000`` + the 12
rightmost PAN digits excluding the check digit. Errors never carry the PIN, the block or the PAN.
"""

from __future__ import annotations

MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 12


class PinBlockError(ValueError):
    """The clear PIN block is not a valid format 0 block (wrong format nibble, length or digits)."""


def pan_field(pan: str) -> bytes:
    """``0000`` + the 12 rightmost PAN digits excluding the check digit, as 8 bytes."""
    digits = pan[-13:-1]
    if len(digits) != 12 or not digits.isdigit():
        raise PinBlockError("PAN too short or not numeric for a format 0 PIN block")
    return bytes.fromhex("0000" + digits)


def format_iso0(pin: str, pan: str) -> bytes:
    """The clear format 0 PIN block (8 bytes) for ``pin`` and ``pan``."""
    if not (MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH and pin.isdigit()):
        raise PinBlockError("PIN must be 4 to 12 digits")
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pf = pan_field(pan)
    return bytes(a ^ b for a, b in zip(pin_field, pf, strict=True))


def parse_iso0(block: bytes, pan: str) -> str:
    """The PIN in a clear format 0 block; :class:`PinBlockError` when the block is not one."""
    if len(block) != 8:
        raise PinBlockError("PIN block must be 8 bytes")
    pf = pan_field(pan)
    pin_field = bytes(a ^ b for a, b in zip(block, pf, strict=True)).hex().upper()
    if pin_field[0] != "0":
        raise PinBlockError("PIN block format is not 0")
    n = int(pin_field[1], 16)
    if not MIN_PIN_LENGTH <= n <= MAX_PIN_LENGTH:
        raise PinBlockError("PIN length out of range")
    pin, pad = pin_field[2 : 2 + n], pin_field[2 + n :]
    if not pin.isdigit() or pad != "F" * len(pad):
        raise PinBlockError("PIN block digits or padding invalid")
    return pin
