"""What a POS terminal remembers between transactions, and the owner-only file it lives in.

A UnionPay terminal keeps its batch number, trace number (STAN), working keys, the reversal it still owes
and the journal of the open batch in battery-backed memory. Here that is one JSON file per terminal,
``<state dir>/<TID>.json``, written atomically (temp file, fsync, rename) with mode ``0600`` in a ``0700``
directory, since it holds the working keys. It never holds a full PAN, track data or PIN block: the
pending reversal keeps only the fields a reversal carries, journal entries keep the masked PAN.

:class:`StateStore` also takes an exclusive lock per terminal (``<TID>.lock``) so that two commands never
interleave one terminal's STANs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 1
#: approved purchases remembered after their batch closed, for refunds (a real terminal keeps a few)
HISTORY_LIMIT = 200


class StateError(Exception):
    """The state file cannot be read, written or locked (never carries key material)."""


@dataclass(frozen=True)
class WorkingKeys:
    """Clear working keys recovered from the sign-on reply (``repr`` hides them)."""

    pik: bytes = field(repr=False)
    mak: bytes = field(repr=False)
    tdk: bytes = field(default=b"", repr=False)


@dataclass
class BatchTotals:
    """The terminal's own totals for batch settlement (SPEC §4 field 48)."""

    debit_amount: int = 0
    debit_count: int = 0
    credit_amount: int = 0
    credit_count: int = 0

    @property
    def empty(self) -> bool:
        return not (self.debit_count or self.credit_count)


@dataclass
class JournalEntry:
    """One approved transaction of this terminal. ``pan`` is kept in memory only, never written."""

    kind: str
    stan: str
    batch: str
    amount: int
    rrn: str = ""
    auth: str = ""
    #: field 13 of the reply (MMDD): the original date a refund quotes in 61
    date: str = ""
    masked_pan: str = ""
    voided: bool = False
    refunded: int = 0
    pan: str = field(default="", repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["pan"]
        return d


@dataclass
class PendingReversal:
    """A reversal the terminal owes: the original request's fields (3, 4, 11, 22, 25, 41, 42, 49, 60) and
    the reason (``98`` no reply, ``A0`` bad reply MAC, ``06`` other)."""

    kind: str
    fields: dict[str, str]
    reason: str = "98"
    attempts: int = 0

    @property
    def stan(self) -> str:
        return self.fields["11"]

    @property
    def amount(self) -> int:
        return int(self.fields.get("4", "0") or "0")


@dataclass
class TerminalState:
    tid: str
    mid: str
    batch: str = "000000"
    stan: int = 0
    keys: WorkingKeys | None = None
    pending: PendingReversal | None = None
    totals: BatchTotals = field(default_factory=BatchTotals)
    #: approved transactions of the open batch
    journal: list[JournalEntry] = field(default_factory=list)
    #: approved purchases of closed batches (refunds), newest last, at most ``HISTORY_LIMIT``
    history: list[JournalEntry] = field(default_factory=list)
    #: no keys yet, batch settled, or the switch said "sign on again": sign on before the next request
    needs_signon: bool = True

    def next_stan(self) -> str:
        """The next trace number, 000001..999999 then round again."""
        self.stan = self.stan % 999_999 + 1
        return f"{self.stan:06d}"

    def open_batch(self, batch: str) -> None:
        """Start ``batch``: the journal's purchases move to the history, totals restart."""
        if batch == self.batch:
            return
        self.history.extend(e for e in self.journal if e.kind == "purchase" and not e.voided)
        del self.history[:-HISTORY_LIMIT]
        self.journal = []
        self.totals = BatchTotals()
        self.batch = batch

    def find(self, *, stan: str = "", rrn: str = "") -> JournalEntry | None:
        """The newest journal (then history) entry with that STAN or RRN."""
        for entry in (*reversed(self.journal), *reversed(self.history)):
            if (stan and entry.stan == stan) or (rrn and entry.rrn == rrn):
                return entry
        return None

    # -- persistence --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        keys = None
        if self.keys is not None:
            keys = {
                "pik": self.keys.pik.hex().upper(),
                "mak": self.keys.mak.hex().upper(),
                "tdk": self.keys.tdk.hex().upper(),
            }
        return {
            "version": STATE_VERSION,
            "tid": self.tid,
            "mid": self.mid,
            "batch": self.batch,
            "stan": self.stan,
            "keys": keys,
            "pending_reversal": None if self.pending is None else asdict(self.pending),
            "totals": asdict(self.totals),
            "journal": [e.to_json() for e in self.journal],
            "history": [e.to_json() for e in self.history],
            "needs_signon": self.needs_signon,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TerminalState:
        if d.get("version") != STATE_VERSION:
            raise StateError("state file version not supported")
        try:
            k = d.get("keys")
            keys = (
                None
                if not k
                else WorkingKeys(bytes.fromhex(k["pik"]), bytes.fromhex(k["mak"]), bytes.fromhex(k.get("tdk", "")))
            )
            p = d.get("pending_reversal")
            pending = None if not p else PendingReversal(p["kind"], dict(p["fields"]), p["reason"], p["attempts"])
            return cls(
                tid=d["tid"],
                mid=d["mid"],
                batch=d["batch"],
                stan=int(d["stan"]),
                keys=keys,
                pending=pending,
                totals=BatchTotals(**d["totals"]),
                journal=[JournalEntry(**e) for e in d["journal"]],
                history=[JournalEntry(**e) for e in d["history"]],
                needs_signon=bool(d.get("needs_signon", keys is None)),
            )
        except (KeyError, TypeError, ValueError):
            raise StateError("state file is damaged") from None


class StateStore:
    """Terminal state files under one directory (created ``0700``; files ``0600``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, tid: str) -> Path:
        return self.directory / f"{tid}.json"

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.directory}: {exc.strerror}") from None

    def load(self, tid: str, mid: str) -> TerminalState:
        """The saved state of ``tid``, or a fresh one (never signed on) when there is none."""
        path = self.path(tid)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return TerminalState(tid, mid)
        except OSError as exc:
            raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise StateError(f"state file {path} is damaged") from None
        state = TerminalState.from_json(data)
        if state.tid != tid:
            raise StateError(f"state file {path} belongs to another terminal")
        state.mid = mid
        return state

    def save(self, state: TerminalState) -> None:
        """Write atomically: temp file (``0600``), fsync, rename."""
        self._ensure_dir()
        path = self.path(state.tid)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StateError(f"cannot write state file {path}: {exc.strerror}") from None

    @contextlib.contextmanager
    def locked(self, tid: str) -> Iterator[None]:
        """Hold ``<TID>.lock`` exclusively; :class:`StateError` at once if another command holds it."""
        self._ensure_dir()
        lock_path = self.directory / f"{tid}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateError(f"terminal {tid} is busy (another terminal-sim is using its state)") from None
            yield
        finally:
            os.close(fd)
