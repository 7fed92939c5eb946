"""The terminal's view of a provisioning file (SPEC §7), as a key-injection device and a test deck see it.

``[[terminal]]`` entries give TID, MID, kind and the clear TMK (``tmk``; a terminal provisioned only with
``tmk_lmk`` cannot be simulated: its TMK is not known outside the HSM); ``[[merchant]]`` gives the names
printed on receipts; ``[[card]]`` gives PANs, clear development PINs, expiry dates, statuses and opening
balances. Nothing here is ever printed: ``repr`` masks PANs and hides PINs and keys.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.telemetry.masking import mask_pan


class KeysFileError(ValueError):
    """The keys file cannot be used (the text names the entry and key, never a secret)."""


@dataclass(frozen=True)
class TerminalKey:
    """One terminal of the keys file; ``tmk`` is the clear TMK (``None`` when only ``tmk_lmk`` is given)."""

    tid: str
    mid: str
    kind: str = "pos"
    tmk: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Merchant:
    mid: str
    name: str = ""
    status: str = "active"


@dataclass(frozen=True)
class TestCard:
    """A test card: PAN, clear PIN (``""`` when only an offset is provisioned), expiry YYMM, status."""

    pan: str = field(repr=False)
    pin: str = field(default="", repr=False)
    expiry: str = ""
    status: str = "active"
    balance: int = 0
    member_id: str = ""

    @property
    def masked(self) -> str:
        return mask_pan(self.pan)

    def __repr__(self) -> str:
        return f"TestCard({self.masked}, status={self.status!r}, expiry={self.expiry!r})"


@dataclass(frozen=True)
class KeysFile:
    terminals: tuple[TerminalKey, ...] = ()
    merchants: dict[str, Merchant] = field(default_factory=dict)
    cards: tuple[TestCard, ...] = ()

    def terminal(self, tid: str) -> TerminalKey:
        for t in self.terminals:
            if t.tid == tid:
                return t
        raise KeysFileError(f"terminal {tid} is not in the keys file")

    def card(self, pan: str) -> TestCard | None:
        for c in self.cards:
            if c.pan == pan:
                return c
        return None

    def merchant_name(self, mid: str) -> str:
        m = self.merchants.get(mid)
        return m.name if m is not None else ""


def _str(entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise KeysFileError(f"{where}: {key} must be a string")
    return value


def _tmk(entry: dict[str, Any], where: str) -> bytes | None:
    if "tmk" not in entry:
        return None
    hexed = _str(entry, "tmk", where)
    try:
        key = bytes.fromhex(hexed)
    except ValueError:
        raise KeysFileError(f"{where}: tmk must be hex") from None
    if len(key) not in (16, 24):
        raise KeysFileError(f"{where}: tmk must be a double- or triple-length key")
    return key


def parse_keys(data: dict[str, Any]) -> KeysFile:
    """Build a :class:`KeysFile` from a parsed provisioning TOML document."""
    terminals = []
    for i, t in enumerate(data.get("terminal", [])):
        where = f"terminal[{i}]"
        tid, mid = _str(t, "tid", where), _str(t, "mid", where)
        if len(tid) != 8 or len(mid) != 15:
            raise KeysFileError(f"{where}: tid must be 8 and mid 15 characters")
        terminals.append(TerminalKey(tid, mid, _str(t, "kind", where, "pos"), _tmk(t, where)))
    merchants = {}
    for i, m in enumerate(data.get("merchant", [])):
        where = f"merchant[{i}]"
        mid = _str(m, "mid", where)
        merchants[mid] = Merchant(mid, _str(m, "name", where, ""), _str(m, "status", where, "active"))
    cards = []
    for i, c in enumerate(data.get("card", [])):
        where = f"card[{i}]"
        pan = _str(c, "pan", where)
        if not (pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19):
            raise KeysFileError(f"{where}: pan must be 13 to 19 digits")
        balance = c.get("balance", 0)
        if not isinstance(balance, int):
            raise KeysFileError(f"{where}: balance must be an integer (fen)")
        cards.append(
            TestCard(
                pan,
                _str(c, "pin", where, ""),
                _str(c, "expiry", where, ""),
                _str(c, "status", where, "active"),
                balance,
                _str(c, "member_id", where, ""),
            )
        )
    return KeysFile(tuple(terminals), merchants, tuple(cards))


def load_keys(path: Path) -> KeysFile:
    """Read a provisioning file; :class:`KeysFileError` when it cannot be read or used."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeysFileError(f"cannot read keys file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeysFileError(f"keys file {path} is not valid TOML: {exc}") from None
    return parse_keys(data)
