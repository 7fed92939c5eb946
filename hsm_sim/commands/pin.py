"""PIN commands: ``BA`` encrypt a clear PIN, ``CA`` translate TPK->ZPK, ``DA``/``EA`` IBM 3624 offset verify
(terminal / interchange), ``DU`` PIN change (verify current, offset of new), ``DE`` IBM offset of a PIN under
the LMK, ``EE`` derive a PIN from an offset, ``JA`` random PIN, ``JG`` PIN from LMK to ZPK, ``PE`` PIN mailer.

Clear PINs live only inside these functions (and on the PIN mailer "printer").
"""

from __future__ import annotations

import re

from hsm_sim import ibm3624, pinblocks
from hsm_sim.device import Device
from hsm_sim.errors import (
    DESTINATION_KEY_PARITY,
    INVALID_INPUT,
    PIN_LENGTH,
    SOURCE_KEY_PARITY,
    VERIFICATION_FAILURE,
    CommandError,
)
from hsm_sim.fields import Fields
from hsm_sim.lmk import SCHEME_LENGTH
from switch.crypto.des import decrypt_ecb, encrypt_ecb

TPK_TYPE = "002"
ZPK_TYPE = "001"
PVK_TYPE = "002"
#: characters of the clear PIN field of BA (PIN left-justified, padded with F)
CLEAR_PIN_FIELD = 13
#: characters of a PIN under the LMK in this simulator
PIN_LMK_LENGTH = 16


def _pin_length_bound(f: Fields, what: str) -> int:
    n = f.number(2, what)
    if not 4 <= n <= 12:
        raise CommandError(INVALID_INPUT, what)
    return n


def _account(f: Fields) -> str:
    return f.digits(12, "account number")


def _decipher(key: bytes, block_hex: str, fmt: str, account: str) -> str:
    return pinblocks.decode(fmt, decrypt_ecb(key, bytes.fromhex(block_hex)), account)


def _ibm_tail(f: Fields) -> tuple[str, str, str]:
    """account 12N, decimalization table 16N, PIN validation data 12A (after the check length)."""
    account = _account(f)
    table = f.digits(16, "decimalization table")
    ibm3624.check_decimalization_table(table)
    validation = f.text(12, "PIN validation data")
    return account, table, validation


def ba_encrypt_clear_pin(dev: Device, f: Fields) -> bytes:
    """BA: PIN 13A (left-justified, padded with ``F``), account number 12N. BB: PIN under LMK 16H."""
    field = f.text(CLEAR_PIN_FIELD, "PIN")
    account = _account(f)
    f.end()
    pin = field.rstrip("F")
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise CommandError(PIN_LENGTH, "PIN")
    return pinblocks.pin_to_lmk(dev.lmk, pin, account).encode("ascii")


def ca_translate_tpk_to_zpk(dev: Device, f: Fields) -> bytes:
    """CA: TPK, ZPK, maximum PIN length 2N, PIN block 16H, source format 2N, destination format 2N,
    account number 12N. CB: PIN length 2N, PIN block under ZPK 16H, destination format 2N."""
    tpk_text = f.key("TPK")
    zpk_text = f.key("ZPK")
    max_len = _pin_length_bound(f, "maximum PIN length")
    block = f.hex(16, "PIN block")
    src_fmt = f.digits(2, "source PIN block format")
    dst_fmt = f.digits(2, "destination PIN block format")
    account = _account(f)
    f.end()
    pinblocks.check_format(src_fmt)
    pinblocks.check_format(dst_fmt)
    tpk = dev.clear_key(TPK_TYPE, tpk_text, SOURCE_KEY_PARITY)
    zpk = dev.clear_key(ZPK_TYPE, zpk_text, DESTINATION_KEY_PARITY)
    pin = _decipher(tpk, block, src_fmt, account)
    if len(pin) > max_len:
        raise CommandError(PIN_LENGTH, "PIN length")
    out = encrypt_ecb(zpk, pinblocks.encode(dst_fmt, pin, account))
    return f"{len(pin):02d}{out.hex().upper()}{dst_fmt}".encode("ascii")


#: DA/EA after the two keys, as the switch sends it: maximum PIN length 2N, PIN block 16H, format 2N, check
#: length 2N, account 12N, decimalization table 16N, validation data 12A, offset 12H, nothing after
_IBM_TAIL = re.compile(
    rb"([0-9]{2})([0-9A-Fa-f]{16})([0-9]{2})([0-9]{2})([0-9]{12})([0-9]{16})([\x20-\x7e]{12})([0-9A-Fa-f]{12})"
)


