"""The message catalogue of SPEC §4 as data: how a request is recognised, what it must carry, which steps run.

A transaction type is identified by MTI + field 3 + field 25 + 60.1 (management messages by MTI + 60.3).
Each :class:`Route` names its mandatory fields (``any_of`` groups: one of them suffices, e.g. 2 or 35),
whether request and reply carry a MAC, the PIN policy, the terminal kinds allowed, and the participant
names in SPEC §5 order; :mod:`switch.pipeline.factory` turns the names into participant instances.

:func:`find_route` answers ``(route, None)``, or ``(None, Result.TYPE_UNKNOWN)`` for an MTI/processing code
the program does not know (RC 40), or ``(None, Result.TYPE_WRONG_STATE)`` for a known MTI + processing code
with other 25/60.1 values (RC 12: "the type exists but not in this state").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from switch.pipeline.results import Result

PinPolicy = Literal["none", "required", "optional", "change"]

#: the front of every authorization: SPEC §5 rules 1-6 (type is checked before terminal lookup costs
#: nothing, but the *answer* for an unknown type is decided after rules 2 and 3, in SPEC order)
_FRONT = ("terminal", "keys_mac", "type", "duplicate")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    mti: str
    pcode: str = ""
    cond: str = ""
    type_code: str = "00"
    nmics: tuple[str, ...] = ()
    mandatory: tuple[str, ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()
    #: request and reply carry field 64 (SPEC §3)
    mac: bool = False
    pin: PinPolicy = "none"
    #: terminal kinds allowed (``pos`` / ``service_hall``); empty = any
    kinds: frozenset[str] = frozenset()
    #: participant names after ``validate`` (the manager always runs ``reply``)
    steps: tuple[str, ...] = ()
    #: card statuses accepted by the card step besides ``active`` (PIN change activates INACTIVE cards)
    inactive_ok: bool = False
    #: duplicate detection applies
    dedupe: bool = True
    #: reply fields each approved answer of this type adds (documentation; the steps fill them)
    reply_adds: tuple[str, ...] = field(default=())


_PAN = (("2", "35"),)
_PAN_EXP = (("2", "35"), ("14", "35"))
_FIN = ("3", "11", "22", "25", "41", "42", "49", "60")

# a table: one route per entry reads better than one argument per line
# fmt: off
ROUTES: tuple[Route, ...] = (
    Route(
        "signon", "0800", nmics=("003", "004"), mandatory=("11", "41", "42", "60"), dedupe=False,
        steps=("terminal", "signon"), reply_adds=("12", "13", "32", "37", "39", "60", "62"),
    ),
    Route("signoff", "0820", nmics=("002",), mandatory=("11", "41", "42", "60"), dedupe=False,
          steps=("terminal", "signoff"), reply_adds=("39",)),
    Route("echo", "0820", nmics=("301",), mandatory=("11", "41", "42", "60"), dedupe=False,
          steps=("terminal", "echo"), reply_adds=("39",)),
    Route(
        "balance", "0200", "310000", "00", "01", mandatory=(*_FIN, "52", "53"), any_of=_PAN_EXP,
        mac=True, pin="required", steps=(*_FRONT, "card", "pin", "post"),
        reply_adds=("12", "13", "32", "37", "39", "54", "64"),
    ),
    Route(
        "purchase", "0200", "000000", "00", "22", mandatory=(*_FIN, "4", "52", "53"), any_of=_PAN_EXP,
        mac=True, pin="required", steps=(*_FRONT, "card", "pin", "limits", "post"),
        reply_adds=("12", "13", "15", "32", "37", "38", "39", "54", "64"),
    ),
    Route(
        "void", "0200", "200000", "00", "23", mandatory=(*_FIN, "4", "37", "38", "61"), any_of=_PAN,
        mac=True, pin="optional", steps=(*_FRONT, "card", "pin", "limits", "post"),
        reply_adds=("12", "13", "15", "37", "38", "39", "54", "64"),
    ),
    Route(
        "refund", "0220", "200000", "00", "25", mandatory=("3", "4", "11", "22", "25", "37", "41", "42", "49",
                                                             "60", "61"),
        any_of=_PAN, mac=True, steps=(*_FRONT, "card", "limits", "post"),
        reply_adds=("12", "13", "15", "37", "39", "64"),
    ),
    Route(
        "topup", "0200", "630000", "00", "48", mandatory=(*_FIN, "4"), any_of=_PAN, mac=True,
        kinds=frozenset({"service_hall"}), steps=(*_FRONT, "card", "limits", "post"),
        reply_adds=("12", "13", "15", "37", "38", "39", "54", "64"),
    ),
    Route(
        "pinchange", "0200", "700000", "00", "70", mandatory=(*_FIN, "52", "53", "62"), any_of=_PAN, mac=True,
        pin="change", inactive_ok=True, steps=(*_FRONT, "card", "pin", "post"),
        reply_adds=("12", "13", "37", "39", "64"),
    ),
    Route(
        "settlement", "0500", nmics=("201",), mandatory=("11", "41", "42", "48", "49", "60"),
        steps=("terminal", "type", "duplicate", "settlement"), reply_adds=("15", "39", "48"),
    ),
)

#: the original types a reversal (0400, "3/25/60.1 as original") may undo
REVERSIBLE = ("purchase", "void", "topup")

REVERSAL = Route(
    "reversal", "0400", mandatory=("3", "4", "11", "39", "41", "42", "60"), mac=True,
    steps=(*_FRONT, "reversal"), reply_adds=("37", "39", "64"),
)
# fmt: on

_BY_KEY: dict[tuple[str, str, str, str], Route] = {}
_BY_NMIC: dict[tuple[str, str], Route] = {}
_KNOWN_PCODES: set[tuple[str, str]] = set()
_MANAGEMENT_MTIS: set[str] = set()
for _r in ROUTES:
    if _r.nmics:
        _MANAGEMENT_MTIS.add(_r.mti)
        for _n in _r.nmics:
            _BY_NMIC[(_r.mti, _n)] = _r
    else:
        _BY_KEY[(_r.mti, _r.pcode, _r.cond, _r.type_code)] = _r
        _KNOWN_PCODES.add((_r.mti, _r.pcode))
_REVERSIBLE_KEYS: dict[tuple[str, str, str], Route] = {
    (r.pcode, r.cond, r.type_code): r for r in ROUTES if r.name in REVERSIBLE
}
_REVERSIBLE_PCODES = {r.pcode for r in ROUTES if r.name in REVERSIBLE}
ROUTES_BY_NAME: dict[str, Route] = {r.name: r for r in (*ROUTES, REVERSAL)}


def find_route(mti: str, fields: dict[str, str]) -> tuple[Route | None, Result | None]:
    """The route of a request, or why there is none (see module docstring)."""
    f60 = fields.get("60", "")
    type_code = f60[0:2]
    if mti in _MANAGEMENT_MTIS:
        route = _BY_NMIC.get((mti, f60[8:11]))
        if route is None:
            return None, Result.TYPE_UNKNOWN
        if type_code != route.type_code:
            return None, Result.TYPE_WRONG_STATE
        return route, None
    pcode = fields.get("3", "")
    cond = fields.get("25", "")
    if mti == "0400":
        if (pcode, cond, type_code) in _REVERSIBLE_KEYS:
            return REVERSAL, None
        if pcode in _REVERSIBLE_PCODES:
            return None, Result.TYPE_WRONG_STATE
        return None, Result.TYPE_UNKNOWN
    route = _BY_KEY.get((mti, pcode, cond, type_code))
    if route is not None:
        return route, None
    if (mti, pcode) in _KNOWN_PCODES:
        return None, Result.TYPE_WRONG_STATE
    return None, Result.TYPE_UNKNOWN


def reversed_type(fields: dict[str, str]) -> str:
    """Name of the original type a reversal undoes (``purchase`` ...), ``""`` if not reversible."""
    f60 = fields.get("60", "")
    r = _REVERSIBLE_KEYS.get((fields.get("3", ""), fields.get("25", ""), f60[0:2]))
    return r.name if r is not None else ""
