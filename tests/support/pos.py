"""A tiny POS terminal for end-to-end tests: speaks both profiles over real TCP with real crypto.

Its crypto is written here from SPEC §3 on purpose (not imported from ``switch.crypto``): the tests then
check the switch against an independent implementation, itself pinned to the SPEC's worked examples
(``tests/e2e/test_terminal_crypto.py``). The full terminal simulator is ``terminal_sim``; this stays small.

    pos = await PosTerminal.connect(host, port, profile="cup", tid=..., mid=..., tmk=...)
    await pos.signon()                       # keys from field 62 under the TMK, KCVs checked, batch taken
    ans = await pos.purchase(PAN, "123456", 10000)
    ans.rc, ans.f["37"], ans.mac_ok, ans.header_requirement
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from switch.iso.codec import decode_message, encode_message, mac_block, replace_mac
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage
from switch.iso.profiles import PROFILES
from switch.iso.tpdu import Tpdu

TPDU = Tpdu("0003", "0000")
HEADER = CupHeader("60", "31", "0", "0", "310000")


# ------------------------------------------------------------------------------------------ crypto


def _tdes(key: bytes) -> Cipher[modes.ECB]:
    if len(key) == 8:
        key = key * 3
    elif len(key) == 16:
        key = key + key[:8]
    return Cipher(TripleDES(key), modes.ECB())


def tdes_encrypt(key: bytes, data: bytes) -> bytes:
    e = _tdes(key).encryptor()
    return e.update(data) + e.finalize()


def tdes_decrypt(key: bytes, data: bytes) -> bytes:
    d = _tdes(key).decryptor()
    return d.update(data) + d.finalize()


def kcv(key: bytes) -> bytes:
    return tdes_encrypt(key, bytes(8))[:4]


def pin_block_iso0(pin: str, pan: str) -> bytes:
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    return bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))


def mac_unionpay_ecb(mak: bytes, mab: bytes) -> bytes:
    if len(mab) % 8:
        mab += bytes(8 - len(mab) % 8)
    r = bytearray(8)
    for i in range(0, len(mab), 8):
        for j in range(8):
            r[j] ^= mab[i + j]
    h = bytes(r).hex().upper().encode()
    e1 = tdes_encrypt(mak, h[:8])
    e2 = tdes_encrypt(mak, bytes(a ^ b for a, b in zip(e1, h[8:], strict=True)))
    return e2.hex().upper()[:8].encode()


def parse_field62_keys(f62_hex: str, tmk: bytes) -> dict[str, bytes]:
    """Working keys out of a sign-on reply's field 62, KCVs checked (ValueError on a mismatch)."""
    raw = bytes.fromhex(f62_hex)
    if len(raw) not in (40, 60):
        raise ValueError(f"field 62 length {len(raw)}")
    keys = {"pik": tdes_decrypt(tmk, raw[0:16]), "mak": tdes_decrypt(tmk, raw[20:28])}
    checks = [("pik", raw[16:20]), ("mak", raw[36:40])]
    if raw[28:36] != bytes(8):
        raise ValueError("field 62 MAK filler not zero")
    if len(raw) == 60:
        keys["tdk"] = tdes_decrypt(tmk, raw[40:56])
        checks.append(("tdk", raw[56:60]))
    for name, check in checks:
        if kcv(keys[name]) != check:
            raise ValueError(f"KCV mismatch for {name}")
    return keys


# ---------------------------------------------------------------------------------------- terminal


@dataclass
class Answer:
    msg: IsoMessage
    raw: bytes
    #: reply MAC verified under our MAK: True/False; None when the reply carries no field 64
    mac_ok: bool | None

    @property
    def f(self) -> dict[str, str]:
        return self.msg.fields

    @property
    def rc(self) -> str:
        return self.msg.fields.get("39", "")

    @property
    def header_requirement(self) -> str | None:
        return self.msg.header.processing_requirement if self.msg.header else None

    @property
    def balance(self) -> int | None:
        f54 = self.msg.fields.get("54")
        if not f54:
            return None
        amount = int(f54[8:20])
        return -amount if f54[7] == "D" else amount


