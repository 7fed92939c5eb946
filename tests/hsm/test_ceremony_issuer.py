"""The key-ceremony console (``hsm-sim keys import-clear``) run by ``switch.hsm.ceremony`` as a subprocess,
and card issuance over the HSM (JA -> DE -> PE) with the PIN mailer as the only place a clear PIN appears."""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hsm_sim.server import HsmSimServer
from switch.backoffice.cards import IssuerHsm
from switch.backoffice.hsm_issuer import HsmIssuer
from switch.config import SwitchConfig
from switch.crypto.des import encrypt_ecb
from switch.crypto.pinblock import format_iso0
from switch.errors import HandledError
from switch.hsm.ceremony import CeremonyError, import_clear_keys
from switch.hsm.client import HsmClient
from tests.hsm.conftest import SPEC, TEST_LMK, under_lmk

CONSOLE = f"{sys.executable} -m hsm_sim keys import-clear"


async def test_ceremony_turns_clear_tmks_into_keys_under_the_test_lmk(client: HsmClient) -> None:
    keys = await import_clear_keys([("TMK", SPEC["tmk_clear"]), ("ZPK", "E6F1081FEA4C402CC192B65DE367EC3E")], CONSOLE)
    assert [k.key_type for k in keys] == ["TMK", "ZPK"]
    assert keys[0].key_lmk == under_lmk("002", SPEC["tmk_clear"])
    assert keys[0].kcv[:8] == SPEC["kcv_tmk"]
    assert TEST_LMK.decrypt_key("001", keys[1].key_lmk).hex().upper() == "E6F1081FEA4C402CC192B65DE367EC3E"
    # the simulator accepts the result: a sign-on key generation under that TMK works
    assert (await client.generate_key_under_tmk("TPK", "U", keys[0].key_lmk)).key_lmk.startswith("U")


async def test_ceremony_errors_name_no_key(tmp_path: Path) -> None:
    with pytest.raises(CeremonyError) as exc:
        await import_clear_keys([("TMK", "00" * 16)], CONSOLE)  # no odd parity
    assert "parity" in str(exc.value) and "00" * 8 not in str(exc.value)
    with pytest.raises(CeremonyError, match="line 1"):
        await import_clear_keys([("NOPE", SPEC["tmk_clear"])], CONSOLE)
    with pytest.raises(CeremonyError, match="cannot run"):
        await import_clear_keys([("TMK", SPEC["tmk_clear"])], str(tmp_path / "no-such-console"))
    assert await import_clear_keys([], CONSOLE) == []


async def test_ceremony_with_a_production_lmk_file(tmp_path: Path) -> None:
    from hsm_sim.lmk import TEST_LMK_PAIRS, Lmk

    pairs = list(TEST_LMK_PAIRS)
    pairs[7] = "0E0E0E0E0E0E0E0E1F1F1F1F1F1F1F1F"
    (tmp_path / "prod.lmk").write_text("\n".join(pairs))
    (tmp_path / "hsm.toml").write_text(f'[lmk]\nfile = "{tmp_path / "prod.lmk"}"\n')
    keys = await import_clear_keys([("TMK", SPEC["tmk_clear"])], f"{CONSOLE} --config {tmp_path / 'hsm.toml'}")
    assert keys[0].key_lmk != under_lmk("002", SPEC["tmk_clear"])
    assert Lmk.from_file(tmp_path / "prod.lmk").decrypt_key("002", keys[0].key_lmk).hex().upper() == SPEC["tmk_clear"]


def _read(path: Path) -> tuple[int, str]:
    return stat.S_IMODE(path.stat().st_mode), path.read_text(encoding="utf-8")


def _config(hsm: HsmSimServer) -> SwitchConfig:
    assert hsm.address is not None
    cfg = SwitchConfig()
    return replace(cfg, hsm=replace(cfg.hsm, address=f"{hsm.address[0]}:{hsm.address[1]}", timeout_ms=1000))


async def test_issuance_prints_a_mailer_and_the_offset_verifies(hsm: HsmSimServer, client: HsmClient) -> None:
    pan = "9900010000001231"
    issuer: IssuerHsm
    async with HsmIssuer.from_config(_config(hsm)) as issuer:
        pin_lmk = await issuer.new_pin(pan)
        offset = await issuer.offset_of(pan, pin_lmk)
        await issuer.print_mailer(pan, pin_lmk, ["张三", "M0001", "E001;x"])
    mode, text = _read(Path(hsm.config.pin.mailer_file))
    assert mode == 0o600
    (mailer,) = [json.loads(line) for line in text.splitlines()]
    assert mailer["lines"] == ["张三", "M0001", "E001,x"] and mailer["account"] == pan[-13:-1][-4:]
    assert pan not in text and pin_lmk not in text
    pin = mailer["pin"]
    assert len(pin) == 6 and pin.isdigit() and len(offset) == 6
    # the cardholder's first PIN entry verifies against the stored offset
    pik = bytes.fromhex(SPEC["pik_clear"])
    block = encrypt_ecb(pik, format_iso0(pin, pan)).hex().upper()
    assert await client.verify_pin_ibm(under_lmk("002", SPEC["pik_clear"]), "", block, pan, offset)


async def test_issuer_reports_an_unreachable_hsm_in_one_line(hsm: HsmSimServer) -> None:
    cfg = _config(hsm)
    await hsm.stop()
    with pytest.raises(HandledError, match="HSM unavailable"):
        async with HsmIssuer.from_config(cfg):
            pass
