"""Every error path of SPEC §10b over TCP, each followed by a good command on the same connection (a bad
command never costs the connection)."""

from __future__ import annotations

import pytest

from hsm_sim.server import HsmSimServer
from switch.crypto.des import encrypt_ecb
from switch.crypto.pinblock import format_iso0
from tests.hsm.conftest import SPEC, TEST_LMK, under_lmk
from tests.hsm.rawclient import RawClient

PAN = SPEC["pan"]
ACCT = PAN[-13:-1]
PIK_CLEAR = bytes.fromhex(SPEC["pik_clear"])
PIK = under_lmk("002", SPEC["pik_clear"])
PVK = under_lmk("002", SPEC["pvk"])
ZPK = under_lmk("001", "E6F1081FEA4C402CC192B65DE367EC3E")
MAK = under_lmk("003", SPEC["mak_clear"])
#: keys without odd parity, under the LMK as a careless ceremony would have put them there
EVEN_TPK = TEST_LMK.encrypt_key("002", bytes(16), "U")
EVEN_PVK = TEST_LMK.encrypt_key("002", bytes.fromhex("00112233445566778899AABBCCDDEEFF"), "U")
EVEN_ZPK = TEST_LMK.encrypt_key("001", bytes(16), "U")
BLOCK = SPEC["pinblock_iso0_under_pik"]
TAIL = f"{ACCT}0123456789012345{ACCT}"


def _block(clear_hex: str) -> str:
    return encrypt_ecb(PIK_CLEAR, bytes.fromhex(clear_hex)).hex().upper()


def da(tpk: str = PIK, pvk: str = PVK, block: str = BLOCK, fmt: str = "01", offset: str = "646684FFFFFF") -> str:
    return f"{tpk}{pvk}12{block}{fmt}04{TAIL}{offset}"


CASES = [
    # unknown or disabled command -> 68
    ("ZZ", "", "68"),
    ("NO", "00", "68"),
    # malformed fields -> 15
    ("NC", "trailing", "15"),
    ("BU", "020NOTHEXNOTHEXNO", "15"),
    ("BU", "020", "15"),
    ("A0", "2002U", "15"),
    ("A0", "0002Q", "15"),
    ("A0", f"1002U;7{PIK}X", "15"),
    ("DA", da()[:-5], "15"),
    ("DA", da().replace("0123456789012345", "01234567890123AB"), "15"),
    ("DA", da(offset="64668XFFFFFF"), "15"),
    ("M6", f"10091003{MAK}0004abcd", "15"),  # mode 1 (multi-block) is not supported
    ("M6", f"00091003{MAK}0010abcd", "15"),  # message shorter than its length
    ("M6", f"00092003{MAK}0004abcd", "15"),  # UnionPay ECB takes padding method 1 only
    ("M8", f"00091003{MAK}0004abcdXYZ", "15"),
    ("PE", f"Q{ACCT}{'0' * 16}x;", "15"),
    ("BA", f"1234FFFFFFFFF{ACCT[:-1]}", "15"),
    # key type / key length flag
    ("BU", f"0Z0{PIK}", "04"),
    ("A0", "00ZZU", "04"),
    ("M6", f"00091002{MAK}0004abcd", "04"),
    ("DU", f"001{PIK}", "15"),
    ("DU", "007" + da(), "04"),
    ("BU", f"027{PIK}", "05"),
    ("BU", f"020{PIK}", "05"),  # the flag says single length, the key is double
    # parity -> 10 (source) / 11 (destination)
    ("BU", f"021{EVEN_TPK}", "10"),
    ("DA", da(tpk=EVEN_TPK), "10"),
    ("DA", da(pvk=EVEN_PVK), "11"),
    ("CA", f"{PIK}{EVEN_ZPK}12{BLOCK}0101{ACCT}", "11"),
    # PIN block problems -> 20 / 23 / 24
    ("DA", da(block=_block("16123446FFFFFFFE")), "20"),  # format nibble 1 in a format 0 block
    ("DA", da(block=_block("06123446FFFF0FFE")), "20"),  # bad padding
    ("DA", da(fmt="99"), "23"),
    ("CA", f"{PIK}{ZPK}12{BLOCK}0177{ACCT}", "23"),
    ("DA", da(block=_block("0D123446FFFFFFFE")), "24"),  # PIN length 13
    ("BA", f"123FFFFFFFFFF{ACCT}", "24"),
    ("JA", f"{ACCT}03", "24"),
    # verification failures -> 01
    ("DA", da(offset="000000FFFFFF"), "01"),
    ("M8", f"00091003{MAK}0004abcdABCDEF01", "01"),
    ("CY", "0A61E674E88C6A7EEABC38C2B2BB492F0004999988887777;9105111", "01"),
]


@pytest.mark.parametrize(("command", "fields", "error"), CASES)
async def test_error_code_and_the_connection_survives(hsm: HsmSimServer, command: str, fields: str, error: str) -> None:
    async with RawClient(hsm) as raw:
        reply = await raw.command(command, fields.encode("latin-1"))
        assert reply.error == error
        assert reply.data == b""
        assert reply.code == command[0] + chr(ord(command[1]) + 1)
        assert (await raw.command("NC")).error == "00"


async def test_good_da_for_contrast(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        assert (await raw.command("DA", da().encode())).error == "00"


async def test_error_replies_carry_no_secret(hsm: HsmSimServer) -> None:
    async with RawClient(hsm) as raw:
        for command, fields, _ in CASES:
            reply = await raw.command(command, fields.encode("latin-1"))
            assert reply.data == b""
    assert hsm.stats.internal_errors == 0


async def test_a_pin_prefix_never_verifies_against_a_longer_offset(hsm: HsmSimServer) -> None:
    """PIN 1234 is the first four digits of the card's PIN 123456: a wrong PIN (01), not a match."""
    async with RawClient(hsm) as raw:
        short = encrypt_ecb(PIK_CLEAR, format_iso0("1234", PAN)).hex().upper()
        assert (await raw.command("DA", da(block=short).encode())).error == "01"
        longer = encrypt_ecb(PIK_CLEAR, format_iso0("12345600", PAN)).hex().upper()
        assert (await raw.command("DA", da(block=longer).encode())).error == "01"
        assert (await raw.command("DA", da().encode())).error == "00"
