"""CSV input of the back office: union members (``cards issue``) and employer top-up orders (``topup import``).

Files are UTF-8 (a BOM, as spreadsheet exports write it, is accepted), comma-separated, with a header line
(see :func:`_rows` for the spellings accepted and for files without one).
Each data line is validated on its own and yields either a parsed record or a reason (``bad_mobile``...)
that ends up as ``rejected:<reason>`` in the per-line result file. Reasons never quote the offending value.
Amounts are yuan with two decimals in the file and integer fen in memory (:mod:`switch.backoffice.money`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from switch.backoffice.money import AmountError, parse_yuan
from switch.errors import HandledError
from switch.telemetry.masking import luhn_ok

MEMBER_COLUMNS = ("member_id", "name", "mobile", "employer_id")
ORDER_COLUMNS = ("order_id", "employer_id", "pan", "amount", "item", "note")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_PAN = re.compile(r"^\d{13,19}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAX_NAME = 64
MAX_ITEM = 64
MAX_NOTE = 200


@dataclass(frozen=True, slots=True)
class Member:
    line: int
    member_id: str
    name: str
    mobile: str
    employer_id: str


@dataclass(frozen=True, slots=True)
class Order:
    line: int
    order_id: str
    employer_id: str
    pan: str
    amount_fen: int
    item: str
    note: str

    def __repr__(self) -> str:  # never show the PAN
        return f"Order(line={self.line}, order_id={self.order_id!r}, amount_fen={self.amount_fen})"


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that failed validation; ``key`` is what could be read of its identifier (may be empty)."""

    line: int
    key: str
    reason: str
    employer_id: str = ""
    pan: str = ""
    amount_text: str = ""

    def __repr__(self) -> str:
        return f"BadLine(line={self.line}, key={self.key!r}, reason={self.reason!r})"


