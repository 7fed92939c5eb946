"""Load-generator statistics: HDR latency histograms, response-code counts, the terminal's own events
(timeouts, reversals, sign-ons, settlements), and the generator's own CPU cost.

:class:`LoadStats` is filled by one process's terminals (``observe`` sees every answer), merged across
processes (``to_wire`` / ``from_wire``, histograms travel HDR-encoded), and rendered as text or as the JSON
report. Latencies are recorded in microseconds (1 µs .. 60 s, 3 significant digits), for the requests of
the mix only; sign-ons, reversals, advices sent again from the store-and-forward queue and settlements are
counted apart (with what the queue gave up or still held at the end).
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from switch.rc import RC
from terminal_sim.state import TerminalState
from terminal_sim.terminal import Answer

#: message types that are the terminal's own business, not the load's mix
HOUSEKEEPING = frozenset({"signon", "reversal", "settle"})
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 60_000_000, 3
#: share of a core per generator process above which the generator may be the bottleneck
SATURATED = 0.8
PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


#: the integer and float counters, summed across processes (but ``elapsed_s``: the longest; ``procs`` adds 1 each)
_SCALARS = (
    "timeouts", "not_sent", "bad_mac", "errors", "signons_ok", "signons_failed", "settled_balanced",
    "settled_not_balanced", "settle_failed", "unmatched_replies", "connects", "forward_given_up", "forward_owed",
    "elapsed_s", "cpu_s", "procs",
)  # fmt: skip


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


@dataclass
class LoadStats:
    latency: HdrHistogram = field(default_factory=new_histogram)
    by_type: dict[str, HdrHistogram] = field(default_factory=dict)
    rc: Counter[str] = field(default_factory=Counter)
    rc_by_type: dict[str, Counter[str]] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    not_sent: int = 0
    bad_mac: int = 0
    errors: int = 0
    reversals: Counter[str] = field(default_factory=Counter)
    #: advices sent again from the store-and-forward queue, by answer (RC, or timeout / bad_mac / not_sent)
    advices_resent: Counter[str] = field(default_factory=Counter)
    #: queued reversals and advices given up at the retry bound, and still queued when the terminals stopped
    forward_given_up: int = 0
    forward_owed: int = 0
    signons_ok: int = 0
    signons_failed: int = 0
    settled_balanced: int = 0
    settled_not_balanced: int = 0
    settle_failed: int = 0
    unmatched_replies: int = 0
    connects: int = 0
    #: the measured window and the generator's CPU in it (summed over processes)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    procs: int = 1

    # -- recording ----------------------------------------------------------------------------------
    def observe(self, a: Answer) -> None:
        """Account one answer (called by the session for every exchange)."""
        kind = a.request.type.name
        self.sent[kind] += 1
        if kind == "signon":
            if a.approved:
                self.signons_ok += 1
            else:
                self.signons_failed += 1
            return
        if kind == "reversal":
            self.reversals[a.rc or a.status] += 1
            return
        if a.request.resent:  # the terminal's own business: its queue, not the load's mix
            self.advices_resent[a.rc if a.status == "ok" else a.status] += 1
            return
        if kind == "settle":  # counted once per batch by settled(), retransmissions included
            return
        if a.status == "timeout":
            self.timeouts += 1
            return
        if a.status == "not_sent":
            self.not_sent += 1
            return
        if a.status == "bad_mac":
            self.bad_mac += 1
        us = max(1, min(int(a.latency_s * 1_000_000), _HIGHEST_US))
        self.latency.record_value(us)
        h = self.by_type.get(kind)
        if h is None:
            h = self.by_type[kind] = new_histogram()
            self.rc_by_type[kind] = Counter()
        h.record_value(us)
        self.rc[a.rc] += 1
        self.rc_by_type[kind][a.rc] += 1

    def settled(self, a: Answer | None) -> None:
        """Account the final answer of one batch settlement (``None``: the terminal could not send it)."""
        s = a.settlement if a is not None else None
        if a is None or a.rc != RC.APPROVED or s is None:
            self.settle_failed += 1
        elif s.code == "1":
            self.settled_balanced += 1
        else:
            self.settled_not_balanced += 1

    def terminal_done(self, state: TerminalState) -> None:
        """Account what one terminal's store-and-forward queue gave up and still held when it stopped."""
        self.forward_given_up += len(state.given_up)
        self.forward_owed += len(state.queue)

    @property
    def answered(self) -> int:
        return int(self.latency.get_total_count())

    @property
    def requests(self) -> int:
        """Requests of the mix sent (answered or not)."""
        return self.answered + self.timeouts + self.not_sent

    @property
    def exchanges(self) -> int:
        return sum(self.sent.values())

    # -- merging across processes -------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """A picklable/JSON-able form with HDR-encoded histograms."""

        def enc(h: HdrHistogram) -> str:
            return base64.b64encode(h.encode()).decode()

        return {
            "latency": enc(self.latency),
            "by_type": {k: enc(v) for k, v in self.by_type.items()},
            "rc": dict(self.rc),
            "rc_by_type": {k: dict(v) for k, v in self.rc_by_type.items()},
            "sent": dict(self.sent),
            "reversals": dict(self.reversals),
            "advices_resent": dict(self.advices_resent),
            **{k: getattr(self, k) for k in _SCALARS},
        }  # fmt: skip

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> LoadStats:
        def dec(s: str) -> HdrHistogram:
            h = new_histogram()
            h.add(HdrHistogram.decode(base64.b64decode(s)))
            return h

        st = cls(
            latency=dec(d["latency"]),
            by_type={k: dec(v) for k, v in d["by_type"].items()},
            rc=Counter(d["rc"]),
            rc_by_type={k: Counter(v) for k, v in d["rc_by_type"].items()},
            sent=Counter(d["sent"]),
            reversals=Counter(d["reversals"]),
            advices_resent=Counter(d["advices_resent"]),
        )
        for k in _SCALARS:
            setattr(st, k, d[k])
        return st

    def merge(self, o: LoadStats) -> None:
        """Add another process's figures (the window is the longest one; CPU and procs add up)."""
        self.latency.add(o.latency)
        for k, h in o.by_type.items():
            if k not in self.by_type:
                self.by_type[k] = new_histogram()
                self.rc_by_type[k] = Counter()
            self.by_type[k].add(h)
            self.rc_by_type[k].update(o.rc_by_type.get(k, {}))
        self.rc.update(o.rc)
        self.sent.update(o.sent)
        self.reversals.update(o.reversals)
        self.advices_resent.update(o.advices_resent)
        for k in _SCALARS:
            if k not in ("elapsed_s", "procs"):
                setattr(self, k, getattr(self, k) + getattr(o, k))
        self.elapsed_s = max(self.elapsed_s, o.elapsed_s)
        self.procs += o.procs

    # -- reporting ----------------------------------------------------------------------------------
    @staticmethod
    def _ms(h: HdrHistogram) -> dict[str, float]:
        if h.get_total_count() == 0:
            return {name: 0.0 for name in ("min", "mean", *(p for p, _ in PERCENTILES), "max")}
        out = {"min": h.get_min_value() / 1000, "mean": round(h.get_mean_value() / 1000, 3)}
        # one pass over the buckets for all the percentiles
        values = h.get_percentile_to_value_dict([pct for _, pct in PERCENTILES])
        for name, pct in PERCENTILES:
            out[name] = values[pct] / 1000
        out["max"] = h.get_max_value() / 1000
        return out

    @property
    def tps(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def report(self, config: dict[str, Any]) -> dict[str, Any]:
        """The JSON report."""
        exchanges = self.exchanges
        lat = self._ms(self.latency)
        return {
            "config": config,
            "elapsed_s": round(self.elapsed_s, 3),
            "requests": self.requests,
            "answered": self.answered,
            "tps": round(self.tps, 1),
            "latency_ms": lat,
            # the headline figures again at the top level, for scripts
            **{f"{k}_ms": lat[k] for k in ("p50", "p95", "p99", "max")},
            "settled_balanced": self.settled_balanced,
            "by_type": {
                k: {"count": int(h.get_total_count()), "latency_ms": self._ms(h), "rc": dict(self.rc_by_type[k])}
                for k, h in sorted(self.by_type.items())
            },
            "rc": dict(sorted(self.rc.items())),
            "approved_pct": round(100.0 * self.rc.get(RC.APPROVED.value, 0) / self.answered, 2) if self.answered else 0,
            "timeouts": self.timeouts,
            "not_sent": self.not_sent,
            "bad_reply_mac": self.bad_mac,
            "errors": self.errors,
            "reversals": {"sent": sum(self.reversals.values()), "rc": dict(sorted(self.reversals.items()))},
            "store_and_forward": {
                "advices_resent": sum(self.advices_resent.values()),
                "advices_resent_rc": dict(sorted(self.advices_resent.items())),
                "given_up": self.forward_given_up,
                "owed_at_end": self.forward_owed,
            },
            "signons": {"ok": self.signons_ok, "failed": self.signons_failed},
            "settlement": {
                "terminals": self.settled_balanced + self.settled_not_balanced + self.settle_failed,
                "balanced": self.settled_balanced,
                "not_balanced": self.settled_not_balanced,
                "failed": self.settle_failed,
            },
            "connections_opened": self.connects,
            "late_replies": self.unmatched_replies,
            "client": {
                "procs": self.procs,
                "cpu_s": round(self.cpu_s, 3),
                "cpu_us_per_message": round(self.cpu_s * 1e6 / exchanges, 1) if exchanges else 0.0,
                "cpu_cores_used": round(self.cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0.0,
            },
        }


def render_text(rep: dict[str, Any]) -> str:
    """The human report printed at the end of a load run."""
    c = rep["config"]
    lat = rep["latency_ms"]
    lines = [
        f"load: {c['terminals']} terminals ({c['connections']} connections, {c['procs']} process"
        f"{'es' if c['procs'] > 1 else ''}) for {rep['elapsed_s']:.1f} s against {c['switch']} ({c['profile']})"
        + (f", target {c['rate']} TPS" if c.get("rate") else ", as fast as the switch answers"),
        f"  requests   {rep['requests']} sent, {rep['answered']} answered: {rep['tps']:.1f} TPS,"
        f" {rep['approved_pct']:.1f}% approved",
        f"  latency ms p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  p99 {lat['p99']:.2f}  p99.9 {lat['p999']:.2f}"
        f"  max {lat['max']:.2f}",
    ]
    for kind, t in rep["by_type"].items():
        tl = t["latency_ms"]
        rcs = " ".join(f"{k}:{v}" for k, v in sorted(t["rc"].items()))
        lines.append(f"  {kind:<10} {t['count']:>8}  p50 {tl['p50']:.2f}  p99 {tl['p99']:.2f} ms  rc {rcs}")
    hist = "  ".join(f"{k} {RC.describe(k)[0]}: {v}" for k, v in rep["rc"].items())
    lines.append(f"  rc         {hist or '-'}")
    rev = rep["reversals"]
    rev_rc = " ".join(f"{k}:{v}" for k, v in rev["rc"].items())
    lines.append(
        f"  timeouts   {rep['timeouts']}   not sent {rep['not_sent']}   bad reply MAC {rep['bad_reply_mac']}"
        f"   errors {rep['errors']}   reversals {rev['sent']}" + (f" ({rev_rc})" if rev_rc else "")
    )
    q = rep["store_and_forward"]
    q_rc = " ".join(f"{k}:{v}" for k, v in q["advices_resent_rc"].items())
    lines.append(
        f"  queue      advices sent again {q['advices_resent']}" + (f" ({q_rc})" if q_rc else "")
        + f"   given up {q['given_up']}   still owed at the end {q['owed_at_end']}"
    )  # fmt: skip
    s = rep["settlement"]
    lines.append(
        f"  settlement {s['balanced']} of {s['terminals']} batches balanced, {s['not_balanced']} not balanced,"
        f" {s['failed']} failed   sign-ons {rep['signons']['ok']} ok, {rep['signons']['failed']} failed"
    )
    cl = rep["client"]
    lines.append(
        f"  generator  {cl['cpu_us_per_message']:.0f} µs CPU per message, {cl['cpu_cores_used']:.2f} cores busy"
        f" ({cl['cpu_s']:.2f} s CPU in {cl['procs']} process{'es' if cl['procs'] > 1 else ''})"
    )
    if cl["procs"] and cl["cpu_cores_used"] / cl["procs"] > SATURATED:
        lines.append("  warning    the generator itself was near one busy core per process: add --procs")
    return "\n".join(lines)
