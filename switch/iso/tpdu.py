"""The 5-byte TPDU that precedes every ``cup`` message (SPEC §2.1).

Layout: ``ID(1) | destination(2) | source(2)``. The ID byte is always ``0x60`` (transport protocol data unit
for a message); destination and source are NII-style addresses, kept here as 4 uppercase hex digits each
(``Tpdu("0003", "0000")`` is ``60 0003 0000`` on the wire). The reply carries the request's TPDU with
destination and source swapped (:meth:`Tpdu.swapped`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TPDU_ID", "TPDU_LEN", "Tpdu"]

#: first byte of every TPDU on this link
TPDU_ID = 0x60
#: encoded TPDU size in bytes
TPDU_LEN = 5

_HEX = frozenset("0123456789ABCDEF")


def _check_addr(value: str, what: str) -> None:
    if len(value) != 4 or not _HEX.issuperset(value):
        raise ValueError(f"TPDU {what} must be 4 uppercase hex digits")


@dataclass(frozen=True, slots=True)
class Tpdu:
    """A cup TPDU: ``60`` + destination + source (addresses as 4 uppercase hex digits)."""

    destination: str
    source: str

    def __post_init__(self) -> None:
        _check_addr(self.destination, "destination")
        _check_addr(self.source, "source")

    @classmethod
    def parse(cls, data: bytes) -> Tpdu:
        """Parse exactly 5 bytes; ``ValueError`` (no content in its text) on a bad length or ID byte."""
        if len(data) != TPDU_LEN:
            raise ValueError(f"TPDU must be {TPDU_LEN} bytes, got {len(data)}")
        if data[0] != TPDU_ID:
            raise ValueError("TPDU ID byte is not 0x60")
        hexed = bytes(data[1:]).hex().upper()
        return cls(hexed[0:4], hexed[4:8])

    def encode(self) -> bytes:
        """The 5 wire bytes."""
        return bytes((TPDU_ID,)) + bytes.fromhex(self.destination + self.source)

    def swapped(self) -> Tpdu:
        """The TPDU of the reply: destination and source exchanged."""
        return Tpdu(self.source, self.destination)
