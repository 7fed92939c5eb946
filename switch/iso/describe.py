"""Human-readable dump of an :class:`~switch.iso.message.IsoMessage`, masked by default.

Like pyiso8583's ``pp`` (one line per field with its description) with moov-io's default filters: the PAN
(field 2) shows its first 6 and last 4 digits, and the sensitive fields 35, 36, 45 (track data), 52 (PIN
block), 55 (ICC data), 62 (working keys / new PIN block) and 64 (MAC) are wiped, only their length shown.
Pass ``mask=False`` only for local debugging with test cards; never log the unmasked form.

This module is a pure leaf (no dependency on ``switch.telemetry``), so it carries its own tiny PAN mask.
"""

from __future__ import annotations

from switch.iso.message import IsoMessage
from switch.iso.profiles import WireProfile

__all__ = ["SECRET_FIELDS", "describe", "mask_pan"]

#: fields wiped in a masked dump
SECRET_FIELDS = frozenset({"35", "36", "45", "52", "55", "62", "64"})
_WIPED = "[REDACTED]"


def mask_pan(pan: str) -> str:
    """First 6 + ``*`` + last 4 (``9900010000000019`` -> ``990001******0019``); short values fully starred."""
    if len(pan) < 13:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def describe(msg: IsoMessage, profile: WireProfile | None = None, *, mask: bool = True) -> str:
    """A multi-line description of ``msg``; field names come from ``profile``'s spec when given."""
    spec = profile.spec if profile is not None else {}
    lines = [f"MTI    {msg.mti}"]
    if msg.tpdu is not None:
        lines.append(f"TPDU   60 dest={msg.tpdu.destination} src={msg.tpdu.source}")
    if msg.header is not None:
        h = msg.header
        lines.append(
            f"HEADER app={h.app_class} sw={h.software_version} status={h.terminal_status} "
            f"proc={h.processing_requirement} sub={h.sub_version}"
        )
    width = max((len(k) for k in msg.fields), default=1)
    for key in sorted(msg.fields, key=lambda k: int(k) if k.isdigit() else 10_000):
        value = msg.fields[key]
        if mask and key in SECRET_FIELDS:
            shown = f"{_WIPED} ({len(value)} chars)"
        elif mask and key == "2":
            shown = mask_pan(value)
        else:
            shown = value
        desc = str(spec.get(key, {}).get("desc", ""))
        label = f"[{desc}]" if desc else ""
        lines.append(f"{key:>{width}} {label:<48} {shown!r}")
    return "\n".join(lines)
