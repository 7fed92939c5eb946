"""The suite-wide secret scan cannot pass vacuously: each surface it covers (log lines, stdlib logging and
tracebacks, POS replies, files, SQLite databases) is shown wired to the session scan, and a planted PAN,
key or PIN block on that surface is shown caught. Planting happens on a private :class:`SecretScan` or
outside the session's temporary directories, so the real session scan stays clean."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import struct
import tempfile
from pathlib import Path

import pytest

from switch.iso.codec import encode_message
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage
from switch.iso.profiles import CUP, ISO87, WireProfile
from switch.iso.tpdu import Tpdu
from switch.server.connection import ConnectionInfo
from switch.telemetry.logs import get_logger
from tests import conftest
from tests.hostile.conftest import Clients, StartServer
from tests.server.wire import frame, read_frame
from tests.support.secrets import VECTORS, SecretScan, allow_card_data, find_secrets, known_secrets, scan_tree

PAN = "9900010000000019"  # program BIN, Luhn-valid
MASKED = "990001******0019"


def reply_with_pan(profile: WireProfile) -> bytes:
    msg = IsoMessage(mti="0210", fields={"2": PAN, "11": "000001", "39": "00", "41": "10000001"})
    if profile.has_tpdu:
        msg.tpdu, msg.header = Tpdu("0000", "0003"), CupHeader()
    return encode_message(msg, profile)


def test_find_secrets_catches_pans_keys_and_pin_blocks_but_not_masked_pans() -> None:
    assert find_secrets(f"pan={PAN}") and not find_secrets(f"pan={MASKED}")
    assert not find_secrets("rrn=000000000238 stan=400000")  # not Luhn / too short
    secrets = known_secrets()
    assert len(secrets) >= 5, "the vectors' keys and PIN blocks are part of the scan"
    example = json.loads((VECTORS / "spec_examples.json").read_text())
    for name in ("mak_clear", "pinblock_iso0_under_pik"):
        assert find_secrets(f"x {example[name].lower()} y"), name


def test_log_lines_reach_the_session_scan_masked() -> None:
    get_logger("test.scan").info("scan_probe", note=f"card {PAN} seen")  # an innocent key, a full PAN
    text = conftest.LOG_SINK.getvalue()
    probe = [line for line in text.splitlines() if "scan_probe" in line]
    assert probe and MASKED in probe[-1] and PAN not in probe[-1]
    logging.getLogger("asyncio").error("stdlib_probe_7731")  # stdlib logging (asyncio's tracebacks) too
    assert "stdlib_probe_7731" in conftest.LOG_SINK.getvalue()
    private = SecretScan()
    private.logs.write(f"leak {PAN}\n")
    assert private.findings([]) == [f"log: {PAN[:6]}…"]


async def test_every_pos_reply_goes_through_the_scan(
    start_server: StartServer, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bytes, WireProfile | None]] = []
    monkeypatch.setattr(conftest.SCAN, "record_reply", lambda body, profile=None: seen.append((body, profile)))

    async def handler(body: bytes, info: ConnectionInfo) -> bytes | None:
        return b"reply:" + body

    server = await start_server(handler=handler)
    reader, writer = await clients.open(server.address("iso87"))
    writer.write(frame(b"ping"))
    assert await read_frame(reader) == b"reply:ping"
    assert seen == [(b"reply:ping", ISO87)]


def test_a_reply_carrying_a_pan_is_caught_in_both_profiles() -> None:
    scan = SecretScan()
    for profile in (CUP, ISO87):
        scan.record_reply(reply_with_pan(profile), profile)  # cup: the PAN travels as BCD
    scan.record_reply(f"not iso {PAN}".encode())
    assert scan.reply_hits == [f"0210 field 2: {PAN[:6]}…"] * 2 + [f"{PAN[:6]}…"]
    clean = SecretScan()
    msg = IsoMessage(mti="0210", fields={"11": "400000", "12": "123456", "13": "1127", "37": "400000123456"})
    clean.record_reply(encode_message(msg, ISO87), ISO87)  # adjacent fields are not one number
    # sign-on field 62: key bytes ending in 0x?4 before the 00x8 filler look like '4000000000000000000'
    clean.record_reply(encode_message(IsoMessage("0810", {"62": "AB4" + "0" * 17 + "C1"}), ISO87), ISO87)
    assert clean.reply_hits == []
    example = json.loads((VECTORS / "spec_examples.json").read_text())
    keyed = IsoMessage("0810", {"62": example["pik_clear"].upper()})  # a clear key in field 62 is caught
    clean.record_reply(encode_message(keyed, ISO87), ISO87)
    assert len(clean.reply_hits) == 1 and clean.reply_hits[0].startswith("0810 field 62: secret:")


def test_files_and_databases_are_scanned_with_declared_inputs_exempt() -> None:
    with tempfile.TemporaryDirectory() as tmp:  # outside the session's temp dirs on purpose
        root = Path(tmp)
        (root / "app.log").write_text(f'{{"event":"txn","note":"{PAN}"}}\n')
        (root / "orders.csv").write_text(f"order_id,employer_id,pan,amount\nO1,E1,{PAN},1.00\n")
        (root / "prov.toml").write_text(f'[[card]]\npan = "{PAN}"\n')
        declared = root / "cards.txt"
        declared.write_text(PAN)
        allow_card_data(declared)
        db = root / "ledger.db"
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE card (token TEXT, masked TEXT, kind TEXT, rrn TEXT)")
        # '4' next to an RRN forms a Luhn-valid run in the raw page: only cell-by-cell scanning is fair
        con.execute("INSERT INTO card VALUES ('ab12', ?, '4', '000000000238')", (MASKED,))
        con.commit()
        assert scan_tree(root) == ["app.log: ['990001…']"]
        con.execute("INSERT INTO card VALUES (?, '', '', '')", (PAN,))  # a PAN at rest in clear
        con.commit()
        con.close()
        assert scan_tree(root) == ["app.log: ['990001…']", "ledger.db: ['990001…']"]


async def test_an_unretrieved_task_exception_is_logged_where_the_scan_reads() -> None:
    async def fail() -> None:
        raise RuntimeError("probe_exc_5521")

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(None)  # the default handler logs to the 'asyncio' logger
    task = loop.create_task(fail())
    await asyncio.sleep(0)
    assert task.done()
    loop.call_exception_handler({"message": "probe", "exception": task.exception()})
    assert "probe_exc_5521" in conftest.LOG_SINK.getvalue()


def test_the_framing_error_text_never_carries_content() -> None:
    from switch.iso.framing import FrameDecoder, FrameError

    with pytest.raises(FrameError) as err:
        FrameDecoder().feed(struct.pack(">H", 60000) + PAN.encode())
    assert find_secrets(str(err.value)) == []
