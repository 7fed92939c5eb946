"""Rendering of report rows as CSV or as an aligned text table (CJK characters count two columns)."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """Columns aligned by display width; column indexes in ``numeric`` are right-aligned."""
    widths = [display_width(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    right = set(numeric)
    out = [
        "  ".join(_pad(h, widths[i], i in right) for i, h in enumerate(header)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    out += ["  ".join(_pad(c, widths[i], i in right) for i, c in enumerate(row)).rstrip() for row in rows]
    return "\n".join(out) + "\n"


def render_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()
