"""Test-side helpers to build and read frames for both profiles (through the real codec)."""

from __future__ import annotations

import asyncio
import struct

from switch.iso.codec import decode_message, encode_message
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage
from switch.iso.profiles import PROFILES
from switch.iso.tpdu import Tpdu

TPDU = Tpdu.parse(bytes.fromhex("6000030000"))
HEADER = CupHeader.parse(bytes.fromhex("603100310000"))


def echo_request(stan: str, profile: str = "cup", tid: str = "10000001") -> bytes:
    msg = IsoMessage(mti="0820", fields={"11": stan, "41": tid, "42": "898520154110001", "60": "00000001301"})
    if profile == "cup":
        msg.tpdu, msg.header = TPDU, HEADER
    return frame(encode_message(msg, PROFILES[profile]))


def frame(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


async def read_frame(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(2), timeout)
    return await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head)[0]), timeout)


async def read_reply(reader: asyncio.StreamReader, profile: str = "cup", timeout: float = 5.0) -> IsoMessage:
    return decode_message(await read_frame(reader, timeout), PROFILES[profile])
