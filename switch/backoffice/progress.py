"""A one-line progress display for batch commands (stderr; redrawn in place on a terminal, sparse otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: on a pipe, a job with fewer lines than this shows its final line only (unless it takes over 5 s)
SMALL_JOB = 1000


class Progress:
    """``p = Progress("top-ups", total); p.update(done, applied=..., rejected=...); p.finish()``.

    ``total`` 0 means unknown (a streamed clearing run): the line shows the count and the rate.

    On a TTY the line is redrawn at most 10 times a second; on a pipe or file one line is written every 10 %
    of a large job (and at least every 5 s) so logs stay short. Nothing here ever prints card data: callers
    pass counts only.
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.total = max(total, 0)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._last_draw = self.start
        self._last_decile = -1
        self.done = 0

    def _line(self, counts: dict[str, int]) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        extra = " ".join(f"{k}={v}" for k, v in counts.items())
        if not self.total:  # total unknown (streamed work): count and rate only
            return f"{self.label}: {self.done:,} {rate:,.0f}/s {elapsed:5.1f}s {extra}".rstrip()
        pct = f"{100 * self.done / self.total:5.1f}%"
        return f"{self.label}: {self.done}/{self.total} {pct} {rate:,.0f}/s {elapsed:5.1f}s {extra}".rstrip()

    def update(self, done: int, **counts: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r\x1b[K" + self._line(counts))
                self.stream.flush()
        else:
            decile = (10 * done // self.total) if self.total >= SMALL_JOB else self._last_decile
            if (decile != self._last_decile and decile < 10) or now - self._last_draw >= 5.0:
                self._last_decile = decile
                self._last_draw = now
                self.stream.write(self._line(counts) + "\n")
                self.stream.flush()

    def finish(self, **counts: int) -> None:
        if not self.enabled:
            return
        line = self._line(counts)
        self.stream.write(("\r\x1b[K" + line + "\n") if self.tty else line + "\n")
        self.stream.flush()
