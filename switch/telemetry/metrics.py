"""A small Prometheus text-format registry (counters, gauges, histograms with fixed names, SPEC §9).

Hand-written on purpose: the whole need is a few dozen lines, and it keeps the hot path to a dict update.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

LabelKey = tuple[tuple[str, str], ...]
_INF = 'le="+Inf"'


def _key(labels: dict[str, str]) -> LabelKey:
    """The series key of ``labels`` (sorted; the common 0- and 1-label cases without a sort)."""
    if len(labels) < 2:
        return tuple(labels.items())
    return tuple(sorted(labels.items()))


def _fmt_labels(labels: LabelKey, extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help, self.values = name, help_text, dict[LabelKey, float]()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = _key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_fmt_labels(key)} {value:g}"


class Gauge(Counter):
    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        if not self.values:
            yield f"{self.name} 0"
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_fmt_labels(key)} {value:g}"


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.series: dict[LabelKey, list[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, value: float, **labels: str) -> None:
        key = _key(labels)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = [0.0] * (len(self.buckets) + 2)
        s[bisect.bisect_left(self.buckets, value)] += 1
        s[-1] += value

    def count(self, **labels: str) -> int:
        s = self.series.get(tuple(sorted(labels.items())))
        return int(sum(s[:-1])) if s else 0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for key, s in sorted(self.series.items()):
            cumulative = 0.0
            for bound, n in zip(self.buckets, s, strict=False):
                cumulative += n
                le = 'le="' + f"{bound:g}" + '"'
                yield f"{self.name}_bucket{_fmt_labels(key, le)} {cumulative:g}"
            cumulative += s[len(self.buckets)]
            yield f"{self.name}_bucket{_fmt_labels(key, _INF)} {cumulative:g}"
            yield f"{self.name}_sum{_fmt_labels(key)} {s[-1]:.6f}"
            yield f"{self.name}_count{_fmt_labels(key)} {cumulative:g}"


class Metrics:
    """All metrics of one switch process, created by the composition root and passed down."""

    def __init__(self) -> None:
        self.requests = Counter("switch_requests_total", "ISO 8583 requests answered, by MTI and response code")
        self.latency = Histogram("switch_request_latency_seconds", "Request latency from frame to reply written")
        self.connections_open = Gauge("switch_connections_open", "Open POS connections")
        self.connections_total = Counter("switch_connections_total", "POS connections accepted, by profile")
        self.connections_closed = Counter("switch_connections_closed_total", "POS connections closed, by reason")
        self.connections_refused = Counter(
            "switch_connections_refused_total", "Connections refused by the connection caps, by reason"
        )
        self.inflight = Gauge("switch_inflight_requests", "Requests being processed")
        self.frame_errors = Counter("switch_frame_errors_total", "Frames that could not be answered, by reason")
        self.hsm_latency = Histogram("switch_hsm_latency_seconds", "HSM command round trip, by command")
        self.hsm_errors = Counter("switch_hsm_errors_total", "HSM failures, by command and kind")
        self.ledger_commit = Histogram("switch_ledger_commit_seconds", "Ledger operation latency incl. commit")
        self.mac_errors = Counter("switch_mac_errors_total", "MAC verification failures")

    def all(self) -> list[Counter | Histogram]:
        return [v for v in vars(self).values() if isinstance(v, Counter | Histogram)]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.all():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
