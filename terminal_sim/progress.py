"""Live progress of a load run on stderr: one line rewritten in place on a TTY, quiet otherwise (or one
line every few seconds with ``--progress always``)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Snapshot:
    answered: int = 0
    approved: int = 0
    timeouts: int = 0
    reversals: int = 0
    errors: int = 0

    def add(self, o: Snapshot) -> Snapshot:
        return Snapshot(
            self.answered + o.answered,
            self.approved + o.approved,
            self.timeouts + o.timeouts,
            self.reversals + o.reversals,
            self.errors + o.errors,
        )


class Progress:
    """Call :meth:`tick` periodically; :meth:`done` ends the line."""

    def __init__(
        self, duration_s: float, mode: str = "auto", stream: TextIO | None = None, every_s: float = 2.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = mode == "always" or (mode == "auto" and tty)
        self.inplace = tty
        self.duration_s = duration_s
        self.every_s = every_s
        self._start = time.perf_counter()
        self._last_t = self._start
        self._last_n = 0
        self._last_print = 0.0

    def restart(self) -> None:
        self._start = self._last_t = time.perf_counter()
        self._last_n = 0

    def tick(self, snap: Snapshot) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not self.inplace and now - self._last_print < self.every_s:
            return
        elapsed = now - self._start
        interval = now - self._last_t
        rate_now = (snap.answered - self._last_n) / interval if interval > 0 else 0.0
        self._last_t, self._last_n, self._last_print = now, snap.answered, now
        approved = 100.0 * snap.approved / snap.answered if snap.answered else 0.0
        width = 20
        filled = min(width, int(width * elapsed / self.duration_s)) if self.duration_s > 0 else width
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"[{bar}] {elapsed:5.1f}/{self.duration_s:.0f} s  {snap.answered:>8} answered  {rate_now:8.0f} TPS"
            f"  {approved:5.1f}% approved  timeouts {snap.timeouts}  reversals {snap.reversals}"
            f"  errors {snap.errors}"
        )
        if self.inplace:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.inplace:
            self.stream.write("\n")
            self.stream.flush()