def _open_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise HandledError(f"input file not found: {path}") from exc
    except OSError as exc:
        raise HandledError(f"cannot read input file {path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HandledError(f"input file {path} is not UTF-8 (byte {exc.start})") from exc


#: other spellings of a column name accepted in a header line (after lower-casing; spaces/hyphens → ``_``)
ALIASES = {"member": "member_id", "memberid": "member_id", "employer": "employer_id", "phone": "mobile"}


def _column_name(cell: str) -> str:
    name = re.sub(r"[\s\-]+", "_", cell.strip().lower())
    return ALIASES.get(name, name)


def _rows(text: str, columns: Sequence[str], path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, cells in ``columns`` order) for every non-blank data line.

    The first non-blank line is the header (columns in any order, extra columns ignored, :data:`ALIASES`
    accepted). A first line that names none of the columns but has exactly their number of cells is taken as
    data in the documented column order (a file exported without its header line).
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    header: list[str] | None = None
    index: list[int] = []
    for row in reader:
        lineno = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            names = [_column_name(c) for c in row]
            if not set(names) & set(columns) and len(row) == len(columns):
                header, index = list(columns), list(range(len(columns)))
            else:
                missing = [c for c in columns if c not in names]
                if missing:
                    raise HandledError(f"{path}: header line lacks column(s) {', '.join(missing)}")
                header, index = names, [names.index(c) for c in columns]
                continue
        if len(row) != len(header):
            yield lineno, []
            continue
        yield lineno, [row[i].strip() for i in index]
    if header is None:
        raise HandledError(f"{path}: empty file (a header line is required)")


def _text_ok(value: str, limit: int) -> bool:
    return len(value) <= limit and not _CONTROL.search(value)


def parse_members(path: Path) -> Iterator[Member | BadLine]:
    for lineno, cells in _rows(_open_text(path), MEMBER_COLUMNS, path):
        if not cells:
            yield BadLine(lineno, "", "bad_line")
            continue
        member_id, name, mobile, employer_id = cells
        reason = ""
        if not _ID.match(member_id):
            reason = "bad_member_id"
        elif not name or not _text_ok(name, MAX_NAME):
            reason = "bad_name"
        elif not _MOBILE.match(mobile):
            reason = "bad_mobile"
        elif not _ID.match(employer_id):
            reason = "bad_employer_id"
        if reason:
            yield BadLine(lineno, member_id if _ID.match(member_id) else "", reason)
        else:
            yield Member(lineno, member_id, name, mobile, employer_id)


def validate_order_cells(lineno: int, cells: list[str]) -> Order | BadLine:
    order_id, employer_id, pan, amount, item, note = cells
    key = order_id if _ID.match(order_id) else ""
    safe_pan = pan if _PAN.match(pan) else ""
    if not key:
        return BadLine(lineno, "", "bad_order_id", pan=safe_pan, amount_text=amount)
    if not _ID.match(employer_id):
        return BadLine(lineno, key, "bad_employer_id", pan=safe_pan, amount_text=amount)
    if not _PAN.match(pan) or not luhn_ok(pan):
        return BadLine(lineno, key, "bad_pan", employer_id=employer_id, amount_text=amount)
    try:
        fen = parse_yuan(amount)
    except AmountError:
        fen = 0
    if fen <= 0:
        return BadLine(lineno, key, "bad_amount", employer_id=employer_id, pan=pan, amount_text=amount)
    if not _text_ok(item, MAX_ITEM):
        return BadLine(lineno, key, "bad_item", employer_id=employer_id, pan=pan, amount_text=amount)
    if not _text_ok(note, MAX_NOTE):
        return BadLine(lineno, key, "bad_note", employer_id=employer_id, pan=pan, amount_text=amount)
    return Order(lineno, order_id, employer_id, pan, fen, item, note)


def parse_orders(path: Path) -> Iterator[Order | BadLine]:
    for lineno, cells in _rows(_open_text(path), ORDER_COLUMNS, path):
        if not cells:
            yield BadLine(lineno, "", "bad_line")
            continue
        yield validate_order_cells(lineno, cells)


def count_data_lines(path: Path) -> int:
    """Rough number of data lines (for the progress display): newline count minus the header."""
    with open(path, "rb") as fh:
        n = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return max(n - 1, 0)


class AtomicTextWriter:
    """Write a UTF-8 text file atomically (temp file in the same directory, fsync, rename), owner-only.

    Use as a context manager; the target appears only when the block exits without an exception, and the
    temporary file never outlives the block.
    """

    def __init__(self, path: Path, *, mode: int = 0o600) -> None:
        self.path = Path(path)
        self.mode = mode
        self._tmp: str = ""
        self._fh: io.TextIOWrapper | None = None

    def __enter__(self) -> AtomicTextWriter:
        directory = self.path.parent if str(self.path.parent) else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        os.fchmod(fd, self.mode)
        self._fh = open(fd, "w", encoding="utf-8", newline="")
        return self

    @property
    def stream(self) -> io.TextIOWrapper:
        assert self._fh is not None, "use inside the with block"
        return self._fh

    def write(self, text: str) -> None:
        self.stream.write(text)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._fh is not None
        try:
            if exc_type is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
                fsync_dir(self.path.parent)
        finally:
            if not self._fh.closed:
                self._fh.close()
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


class AtomicCsvWriter(AtomicTextWriter):
    """:class:`AtomicTextWriter` for CSV (LF line ends): the header row first, then :meth:`row` per line."""

    def __init__(self, path: Path, header: Sequence[str], *, mode: int = 0o600) -> None:
        super().__init__(path, mode=mode)
        self.header = list(header)
        self._csv: _CsvOut | None = None

    def __enter__(self) -> AtomicCsvWriter:
        super().__enter__()
        self._csv = _CsvOut(self.stream)
        self._csv.row(self.header)
        return self

    def row(self, cells: Sequence[object]) -> None:
        assert self._csv is not None
        self._csv.row(cells)


class _CsvOut:
    def __init__(self, fh: io.TextIOWrapper) -> None:
        self._w = csv.writer(fh, lineterminator="\n")

    def row(self, cells: Sequence[object]) -> None:
        self._w.writerow(cells)


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it is durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(directory) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
