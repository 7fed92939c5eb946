"""Key management: ``BU`` check value, ``A0`` generate (mode 1: and export), ``A6`` import, ``A8`` export.

Keys under a ZMK or TMK travel in one of these schemes: ``Z`` / no prefix (single length, ECB), ``X`` / ``Y``
(double / triple length, each part ECB under the ZMK: the plain encryption SPEC §3 uses for working keys under
a TMK), ``U`` / ``T`` (payShield variant method under the ZMK: scheme variants ``A6 5A`` / ``6A DE 2B`` on the
ZMK's ninth byte).
"""

from __future__ import annotations

from hsm_sim.device import Device
from hsm_sim.errors import (
    DESTINATION_KEY_PARITY,
    INVALID_INPUT,
    INVALID_KEY_LENGTH_FLAG,
    SOURCE_KEY_PARITY,
    CommandError,
)
from hsm_sim.fields import Fields
from hsm_sim.lmk import SCHEME_LENGTH, SCHEME_VARIANTS, split_scheme
from switch.crypto.des import decrypt_ecb, encrypt_ecb, has_odd_parity, kcv

ZMK_TYPE = "000"
TMK_TYPE = "002"
_LENGTH_FLAGS = {"0": 8, "1": 16, "2": 24}


def _zmk_variant(zmk: bytes, sv: int) -> bytes:
    if not sv:
        return zmk
    b = bytearray(zmk)
    b[8 % len(zmk)] ^= sv
    return bytes(b)


def export_under_zmk(zmk: bytes, key: bytes, scheme: str) -> str:
    """``key`` under ``zmk`` in ``scheme`` (prefix included; ``Z`` exports as plain 16H)."""
    if SCHEME_LENGTH.get(scheme) != len(key):
        raise CommandError(INVALID_INPUT, "key scheme (ZMK)")
    parts = [encrypt_ecb(_zmk_variant(zmk, sv), key[i * 8 : i * 8 + 8]) for i, sv in enumerate(SCHEME_VARIANTS[scheme])]
    return ("" if scheme == "Z" else scheme) + b"".join(parts).hex().upper()


def import_from_zmk(zmk: bytes, text: str) -> bytes:
    scheme, hexpart = split_scheme(text)
    data = bytes.fromhex(hexpart)
    return b"".join(
        decrypt_ecb(_zmk_variant(zmk, sv), data[i * 8 : i * 8 + 8]) for i, sv in enumerate(SCHEME_VARIANTS[scheme])
    )


def lmk_scheme(scheme: str) -> str:
    """Validate a key scheme (LMK) field."""
    if scheme not in ("Z", "U", "T", "X", "Y"):
        raise CommandError(INVALID_INPUT, "key scheme (LMK)")
    return scheme


def _exporting_key(dev: Device, f: Fields, parity_code: str) -> bytes:
    """``[; ZMK/TMK flag 1N]`` then the ZMK (flag 0, default) or TMK (flag 1) under the LMK."""
    key_type = ZMK_TYPE
    if f.delimiter(b";"):
        flag = f.digits(1, "ZMK/TMK flag")
        if flag not in "01":
            raise CommandError(INVALID_INPUT, "ZMK/TMK flag")
        key_type = TMK_TYPE if flag == "1" else ZMK_TYPE
    return dev.clear_key(key_type, f.key("ZMK/TMK"), parity_code)


def bu_check_value(dev: Device, f: Fields) -> bytes:
    """BU: key type code 2H (``FF``: 3H key type after ``;`` following the key), key length flag 1N
    (0 single, 1 double, 2 triple), key. BV: key check value 16H."""
    code2 = f.text(2, "key type code").upper()
    flag = f.text(1, "key length flag")
    if flag not in _LENGTH_FLAGS:
        raise CommandError(INVALID_KEY_LENGTH_FLAG, "key length flag")
    text = f.key("key")
    key_type = "0" + code2
    if code2 == "FF":
        if not f.delimiter(b";"):
            raise CommandError(INVALID_INPUT, "key type")
        key_type = f.text(3, "key type").upper()
    f.end()
    key = dev.clear_key(key_type, text, SOURCE_KEY_PARITY)
    if len(key) != _LENGTH_FLAGS[flag]:
        raise CommandError(INVALID_KEY_LENGTH_FLAG, "key length flag")
    return kcv(key, 8).hex().upper().encode("ascii")


def a0_generate_key(dev: Device, f: Fields) -> bytes:
    """A0: mode 1H (0 generate, 1 generate and export), key type 3H, key scheme (LMK) 1A; mode 1 adds
    ``[; ZMK/TMK flag 1N]``, ZMK/TMK, key scheme (ZMK/TMK) 1A.
    A1: key under LMK, [key under ZMK/TMK], key check value 16H."""
    mode = f.text(1, "mode")
    if mode not in "01":
        raise CommandError(INVALID_INPUT, "mode")
    key_type = f.text(3, "key type").upper()
    dev.check_key_type(key_type)
    scheme = lmk_scheme(f.text(1, "key scheme (LMK)"))
    exporter = b""
    export_scheme = ""
    if mode == "1":
        exporter = _exporting_key(dev, f, SOURCE_KEY_PARITY)
        export_scheme = f.text(1, "key scheme (ZMK)")
        if SCHEME_LENGTH.get(export_scheme) != SCHEME_LENGTH[scheme]:
            raise CommandError(INVALID_INPUT, "key scheme (ZMK)")
    f.end()
    key = dev.random_key(SCHEME_LENGTH[scheme])
    out = dev.key_under_lmk(key_type, key, scheme)
    if mode == "1":
        out += export_under_zmk(exporter, key, export_scheme)
    return (out + kcv(key, 8).hex().upper()).encode("ascii")


def a6_import_key(dev: Device, f: Fields) -> bytes:
    """A6: key type 3H, ZMK, key under ZMK, key scheme (LMK) 1A. A7: key under LMK, key check value 6H."""
    key_type = f.text(3, "key type").upper()
    dev.check_key_type(key_type)
    zmk = dev.clear_key(ZMK_TYPE, f.key("ZMK"), SOURCE_KEY_PARITY)
    text = f.key("key")
    scheme = lmk_scheme(f.text(1, "key scheme (LMK)"))
    f.end()
    key = import_from_zmk(zmk, text)
    if SCHEME_LENGTH[scheme] != len(key):
        raise CommandError(INVALID_INPUT, "key scheme (LMK)")
    if not has_odd_parity(key):
        raise CommandError(DESTINATION_KEY_PARITY, "key parity")
    return (dev.key_under_lmk(key_type, key, scheme) + kcv(key, 3).hex().upper()).encode("ascii")


def a8_export_key(dev: Device, f: Fields) -> bytes:
    """A8: key type 3H, ``[; ZMK/TMK flag 1N]``, ZMK/TMK, key under LMK, key scheme (ZMK) 1A.
    A9: key under ZMK/TMK, key check value 6H."""
    key_type = f.text(3, "key type").upper()
    dev.check_key_type(key_type)
    zmk = _exporting_key(dev, f, SOURCE_KEY_PARITY)
    key = dev.clear_key(key_type, f.key("key"), DESTINATION_KEY_PARITY)
    scheme = f.text(1, "key scheme (ZMK)")
    f.end()
    return (export_under_zmk(zmk, key, scheme) + kcv(key, 3).hex().upper()).encode("ascii")