def _fast_ibm(
    dev: Device, f: Fields, key_type: str
) -> tuple[bytes, bytes, int, str, str, int, str, str, str, str] | None:
    """The fields of a DA/EA whose keys are already in use and whose tail is the plain layout, read with one
    match; ``None`` for anything else (the field-by-field reader then decides, with its errors)."""
    data = f.peek(len(f))
    lead = data[:1].decode("latin-1")
    size = SCHEME_LENGTH.get(lead) if lead else None
    end = 1 + 2 * size if size is not None and lead else 16
    key = dev.cached_key(key_type, data[:end].decode("latin-1"))
    lead2 = data[end : end + 1].decode("latin-1")
    size2 = SCHEME_LENGTH.get(lead2) if lead2 else None
    end2 = end + (1 + 2 * size2 if size2 is not None and lead2 else 32)
    pvk_text = data[end:end2].decode("latin-1")
    pvk = dev.cached_key(PVK_TYPE, pvk_text if size2 is not None and lead2 else "X" + pvk_text)
    m = _IBM_TAIL.fullmatch(data, end2)
    if key is None or pvk is None or m is None:
        return None
    max_len, check_len = int(m[1]), int(m[4])
    if not (4 <= max_len <= 12 and 4 <= check_len <= 12):
        return None
    f.skip(len(data))
    g = [x.decode("ascii") for x in m.groups()]
    return key, pvk, max_len, g[1].upper(), g[2], check_len, g[4], g[5], g[6], g[7].upper()


def _verify_ibm(dev: Device, f: Fields, key_type: str) -> bytes:
    fast = _fast_ibm(dev, f, key_type)
    if fast is not None:
        key, pvk, max_len, block, fmt, check_len, account, table, validation, offset_field = fast
        pinblocks.check_format(fmt)
        return _ibm_verdict(key, pvk, max_len, block, fmt, check_len, account, table, validation, offset_field)
    key_text = f.key("TPK" if key_type == TPK_TYPE else "ZPK")
    pvk_text = f.key("PVK", pair=True)
    max_len = _pin_length_bound(f, "maximum PIN length")
    block = f.hex(16, "PIN block")
    fmt = f.digits(2, "PIN block format")
    check_len = _pin_length_bound(f, "check length")
    account, table, validation = _ibm_tail(f)
    offset_field = f.hex(12, "offset")
    f.end()
    pinblocks.check_format(fmt)
    key = dev.clear_key(key_type, key_text, SOURCE_KEY_PARITY)
    pvk = dev.clear_key(PVK_TYPE, pvk_text, DESTINATION_KEY_PARITY)
    return _ibm_verdict(key, pvk, max_len, block, fmt, check_len, account, table, validation, offset_field)


def _ibm_verdict(
    key: bytes,
    pvk: bytes,
    max_len: int,
    block: str,
    fmt: str,
    check_len: int,
    account: str,
    table: str,
    validation: str,
    offset_field: str,
) -> bytes:
    offset = ibm3624.parse_offset_field(offset_field)
    pin = _decipher(key, block, fmt, account)
    if len(pin) > max_len:
        raise CommandError(PIN_LENGTH, "PIN length")
    natural = ibm3624.natural_pin(pvk, ibm3624.validation_block(validation, account), table, len(pin))
    if len(pin) < check_len or not ibm3624.verify(pin, natural, offset):
        raise CommandError(VERIFICATION_FAILURE, "PIN")
    return b""


def da_verify_ibm_terminal(dev: Device, f: Fields) -> bytes:
    """DA: TPK, PVK, maximum PIN length 2N, PIN block 16H, PIN block format 2N, check length 2N, account
    number 12N, decimalization table 16N, PIN validation data 12A, offset 12H. DB: (01 = wrong PIN)."""
    return _verify_ibm(dev, f, TPK_TYPE)


def ea_verify_ibm_interchange(dev: Device, f: Fields) -> bytes:
    """EA: as DA with a ZPK in place of the TPK. EB."""
    return _verify_ibm(dev, f, ZPK_TYPE)


def du_change_ibm_offset(dev: Device, f: Fields) -> bytes:
    """DU: key type 3H (001 ZPK, 002 TPK), key, PVK, maximum PIN length 2N, current PIN block 16H, PIN block
    format 2N, check length 2N, account number 12N, decimalization table 16N, PIN validation data 12A,
    current offset 12H, new PIN block 16H. DV: new offset 12H (01 = current PIN wrong)."""
    key_type = f.text(3, "key type").upper()
    if key_type not in (TPK_TYPE, ZPK_TYPE):
        raise CommandError("04", "key type")
    key_text = f.key("TPK/ZPK")
    pvk_text = f.key("PVK", pair=True)
    max_len = _pin_length_bound(f, "maximum PIN length")
    block = f.hex(16, "PIN block")
    fmt = f.digits(2, "PIN block format")
    check_len = _pin_length_bound(f, "check length")
    account, table, validation = _ibm_tail(f)
    offset_field = f.hex(12, "offset")
    new_block = f.hex(16, "new PIN block")
    f.end()
    pinblocks.check_format(fmt)
    key = dev.clear_key(key_type, key_text, SOURCE_KEY_PARITY)
    pvk = dev.clear_key(PVK_TYPE, pvk_text, DESTINATION_KEY_PARITY)
    offset = ibm3624.parse_offset_field(offset_field)
    pin = _decipher(key, block, fmt, account)
    new_pin = _decipher(key, new_block, fmt, account)
    if len(pin) > max_len or not check_len <= len(new_pin) <= max_len:
        raise CommandError(PIN_LENGTH, "PIN length")
    vblock = ibm3624.validation_block(validation, account)
    natural = ibm3624.natural_pin(pvk, vblock, table, len(pin))
    if len(pin) < check_len or not ibm3624.verify(pin, natural, offset):
        raise CommandError(VERIFICATION_FAILURE, "PIN")
    new_natural = ibm3624.natural_pin(pvk, vblock, table, len(new_pin))
    return ibm3624.offset_field(ibm3624.offset_of(new_pin, new_natural)).encode("ascii")


