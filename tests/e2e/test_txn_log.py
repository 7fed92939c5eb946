"""The cheap txn line (``telemetry.logs.EventLog``) keeps the masking processor's guarantees and gets flushed."""

from __future__ import annotations

import asyncio
import copy
import io
import json
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
