"""What a POS terminal remembers between transactions, and the owner-only file it lives in.

A UnionPay terminal keeps its batch number, trace number (STAN), working keys, its store-and-forward queue
(the reversals and advices it still owes the switch) and the journal of the open batch in battery-backed
memory. Here that is one JSON file per terminal, ``<state dir>/<TID>.json``, written atomically (temp file,
fsync, rename) with mode ``0600`` in a ``0700`` directory, since it holds the working keys. It never holds a
full PAN, track data or PIN block in clear: a queued reversal keeps only the fields a reversal carries, a
queued refund advice keeps its card fields sealed (AES-GCM under a key derived from the terminal's TMK,
which is not in the file), journal entries keep the masked PAN.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from terminal_sim.terminal import Request

STATE_VERSION = 2
#: versions this code reads (1: a single ``pending_reversal`` instead of the queue)
READABLE_VERSIONS = (1, 2)
#: approved purchases remembered after their batch closed, for refunds (a real terminal keeps a few)
HISTORY_LIMIT = 200
#: store-and-forward records given up, kept for the operator (newest last)
GIVEN_UP_LIMIT = 50
#: the transaction types whose unanswered request is reversed (0400) ...
REVERSIBLE_KINDS = frozenset({"purchase", "void", "topup"})
#: ... and those that are advices, forwarded again as they are (0220)
ADVICE_KINDS = frozenset({"refund"})


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
class Forward:
    """One message of the store-and-forward queue: a reversal (0400) the terminal owes for a purchase, void
    or top-up, or a refund advice (0220) not yet definitively answered.

    ``kind`` is the original's type (``purchase``, ``void``, ``topup`` for a reversal; ``refund`` for an
    advice). ``fields``: for a reversal the original's 3, 4, 11, 22, 25, 41, 42, 49, 60; for an advice the
    advice as first sent, without its card fields (2, 14, 35) and MAC, which are in ``sealed`` (see
    :meth:`Terminal.forward <terminal_sim.terminal.Terminal.forward>`). ``reason``: the reversal's field 39
    (``98`` no reply, ``A0`` bad reply MAC, ``06`` other). ``attempts``: times it left the terminal, the
    first at ``first_sent``. ``last``: the last answer (an RC, ``no reply`` or ``bad MAC``), for the operator.
    """

    kind: str
    fields: dict[str, str]
    reason: str = "98"
    attempts: int = 0
    sealed: str = ""
    masked_pan: str = ""
    last: str = ""
    #: when it first left the terminal (seconds since the epoch; 0: not yet)
    first_sent: float = 0.0
    #: in memory only: the request object last sent for this record (same object on every resend)
    request: Request | None = field(default=None, repr=False, compare=False)

    @property
    def stan(self) -> str:
        return self.fields["11"]

    @property
    def batch(self) -> str:
        return self.fields.get("60", "")[2:8]

    @property
    def amount(self) -> int:
        return int(self.fields.get("4", "0") or "0")

    @property
    def is_advice(self) -> bool:
        return self.kind in ADVICE_KINDS

    @property
    def message(self) -> str:
        """``"reversal"`` or ``"advice"``."""
        return "advice" if self.is_advice else "reversal"

    def describe(self) -> str:
        """``"refund advice (trace 000003)"`` / ``"reversal of purchase (trace 000002)"``: for the operator."""
        if self.is_advice:
            return f"{self.kind} advice (trace {self.stan})"
        return f"reversal of {self.kind} (trace {self.stan})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fields": dict(self.fields),
            "reason": self.reason,
            "attempts": self.attempts,
            "sealed": self.sealed,
            "masked_pan": self.masked_pan,
            "last": self.last,
            "first_sent": self.first_sent,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Forward:
        return cls(
            kind=str(d["kind"]),
            fields={str(k): str(v) for k, v in d["fields"].items()},
            reason=str(d.get("reason", "98")),
            attempts=int(d.get("attempts", 0)),
            sealed=str(d.get("sealed", "")),
            masked_pan=str(d.get("masked_pan", "")),
            last=str(d.get("last", "")),
            first_sent=float(d.get("first_sent", 0.0)),
        )


#: the name the reliability fleet and older code know a queued reversal by
PendingReversal = Forward


@dataclass
class TerminalState:
    tid: str
    mid: str
    batch: str = "000000"
    stan: int = 0
    keys: WorkingKeys | None = None
    #: the store-and-forward queue (oldest first): sent again, in order, before any new request or settlement
    queue: list[Forward] = field(default_factory=list)
    #: records given up at the retry bound (``session.ForwardPolicy``), newest last, at most ``GIVEN_UP_LIMIT``
    given_up: list[Forward] = field(default_factory=list)
    totals: BatchTotals = field(default_factory=BatchTotals)
    #: approved transactions of the open batch
    journal: list[JournalEntry] = field(default_factory=list)
    #: approved purchases of closed batches (refunds), newest last, at most ``HISTORY_LIMIT``
    history: list[JournalEntry] = field(default_factory=list)
    #: no keys yet, batch settled, or the switch said "sign on again": sign on before the next request
    needs_signon: bool = True

    @property
    def pending(self) -> Forward | None:
        """The oldest reversal the terminal owes, or ``None``."""
        for rec in self.queue:
            if not rec.is_advice:
                return rec
        return None

    def owed(self, kind: str, stan: str, batch: str = "") -> Forward | None:
        """The queued record of the ``kind`` request with that STAN (and batch, when given)."""
        for rec in self.queue:
            if rec.kind == kind and rec.stan == stan and (not batch or rec.batch == batch):
                return rec
        return None

    def enqueue(self, rec: Forward) -> Forward:
        """Add ``rec`` at the end (a record of the same request already queued is replaced in place)."""
        for i, old in enumerate(self.queue):
            if old.kind == rec.kind and old.stan == rec.stan and old.batch == rec.batch:
                self.queue[i] = rec
                return rec
        self.queue.append(rec)
        return rec

    def forget(self, rec: Forward) -> None:
        """Take ``rec`` off the queue (answered definitively, or never sent)."""
        self.queue = [r for r in self.queue if r is not rec]

    def give_up(self, rec: Forward) -> None:
        """Take ``rec`` off the queue for good: kept, without its sealed card data, in ``given_up``."""
        self.forget(rec)
        rec.sealed = ""
        rec.request = None
        self.given_up.append(rec)
        del self.given_up[:-GIVEN_UP_LIMIT]

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
            "queue": [r.to_json() for r in self.queue],
            "given_up": [r.to_json() for r in self.given_up],
            "totals": asdict(self.totals),
            "journal": [e.to_json() for e in self.journal],
            "history": [e.to_json() for e in self.history],
            "needs_signon": self.needs_signon,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TerminalState:
        if d.get("version") not in READABLE_VERSIONS:
            raise StateError("state file version not supported")
        try:
            k = d.get("keys")
            keys = (
                None
                if not k
                else WorkingKeys(bytes.fromhex(k["pik"]), bytes.fromhex(k["mak"]), bytes.fromhex(k.get("tdk", "")))
            )
            if d["version"] == 1:  # one pending reversal, no advices
                p = d.get("pending_reversal")
                queue = [] if not p else [Forward(p["kind"], dict(p["fields"]), p["reason"], p["attempts"])]
                given_up: list[Forward] = []
            else:
                queue = [Forward.from_json(r) for r in d["queue"]]
                given_up = [Forward.from_json(r) for r in d.get("given_up", [])]
            return cls(
                tid=d["tid"],
                mid=d["mid"],
                batch=d["batch"],
                stan=int(d["stan"]),
                keys=keys,
                queue=queue,
                given_up=given_up,
                totals=BatchTotals(**d["totals"]),
                journal=[JournalEntry(**e) for e in d["journal"]],
                history=[JournalEntry(**e) for e in d["history"]],
                needs_signon=bool(d.get("needs_signon", keys is None)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
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
