"""One masking function set for logs, CLI output and files."""

from __future__ import annotations

import io
import json

from switch.telemetry.logs import configure_logging, get_logger
from switch.telemetry.masking import luhn_ok, mask_pan, mask_pans_in_text, redact_mapping


def test_mask_pan_keeps_first6_last4() -> None:
    assert mask_pan("9900010000000019") == "990001******0019"
    assert mask_pan("6222021234567890123") == "622202*********0123"
    assert mask_pan("123") == "***"
    assert mask_pan("") == ""


def test_luhn() -> None:
    assert luhn_ok("9900010000000019")
    assert not luhn_ok("9900010000000018")


def test_free_text_pans_are_masked() -> None:
    assert mask_pans_in_text("card 9900010000000019 declined") == "card 990001******0019 declined"
    assert mask_pans_in_text("stan 000001 amount 000000010000") == "stan 000001 amount 000000010000"


def test_redaction_by_key() -> None:
    out = redact_mapping(
        {
            "pan": "9900010000000019",
            "pin_block": "50E815F7B95212F9",
            "35": "9900010000000019D3012",
            "tmk": "0123",
            "mak_lmk": "ABCD",
            "stan": "000001",
            "nested": {"52": "AA"},
        }
    )
    assert out["pan"] == "990001******0019"
    assert out["pin_block"] == out["35"] == out["tmk"] == out["mak_lmk"] == "[REDACTED]"
    assert out["stan"] == "000001"
    assert out["nested"] == {"52": "[REDACTED]"}


def test_log_lines_are_json_and_masked() -> None:
    sink = io.StringIO()
    try:
        configure_logging("info", stream=sink)
        log = get_logger("t")
        log.info("txn", pan="9900010000000019", pin_block="50E815F7B95212F9", stan="000001")
        try:
            raise ValueError("bad card 9900010000000019")
        except ValueError:
            log.exception("boom")
        lines = [json.loads(x) for x in sink.getvalue().splitlines()]
    finally:
        from tests.conftest import LOG_SINK

        configure_logging("debug", stream=LOG_SINK)
    assert lines[0]["event"] == "txn" and lines[0]["pan"] == "990001******0019"
    assert lines[0]["pin_block"] == "[REDACTED]"
    assert "ts" in lines[0] and lines[0]["level"] == "info"
    assert "9900010000000019" not in sink.getvalue()
    assert "990001******0019" in lines[1]["exception"]


def test_a_logger_created_before_configuration_follows_it() -> None:
    """Modules create loggers at import time, before ``configure_logging``: they must still write masked JSON."""
    import structlog

    structlog.reset_defaults()  # as in a fresh process: nothing configured yet
    early = get_logger("early")
    sink = io.StringIO()
    try:
        configure_logging("info", stream=sink)
        early.info("card_action", pan="9900010000000019", tmk="0123456789ABCDEFFEDCBA9876543210")
        line = json.loads(sink.getvalue())
    finally:
        from tests.conftest import LOG_SINK

        configure_logging("debug", stream=LOG_SINK)
    assert line["logger"] == "early" and line["pan"] == "990001******0019" and line["tmk"] == "[REDACTED]"
