"""Structured JSON logging (structlog), one line per event (SPEC §9).

Tracebacks are rendered with ``format_exc_info`` (plain text) on purpose: structlog's dict tracebacks
render local variables, which would carry PANs, PIN blocks and keys into the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from switch.telemetry.masking import mask_pans_in_text, redact_processor, redact_value

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


class _Output:
    """Where :class:`EventLog` writes: the stream ``configure_logging`` chose (``None``: ``sys.stdout`` at write
    time, as structlog's default does) and the level."""

    stream: TextIO | None = None
    level = logging.INFO
    #: the loop on which a flush is pending (None: nothing pending)
    flush_loop: asyncio.AbstractEventLoop | None = None


#: a busy switch's ``txn`` lines are flushed together at most this long after the first of them
FLUSH_DELAY_S = 0.05


def _flush() -> None:
    _Output.flush_loop = None
    out = _Output.stream or sys.stdout
    with contextlib.suppress(OSError, ValueError):  # closed at shutdown: nothing left to do
        out.flush()


#: key -> True when :func:`redact_value` treats values under that key like any other (no PAN/secret key rule)
_PLAIN_KEY: dict[str, bool] = {}
_PROBE = "x" * 20  # a value no key rule leaves unchanged... unless the key is a PAN or secret key


def _plain(key: str) -> bool:
    plain = _PLAIN_KEY.get(key)
    if plain is None:
        plain = _PLAIN_KEY[key] = redact_value(key, _PROBE) == _PROBE
    return plain


def _redact(fields: dict[str, Any]) -> None:
    """Exactly :func:`redact_processor`'s result, cheaper: the key rules are decided once per key name, and a
    string too short to hold a PAN (< 13 characters) or a mapping of numbers needs no look."""
    for key, value in fields.items():
        if value is None or isinstance(value, int | float | bool):
            continue
        if not _plain(key):
            fields[key] = redact_value(key, value)
        elif isinstance(value, str):
            if len(value) >= 13:
                fields[key] = mask_pans_in_text(value)
        elif isinstance(value, dict):
            if not all(isinstance(v, int | float) and _plain(k) for k, v in value.items()):
                fields[key] = redact_value(key, value)
        else:
            fields[key] = redact_value(key, value)


class EventLog:
    """The hot-path logger (one ``event=txn`` line per request): the same JSON line, the same keys and the same
    redaction (:func:`redact_processor`) as a structlog ``info`` call, without structlog's per-call machinery
    and with one flush per :data:`FLUSH_DELAY_S` instead of one per line (a write syscall per request).

    Lines written by structlog in between flush the shared stream, so the order of lines is kept.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def info(self, event: str, **fields: Any) -> None:
        if _Output.level > logging.INFO:
            return
        fields["logger"] = self._name
        fields["event"] = event
        fields["level"] = "info"
        _timestamp(None, "", fields)
        _redact(fields)
        out = _Output.stream or sys.stdout
        out.write(_dumps(fields) + "\n")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            out.flush()
            return
        # one pending flush per loop (a loop closed before its flush ran, as in tests, must not block later ones)
        if _Output.flush_loop is not loop:
            _Output.flush_loop = loop
            loop.call_later(FLUSH_DELAY_S, _flush)


def configure_logging(level: str = "info", stream: TextIO | None = None, file: str = "") -> None:
    """Configure structlog for JSON lines to ``stream`` (default stdout) or ``file``."""
    out: TextIO
    if file:
        # block-buffered: structlog flushes each of its lines, EventLog flushes its own in batches
        out = open(file, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
        _Output.stream = out
    else:
        out = stream if stream is not None else sys.stdout
        _Output.stream = stream
    _Output.level = _LEVELS.get(level.lower(), logging.INFO)
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
