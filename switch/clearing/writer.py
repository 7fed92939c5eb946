"""Atomic, never-overwriting file publication (SPEC §8: temp file, fsync, rename, never rewritten).

The content goes to a temporary file in the target directory, is fsynced, then published with ``link(2)``
(which, unlike ``rename(2)``, fails when the target exists, so a written file can never be replaced, even by
two runs racing), the directory is fsynced and the temporary name removed. The published file is read-only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType

from switch.backoffice.csvio import fsync_dir

READ_ONLY = 0o440
BUFFER = 1 << 20


class FileAlreadyWritten(FileExistsError):
    """The target exists already; it is left untouched."""


class AtomicFileWriter:
    """``with AtomicFileWriter(path) as w: w.write(b"...")`` publishes ``path`` only on a clean exit."""

    def __init__(self, path: Path | str, *, mode: int = READ_ONLY) -> None:
        self.path = Path(path)
        self.mode = mode
        self._tmp = ""
        self._fd = -1
        self._buf: list[bytes] = []
        self._size = 0
        self.bytes_written = 0

    def __enter__(self) -> AtomicFileWriter:
        if self.path.exists():
            raise FileAlreadyWritten(str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        return self

    def write(self, data: bytes) -> None:
        self._buf.append(data)
        self._size += len(data)
        if self._size >= BUFFER:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            view = memoryview(b"".join(self._buf))
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self.bytes_written += self._size
            self._buf.clear()
            self._size = 0

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self._flush()
                os.fchmod(self._fd, self.mode)
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            if exc_type is None:
                try:
                    os.link(self._tmp, self.path)
                except FileExistsError as err:
                    raise FileAlreadyWritten(str(self.path)) from err
                fsync_dir(self.path.parent)
        finally:
            if self._fd >= 0:
                os.close(self._fd)
            if self._tmp and os.path.exists(self._tmp):
                os.unlink(self._tmp)
