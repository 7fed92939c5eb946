"""Structured JSON logging (structlog), one line per event (SPEC §9).

Tracebacks are rendered with ``format_exc_info`` (plain text) on purpose: structlog's dict tracebacks
render local variables, which would carry PANs, PIN blocks and keys into the log.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from switch.telemetry.masking import mask_pans_in_text, redact_processor

# Event names (SPEC §9). Use these constants rather than string literals.
LISTENING = "listening"
CONN_OPEN = "conn_open"
CONN_CLOSE = "conn_close"
TXN = "txn"
SIGNON = "signon"
MAC_ERROR = "mac_error"
HSM_ERROR = "hsm_error"
CLEARING_WRITTEN = "clearing_written"
SHUTDOWN = "shutdown"
FRAME_ERROR = "frame_error"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _timestamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event_dict


def _scrub_exception(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = mask_pans_in_text(exc)
    return event_dict


def _dumps(obj: Any, **_kw: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def configure_logging(level: str = "info", stream: TextIO | None = None, file: str = "") -> None:
    """Configure structlog for JSON lines to ``stream`` (default stdout) or ``file``."""
    out: TextIO
    if file:
        out = open(file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives for the process
    else:
        out = stream if stream is not None else sys.stdout
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            _scrub_exception,
            redact_processor,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level.lower(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; ``name`` is recorded as ``logger``."""
    log = structlog.get_logger()
    return log.bind(logger=name) if name else log
