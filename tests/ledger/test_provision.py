"""``switch provision``: validation that names entries (never card data), idempotent loading with opening
balances posted from the float, the CLI's exit codes, and clear development secrets through the real HSM
simulator (ceremony console for TMKs, BA + DE for PINs)."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hsm_sim.config import HsmSimConfig, PinSection, ServerSection
from hsm_sim.lmk import Lmk
from hsm_sim.server import HsmSimServer
from switch.cli import main
from switch.config import SwitchConfig, with_overrides
from switch.ledger import LedgerStore
from switch.ledger.provision import ProvisionError, parse_provisioning, provision
from tests.support.ledger_db import CARD, TOKEN_KEY, open_test_store, seed, seed_document

SPEC = json.loads((Path(__file__).resolve().parents[1] / "iso" / "vectors" / "spec_examples.json").read_text())


def _toml(doc: dict[str, Any]) -> str:
    out = []
    for table, items in doc.items():
        for item in items:
            out.append(f"[[{table}]]")
            for k, v in item.items():
                out.append(f"{k} = {json.dumps(v, ensure_ascii=False)}")
            out.append("")
    return "\n".join(out)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"card": [{"pan": CARD.pan[:-1] + "0", "expiry": "3012", "pin_offset": "1234"}]}, "card #1: pan"),
        ({"card": [{"pan": CARD.pan, "expiry": "3013", "pin_offset": "1234"}]}, "card #1: expiry"),
        ({"card": [{"pan": CARD.pan, "expiry": "3012"}]}, "card #1: give exactly one of pin"),
        ({"card": [{"pan": CARD.pan, "expiry": "3012", "pin": "12", "balance": 1}]}, "card #1: pin"),
        ({"card": [{"pan": CARD.pan, "expiry": "3012", "pin_offset": "1234", "cvv": "123"}]}, "unknown key cvv"),
        ({"card": [{"pan": CARD.pan, "expiry": "3012", "pin_offset": "1234", "balance": -1}]}, "balance"),
        ({"merchant": [{"mid": "123", "name": "x"}]}, "merchant #1: mid"),
        ({"terminal": [{"tid": "1", "mid": "898520154110001", "tmk": "00"}]}, "terminal #1: tid"),
        ({"terminal": [{"tid": "10000001", "mid": "898520154110001", "kind": "atm", "tmk": "00"}]}, "kind"),
        ({"terminal": [{"tid": "10000001", "mid": "898520154110001", "tmk": "0123"}]}, "tmk must be 32 hex"),
        ({"shop": []}, "unknown table [shop]"),
    ],
)
def test_validation_names_the_entry_never_the_card(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ProvisionError, match=message.replace("[", r"\[")) as exc:
        parse_provisioning(patch)
    assert CARD.pan not in str(exc.value) and CARD.pan[:-1] not in str(exc.value)


async def test_provisioning_is_idempotent_and_posts_opening_balances(store: LedgerStore) -> None:
    # the fixture provisioned once already; a second run of the same file changes nothing
    report = await provision(store, parse_provisioning(seed_document()), bins=["990001"], hsm=None)
    assert report.created == {"merchant": 0, "terminal": 0, "card": 0}
    assert report.unchanged == {"merchant": 3, "terminal": 4, "card": 7}
    assert await store.balance(CARD.token) == 50000
    rows = await store.read(
        lambda tx: tx.fetch("SELECT kind, source, amount FROM journal WHERE card_token = $1", CARD.token)
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [("topup", "provision", 50000)]
    seq = await store.read(lambda tx: tx.fetchval("SELECT value FROM counters WHERE name = 'card_seq|990001'"))
    assert seq == 7  # issuance continues after the provisioned cards


async def test_cli_provision_exit_codes(tmp_path: Path, ledger_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prov.toml"
    path.write_text(_toml(seed_document()), encoding="utf-8")
    env_key = ["--db", ledger_dsn]

    async def cli(*argv: str) -> int:  # the CLI runs its own event loop: give it a thread
        return await asyncio.to_thread(main, list(argv))

    assert await cli("provision", str(path), *env_key) == 0
    first = capsys.readouterr().out
    assert "7 cards created" in first and CARD.pan not in first
    assert await cli("provision", str(path), *env_key) == 0
    assert "0 cards created, 7 unchanged" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[card]]\npan = "1234"\n', encoding="utf-8")
    assert await cli("provision", str(bad), *env_key) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "card #1" in err
    assert await cli("provision", str(tmp_path / "missing.toml"), *env_key) == 1
    assert "not found" in capsys.readouterr().err


async def test_clear_development_secrets_go_through_the_hsm(tmp_path: Path, ledger_dsn: str) -> None:
    from switch.cli.provision import provision_file

    sim = HsmSimServer(
        replace(
            HsmSimConfig(),
            server=ServerSection(listen="127.0.0.1:0"),
            pin=PinSection(mailer_file=str(tmp_path / "mailers.jsonl")),
        )
    )
    host, port = await sim.start()
    try:
        doc = {
            "merchant": [{"mid": "898520154110001", "name": "m", "mdr_bps": 38, "fee_cap": 2000}],
            "terminal": [{"tid": "10000001", "mid": "898520154110001", "kind": "pos", "tmk": SPEC["tmk_clear"]}],
            "card": [{"pan": SPEC["pan"], "expiry": "3012", "pin": SPEC["pin"], "balance": 100}],
        }
        path = tmp_path / "dev.toml"
        path.write_text(_toml(doc), encoding="utf-8")
        cfg = with_overrides(SwitchConfig(), "database", dsn=ledger_dsn)
        cfg = with_overrides(cfg, "security", pan_token_key=TOKEN_KEY)
        cfg = with_overrides(
            cfg, "hsm", address=f"{host}:{port}", ceremony_command=f"{sys.executable} -m hsm_sim keys import-clear"
        )
        report = await provision_file(cfg, path)
        assert report.created == {"merchant": 1, "terminal": 1, "card": 1}
        store = await open_test_store(ledger_dsn)
        try:
            term = await store.terminal("10000001")
            card = await store.card(SPEC["pan"])
            assert term is not None and term.tmk_lmk == Lmk.test_set().encrypt_key(
                "002", bytes.fromhex(SPEC["tmk_clear"]), "U"
            )
            assert card is not None and card.pin_offset == SPEC["ibm3624_offset"]
            dump = await store.read(lambda tx: tx.fetch("SELECT * FROM terminals"))
            assert SPEC["tmk_clear"] not in repr([tuple(r) for r in dump])
        finally:
            await store.close()
        # re-run: nothing new, so the HSM is not even needed
        await sim.stop()
        again = await provision_file(cfg, path)
        assert again.created == {"merchant": 0, "terminal": 0, "card": 0}
    finally:
        await sim.stop()


async def test_seed_helper_matches_the_cli_format(ledger_dsn: str) -> None:
    store = await open_test_store(ledger_dsn)
    try:
        await seed(store)
        assert parse_provisioning(seed_document()).cards[0].pan == CARD.pan
        assert "******" in repr(parse_provisioning(seed_document()).cards[0])
    finally:
        await store.close()
