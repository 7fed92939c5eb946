"""Fuzzing the HSM simulator's host port over real TCP (used by ``tests/hostile`` and ``scripts/soak.py``).

Half the commands are seeds recorded from an honest session of the switch's own ``HsmClient`` (valid NC,
BU, A0, A6, A8, BA, CA, DA, DU, DE, JA, M6, M8 requests, see :func:`record_seeds`) with their fields mutated
(cut, spliced, a byte flipped, a token swapped in): these reach past the field parsers into the
cryptography. The other half are built from payShield-looking tokens (keys under the test LMK in every
scheme, key type codes, PIN blocks, PAN digits, format codes, delimiters) for every implemented command,
plus unknown codes and raw garbage. They are pipelined, each with its own
header, and the oracle is SPEC §10b: every request long enough to hold a header and a command gets exactly
one reply, in order, echoing the header, with the command's response code and a 2-digit error code (``68``
for an unknown command); the connection is never dropped for a bad command, and the simulator never falls
into its internal-error path (``stats.internal_errors``: a bug it would otherwise hide behind ``15``).
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import Counter
from dataclasses import dataclass, field

from hsm_sim.commands import COMMANDS
from hsm_sim.lmk import Lmk
from switch.hsm.client import HsmClient, HsmError

HEX = "0123456789ABCDEF"
KEY_TYPES = ("000", "001", "002", "003", "008", "009", "00A", "00B", "402", "FFF", "0", "")


def _tokens(lmk: Lmk) -> list[bytes]:
    """Field fragments a payShield host would send (valid ones and near misses)."""
    rng = random.Random(10)
    out: list[bytes] = []
    for kt in ("000", "001", "002", "003", "008", "00B"):
        for scheme, size in (("", 8), ("U", 16), ("T", 24), ("X", 16), ("Y", 24)):
            try:
                clear = bytes(b & 0xFE | (bin(b >> 1).count("1") + 1) % 2 for b in rng.randbytes(size))  # odd parity
                out.append(lmk.encrypt_key(kt, clear, scheme).encode())
            except Exception:  # a scheme this LMK does not take for the type: fine, skip it
                continue
    out += [t.encode() for t in KEY_TYPES]
    out += [b"U", b"T", b"X", b"Z", b"S", b";", b"%00", b"0", b"1", b"01", b"03", b"47", b"04", b"06", b"12"]
    out += [b"0123456789012345", b"1234FFFFFFFF", b"2600000000000000", b"000000000000", b"123456789012"]
    return out


@dataclass
class HsmFuzzStats:
    sent: int = 0
    answered: int = 0
    unreadable: int = 0
    seeds: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class _WireRecorder:
    """A TCP proxy in front of the simulator keeping every request frame the client sends: recording at the
    wire, not inside the client, so the seeds stay valid whatever the client's internals become."""

    def __init__(self, host: str, port: int, header_len: int) -> None:
        self.upstream = (host, port)
        self.header_len = header_len
        self.seeds: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(*self.upstream)

        async def pump_up() -> None:
            buf = b""
            while data := await r.read(65536):
                uw.write(data)
                buf += data
                while len(buf) >= 2 and len(buf) >= 2 + (n := struct.unpack(">H", buf[:2])[0]):
                    body, buf = buf[2 : 2 + n], buf[2 + n :]
                    hl = self.header_len
                    self.seeds.append((body[hl : hl + 2], body[hl + 2 :]))
            uw.close()

        async def pump_down() -> None:
            while data := await ur.read(65536):
                w.write(data)
            w.close()

        await asyncio.gather(pump_up(), pump_down(), return_exceptions=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def record_seeds(host: str, port: int, lmk: Lmk) -> list[tuple[bytes, bytes]]:
    """Valid commands, as the switch sends them, from an honest session against the simulator."""
    recorder = _WireRecorder(host, port, header_len=4)
    client = HsmClient(*await recorder.start(), pool_size=1, timeout_s=5.0)
    await client.start()
    pan = "9900010000000019"
    clear = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    tmk = lmk.encrypt_key("002", clear, "U")
    zmk = lmk.encrypt_key("000", clear, "U")
    pik = lmk.encrypt_key("002", bytes.fromhex("89ABCDEF0123456776543210FEDCBA98"), "U")
    try:
        await client.diagnostics()
        gen = await client.generate_key_under_tmk("TAK", "Z", tmk)
        for op in (
            client.kcv("TAK", gen.key_lmk),
            client.generate_key_under_tmk("TPK", "U", tmk),
            client.export_key("TAK", tmk, gen.key_lmk, "Z", under_tmk=True),
            client.import_key("ZPK", zmk, gen.key_tmk),
            client.export_key("ZPK", zmk, lmk.encrypt_key("001", clear, "U"), "X"),
            client.generate_mac(gen.key_lmk, b"0200" + bytes(20)),
            client.verify_mac(gen.key_lmk, b"0200" + bytes(20), b"12345678"),
        ):
            try:
                await op
            except HsmError:
                continue  # a seed that the simulator refuses is still a seed
        pin_lmk = await client.encrypt_clear_pin("123456", pan)
        offset = await client.ibm_offset("", pin_lmk, pan)
        block = "0412AC89ABCDEFFE"
        for op2 in (
            client.verify_pin_ibm(pik, "", block, pan, offset),
            client.pin_change_ibm(pik, "", block, block, pan, offset),
            client.translate_pin(pik, lmk.encrypt_key("001", clear, "U"), block, pan),
            client.generate_pin(pan),
        ):
            try:
                await op2
            except HsmError:
                continue
    finally:
        await client.close()
        await recorder.close()
    return recorder.seeds


class HsmFuzzer:
    def __init__(self, lmk: Lmk, header_len: int = 4, seeds: list[tuple[bytes, bytes]] | None = None) -> None:
        self.tokens = _tokens(lmk)
        self.header_len = header_len
        self.codes = sorted(COMMANDS)
        self.seeds = seeds or []

    def _from_seed(self, rng: random.Random, header: bytes) -> bytes:
        code, fields = rng.choice(self.seeds)
        f = bytearray(fields)
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            m = rng.random()
            if m < 0.25 and f:
                del f[rng.randrange(len(f)) :]  # cut
            elif m < 0.45 and f:
                i = rng.randrange(len(f))
                f[i] = ord(rng.choice(HEX + ";UTXZ")) if rng.random() < 0.7 else rng.randrange(256)
            elif m < 0.7:
                i = rng.randint(0, len(f))
                f[i : i + rng.randint(0, 16)] = rng.choice(self.tokens)  # a token swapped in
            elif m < 0.85:
                other = rng.choice(self.seeds)[1]
                f = f[: rng.randint(0, len(f))] + other[rng.randint(0, len(other)) :]  # splice
            else:
                i = rng.randint(0, len(f))
                f[i:i] = rng.randbytes(rng.randint(1, 8))
        return header + code + bytes(f)

    def command(self, rng: random.Random, header: bytes) -> bytes:
        """One request body (header + command + fields), maybe mutated."""
        if self.seeds and rng.random() < 0.5:
            return self._from_seed(rng, header)
        pick = rng.random()
        if pick < 0.85:
            code = rng.choice(self.codes)
        elif pick < 0.95:
            code = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=2)).encode()
        else:
            code = rng.randbytes(2)
        parts = []
        for _ in range(rng.randint(0, 9)):
            r = rng.random()
            if r < 0.6:
                parts.append(rng.choice(self.tokens))
            elif r < 0.8:
                parts.append("".join(rng.choices(HEX, k=rng.choice((1, 4, 12, 16, 32, 48)))).encode())
            else:
                parts.append(rng.randbytes(rng.randint(1, 24)))
        body = bytearray(header + code + b"".join(parts))
        if rng.random() < 0.3:
            m = rng.random()
            cut = self.header_len + 2  # keep the header and code addressable
            if m < 0.4 and len(body) > cut:
                del body[rng.randint(cut, len(body)) :]
            elif m < 0.7 and len(body) > cut:
                i = rng.randrange(cut, len(body))
                body[i] ^= 1 << rng.randrange(8)
            else:
                i = rng.randint(cut, len(body))
                body[i:i] = rng.randbytes(rng.randint(1, 8))
        return bytes(body)


