"""Clear PIN block formats by payShield format code, and PINs under the LMK.

Supported codes: ``01`` ISO 9564-1 format 0 (ANSI X9.8), ``03`` Diebold / IBM ATM (PIN padded with ``F``),
``34`` ISO 9564-1 format 2 (EMV). payShield commands carry the account number as 12 digits (the PAN's 12
rightmost digits excluding the check digit); :mod:`switch.crypto.pinblock` wants a PAN, so a placeholder
check digit is appended. Errors: ``23`` unknown format code, ``20`` block that is not of its format, ``24``
PIN length outside 4-12. Clear PINs exist only inside the simulator.
"""

from __future__ import annotations

from hsm_sim.errors import INVALID_FORMAT_CODE, INVALID_PIN_BLOCK, PIN_LENGTH, CommandError
from hsm_sim.lmk import Lmk
from switch.crypto.pinblock import MAX_PIN_LENGTH, MIN_PIN_LENGTH, PinBlockError, format_iso0, parse_iso0

ISO0 = "01"
IBM = "03"
ISO2 = "34"
FORMATS = frozenset({ISO0, IBM, ISO2})


def check_format(code: str) -> None:
    if code not in FORMATS:
        raise CommandError(INVALID_FORMAT_CODE, "PIN block format code")


def _check_pin(pin: str) -> None:
    if not (MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH and pin.isdigit()):
        raise CommandError(PIN_LENGTH, "PIN length")


def encode(code: str, pin: str, account: str) -> bytes:
    """The clear block of ``pin`` in format ``code``."""
    check_format(code)
    _check_pin(pin)
    if code == ISO0:
        return format_iso0(pin, account + "0")
    lead = "" if code == IBM else f"2{len(pin):X}"
    return bytes.fromhex((lead + pin).ljust(16, "F"))


def decode(code: str, block: bytes, account: str) -> str:
    """The PIN in a clear block of format ``code``."""
    check_format(code)
    if code == ISO0:
        # the PAN field starts with two zero bytes: format and length nibbles are readable before the XOR
        if block[0] >> 4 == 0 and not MIN_PIN_LENGTH <= block[0] & 0x0F <= MAX_PIN_LENGTH:
            raise CommandError(PIN_LENGTH, "PIN length")
        try:
            return parse_iso0(block, account + "0")
        except PinBlockError:
            raise CommandError(INVALID_PIN_BLOCK, "PIN block") from None
    text = block.hex().upper()
    if code == ISO2:
        if text[0] != "2":
            raise CommandError(INVALID_PIN_BLOCK, "PIN block")
        n = int(text[1], 16)
        if not MIN_PIN_LENGTH <= n <= MAX_PIN_LENGTH:
            raise CommandError(PIN_LENGTH, "PIN length")
        pin, pad = text[2 : 2 + n], text[2 + n :]
    else:
        pin = text.rstrip("F")
        pad = text[len(pin) :]
        if not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
            raise CommandError(PIN_LENGTH if pin.isdigit() else INVALID_PIN_BLOCK, "PIN length")
    if not pin.isdigit() or pad != "F" * len(pad):
        raise CommandError(INVALID_PIN_BLOCK, "PIN block")
    return pin


def pin_to_lmk(lmk: Lmk, pin: str, account: str) -> str:
    """``pin`` under LMK pair 02-03, bound to ``account`` (16H)."""
    return lmk.encrypt_pin_block(encode(ISO0, pin, account))


def pin_from_lmk(lmk: Lmk, pin_lmk: str, account: str) -> str:
    """The PIN of a PIN under the LMK; ``20`` when it does not decrypt to a PIN for this account."""
    try:
        block = lmk.decrypt_pin_block(pin_lmk)
    except ValueError:
        raise CommandError(INVALID_PIN_BLOCK, "PIN under LMK") from None
    try:
        return decode(ISO0, block, account)
    except CommandError:
        raise CommandError(INVALID_PIN_BLOCK, "PIN under LMK") from None
