"""The PIN mailer "printer": an owner-only JSON-lines file (one mailer per line).

It is the only place a clear PIN leaves the simulator, exactly as a PIN mailer leaves a real HSM's printer.
Each line: ``{"mailer_id", "printed_at", "document", "account" (last 4 digits), "lines", "pin"}``.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path


class PinMailer:
    """Appends mailers to ``path``, created ``0600`` (an existing file is narrowed to ``0600`` too)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._count = 0

    def print_mailer(self, document: str, account: str, lines: list[str], pin: str) -> int:
        with self._lock:
            self._count += 1
            record = {
                "mailer_id": self._count,
                "printed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "document": document,
                "account": account[-4:],
                "lines": lines,
                "pin": pin,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            return self._count