def de_ibm_offset(dev: Device, f: Fields) -> bytes:
    """DE: PVK, PIN under LMK 16H, check length 2N, account number 12N, decimalization table 16N,
    PIN validation data 12A. DF: offset 12H."""
    pvk_text = f.key("PVK", pair=True)
    pin_lmk = f.hex(PIN_LMK_LENGTH, "PIN")
    check_len = _pin_length_bound(f, "check length")
    account, table, validation = _ibm_tail(f)
    f.end()
    pvk = dev.clear_key(PVK_TYPE, pvk_text, SOURCE_KEY_PARITY)
    pin = pinblocks.pin_from_lmk(dev.lmk, pin_lmk, account)
    if len(pin) < check_len:
        raise CommandError(PIN_LENGTH, "PIN length")
    natural = ibm3624.natural_pin(pvk, ibm3624.validation_block(validation, account), table, len(pin))
    return ibm3624.offset_field(ibm3624.offset_of(pin, natural)).encode("ascii")


def ee_derive_ibm_pin(dev: Device, f: Fields) -> bytes:
    """EE: PVK, offset 12H, check length 2N, account number 12N, decimalization table 16N, PIN validation
    data 12A. EF: PIN under LMK 16H (PIN length = the offset's digits)."""
    pvk_text = f.key("PVK", pair=True)
    offset_field = f.hex(12, "offset")
    check_len = _pin_length_bound(f, "check length")
    account, table, validation = _ibm_tail(f)
    f.end()
    pvk = dev.clear_key(PVK_TYPE, pvk_text, SOURCE_KEY_PARITY)
    offset = ibm3624.parse_offset_field(offset_field)
    if len(offset) < check_len:
        raise CommandError(PIN_LENGTH, "offset length")
    natural = ibm3624.natural_pin(pvk, ibm3624.validation_block(validation, account), table, len(offset))
    return pinblocks.pin_to_lmk(dev.lmk, ibm3624.apply_offset(natural, offset), account).encode("ascii")


def ja_random_pin(dev: Device, f: Fields) -> bytes:
    """JA: account number 12N, [PIN length 2N (04-12; default 06)]. JB: PIN under LMK 16H."""
    account = _account(f)
    length = dev.default_pin_length
    if f.remaining and f.peek() != b"%":
        length = f.number(2, "PIN length")
        if not 4 <= length <= 12:
            raise CommandError(PIN_LENGTH, "PIN length")
    f.end()
    return pinblocks.pin_to_lmk(dev.lmk, dev.random_pin(length), account).encode("ascii")


def jg_translate_lmk_to_zpk(dev: Device, f: Fields) -> bytes:
    """JG: ZPK, PIN block format 2N, account number 12N, PIN under LMK 16H. JH: PIN block under ZPK 16H."""
    zpk_text = f.key("ZPK")
    fmt = f.digits(2, "PIN block format")
    account = _account(f)
    pin_lmk = f.hex(PIN_LMK_LENGTH, "PIN")
    f.end()
    pinblocks.check_format(fmt)
    zpk = dev.clear_key(ZPK_TYPE, zpk_text, DESTINATION_KEY_PARITY)
    pin = pinblocks.pin_from_lmk(dev.lmk, pin_lmk, account)
    return encrypt_ecb(zpk, pinblocks.encode(fmt, pin, account)).hex().upper().encode("ascii")


def pe_print_mailer(dev: Device, f: Fields) -> bytes:
    """PE: document type 1A (``C`` PIN mailer, ``S`` solicitation), account number 12N, PIN under LMK 16H,
    print fields (UTF-8 text, each ending with ``;``; up to 16 of up to 64 characters). PF: (printed)."""
    document = f.text(1, "document type")
    if document not in ("C", "S"):
        raise CommandError(INVALID_INPUT, "document type")
    account = _account(f)
    pin_lmk = f.hex(PIN_LMK_LENGTH, "PIN")
    rest = f.raw(f.remaining, "print fields")
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(INVALID_INPUT, "print fields") from None
    if text and not text.endswith(";"):
        raise CommandError(INVALID_INPUT, "print fields")
    lines = text[:-1].split(";") if text else []
    if len(lines) > 16 or any(len(s) > 64 or any(ord(c) < 0x20 for c in s) for s in lines):
        raise CommandError(INVALID_INPUT, "print fields")
    pin = pinblocks.pin_from_lmk(dev.lmk, pin_lmk, account)
    dev.mailer.print_mailer(document, account, lines, pin)
    return b""
