"""Helpers shared by the wire-layer tests: vector loading, a reference UnionPay ECB MAC, a test profile.

The vectors are copied into ``tests/iso/vectors`` so the suite runs from a clean clone;
``test_iso_vectors.py`` checks the copies still equal ``../shared/vectors`` when that directory exists.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import iso8583.specs
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from switch.iso.profiles import ISO87_NUMERIC_FIELDS, WireProfile

VECTORS = Path(__file__).parent / "vectors"
SHARED_VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def unionpay_ecb_mac(mak: bytes, mab: bytes) -> bytes:
    """Reference MAC of SPEC §3 ("UnionPay ECB"), single-length DES as 3DES K|K|K; returns 8 ASCII bytes."""
    assert len(mak) == 8
    enc = Cipher(TripleDES(mak * 3), modes.ECB()).encryptor()
    padded = mab + b"\x00" * (-len(mab) % 8)
    r = bytes(8)
    for i in range(0, len(padded), 8):
        r = bytes(a ^ b for a, b in zip(r, padded[i : i + 8], strict=True))
    h = r.hex().upper().encode("ascii")
    e1 = enc.update(h[:8])
    e2 = enc.update(bytes(a ^ b for a, b in zip(e1, h[8:], strict=True)))
    return e2.hex().upper()[:8].encode("ascii")


#: pyiso8583's ``default_ascii`` (ASCII hex bitmaps) for the public samples of other implementations:
#: the ISO 8583:1987 ``n`` fields are checked as digits, 48/60/61 are free text there (unlike our iso87)
DEFAULT_ASCII = WireProfile(
    name="default_ascii",
    spec=copy.deepcopy(iso8583.specs.default_ascii),
    max_field=128,
    numeric_fields=ISO87_NUMERIC_FIELDS - {"48", "60", "61"},
    track_fields=frozenset({"35"}),
)
