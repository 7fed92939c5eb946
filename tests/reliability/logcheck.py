"""SPEC §9's error events checked on a switch's JSON log lines: every failure is logged exactly once.

``error_lines(events, "hsm_error", {"hsm_unavailable", "hsm_error"})`` lists the problems. Error lines are
paired with the ``txn`` line that follows them for the same TID and STAN (a request logs its error, then its
``txn`` line, in one task; a terminal has one request at a time): a request answered because of that failure
(its ``txn`` line's ``reason``) must have exactly one such line before it, any other request none, except an
approval whose reply could not be MACed (one line, ``step=reply_mac``: the approval stands, the terminal
reverses it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def error_lines(events: Iterable[dict[str, Any]], event: str, reasons: set[str]) -> list[str]:
    pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
    problems: list[str] = []
    for e in events:
        name = e.get("event")
        if name not in (event, "txn"):
            continue
        key = (str(e.get("tid")), str(e.get("stan")))
        if name == event:
            pending.setdefault(key, []).append(e)
            continue
        lines = pending.pop(key, [])
        what = f"{e.get('mti')} {key[0]}/{key[1]} rc {e.get('rc')} ({e.get('reason')})"
        if e.get("reason") in reasons:
            if len(lines) != 1:
                problems.append(f"{what}: {len(lines)} {event} lines, expected 1")
        elif e.get("rc") == "00" and [x.get("step") for x in lines] in ([], ["reply_mac"]):
            continue
        elif lines:
            problems.append(f"{what}: {len(lines)} {event} lines, expected none")
    problems += [f"{key}: {len(lines)} {event} lines without a txn line" for key, lines in pending.items()]
    return problems
