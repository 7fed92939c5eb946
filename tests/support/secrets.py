"""Find card data or keys in text: used on captured logs, replies, files and exception texts."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from switch.telemetry.masking import luhn_ok

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

_DIGITS = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


@cache
def known_secrets() -> frozenset[str]:
    """PIN blocks and clear keys of the public vectors (hex, upper case)."""
    out: set[str] = set()
    path = SHARED / "vectors" / "spec_examples.json"
    if path.exists():
        ex = json.loads(path.read_text())
        for k in (
            "tmk_clear",
            "pik_clear",
            "mak_clear",
            "tdk_clear",
            "pinblock_iso0_clear",
            "pinblock_iso0_under_pik",
            "pvk",
        ):
            if k in ex:
                out.add(str(ex[k]).upper())
    return frozenset(out)


#: BIN prefixes of the test cards (program BIN and the public vectors' test PANs)
TEST_BIN_PREFIXES = ("990001", "555555", "400000", "899881", "112233", "123456", "222222", "443367")


def find_secrets(text: str) -> list[str]:
    """Every full test PAN (Luhn-valid 13–19 digits with a test BIN) and known key / PIN block in ``text``."""
    hits = [
        m.group(0)[:6] + "…"
        for m in _DIGITS.finditer(text)
        if m.group(0).startswith(TEST_BIN_PREFIXES) and luhn_ok(m.group(0))
    ]
    upper = text.upper()
    hits += [f"secret:{s[:4]}…" for s in known_secrets() if s in upper]
    return hits
