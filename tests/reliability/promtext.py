"""A strict reader of the Prometheus text format (0.0.4) for the ``/metrics`` test: every sample belongs to a
family declared by ``# TYPE``, names and labels are well formed, histogram buckets are cumulative and end
with ``+Inf`` = ``_count``. ``scrape(port)`` fetches ``/metrics`` over real HTTP."""

from __future__ import annotations

import asyncio
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
Labels = tuple[tuple[str, str], ...]


class FormatError(AssertionError):
    pass


@dataclass
class Family:
    name: str
    type: str
    help: str = ""
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def total(self, suffix: str = "", **match: str) -> float:
        """Sum of the samples ``name + suffix`` whose labels include ``match``."""
        want = self.name + suffix
        return sum(v for (n, labels), v in self.samples.items() if n == want and set(match.items()) <= set(labels))

    def label_values(self, label: str) -> set[str]:
        return {dict(labels)[label] for (_n, labels) in self.samples if label in dict(labels)}


def parse(text: str) -> dict[str, Family]:
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# HELP "):
            name, _, text_ = line[7:].partition(" ")
            helps[name] = text_
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            if typ not in ("counter", "gauge", "histogram", "summary", "untyped") or name in families:
                raise FormatError(f"line {n}: bad or repeated TYPE for {name}")
            families[name] = Family(name, typ, helps.get(name, ""))
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise FormatError(f"line {n}: not a sample: {line[:80]!r}")
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        labels = tuple(_LABEL.findall(labels_text))
        if labels_text and ",".join(f'{k}="{v}"' for k, v in labels) != labels_text:
            raise FormatError(f"line {n}: bad labels {labels_text[:80]!r}")
        fam = families.get(name) or next(
            (f for f in families.values() if f.type == "histogram" and name in (f.name + "_bucket", f.name + "_sum",
                                                                                 f.name + "_count")), None)  # fmt: skip
        if fam is None:
            raise FormatError(f"line {n}: sample {name} of no declared family")
        try:
            v = float(value)
        except ValueError:
            raise FormatError(f"line {n}: bad value {value!r}") from None
        if math.isnan(v):
            raise FormatError(f"line {n}: NaN")
        fam.samples[(name, labels)] = v
    for fam in families.values():
        if fam.type == "histogram":
            _check_histogram(fam)
    return families


def _check_histogram(fam: Family) -> None:
    series: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    counts: dict[Labels, float] = {}
    for (name, labels), v in fam.samples.items():
        plain = tuple(kv for kv in labels if kv[0] != "le")
        if name == fam.name + "_bucket":
            le = dict(labels)["le"]
            series[plain].append((math.inf if le == "+Inf" else float(le), v))
        elif name == fam.name + "_count":
            counts[plain] = v
    for plain, buckets in series.items():
        buckets.sort()
        values = [v for _le, v in buckets]
        if values != sorted(values) or buckets[-1][0] != math.inf or buckets[-1][1] != counts.get(plain):
            raise FormatError(f"{fam.name}{dict(plain)}: buckets not cumulative or +Inf != _count")


async def scrape(port: int, path: str = "/metrics") -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise AssertionError(f"GET {path}: {status!r}")
    return body.decode()
