"""A terminal that follows the ``cup`` profile byte for byte (SPEC §2.1), assembled by hand here without the
switch's codec: TPDU and header, BCD MTI, binary bitmap, BCD numerics (LLVAR lengths in digits, left-aligned
and 0-padded), ASCII 37/38/39/41/42/49/54/63, binary 52/62/64. It signs on, buys, voids, reverses and settles,
and checks every reply byte-level: TPDU swapped, header echoed, MAC verified under its MAK.
"""

from __future__ import annotations

import asyncio
import struct

from tests.support.pos import mac_unionpay_ecb, parse_field62_keys, pin_block_iso0, tdes_encrypt
from tests.support.stack import CARD, MID, POS_TID, TMK, Stack

TPDU = bytes.fromhex("6000120034")
HEADER = bytes.fromhex("603100310000")

# number -> (kind, length-prefix bytes, fixed length); kinds: n BCD digits, z track (BCD with D), a ASCII, b binary
PLAN: dict[int, tuple[str, int, int]] = {
    2: ("n", 1, 0), 3: ("n", 0, 6), 4: ("n", 0, 12), 11: ("n", 0, 6), 12: ("n", 0, 6), 13: ("n", 0, 4),
    14: ("n", 0, 4), 15: ("n", 0, 4), 22: ("n", 0, 3), 25: ("n", 0, 2), 32: ("n", 1, 0), 35: ("z", 1, 0),
    37: ("a", 0, 12), 38: ("a", 0, 6), 39: ("a", 0, 2), 41: ("a", 0, 8), 42: ("a", 0, 15), 48: ("n", 2, 0),
    49: ("a", 0, 3), 52: ("b", 0, 8), 53: ("n", 0, 16), 54: ("a", 2, 0), 60: ("n", 2, 0), 61: ("n", 2, 0),
    62: ("b", 2, 0), 63: ("a", 2, 0), 64: ("b", 0, 8),
}


def bcd_len(n: int, nbytes: int) -> bytes:
    return bytes.fromhex(f"{n:0{2 * nbytes}d}")


def enc_field(num: int, value: str | bytes) -> bytes:
    kind, lenb, fixed = PLAN[num]
    if kind in "nz":
        assert isinstance(value, str)
        digits = value
        nib = digits + ("0" if len(digits) % 2 else "")  # left-aligned, 0-padded (22 "021" -> 02 10)
        data = bytes.fromhex(nib)
        return (bcd_len(len(digits), lenb) if lenb else b"") + data
    data = value.encode("ascii") if isinstance(value, str) else value
    if fixed:
        assert len(data) == fixed, num
        return data
    return bcd_len(len(data), lenb) + data


def build(mti: str, fields: dict[int, str | bytes], mak: bytes | None) -> bytes:
    nums = sorted(fields) + ([64] if mak is not None else [])
    bitmap = 0
    for n in nums:
        bitmap |= 1 << (64 - n)
    body = bytes.fromhex(mti) + bitmap.to_bytes(8, "big") + b"".join(enc_field(n, fields[n]) for n in sorted(fields))
    if mak is not None:
        body += mac_unionpay_ecb(mak, body)
    return TPDU + HEADER + body


def parse(frame: bytes) -> tuple[bytes, bytes, str, dict[int, str | bytes], bytes]:
    """-> (tpdu, header, mti, fields, mab). ``n``/``z`` values as digit strings, ``a`` as text, ``b`` as bytes."""
    tpdu, header = frame[:5], frame[5:11]
    pos = 11
    mti = frame[pos : pos + 2].hex()
    bitmap = int.from_bytes(frame[pos + 2 : pos + 10], "big")
    start = pos
    pos += 10
    fields: dict[int, str | bytes] = {}
    mab = b""
    for n in range(2, 65):
        if not bitmap & (1 << (64 - n)):
            continue
        if n == 64:
            mab = frame[start:pos]
        kind, lenb, fixed = PLAN[n]
        if lenb:
            length = int(frame[pos : pos + lenb].hex())
            pos += lenb
        else:
            length = fixed
        if kind in "nz":
            nbytes = (length + 1) // 2
            fields[n] = frame[pos : pos + nbytes].hex().upper()[:length]
        else:
            nbytes = length
            raw = frame[pos : pos + nbytes]
            fields[n] = raw.decode("ascii") if kind == "a" else raw
        pos += nbytes
    assert pos == len(frame), "trailing bytes"
    return tpdu, header, mti, fields, mab


