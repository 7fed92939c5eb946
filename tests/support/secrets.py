"""Find card data or keys in text: used on captured logs, replies, files and exception texts."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from functools import cache
from pathlib import Path

from switch.iso.codec import CodecError, decode_message
from switch.iso.layout import CHECK_HEX_TEXT, CHECK_NONE
from switch.iso.profiles import WireProfile
from switch.telemetry.masking import luhn_ok

ROOT = Path(__file__).resolve().parents[2]
#: the repository's copy of ../shared/vectors (a clean clone in CI may have no ../shared)
VECTORS = ROOT / "tests" / "iso" / "vectors"

_DIGITS = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


@cache
def known_secrets() -> frozenset[str]:
    """PIN blocks and clear keys of the public vectors (hex, upper case)."""
    out: set[str] = set()
    path = VECTORS / "spec_examples.json"
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


def find_known_secrets(text: str) -> list[str]:
    """Every known test key / PIN block (hex) in ``text``."""
    upper = text.upper()
    return [f"secret:{s[:4]}…" for s in known_secrets() if s in upper]


def find_secrets(text: str) -> list[str]:
    """Every full test PAN (Luhn-valid 13–19 digits with a test BIN) and known key / PIN block in ``text``."""
    hits = [
        m.group(0)[:6] + "…"
        for m in _DIGITS.finditer(text)
        if m.group(0).startswith(TEST_BIN_PREFIXES) and luhn_ok(m.group(0))
    ]
    return hits + find_known_secrets(text)


# ------------------------------------------------------------------------------- suite-wide scan surfaces

#: a file whose first line is a CSV header with one of these columns carries PANs by contract (SPEC §7:
#: the top-up ORDERS.csv input, the card issuance output for the card bureau)
_CARD_COLUMNS = frozenset({"pan", "card_number"})
#: files the tests declare as card-data inputs (provisioning files, order files, ...)
_ALLOWED_FILES: set[Path] = set()
_MAX_FILE_BYTES = 64 * 1024 * 1024


def allow_card_data(path: Path) -> None:
    """Declare a file a test wrote on purpose with card data in it (an input, not a product output)."""
    _ALLOWED_FILES.add(Path(path).resolve())


def _declares_card_data(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").strip().lower()
    if "," in first and _CARD_COLUMNS & {c.strip().strip('"') for c in first.split(",")}:
        return True
    # a provisioning file (SPEC §7) carries PANs, PINs and development TMKs by design
    return b"[[card]]" in head or b"[[terminal]]" in head


def scan_bytes(data: bytes) -> list[str]:
    """Secrets in raw bytes read as text (latin-1: every byte maps to one character)."""
    return find_secrets(data.decode("latin-1"))


_SQLITE_MAGIC = b"SQLite format 3\x00"
#: SQLite's side files: their pages are scanned through the database itself
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def scan_sqlite(path: Path) -> list[str]:
    """Secrets in any value of any table of a SQLite database. Cell by cell, because adjacent columns of
    a raw page can form a digit run no column holds (an RRN after a one-digit column looks like a PAN)."""
    hits: list[str] = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, str):
                        hits += find_secrets(value)
                    elif isinstance(value, bytes):
                        hits += scan_bytes(value)
    finally:
        con.close()
    return hits


def scan_tree(root: Path) -> list[str]:
    """Every file under ``root`` that holds card data or keys and is not a declared card-data input."""
    found: list[str] = []
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        try:
            if not path.is_file() or path.is_symlink() or path.resolve() in _ALLOWED_FILES:
                continue
            if path.stat().st_size > _MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if path.name.endswith(_SQLITE_SIDE_FILES) or path.suffix == ".lmk" or _declares_card_data(data[:4096]):
            continue  # an LMK file is a key file by definition (owner-only, checked by the HSM tests)
        if data.startswith(_SQLITE_MAGIC):
            try:
                hits = scan_sqlite(path)
            except sqlite3.Error:
                hits = scan_bytes(data)
        else:
            hits = scan_bytes(data)
        if hits:
            found.append(f"{path.relative_to(root)}: {hits[:3]}")
    return found


class SecretScan:
    """What the whole suite produced, scanned at the end of the session (``tests/conftest.py``): log lines
    (structlog and stdlib logging, exception tracebacks included), every reply the POS server wrote, and
    every file left under the session's temporary directories."""

    def __init__(self) -> None:
        self.logs = io.StringIO()
        self.reply_hits: list[str] = []
        self.replies = 0

    def record_reply(self, body: bytes, profile: WireProfile | None = None) -> None:
        """Scan one reply field by field (decoded with ``profile``): raw bytes would join adjacent fields
        (STAN + time + date in BCD, RRN + auth code in ASCII) into digit runs no field holds."""
        self.replies += 1
        hits: list[str] = []
        try:
            if profile is None:
                raise CodecError("?", -1, "no profile")
            msg = decode_message(body, profile)
        except CodecError:
            hits = scan_bytes(body)  # not ISO 8583 (a transport test's payload): as text
        else:
            fields = profile.layout.fields
            for key, value in msg.fields.items():
                f = fields[int(key)]
                # Binary content (keys under the TMK, MACs, PIN blocks) shown as hex is no place for a PAN,
                # and random key bytes beside field 62's zero filler form long digit runs: keys only there.
                binary = f is not None and ((f.binary and f.check == CHECK_NONE) or f.check == CHECK_HEX_TEXT)
                found = find_known_secrets(value) if binary else find_secrets(value)
                hits += [f"{msg.mti} field {key}: {h}" for h in found]
        if hits:
            self.reply_hits += hits

    def findings(self, roots: list[Path]) -> list[str]:
        out = [f"log: {h}" for h in find_secrets(self.logs.getvalue())]
        out += [f"reply: {h}" for h in self.reply_hits]
        for root in roots:
            out += [f"file: {h}" for h in scan_tree(root)]
        return out
