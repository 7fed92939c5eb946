"""The engine's reply encoder (memoised fields) writes exactly what the codec writes."""

from __future__ import annotations

import random

import pytest

from switch.iso.codec import CodecError, encode_message
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage
from switch.iso.profiles import PROFILES
from switch.iso.tpdu import Tpdu
from switch.pipeline.replycodec import ReplyEncoder


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _reply(rng: random.Random, profile: str) -> IsoMessage:
    f: dict[str, str] = {
        "3": rng.choice(["000000", "310000", "200000", "630000"]),
        "4": _digits(rng, 12),
        "11": _digits(rng, 6),
        "12": _digits(rng, 6),
        "13": _digits(rng, 4),
        "25": "00",
        "39": rng.choice(["00", "51", "55", "A0", "96"]),
        "41": rng.choice(["10000001", "10000002"]),
        "42": "898520154110001",
        "49": "156",
        "60": "22" + _digits(rng, 6) + rng.choice(["", "000"]),
    }
    for k, v in {
        "15": _digits(rng, 4),
        "32": rng.choice(["990001", "9900011"]),
        "37": _digits(rng, 12),
        "38": _digits(rng, 6),
        "54": "1002156C" + _digits(rng, 12),
        "48": _digits(rng, 62),
        "62": "".join(rng.choice("0123456789ABCDEF") for _ in range(120)),
        "64": rng.choice(["0" * 16, "".join(rng.choice("0123456789ABCDEF") for _ in range(16))]),
    }.items():
        if rng.random() < 0.6:
            f[k] = v
    keys = list(f)
    rng.shuffle(keys)
    msg = IsoMessage(rng.choice(["0210", "0230", "0410", "0810", "0830", "0510"]), {k: f[k] for k in keys})
    if profile == "cup":
        msg.tpdu = Tpdu(rng.choice(["0000", "0003"]), rng.choice(["0000", "0012"]))
        msg.header = CupHeader("60", "31", "0", rng.choice("03"), "310000")
    return msg


@pytest.mark.parametrize("profile", ["cup", "iso87"])
def test_reply_encoder_equals_the_codec(profile: str) -> None:
    rng = random.Random(8583)
    enc = ReplyEncoder(PROFILES[profile])
    for _ in range(3000):
        msg = _reply(rng, profile)
        assert enc.encode(msg) == encode_message(msg, PROFILES[profile])


@pytest.mark.parametrize("profile", ["cup", "iso87"])
def test_reply_encoder_rejects_what_the_codec_rejects(profile: str) -> None:
    enc = ReplyEncoder(PROFILES[profile])
    rng = random.Random(1)
    for bad in ({"39": "0"}, {"41": "1234567"}, {"4": "12x"}, {"129": "1"}, {"07": "1"}, {"64": "XYZ"}):
        msg = _reply(rng, profile)
        msg.fields.update(bad)
        with pytest.raises(CodecError):
            encode_message(msg, PROFILES[profile])
        with pytest.raises(CodecError):
            enc.encode(msg)
