"""The simulator's fast readers of the switch's own M6/M8/DA layouts answer exactly as the field-by-field
readers: every command below, and thousands of mutations of it, gets the same error code and reply from a
device whose keys are already in use (fast path) as from a fresh one (general path)."""

from __future__ import annotations

import random
from pathlib import Path

from hsm_sim.device import Device
from hsm_sim.lmk import Lmk
from hsm_sim.mailer import PinMailer
from hsm_sim.server import ServerStats, execute
from switch.crypto.des import encrypt_ecb
from switch.crypto.pinblock import format_iso0
from switch.hsm.dev import DEV_DECIMALIZATION_TABLE, DEV_PVK_LMK

PAN = "9900010000000019"
ACCT = PAN[-13:-1]
LMK = Lmk.test_set()


def _device(tmp: Path) -> Device:
    return Device(LMK, PinMailer(tmp / "mailer.jsonl"))


def _ok(dev: Device, code: bytes, fields: bytes) -> bytes:
    err, data = execute(dev, code, fields, ServerStats())
    assert err == b"00", (code, err)
    return data


def _commands(dev: Device) -> list[tuple[bytes, bytes]]:
    tak = _ok(dev, b"A0", b"0003Z").decode()[:16]
    tak_u = _ok(dev, b"A0", b"0003U").decode()[:33]
    tpk = _ok(dev, b"A0", b"0002U").decode()[:33]
    pin_lmk = _ok(dev, b"BA", b"123456FFFFFFF" + ACCT.encode()).decode()
    fields = f"{DEV_PVK_LMK}{pin_lmk}06{ACCT}{DEV_DECIMALIZATION_TABLE}{ACCT}".encode()
    offset = _ok(dev, b"DE", fields).decode().rstrip("F")
    block = encrypt_ecb(dev.clear_key("002", tpk, "10"), format_iso0("123456", PAN)).hex().upper()
    out: list[tuple[bytes, bytes]] = []
    for key in (tak, tak_u):
        data = bytes(range(5, 97))
        head = f"00091003{key}{len(data):04X}".encode()
        mac = _ok(dev, b"M6", head + data)
        out += [(b"M6", head + data), (b"M8", head + data + mac), (b"M8", head + data + mac.lower())]
    for pin_field in (offset, "0000"):
        tail = f"12{block}0104{ACCT}{DEV_DECIMALIZATION_TABLE}{ACCT}{pin_field.ljust(12, 'F')}"
        out.append((b"DA", f"{tpk}{DEV_PVK_LMK}{tail}".encode()))
    return out


def _mutations(rng: random.Random, body: bytes, n: int) -> list[bytes]:
    out = [body, body + b"%00", body + b"%01", body[:-1], body + b"0"]
    alphabet = b"0123456789ABCDEFabcdefXUZT %\x00\xff"
    for _ in range(n):
        b = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.6:
                b[i] = rng.choice(alphabet)
            elif op < 0.8:
                del b[i]
            else:
                b.insert(i, rng.choice(alphabet))
        out.append(bytes(b))
    return out


def test_fast_readers_answer_as_the_general_ones(tmp_path: Path) -> None:
    warm = _device(tmp_path)
    commands = _commands(warm)
    rng = random.Random(1500)
    for code, body in commands:
        for variant in _mutations(rng, body, 300):
            cold = _device(tmp_path)  # no key in use yet: the general reader decides
            general = execute(cold, code, variant, ServerStats())
            fast = execute(warm, code, variant, ServerStats())
            assert fast == general, (code, variant)
