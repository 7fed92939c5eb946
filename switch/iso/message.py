"""The normalized message both wire profiles decode to (``docs/CONTRACTS.md``, "Normalized message").

``fields`` maps data-element numbers (``"2"``..``"64"``; ``"66"``..``"128"`` may appear from iso87 peers)
to normalized strings: numeric fields as digits without pad (field 22 = ``"021"``), ASCII fields as text,
binary fields (52, 64, and 62 in both profiles) as UPPERCASE hex of their bytes, field 35 with its separator
as sent. The MTI is kept apart in ``mti``; the bitmap is not kept (it is implied by ``fields``).

MTI helpers: :func:`reply_mti` (``"0200"`` -> ``"0210"``), :func:`mti_class` (``"0210"`` -> ``"02"``) and
:func:`request_mti` (``"0210"`` -> ``"0200"``, ``"0401"`` -> ``"0400"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switch.iso.header import CupHeader
from switch.iso.tpdu import Tpdu

__all__ = ["IsoMessage", "is_request_mti", "mti_class", "reply_mti", "request_mti"]


@dataclass(slots=True)
class IsoMessage:
    """One decoded (or to-be-encoded) ISO 8583 message in the profile-independent form."""

    mti: str
    fields: dict[str, str] = field(default_factory=dict)
    #: cup only
    tpdu: Tpdu | None = None
    #: cup only
    header: CupHeader | None = None
    #: frame body as received (no 2-byte length); ``b""`` for messages built locally
    raw: bytes = b""
    #: the MAB of SPEC §3 (MTI .. end of the last field before 64); ``b""`` if no field 64
    mac_data: bytes = b""


def _check_mti(mti: str) -> None:
    if len(mti) != 4 or not (mti.isascii() and mti.isdigit()):
        raise ValueError("MTI must be 4 digits")


def is_request_mti(mti: str) -> bool:
    """True for a request/advice/notification MTI (function digit even: ``0200``, ``0220``, ``0400``)."""
    _check_mti(mti)
    return int(mti[2]) % 2 == 0


def reply_mti(mti: str) -> str:
    """The response MTI of a request: function digit + 1 (``0200`` -> ``0210``, ``0820`` -> ``0830``).

    Raises ``ValueError`` for a malformed MTI or one that is already a response (odd function digit).
    The origin digit is preserved (``0401`` -> ``0411``).
    """
    if not is_request_mti(mti):
        raise ValueError("MTI is not a request")
    return f"{mti[:2]}{int(mti[2]) + 1}{mti[3]}"


def mti_class(mti: str) -> str:
    """ISO 8583 version + message class, the first two digits (``0200``/``0210``/``0220`` -> ``"02"``).

    ``"02"`` financial, ``"04"`` reversal, ``"05"`` reconciliation, ``"08"`` network management.
    """
    _check_mti(mti)
    return mti[:2]


def request_mti(mti: str) -> str:
    """The original request MTI a message belongs to: responses map to their request, repeats
    (origin digit 1) to the first transmission (``0210`` -> ``0200``, ``0401`` -> ``0400``, ``0230`` ->
    ``0220``)."""
    _check_mti(mti)
    function = int(mti[2])
    return f"{mti[:2]}{function - function % 2}0"
