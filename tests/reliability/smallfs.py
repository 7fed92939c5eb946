"""A really full disk: a small tmpfs mounted on a directory, filled up to the last byte, freed again.

    with small_filesystem(path, "8m") as fs:     # skips the test when tmpfs cannot be mounted (not root)
        fs.fill()                                  # writes a filler file until ENOSPC
        fs.free()                                  # deletes it
        fs.resize("64m")

The kernel answers ENOSPC to every write that needs a new block, whoever writes: the switch's SQLite ledger
or the clearing writer of ``switch clearing run``, both real processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


class SmallFs:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / ".filler"

    def fill(self) -> int:
        """Write zeros until the filesystem is full; the bytes written."""
        written = 0
        chunk = bytes(64 * 1024)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    written += os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        return written
                    chunk = chunk[: len(chunk) // 2]
        finally:
            os.close(fd)

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)


class CannotMount(Exception):
    """No small filesystem can be had here (the text says why)."""


@contextlib.contextmanager
def small_filesystem(path: Path, size: str, *, skip: bool = True) -> Iterator[SmallFs]:
    """Mount it; when that is impossible, skip the test (``skip=False``: raise :class:`CannotMount`)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        reason = proc.stderr.strip()[:80]
    except FileNotFoundError:
        proc, reason = None, "no mount(8) here"
    if proc is None or proc.returncode != 0:
        why = f"cannot mount a small tmpfs for a real full disk (needs root): {reason}"
        if not skip:
            raise CannotMount(why)
        import pytest

        pytest.skip(why)
    try:
        yield SmallFs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
