"""One masking function set used by logs, CLI output, receipts and files.

PAN → first 6 + ``******`` + last 4 (SPEC §8). Track data, PIN blocks, keys, CVV and the like are wiped.
The log processor also masks any digit run that looks like a PAN (13–19 digits passing Luhn) inside any
string value, as a safety net for values that reached a log under an innocent key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from switch.crypto.luhn import luhn_valid

WIPED = "[REDACTED]"

#: event-dict keys whose value is a PAN (masked, not wiped)
PAN_KEYS = frozenset({"pan", "card", "card_number", "2"})
#: keys whose value is always wiped (track data, PIN blocks, keys, CVV, field 35/36/45/52/55/62/64)
SECRET_KEYS = frozenset(
    {
        "track2",
        "track_2",
        "track",
        "track1",
        "track3",
        "35",
        "36",
        "45",
        "52",
        "55",
        "62",
        "64",
        "pin",
        "pin_block",
        "pinblock",
        "new_pin_block",
        "cvv",
        "cvv2",
        "cvn",
        "tmk",
        "pik",
        "mak",
        "tdk",
        "zmk",
        "zpk",
        "tpk",
        "pvk",
        "lmk",
        "key",
        "clear_key",
        "keys",
        "key_block",
        "password",
        "secret",
        "pan_token_key",
    }
)

luhn_ok = luhn_valid  # a run of digits that passes Luhn is treated as a PAN

_PAN_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def mask_pan(pan: str | None) -> str:
    """``9900010000000019`` → ``990001******0019``; anything too short to be a PAN is fully wiped."""
    if not pan:
        return ""
    pan = pan.strip()
    if len(pan) < 13:
        return "*" * len(pan)
    return f"{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}"


def mask_pans_in_text(text: str) -> str:
    """Mask every PAN-looking digit run (13–19 digits that pass Luhn) in free text."""
    if len(text) < 13:
        return text
    return _PAN_RUN.sub(lambda m: mask_pan(m.group(0)) if luhn_ok(m.group(0)) else m.group(0), text)


def redact_value(key: str, value: Any) -> Any:
    """Redact one value according to its key (case-insensitive)."""
    k = key.lower()
    if value is None or value == "":
        return value
    if k in SECRET_KEYS or k.endswith(("_key", "_lmk", "_tmk", "pin_block", "_track2")):
        return WIPED
    if k in PAN_KEYS or k.endswith("_pan"):
        return mask_pan(str(value)) if not str(value).count("*") else value
    if isinstance(value, str):
        return mask_pans_in_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    return value


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with every sensitive value masked or wiped (recursively for nested mappings)."""
    return {str(k): redact_value(str(k), v) for k, v in data.items()}


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: masks PANs and wipes secrets in every log line."""
    for key, value in event_dict.items():
        if value is None or isinstance(value, int | float | bool):
            continue
        new = redact_value(key, value)
        if new is not value:
            event_dict[key] = new
    return event_dict
