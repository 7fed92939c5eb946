"""A hand-written SVG line plot of latency percentiles against offered load (no plotting library needed)."""

from __future__ import annotations

from typing import Any

W, H, L, R, T, B = 640, 400, 70, 130, 40, 50
SERIES = (("p50_ms", "p50", "#1f77b4"), ("p99_ms", "p99", "#d62728"), ("max_ms", "max", "#7f7f7f"))


def latency_plot(points: list[dict[str, Any]], *, title: str) -> str:
    """``points``: dicts with ``tps`` (achieved), ``p50_ms``, ``p99_ms``, ``max_ms``. Log-scale latency axis."""
    import math

    pts = sorted(points, key=lambda p: p["tps"])
    xmax = max(p["tps"] for p in pts) * 1.1 or 1.0
    values = [p[k] for p in pts for k, _, _ in SERIES if p[k] > 0]
    lo = 10 ** math.floor(math.log10(min([*values, 1.0])))
    hi = 10 ** math.ceil(math.log10(max([*values, 10.0])))

    def x(v: float) -> float:
        return L + (W - L - R) * v / xmax

    def y(v: float) -> float:
        v = max(v, lo)
        return T + (H - T - B) * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
        f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
    ]
    decade = lo
    while decade <= hi:
        out.append(
            f'<line x1="{L}" x2="{W - R}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>'
            f'<text x="{L - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g} ms</text>'
        )
        decade *= 10
    target = y(10.0)
    out.append(
        f'<line x1="{L}" x2="{W - R}" y1="{target:.1f}" y2="{target:.1f}" stroke="#d62728" '
        f'stroke-dasharray="4 4"/><text x="{W - R + 4}" y="{target + 4:.1f}" fill="#d62728">p99 target</text>'
    )
    for i in range(6):
        v = xmax * i / 5
        out.append(f'<text x="{x(v):.1f}" y="{H - B + 18}" text-anchor="middle">{v:,.0f}</text>')
    out.append(
        f'<text x="{(L + W - R) / 2}" y="{H - 10}" text-anchor="middle">achieved TPS (offered = 25/50/75/90 % '
        f"of max)</text>"
    )
    out.append(
        f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H - B}" stroke="black"/>'
        f'<line x1="{L}" x2="{W - R}" y1="{H - B}" y2="{H - B}" stroke="black"/>'
    )
    for n, (key, label, color) in enumerate(SERIES):
        path = " ".join(f"{x(p['tps']):.1f},{y(p[key]):.1f}" for p in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for p in pts:
            out.append(f'<circle cx="{x(p["tps"]):.1f}" cy="{y(p[key]):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{W - R + 10}" y="{T + 20 + 18 * n}" fill="{color}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
