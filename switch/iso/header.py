"""The 6-byte application header of the ``cup`` profile (SPEC §2.1).

Twelve BCD digits: application class (2, ``60``), software version (2), terminal status (1), processing
requirement (1), sub-version (6). The worked example ``603100310000`` is class ``60``, software ``31``,
terminal status ``0``, processing requirement ``0``, sub-version ``310000``.

The reply echoes the request header and sets the processing-requirement digit: ``0`` nothing to do, ``3``
sign on again (no valid working keys, or 3 consecutive MAC failures). The application class is not enforced
on parse (any 12 BCD digits are accepted, ``app_class`` exposes it): terminals of other programs are
answered with the header they sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "HEADER_LEN",
    "PROCESSING_NONE",
    "PROCESSING_SIGN_ON",
    "CupHeader",
]

#: encoded header size in bytes
HEADER_LEN = 6
#: processing requirement: nothing to do
PROCESSING_NONE = "0"
#: processing requirement: the terminal must sign on again
PROCESSING_SIGN_ON = "3"


def _check_digits(value: str, width: int, what: str) -> None:
    if len(value) != width or not (value.isascii() and value.isdigit()):
        raise ValueError(f"header {what} must be {width} digits")


@dataclass(frozen=True, slots=True)
class CupHeader:
    """The cup header; every part is a digit string of its fixed width."""

    app_class: str = "60"
    software_version: str = "31"
    terminal_status: str = "0"
    processing_requirement: str = PROCESSING_NONE
    sub_version: str = "310000"

    def __post_init__(self) -> None:
        _check_digits(self.app_class, 2, "application class")
        _check_digits(self.software_version, 2, "software version")
        _check_digits(self.terminal_status, 1, "terminal status")
        _check_digits(self.processing_requirement, 1, "processing requirement")
        _check_digits(self.sub_version, 6, "sub-version")

    @classmethod
    def parse(cls, data: bytes) -> CupHeader:
        """Parse exactly 6 bytes of BCD; raises ``ValueError`` (no content in the text) otherwise."""
        if len(data) != HEADER_LEN:
            raise ValueError(f"header must be {HEADER_LEN} bytes, got {len(data)}")
        d = bytes(data).hex()
        if not d.isdigit():
            raise ValueError("header is not BCD")
        return cls(d[0:2], d[2:4], d[4:5], d[5:6], d[6:12])

    def encode(self) -> bytes:
        """The 6 wire bytes."""
        return bytes.fromhex(
            self.app_class
            + self.software_version
            + self.terminal_status
            + self.processing_requirement
            + self.sub_version
        )

    def with_processing_requirement(self, d: str) -> CupHeader:
        """A copy with the processing-requirement digit set to ``d`` (``"0"`` or ``"3"`` in practice)."""
        return replace(self, processing_requirement=d)

    @property
    def requires_sign_on(self) -> bool:
        """True when the processing requirement asks the terminal to sign on again."""
        return self.processing_requirement == PROCESSING_SIGN_ON
