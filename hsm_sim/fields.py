"""A cursor over a command's fields, with the payShield field types the commands use.

Every read that fails raises :class:`CommandError` with ``15`` (invalid input) and the field's name.
"""

from __future__ import annotations

import re

from hsm_sim.errors import INVALID_INPUT, CommandError
from hsm_sim.lmk import SCHEME_LENGTH

_HEX = re.compile(rb"[0-9A-Fa-f]*")
_DIGITS = re.compile(rb"[0-9]*")
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")


class Fields:
    """Sequential reader of a command body (bytes after the 2-character command code)."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise CommandError(INVALID_INPUT, f"{what}: too short")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def raw(self, n: int, what: str) -> bytes:
        """``n`` bytes as they are (binary message data)."""
        return self._take(n, what)

    def text(self, n: int, what: str) -> str:
        """``n`` printable ASCII characters."""
        chunk = self._take(n, what)
        if not _PRINTABLE.fullmatch(chunk):
            raise CommandError(INVALID_INPUT, f"{what}: not printable")
        return chunk.decode("ascii")

    def digits(self, n: int, what: str) -> str:
        chunk = self._take(n, what)
        if not _DIGITS.fullmatch(chunk):
            raise CommandError(INVALID_INPUT, f"{what}: not numeric")
        return chunk.decode("ascii")

    def number(self, n: int, what: str) -> int:
        return int(self.digits(n, what))

    def hex(self, n: int, what: str) -> str:
        """``n`` hex characters, upper-cased."""
        chunk = self._take(n, what)
        if not _HEX.fullmatch(chunk):
            raise CommandError(INVALID_INPUT, f"{what}: not hex")
        return chunk.decode("ascii").upper()

    def hex_bytes(self, n: int, what: str) -> bytes:
        """``n`` hex characters decoded (``n`` even)."""
        return bytes.fromhex(self.hex(n, what))

    def key(self, what: str, *, pair: bool = False) -> str:
        """A key under the LMK or a ZMK: ``U``/``X`` + 32H, ``T``/``Y`` + 48H, ``Z`` + 16H or 16H.

        ``pair=True`` reads an unprefixed key as a 32H pair (PVK and CVK pairs: key A | key B), which is
        the legacy double-length form; it is returned with an ``X`` prefix so it decrypts as such.
        """
        lead = self._data[self._pos : self._pos + 1].decode("latin-1")
        if lead and lead in SCHEME_LENGTH:
            self._pos += 1
            return lead + self.hex(SCHEME_LENGTH[lead] * 2, what)
        if pair:
            return "X" + self.hex(32, what)
        return self.hex(16, what)

    def __len__(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes (a fast path that has checked them itself)."""
        self._pos += n

    def tail(self, n: int) -> bytes:
        """The last ``n`` bytes, consuming everything (a fast path's trailing field)."""
        self._pos = len(self._data)
        return self._data[-n:] if n else b""

    def peek(self, n: int = 1) -> bytes:
        return self._data[self._pos : self._pos + n]

    def delimiter(self, ch: bytes) -> bool:
        """Consume ``ch`` when it comes next."""
        if self._data[self._pos : self._pos + len(ch)] == ch:
            self._pos += len(ch)
            return True
        return False

    def until(self, stop: bytes, what: str, max_len: int) -> str:
        """Printable characters up to (not including) ``stop`` or the end; ``stop`` is consumed."""
        end = self._data.find(stop, self._pos)
        if end < 0:
            end = len(self._data)
        value = self.text(end - self._pos, what)
        if len(value) > max_len:
            raise CommandError(INVALID_INPUT, f"{what}: too long")
        self.delimiter(stop)
        return value

    def end(self) -> None:
        """The command must be fully read; a trailing LMK identifier ``%00`` is accepted."""
        if self.delimiter(b"%") and self.digits(2, "LMK identifier") != "00":
            raise CommandError(INVALID_INPUT, "LMK identifier: only 00 is loaded")
        if self._pos != len(self._data):
            raise CommandError(INVALID_INPUT, "unexpected trailing data")
