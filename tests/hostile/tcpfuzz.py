"""Fuzzing a running switch over real TCP (used by ``tests/hostile`` and ``scripts/soak.py``).

Each fuzz input is sent as one well-framed request on a long connection; :func:`fuzzgen.server_must_answer`
says what SPEC §5.1 demands of it and the run checks exactly that:

- answerable (a decodable request, or MTI, 11, 41, 42 readable): one reply arrives, with the reply MTI, and
  RC 30 plus the request's own 11/41/42 when the request did not decode;
- unanswerable: no reply, the switch closes that connection (the runner reconnects);
- a decodable non-request (a stray response): the SPEC is silent; the runner probes with an echo and accepts
  either a kept or a closed connection, but never a reply to the stray message.

Meanwhile a healthy terminal on its own connection keeps sending echoes; every one must be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from switch.iso.codec import CodecError, decode_message, encode_message
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage, reply_mti
from switch.iso.profiles import PROFILES, WireProfile
from switch.iso.tpdu import Tpdu
from tests.hostile.fuzzgen import check_decode, field_value, fuzz_body, server_must_answer
from tests.support.pos import PosTerminal, parse_field62_keys

REPLY_TIMEOUT_S = 5.0


@dataclass
class TcpFuzzStats:
    sent: int = 0
    answered: int = 0
    rc30: int = 0
    closed: int = 0
    stray: int = 0
    healthy_answered: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    rcs: Counter[str] = field(default_factory=Counter)
    healthy_rcs: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def merge(self, other: TcpFuzzStats) -> None:
        for name in ("sent", "answered", "rc30", "closed", "stray", "healthy_answered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.kinds.update(other.kinds)
        self.rcs.update(other.rcs)
        self.healthy_rcs.update(other.healthy_rcs)
        self.failures += other.failures


def echo_body(profile: WireProfile, stan: str, tid: str = "10000001") -> bytes:
    msg = IsoMessage(mti="0820", fields={"11": stan, "41": tid, "42": "898520154110001", "60": "00000001301"})
    if profile.has_tpdu:
        msg.tpdu, msg.header = Tpdu("0003", "0000"), CupHeader()
    return encode_message(msg, profile)


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def read_frame(self) -> bytes | None:
        """The next frame, or None when the switch closed the connection."""
        assert self.reader is not None
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), REPLY_TIMEOUT_S)
            return await asyncio.wait_for(self.reader.readexactly(struct.unpack(">H", head)[0]), REPLY_TIMEOUT_S)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None


async def _healthy(
    host: str, port: int, profile: WireProfile, stop: asyncio.Event, stats: TcpFuzzStats, tid: str
) -> None:
    conn = _Conn(host, port)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            stan = f"{900000 + n % 100000:06d}"
            _r, w = await conn.ensure()
            w.write(struct.pack(">H", len(body := echo_body(profile, stan, tid))) + body)
            reply = await conn.read_frame()
            if reply is None:
                stats.failures.append("healthy connection was closed")
                return
            msg = decode_message(reply, profile)
            if msg.fields.get("11") != stan or msg.mti != "0830":
                stats.failures.append("healthy echo got a wrong answer")
                return
            stats.healthy_rcs[msg.fields.get("39", "")] += 1
            stats.healthy_answered += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.005)
    except TimeoutError:
        stats.failures.append("healthy echo unanswered")
    finally:
        conn.drop()


def _check_reply(reply: bytes, body: bytes, profile: WireProfile, stats: TcpFuzzStats) -> str | None:
    """None if ``reply`` is a correct answer to ``body``, else what is wrong."""
    try:
        msg = decode_message(reply, profile)
    except Exception:
        return "the switch sent a reply that does not decode"
    outcome = check_decode(body, profile)
    rc = msg.fields.get("39", "")
    stats.rcs[rc] += 1
    if outcome.ok:
        assert outcome.message is not None
        request = outcome.message
    else:
        assert outcome.error is not None
        partial = outcome.error.partial
        request = IsoMessage(mti=partial["t"], fields={k: partial[k] for k in ("11", "41", "42")})
        if rc != "30":
            return f"undecodable request answered {rc!r}, not 30"
        stats.rc30 += 1
    if msg.mti != reply_mti(request.mti):
        return "reply MTI is not the request MTI + 10"
    for k in ("11", "41", "42"):
        if k in request.fields and msg.fields.get(k) != request.fields[k]:
            return f"reply does not echo field {k}"
    return None


async def fuzz_switch(
    host: str,
    port: int,
    profile_name: str,
    n: int,
    seed: int,
    body_source: Callable[[random.Random, WireProfile], tuple[str, bytes]] = fuzz_body,
    healthy_tid: str = "10000001",
) -> TcpFuzzStats:
    """Send ``n`` fuzz inputs to the switch at ``host:port`` and check every outcome (see module docstring)."""
    profile = PROFILES[profile_name]
    rng = random.Random(seed)
    stats = TcpFuzzStats()
    stop = asyncio.Event()
    healthy = asyncio.create_task(_healthy(host, port, profile, stop, stats, healthy_tid))
    conn = _Conn(host, port)
    probe = 0
    try:
        for _ in range(n):
            kind, body = body_source(rng, profile)
            if not 0 < len(body) <= 2048:
                continue  # not well framed: the framing tests own those
            expect = server_must_answer(body, profile)
            stats.sent += 1
            stats.kinds[kind] += 1
            _r, w = await conn.ensure()
            w.write(struct.pack(">H", len(body)) + body)
            if expect is True:
                reply = await conn.read_frame()
                if reply is None:
                    stats.failures.append(f"answerable request ({kind}) got no reply")
                    conn.drop()
                    continue
                problem = _check_reply(reply, body, profile, stats)
                if problem:
                    stats.failures.append(f"{problem} ({kind})")
                stats.answered += 1
            elif expect is False:
                reply = await conn.read_frame()
                if reply is not None:
                    stats.failures.append(f"unanswerable request ({kind}) got a reply")
                stats.closed += 1
                conn.drop()
            else:
                stats.stray += 1
                probe += 1
                stan = f"{probe % 1000000:06d}"
                with contextlib.suppress(ConnectionError):
                    w.write(struct.pack(">H", len(p := echo_body(profile, stan))) + p)
                reply = await conn.read_frame()
                if reply is None:
                    conn.drop()  # closed on the stray response: allowed
                elif decode_message(reply, profile).fields.get("11") != stan:
                    stats.failures.append("a stray response was answered")
    except TimeoutError:
        stats.failures.append("the switch stopped answering (timeout)")
    finally:
        conn.drop()
        stop.set()
        await healthy
    return stats


# ----------------------------------------------------------------------------------- business-level fuzz

#: transaction templates of SPEC §4: (name, MTI, 3, 60.1, 60.3, MACed)
TEMPLATES = (
    ("signon", "0800", None, "00", "004", False),
    ("echo", "0820", None, "00", "301", False),
    ("signoff", "0820", None, "00", "002", False),
    ("balance", "0200", "310000", "01", "000", True),
    ("purchase", "0200", "000000", "22", "000", True),
    ("void", "0200", "200000", "23", "000", True),
    ("refund", "0220", "200000", "25", "000", True),
    ("topup", "0200", "630000", "48", "000", True),
    ("pinchange", "0200", "700000", "70", "000", True),
    ("reversal", "0400", "000000", "22", "000", True),
    ("settle", "0500", None, "00", "201", False),
)


def business_request(
    rng: random.Random, pos: PosTerminal, cards: list[tuple[str, str]], last_stan: str | None
) -> tuple[str, str, dict[str, str], str]:
    """A SPEC §4 request for ``pos`` with 0-3 field-level mutations: (template, MTI, fields, MAC mode).

    MAC mode: ``"good"`` (under the terminal's MAK), ``"bad"`` or ``"none"``.
    """
    name, mti, pcode, type_code, nmic, maced = rng.choice(TEMPLATES)
    pan, pin = rng.choice(cards)
    f = pos.base(type_code, nmic)
    if pcode is not None:
        f.update({"3": pcode, "22": "011", "25": "00", "49": "156", "2": pan, "14": "3012"})
        f["4"] = f"{rng.choice((1, 100, 10000, rng.randint(0, 10**7))):012d}"
        if rng.random() < 0.7 and "pik" in pos.keys:
            f["52"] = pos.pin_block(pin if rng.random() < 0.8 else "000000", pan)
            f["53"] = "2600000000000000"
    if name == "signon":
        f["63"] = "001"
    if name in ("void", "refund"):
        f["37"] = "".join(rng.choices("0123456789", k=12))
        f["61"] = pos.batch + f"{rng.randint(1, 999999):06d}"
    if name == "reversal":
        f["39"] = rng.choice(("98", "06", "A0"))
        if last_stan is not None:
            f["11"] = last_stan
    if name == "settle":
        f["48"] = "0" * 62
        f["63"] = "001"
    if name == "pinchange" and "pik" in pos.keys:
        f["62"] = pos.pin_block("654321", pan)
    layout = PROFILES[pos.profile].layout
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        action = rng.random()
        if action < 0.25 and f:
            f.pop(rng.choice(sorted(f)))  # a mandatory field goes missing
        elif action < 0.6:
            key = rng.choice(sorted(f) or ["4"])
            lay = layout.fields[int(key)]
            if lay is not None:
                f[key] = field_value(rng, lay)  # well-formed but wrong content
        elif action < 0.75:
            lay = rng.choice([x for x in layout.fields[2:64] if x is not None and x.key != "64"])
            f[lay.key] = field_value(rng, lay)  # a field nobody asked for
        elif action < 0.85 and last_stan is not None:
            f["11"] = last_stan  # a retransmission, or the same key with other content
        else:
            f["2"] = rng.choice((pan[:-1] + str((int(pan[-1]) + 1) % 10), "9900019999999999", pan))
    mode = "none" if not maced else rng.choices(("good", "bad", "none"), (90, 5, 5))[0]
    return name, mti, f, mode


async def fuzz_business(pos: PosTerminal, cards: list[tuple[str, str]], n: int, seed: int) -> TcpFuzzStats:
    """``n`` mutated SPEC §4 requests from a signed-on terminal, correctly MACed most of the time: every one
    must be answered with its reply MTI and STAN (deep fuzz: past parsing, into the authorization rules)."""
    rng = random.Random(seed)
    stats = TcpFuzzStats()
    last_stan: str | None = None
    for _ in range(n):
        name, mti, fields, mode = business_request(rng, pos, cards, last_stan)
        try:
            body = pos.encode(mti, fields, mac=mode != "none", mak=bytes(8) if mode == "bad" else None)
        except CodecError:
            continue
        if len(body) > 2048:
            continue  # not well framed: closing on it is the framing tests' business
        stats.sent += 1
        stats.kinds[name] += 1
        try:
            ans = await pos.send_body(body, timeout=REPLY_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            stats.failures.append(f"{name}: no reply")
            return stats
        stats.answered += 1
        stats.rcs[ans.rc] += 1
        if ans.msg.mti != reply_mti(mti) or ans.f.get("11") != fields.get("11"):
            stats.failures.append(f"{name}: reply does not match its request")
        last_stan = fields.get("11", last_stan)
        if mti == "0800" and ans.rc == "00" and "62" in ans.f:
            pos.keys = parse_field62_keys(ans.f["62"], pos.tmk)
            pos.batch = ans.f["60"][2:8]
        elif ans.header_requirement == "3" or ans.rc == "A0":
            again = await pos.signon()  # as a real terminal does
            stats.answered += 1
            stats.rcs[again.rc] += 1
    return stats
