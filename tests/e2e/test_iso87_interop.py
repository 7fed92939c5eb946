"""The ``iso87`` listener with an independent ISO 8583 implementation: pyiso8583's own encoder/decoder with
``iso8583.specs.default`` (not the switch's codec), as a generic host would use it (SPEC §2.2)."""

from __future__ import annotations

import asyncio
import copy
import struct
from typing import Any

import iso8583
from iso8583.specs import default as DEFAULT_SPEC

from tests.support.pos import mac_unionpay_ecb, parse_field62_keys, pin_block_iso0, tdes_encrypt
from tests.support.stack import CARD, HALL_TID, MID, POS_TID, TMK, Stack


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doc: dict[str, Any],
                    mak: bytes | None) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    if mak is not None:
        doc["64"] = "00" * 8
    raw, _ = iso8583.encode(doc, DEFAULT_SPEC)
    if mak is not None:
        raw = bytes(raw[:-8]) + mac_unionpay_ecb(mak, bytes(raw[:-8]))
    writer.write(struct.pack(">H", len(raw)) + raw)
    await writer.drain()
    n = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
    reply = await reader.readexactly(n)
    dec, _ = iso8583.decode(reply, DEFAULT_SPEC)
    if "64" in dec:
        assert mak is not None and dec["64"] == mac_unionpay_ecb(mak, reply[:-8]).hex().upper(), "reply MAC"
    return dict(dec)


async def test_pyiso8583_default_spec_client_signs_on_and_buys(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port("iso87"))
    try:
        rep = await _exchange(reader, writer, {"t": "0800", "11": "000001", "41": POS_TID, "42": MID,
                                               "60": "00000000004", "63": "001"}, None)
        assert rep["t"] == "0810" and rep["39"] == "00"
        keys = parse_field62_keys(rep["62"], bytes.fromhex(TMK))  # 62 travels as hex text in iso87
        batch = rep["60"][2:8]
        pin_block = tdes_encrypt(keys["pik"], pin_block_iso0(CARD.pin, CARD.pan)).hex().upper()
        purchase = {"t": "0200", "2": CARD.pan, "3": "000000", "4": "000000001000", "11": "000002", "14": "3012",
                    "22": "021", "25": "00", "41": POS_TID, "42": MID, "49": "156", "52": pin_block,
                    "53": "2600000000000000", "60": "22" + batch + "000"}
        rep = await _exchange(reader, writer, purchase, keys["mak"])
        assert rep["t"] == "0210" and rep["39"] == "00", rep.get("39")
        assert rep["11"] == "000002" and rep["4"] == "000000001000" and rep["60"] == purchase["60"]
        assert rep["54"] == f"1002156C{CARD.balance - 1000:012d}"
        assert len(rep["37"]) == 12 and len(rep["38"]) == 6
        assert await stack.balance(CARD.pan) == CARD.balance - 1000
    finally:
        writer.close()


async def test_iso87_profile_carries_the_same_business_content(stack: Stack) -> None:
    pos = await stack.pos("iso87")
    ans = await pos.purchase(CARD.pan, CARD.pin, 2500)
    assert ans.rc == "00" and ans.mac_ok and ans.balance == CARD.balance - 2500
    v = await pos.void(CARD.pan, 2500, ans)
    assert v.rc == "00" and v.mac_ok
    assert (await pos.pinchange(CARD.pan, CARD.pin, "909090")).rc == "00"  # 62 as hex text
    hall = await stack.pos("iso87", tid=HALL_TID)
    assert (await hall.topup(CARD.pan, 100)).rc == "00"
    assert (await hall.settle(0, 0, 100, 1)).f["48"][30] == "1"
    assert (await pos.echo()).rc == "00"


async def test_iso87_track2_with_equals_separator(stack: Stack) -> None:
    pos = await stack.pos("iso87")
    ans = await pos.purchase(CARD.pan, CARD.pin, 100, track2=True)
    assert ans.rc == "00"