@dataclass
class PosTerminal:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    profile: str
    tid: str
    mid: str
    tmk: bytes
    batch: str = "000001"
    stan: int = 0
    keys: dict[str, bytes] = field(default_factory=dict)
    tpdu: Tpdu = TPDU
    header: CupHeader = HEADER
    last: Answer | None = None

    @classmethod
    async def connect(cls, host: str, port: int, *, profile: str, tid: str, mid: str, tmk: str) -> PosTerminal:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, profile, tid, mid, bytes.fromhex(tmk))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    # -- plumbing ---------------------------------------------------------------------------------
    def next_stan(self) -> str:
        self.stan = self.stan % 999999 + 1
        return f"{self.stan:06d}"

    def encode(self, mti: str, fields: dict[str, str], *, mac: bool = True, mak: bytes | None = None) -> bytes:
        """Encode a request; with ``mac`` a field 64 is computed under ``mak`` (default: our MAK)."""
        profile = PROFILES[self.profile]
        msg = IsoMessage(mti=mti, fields=dict(fields))
        if self.profile == "cup":
            msg.tpdu, msg.header = self.tpdu, self.header
        if not mac:
            return encode_message(msg, profile)
        msg.fields["64"] = "0" * 16
        body = encode_message(msg, profile)
        key = mak if mak is not None else self.keys.get("mak", bytes(8))
        return replace_mac(body, mac_unionpay_ecb(key, mac_block(body, profile)))

    async def send_body(self, body: bytes, timeout: float = 10.0) -> Answer:
        self.writer.write(struct.pack(">H", len(body)) + body)
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        raw = await asyncio.wait_for(self.reader.readexactly(struct.unpack(">H", head)[0]), timeout)
        return self.read_answer(raw)

    def read_answer(self, raw: bytes) -> Answer:
        profile = PROFILES[self.profile]
        msg = decode_message(raw, profile)
        mac_ok: bool | None = None
        if "64" in msg.fields:
            mak = self.keys.get("mak")
            mac_ok = mak is not None and mac_unionpay_ecb(mak, msg.mac_data).hex().upper() == msg.fields["64"]
        self.last = Answer(msg, raw, mac_ok)
        return self.last

    async def send(self, mti: str, fields: dict[str, str], *, mac: bool = True) -> Answer:
        return await self.send_body(self.encode(mti, fields, mac=mac))

    def base(self, type_code: str, nmic: str = "000", stan: str | None = None) -> dict[str, str]:
        return {"11": stan or self.next_stan(), "41": self.tid, "42": self.mid, "60": type_code + self.batch + nmic}

    def pin_block(self, pin: str, pan: str) -> str:
        return tdes_encrypt(self.keys["pik"], pin_block_iso0(pin, pan)).hex().upper()

    def card_fields(self, pan: str, expiry: str, track2: bool) -> dict[str, str]:
        if track2:
            sep = "D" if self.profile == "cup" else "="
            return {"35": f"{pan}{sep}{expiry}1010000000000"}
        return {"2": pan, "14": expiry}

    # -- transactions ------------------------------------------------------------------------------
    async def signon(self, nmic: str = "004") -> Answer:
        f = self.base("00", nmic)
        f["63"] = "001"
        ans = await self.send("0800", f, mac=False)
        if ans.rc == "00":
            self.keys = parse_field62_keys(ans.f["62"], self.tmk)
            self.batch = ans.f["60"][2:8]
        return ans

    async def echo(self) -> Answer:
        return await self.send("0820", self.base("00", "301"), mac=False)

    async def signoff(self) -> Answer:
        return await self.send("0820", self.base("00", "002"), mac=False)

    def purchase_fields(
        self, pan: str, pin: str | None, amount: int, *, expiry: str = "3012", track2: bool = False,
        stan: str | None = None,
    ) -> dict[str, str]:
        f = {"3": "000000", "4": f"{amount:012d}", "22": "021" if track2 else "011", "25": "00", "49": "156",
             **self.base("22", stan=stan), **self.card_fields(pan, expiry, track2)}
        if pin is not None:
            f["52"] = self.pin_block(pin, pan)
            f["53"] = "2600000000000000"
            f["22"] = f["22"][:2] + "1"
        return f

    async def purchase(self, pan: str, pin: str | None, amount: int, **kw: object) -> Answer:
        return await self.send("0200", self.purchase_fields(pan, pin, amount, **kw))  # type: ignore[arg-type]

    async def balance(self, pan: str, pin: str, *, expiry: str = "3012") -> Answer:
        f = {"3": "310000", "22": "011", "25": "00", "49": "156", "52": self.pin_block(pin, pan),
             "53": "2600000000000000", **self.base("01"), "2": pan, "14": expiry}
        return await self.send("0200", f)

    async def void(
        self, pan: str, amount: int, orig: Answer, *, pin: str | None = None, expiry: str = "3012",
        orig_stan: str | None = None,
    ) -> Answer:
        o = orig.f
        f = {"3": "200000", "4": f"{amount:012d}", "22": "011", "25": "00", "49": "156", **self.base("23"),
             "2": pan, "14": expiry, "37": o.get("37", "000000000000"), "38": o.get("38", "000000"),
             "61": o["60"][2:8] + (orig_stan or o["11"])}
        if pin is not None:
            f["52"] = self.pin_block(pin, pan)
            f["53"] = "2600000000000000"
        return await self.send("0200", f)

    async def refund(self, pan: str, amount: int, orig: Answer, *, orig_date: str = "") -> Answer:
        o = orig.f
        date = orig_date or o.get("13", "")
        f = {"3": "200000", "4": f"{amount:012d}", "22": "011", "25": "00", "49": "156", **self.base("25"),
             "2": pan, "37": o.get("37", "000000000000"), "61": o["60"][2:8] + o["11"] + date}
        return await self.send("0220", f)

    async def topup(self, pan: str, amount: int, *, expiry: str = "3012") -> Answer:
        f = {"3": "630000", "4": f"{amount:012d}", "22": "011", "25": "00", "49": "156", **self.base("48"),
             "2": pan, "14": expiry}
        return await self.send("0200", f)

    async def pinchange(self, pan: str, old_pin: str, new_pin: str, *, expiry: str = "3012") -> Answer:
        f = {"3": "700000", "22": "011", "25": "00", "49": "156", **self.base("70"), "2": pan, "14": expiry,
             "52": self.pin_block(old_pin, pan), "53": "2600000000000000", "62": self.pin_block(new_pin, pan)}
        return await self.send("0200", f)

    async def reverse(self, orig_fields: dict[str, str], reason: str = "98") -> Answer:
        """Reversal of a request we sent (its fields as sent): same 3, 4, 11, 25, 60.1, 22, PAN."""
        o = orig_fields
        f = {k: o[k] for k in ("2", "3", "4", "11", "14", "22", "25", "49", "60") if k in o}
        f.update({"39": reason, "41": self.tid, "42": self.mid})
        return await self.send("0400", f)

    async def settle(self, debit_amount: int, debit_count: int, credit_amount: int, credit_count: int) -> Answer:
        g = f"{debit_amount:012d}{debit_count:03d}{credit_amount:012d}{credit_count:03d}0"
        f = {**self.base("00", "201"), "48": g + "0" * 31, "49": "156", "63": "001"}
        return await self.send("0500", f, mac=False)