class RawCupTerminal:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer
        self.stan = 100
        self.batch = "000000"
        self.pik = self.mak = b""

    async def exchange(self, frame: bytes) -> tuple[str, dict[int, str | bytes]]:
        self.w.write(struct.pack(">H", len(frame)) + frame)
        await self.w.drain()
        n = struct.unpack(">H", await asyncio.wait_for(self.r.readexactly(2), 10))[0]
        reply = await self.r.readexactly(n)
        tpdu, header, mti, fields, mab = parse(reply)
        assert tpdu == bytes.fromhex("6000340012"), "TPDU destination/source swapped"
        assert header == HEADER, "header echoed with processing requirement 0"
        if 64 in fields:
            assert fields[64] == mac_unionpay_ecb(self.mak, mab), "reply MAC"
        return mti, fields

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"


async def test_cup_terminal_byte_for_byte(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port("cup"))
    t = RawCupTerminal(reader, writer)
    try:
        # sign-on
        mti, f = await t.exchange(build("0800", {11: t.next_stan(), 41: POS_TID, 42: MID, 60: "00000000004",
                                                 63: "001"}, None))
        assert mti == "0810" and f[39] == "00" and 64 not in f
        assert isinstance(f[62], bytes) and len(f[62]) == 60
        keys = parse_field62_keys(f[62].hex(), bytes.fromhex(TMK))
        t.pik, t.mak = keys["pik"], keys["mak"]
        f60 = f[60]
        assert isinstance(f60, str)
        t.batch = f60[2:8]

        def purchase(amount: int) -> dict[int, str | bytes]:
            return {2: CARD.pan, 3: "000000", 4: f"{amount:012d}", 11: t.next_stan(), 14: CARD.expiry, 22: "021",
                    25: "00", 41: POS_TID, 42: MID, 49: "156",
                    52: tdes_encrypt(t.pik, pin_block_iso0(CARD.pin, CARD.pan)), 53: "2600000000000000",
                    60: "22" + t.batch + "000"}

        # purchase
        p = purchase(10000)
        mti, f = await t.exchange(build("0200", p, t.mak))
        assert mti == "0210" and f[39] == "00" and 64 in f
        assert f[4] == p[4] and f[11] == p[11] and f[41] == POS_TID and f[42] == MID and f[60] == p[60]
        assert f[54] == f"1002156C{CARD.balance - 10000:012d}"
        rrn, auth = f[37], f[38]
        assert isinstance(rrn, str) and isinstance(auth, str)

        # void of it
        v = {2: CARD.pan, 3: "200000", 4: f"{10000:012d}", 11: t.next_stan(), 14: CARD.expiry, 22: "021",
             25: "00", 37: rrn, 38: auth, 41: POS_TID, 42: MID, 49: "156", 60: "23" + t.batch + "000",
             61: t.batch + str(p[11])}
        mti, f = await t.exchange(build("0200", v, t.mak))
        assert mti == "0210" and f[39] == "00"
        assert f[54] == f"1002156C{CARD.balance:012d}"

        # a purchase the terminal then reverses (no reply in time, reason 98)
        p2 = purchase(2000)
        mti, f = await t.exchange(build("0200", p2, t.mak))
        assert f[39] == "00"
        r = {k: p2[k] for k in (2, 3, 4, 11, 14, 22, 25, 41, 42, 49, 60)}
        r[39] = "98"
        mti, f = await t.exchange(build("0400", r, t.mak))
        assert mti == "0410" and f[39] == "00" and 64 in f
        assert await stack.balance(CARD.pan) == CARD.balance

        # one more purchase, then settle: 1 debit of 30.00
        mti, f = await t.exchange(build("0200", purchase(3000), t.mak))
        assert f[39] == "00"
        totals = f"{3000:012d}{1:03d}{0:012d}{0:03d}0" + "0" * 31
        mti, f = await t.exchange(build("0500", {11: t.next_stan(), 41: POS_TID, 42: MID, 48: totals, 49: "156",
                                                 60: "00" + t.batch + "201", 63: "001"}, None))
        assert mti == "0510" and f[39] == "00" and 64 not in f
        f48 = f[48]
        assert isinstance(f48, str) and len(f48) == 62
        assert f48[:31] == f"{3000:012d}{1:03d}{0:012d}{0:03d}1" and f48[31:61] == "0" * 30
        assert isinstance(f[15], str) and len(f[15]) == 4
    finally:
        writer.close()