def _header(n: int, width: int) -> bytes:
    return str(n % 10**width).zfill(width).encode()


async def _read(reader: asyncio.StreamReader, timeout: float) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(2), timeout)
    return await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head)[0]), timeout)


async def fuzz_hsm(host: str, port: int, lmk: Lmk, n: int, seed: int, batch: int = 32) -> HsmFuzzStats:
    """Send ``n`` fuzzed commands in pipelined batches on one connection; check every reply."""
    rng = random.Random(seed)
    fuzzer = HsmFuzzer(lmk, seeds=await record_seeds(host, port, lmk))
    hl = fuzzer.header_len
    stats = HsmFuzzStats(seeds=len(fuzzer.seeds))
    reader, writer = await asyncio.open_connection(host, port)
    counter = 0
    try:
        while stats.sent < n:
            expected: list[tuple[bytes, bytes]] = []
            out = bytearray()
            for _ in range(min(batch, n - stats.sent)):
                counter += 1
                header = _header(counter, hl)
                body = fuzzer.command(rng, header)
                stats.sent += 1
                out += struct.pack(">H", len(body)) + body
                expected.append((header, body[hl : hl + 2]))
            if rng.random() < 0.05:  # a frame too short for header + command: no reply is possible
                out += struct.pack(">H", 3) + b"\x00\x01\x02"
                stats.unreadable += 1
            writer.write(bytes(out))
            for header, code in expected:
                try:
                    reply = await _read(reader, 5.0)
                except (asyncio.IncompleteReadError, ConnectionError):
                    stats.failures.append("the simulator dropped the connection")
                    return stats
                problem = _check(reply, header, code, hl)
                if problem:
                    stats.failures.append(problem)
                else:
                    stats.errors[reply[hl + 2 : hl + 4].decode()] += 1
                stats.answered += 1
    except TimeoutError:
        stats.failures.append("a command went unanswered (timeout)")
    finally:
        writer.transport.abort()
    return stats


def _check(reply: bytes, header: bytes, code: bytes, hl: int) -> str | None:
    if len(reply) < hl + 4:
        return "reply shorter than header + response code + error code"
    if reply[:hl] != header:
        return "reply out of order or header not echoed"
    if reply[hl : hl + 2] != bytes((code[0], (code[1] + 1) & 0xFF)):
        return "response code is not the command's second letter advanced"
    error = reply[hl + 2 : hl + 4]
    if not error.isdigit():
        return "error code is not 2 digits"
    if code not in COMMANDS and error != b"68":
        return "unknown command not answered 68"
    if error != b"00" and len(reply) != hl + 4:
        return "an error reply carries data"
    return None
