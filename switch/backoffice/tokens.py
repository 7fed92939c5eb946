"""Card token (keyed PAN hash, docs/DECISIONS.md #3) and PAN construction for issuance."""

from __future__ import annotations

import hashlib
import hmac

from switch.crypto.luhn import luhn_check_digit


def card_token(pan: str, key: str) -> str:
    """HMAC-SHA256 of the PAN keyed with ``security.pan_token_key``, lowercase hex."""
    return hmac.new(key.encode("utf-8"), pan.encode("ascii"), hashlib.sha256).hexdigest()


def make_pan(bin_: str, sequence: int, length: int = 16) -> str:
    """BIN + zero-padded sequence + Luhn digit (SPEC §7); raises ValueError when the range is exhausted."""
    width = length - len(bin_) - 1
    if sequence < 1 or len(str(sequence)) > width:
        raise ValueError("card sequence out of range for this BIN")
    body = f"{bin_}{sequence:0{width}d}"
    return body + luhn_check_digit(body)
