"""switch.crypto against SPEC §3's worked examples and the public vectors (psec, pynblock)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switch.crypto.des import decrypt_ecb, encrypt_ecb, has_odd_parity, kcv, with_odd_parity
from switch.crypto.luhn import luhn_check_digit, luhn_valid
from switch.crypto.mac import mac_iso9797_alg3, mac_unionpay_ecb
from switch.crypto.pinblock import PinBlockError, format_iso0, parse_iso0

VECTORS = Path(__file__).parent.parent / "iso" / "vectors"
SPEC = json.loads((VECTORS / "spec_examples.json").read_text())
CRYPTO = json.loads((VECTORS / "public_samples.json").read_text())["crypto"]


def _inputs(v: dict[str, str]) -> dict[str, str]:
    return dict(part.split("=", 1) for part in v["inputs"].split() if "=" in part)


def test_spec_kcvs() -> None:
    for name in ("tmk", "pik", "mak", "tdk"):
        assert kcv(bytes.fromhex(SPEC[f"{name}_clear"])).hex().upper() == SPEC[f"kcv_{name}"]


def test_spec_signon_field62_layout() -> None:
    tmk = bytes.fromhex(SPEC["tmk_clear"])
    pik, mak, tdk = (bytes.fromhex(SPEC[f"{k}_clear"]) for k in ("pik", "mak", "tdk"))
    f62 = (
        encrypt_ecb(tmk, pik)
        + kcv(pik)
        + encrypt_ecb(tmk, mak)
        + bytes(8)
        + kcv(mak)
        + encrypt_ecb(tmk, tdk)
        + kcv(tdk)
    )
    assert len(f62) == SPEC["signon_field62_len"]
    assert f62.hex().upper() == SPEC["signon_field62_004_hex"]
    assert decrypt_ecb(tmk, f62[:16]) == pik


def test_spec_pin_block() -> None:
    clear = format_iso0(SPEC["pin"], SPEC["pan"])
    assert clear.hex().upper() == SPEC["pinblock_iso0_clear"]
    pik = bytes.fromhex(SPEC["pik_clear"])
    assert encrypt_ecb(pik, clear).hex().upper() == SPEC["pinblock_iso0_under_pik"]
    assert parse_iso0(decrypt_ecb(pik, bytes.fromhex(SPEC["pinblock_iso0_under_pik"])), SPEC["pan"]) == SPEC["pin"]


def test_spec_unionpay_mac() -> None:
    mak = bytes.fromhex(SPEC["mak_clear"])
    assert mac_unionpay_ecb(mak, bytes.fromhex(SPEC["cup_mac_mab_hex"])) == SPEC["cup_mac_under_mak"].encode()
    # the purchase frame: MAB = MTI .. end of field 63 (frame minus length, TPDU, header and field 64)
    frame = bytes.fromhex(SPEC["cup_purchase_frame_hex"])
    mab = frame[2 + 5 + 6 : -8]
    assert mac_unionpay_ecb(mak, mab).hex().upper() == SPEC["cup_purchase_mac_field64_hex"]
    iso = bytes.fromhex(SPEC["iso87_purchase_frame_hex"])
    assert mac_unionpay_ecb(mak, iso[2:-8]) == iso[-8:]


@pytest.mark.parametrize("v", [c for c in CRYPTO if c["kind"] == "ISO 9564 format 0 clear PIN block"])
def test_public_iso0_pin_blocks(v: dict[str, str]) -> None:
    i = _inputs(v)
    block = format_iso0(i["PIN"], i["PAN"])
    assert block.hex().upper() == v["expected"]
    assert parse_iso0(block, i["PAN"]) == i["PIN"]


@pytest.mark.parametrize("padding", [1, 2])
def test_public_iso9797_alg3(padding: int) -> None:
    v = next(c for c in CRYPTO if c["kind"] == f"ISO 9797-1 MAC alg 3 (retail MAC), padding {padding}")
    # psec passes K1 = b"A" * 16 and K2 = b"B" * 16 as 2-key TDES keys whose halves are equal: single DES keys
    key = b"A" * 8 + b"B" * 8
    assert mac_iso9797_alg3(key, b"hello world", padding).hex().upper() == v["expected"]


def test_public_kcv() -> None:
    v = next(c for c in CRYPTO if c["kind"].startswith("Key check value"))
    assert kcv(bytes.fromhex(_inputs(v)["key"]), 8).hex().upper() == v["expected"]


@pytest.mark.parametrize(
    "block_hex",
    ["16123446FFFFFFFE", "02123446FFFFFFFE", "0D123446FFFFFFFE", "061A3446FFFFFFFE", "06123446FFFFFF0E"],
)
def test_invalid_clear_pin_blocks_are_rejected_without_leaking(block_hex: str) -> None:
    with pytest.raises(PinBlockError) as exc:
        parse_iso0(bytes.fromhex(block_hex), SPEC["pan"])
    assert SPEC["pan"] not in str(exc.value) and block_hex not in str(exc.value)


def test_parity_and_luhn() -> None:
    assert has_odd_parity(bytes.fromhex(SPEC["tmk_clear"]))
    assert not has_odd_parity(bytes.fromhex("00" * 16))
    assert with_odd_parity(bytes.fromhex("00" * 8)).hex() == "01" * 8
    assert luhn_valid(SPEC["pan"]) and not luhn_valid(SPEC["pan"][:-1] + "0")
    assert luhn_check_digit("990001000000001") == "9"
