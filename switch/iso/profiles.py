"""Wire profiles: a spec dict plus the framing around it (jPOS keeps channel and packager apart; so do we).

A :class:`WireProfile` says how one listener's bytes look:

- ``spec``: the pyiso8583 field definitions (``switch.iso.specs``);
- ``has_tpdu`` / ``has_header``: whether the cup 5-byte TPDU and 6-byte header precede the MTI;
- ``max_field``: 64 (primary bitmap only; bit 1 set is a format error) or 128 (secondary bitmap accepted,
  fields 65..128 decoded per the spec, an all-zero secondary bitmap tolerated);
- the value-normalisation hooks, declared as field sets so that both profiles yield the *same* normalized
  ``fields`` for the same business content (``docs/CONTRACTS.md``):

  - ``numeric_fields``: digits only. On cup this is every BCD field (pyiso8583 would happily return
    ``A``..``F`` nibbles) plus ASCII 49; on iso87 the ``n`` fields of ISO 8583:1987 plus 48, 60, 61
    (which the SPEC defines as digit strings). Empty values of variable-length fields are allowed.
  - ``track_fields``: digits plus the separator (``D``, or ``=`` in ASCII), kept as sent.
  - ``hex_text_fields``: binary content carried as hex text in an ASCII field (iso87 62): must be an even
    number of hex digits; decoded to UPPERCASE so it equals cup's binary 62 rendered as hex.

Binary fields (52, 64, cup 55/62) always normalise to uppercase hex; numeric BCD fields to their digits
without pad. The compiled ``layout`` is built once, when the profile is created (bad specs fail there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switch.iso.layout import (
    CHECK_DIGITS,
    CHECK_HEX_TEXT,
    CHECK_TRACK,
    MessageLayout,
    compile_spec,
)
from switch.iso.specs import CUP_SPEC, ISO87_SPEC

__all__ = ["CUP", "ISO87", "PROFILES", "WireProfile"]


@dataclass(frozen=True, eq=False)
class WireProfile:
    """How one listener's messages are laid out on the wire (identity-compared; profiles are singletons)."""

    name: str
    spec: Mapping[str, Mapping[str, Any]]
    has_tpdu: bool = False
    has_header: bool = False
    max_field: int = 64
    numeric_fields: frozenset[str] = frozenset()
    track_fields: frozenset[str] = frozenset()
    hex_text_fields: frozenset[str] = frozenset()
    layout: MessageLayout = field(init=False, repr=False)

    def __post_init__(self) -> None:
        overlap = (
            (self.numeric_fields & self.track_fields)
            | (self.numeric_fields & self.hex_text_fields)
            | (self.track_fields & self.hex_text_fields)
        )
        if overlap:
            raise ValueError(f"profile {self.name}: fields with two checks: {sorted(overlap, key=int)}")
        checks = {k: CHECK_DIGITS for k in self.numeric_fields}
        checks.update({k: CHECK_TRACK for k in self.track_fields})
        checks.update({k: CHECK_HEX_TEXT for k in self.hex_text_fields})
        object.__setattr__(self, "layout", compile_spec(self.spec, max_field=self.max_field, checks=checks))

    @property
    def prefix_len(self) -> int:
        """Bytes before the MTI (TPDU 5 + header 6 on cup, 0 on iso87)."""
        return (5 if self.has_tpdu else 0) + (6 if self.has_header else 0)


def _keys(*numbers: int | range) -> frozenset[str]:
    out: set[str] = set()
    for n in numbers:
        out.update(str(i) for i in (n if isinstance(n, range) else (n,)))
    return frozenset(out)


#: cup: every BCD field is numeric except the track fields; 49 (ASCII) is the numeric currency code
CUP_NUMERIC_FIELDS = _keys(2, range(3, 28), 32, 33, 48, 49, 53, 60, 61)
#: ISO 8583:1987 ``n`` fields of the primary bitmap, plus the SPEC's digit-string fields 48, 60, 61
ISO87_NUMERIC_FIELDS = _keys(2, range(3, 28), 32, 33, 48, 49, 53, 60, 61)

#: the program's terminals (SPEC §2.1)
CUP = WireProfile(
    name="cup",
    spec=CUP_SPEC,
    has_tpdu=True,
    has_header=True,
    max_field=64,
    numeric_fields=CUP_NUMERIC_FIELDS,
    track_fields=_keys(35, 36),
)

#: generic ISO 8583:1987 peers (SPEC §2.2)
ISO87 = WireProfile(
    name="iso87",
    spec=ISO87_SPEC,
    max_field=128,
    numeric_fields=ISO87_NUMERIC_FIELDS,
    track_fields=_keys(35),
    hex_text_fields=_keys(62),
)

PROFILES: Mapping[str, WireProfile] = {"cup": CUP, "iso87": ISO87}
