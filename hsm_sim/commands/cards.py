"""Visa PVV and CVV: ``DG`` generate a PVV, ``DC``/``EC`` verify a PIN by PVV (terminal / interchange),
``CW``/``CY`` generate / verify a CVV. Key pairs: ``U``/``X`` + 32H or an unprefixed 32H pair."""

from __future__ import annotations

import hmac

from hsm_sim import pinblocks, visa
from hsm_sim.commands.pin import PIN_LMK_LENGTH, PVK_TYPE, TPK_TYPE, ZPK_TYPE
from hsm_sim.device import Device
from hsm_sim.errors import (
    DESTINATION_KEY_PARITY,
    INVALID_INPUT,
    SOURCE_KEY_PARITY,
    VERIFICATION_FAILURE,
    CommandError,
)
from hsm_sim.fields import Fields
from switch.crypto.des import decrypt_ecb

CVK_TYPE = "402"


def _pair(dev: Device, key_type: str, text: str, parity: str) -> bytes:
    key = dev.clear_key(key_type, text, parity)
    if len(key) != 16:
        raise CommandError(INVALID_INPUT, "key pair length")
    return key


def dg_generate_pvv(dev: Device, f: Fields) -> bytes:
    """DG: PVK pair, PIN under LMK 16H, account number 12N, PVKI 1N. DH: PVV 4N."""
    pvk_text = f.key("PVK", pair=True)
    pin_lmk = f.hex(PIN_LMK_LENGTH, "PIN")
    account = f.digits(12, "account number")
    pvki = f.digits(1, "PVKI")
    f.end()
    pvk = _pair(dev, PVK_TYPE, pvk_text, SOURCE_KEY_PARITY)
    pin = pinblocks.pin_from_lmk(dev.lmk, pin_lmk, account)
    return visa.pvv(pvk, account, pvki, pin).encode("ascii")


def _verify_pvv(dev: Device, f: Fields, key_type: str) -> bytes:
    key_text = f.key("TPK" if key_type == TPK_TYPE else "ZPK")
    pvk_text = f.key("PVK", pair=True)
    block = f.hex(16, "PIN block")
    fmt = f.digits(2, "PIN block format")
    account = f.digits(12, "account number")
    pvki = f.digits(1, "PVKI")
    expected = f.digits(4, "PVV")
    f.end()
    pinblocks.check_format(fmt)
    key = dev.clear_key(key_type, key_text, SOURCE_KEY_PARITY)
    pvk = _pair(dev, PVK_TYPE, pvk_text, DESTINATION_KEY_PARITY)
    pin = pinblocks.decode(fmt, decrypt_ecb(key, bytes.fromhex(block)), account)
    if not hmac.compare_digest(visa.pvv(pvk, account, pvki, pin).encode(), expected.encode()):
        raise CommandError(VERIFICATION_FAILURE, "PVV")
    return b""


def dc_verify_pvv_terminal(dev: Device, f: Fields) -> bytes:
    """DC: TPK, PVK pair, PIN block 16H, PIN block format 2N, account number 12N, PVKI 1N, PVV 4N. DD."""
    return _verify_pvv(dev, f, TPK_TYPE)


def ec_verify_pvv_interchange(dev: Device, f: Fields) -> bytes:
    """EC: as DC with a ZPK in place of the TPK. ED."""
    return _verify_pvv(dev, f, ZPK_TYPE)


def _card_data(f: Fields) -> tuple[str, str, str]:
    pan = f.until(b";", "PAN", 19)
    if not pan.isdigit() or len(pan) < 12:
        raise CommandError(INVALID_INPUT, "PAN")
    expiry = f.digits(4, "expiry date")
    service_code = f.digits(3, "service code")
    return pan, expiry, service_code


def cw_generate_cvv(dev: Device, f: Fields) -> bytes:
    """CW: CVK pair, PAN (up to 19N) ``;``, expiry 4N, service code 3N. CX: CVV 3N."""
    cvk = _pair(dev, CVK_TYPE, f.key("CVK", pair=True), SOURCE_KEY_PARITY)
    pan, expiry, service_code = _card_data(f)
    f.end()
    return visa.cvv(cvk, pan, expiry, service_code).encode("ascii")


def cy_verify_cvv(dev: Device, f: Fields) -> bytes:
    """CY: CVK pair, CVV 3N, PAN (up to 19N) ``;``, expiry 4N, service code 3N. CZ (01 = CVV wrong)."""
    cvk = _pair(dev, CVK_TYPE, f.key("CVK", pair=True), SOURCE_KEY_PARITY)
    expected = f.digits(3, "CVV")
    pan, expiry, service_code = _card_data(f)
    f.end()
    if not hmac.compare_digest(visa.cvv(cvk, pan, expiry, service_code).encode(), expected.encode()):
        raise CommandError(VERIFICATION_FAILURE, "CVV")
    return b""
