"""The cheap txn line (``telemetry.logs.EventLog``) keeps the masking processor's guarantees and gets flushed."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import re
from typing import Any

from switch.telemetry import logs
from switch.telemetry.logs import EventLog, _redact
from switch.telemetry.masking import redact_processor

SAMPLES: list[dict[str, Any]] = [
    {
        "pan": "9900010000000019",
        "mid": "898520154110001",
        "note": "card 9900010000000019 in text",
        "steps": {"parse": 0.1, "mac": 1.0},
        "pin_block": "ABCDEF0123456789",
        "mak_lmk": "U0123",
        "nested": {"track2": "9900010000000019D3012", "a": "9900010000000019", "n": 1},
        "amount": 100,
        "none": None,
        "flag": True,
        "items": ["9900010000000019"],
    },
    {"steps": {"pin": 1.0}, "peer": "127.0.0.1:1", "rrn": "000000000001"},
]


def test_redaction_equals_the_structlog_processor() -> None:
    for sample in SAMPLES:
        fast, slow = copy.deepcopy(sample), copy.deepcopy(sample)
        _redact(fast)
        redact_processor(None, "", slow)
        assert fast == slow


class _Buffered(io.StringIO):
    """A stream whose content is visible only after flush (like a block-buffered stdout)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


async def test_lines_are_flushed_soon_after_on_a_running_loop() -> None:
    stream = _Buffered()
    saved = logs._Output.stream, logs._Output.level
    logs._Output.stream, logs._Output.level = stream, 20
    try:
        EventLog("switch.txn").info("txn", pan="9900010000000019", rc="00")
        assert stream.flushed == ""
        await asyncio.sleep(logs.FLUSH_DELAY_S * 4)
        line = json.loads(stream.flushed)
        assert line["event"] == "txn" and line["pan"] == "990001******0019" and line["level"] == "info"
    finally:
        logs._Output.stream, logs._Output.level = saved


TXN_SAMPLES: list[dict[str, Any]] = [
    {
        "mti": "0200",
        "txn_type": "purchase",
        "tid": "10000001",
        "mid": "898520154110001",
        "stan": "000123",
        "batch": "000001",
        "rrn": "000000000123",
        "pan": "990001******0019",
        "amount": 1000,
        "rc": "00",
        "reason": "approved",
        "auth_code": "000123",
        "latency_ms": 3.123,
        "steps": {"parse": 0.012, "mac": 1.2, "hsm_pin": 1.1, "ledger": 2.2, "reply": 0.5},
        "peer": "127.0.0.1:45678",
        "extra": {},
    },
    {  # hostile values: quotes, control characters, a PAN where none belongs, secrets among the extras
        "mti": "0200",
        "txn_type": "unknown",
        "tid": 'a"b\\c\n',
        "mid": "9900010000000019",
        "stan": "\x00\x01",
        "batch": "",
        "rrn": "",
        "pan": "9900010000000019",
        "amount": 0,
        "rc": "30",
        "reason": "bad_field",
        "auth_code": "",
        "latency_ms": 0.0,
        "steps": {"pin": 0.5, "parse": 0.1},
        "peer": "9900010000000019:1",
        "extra": {"field": "35", "track2": "9900010000000019D3012", "note": "x 9900010000000019 y", "replay": True},
    },
]


def test_txn_line_equals_the_generic_line() -> None:
    saved = logs._Output.stream, logs._Output.level
    try:
        for sample in TXN_SAMPLES:
            fast_out, slow_out = io.StringIO(), io.StringIO()
            logs._Output.level = 20
            logs._Output.stream = fast_out
            EventLog("switch.txn").txn(**copy.deepcopy(sample))
            logs._Output.stream = slow_out
            fields = copy.deepcopy(sample)
            extra = fields.pop("extra")
            EventLog("switch.txn").info("txn", **fields, **extra)
            fast, slow = json.loads(fast_out.getvalue()), json.loads(slow_out.getvalue())
            ts, slow_ts = fast.pop("ts"), slow.pop("ts")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts) and len(ts) == len(slow_ts)
            assert fast == slow
            assert "9900010000000019" not in fast_out.getvalue()
    finally:
        logs._Output.stream, logs._Output.level = saved
