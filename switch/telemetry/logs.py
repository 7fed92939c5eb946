"""Structured JSON logging (structlog), one line per event (SPEC §9).

Tracebacks are rendered with ``format_exc_info`` (plain text) on purpose: structlog's dict tracebacks
render local variables, which would carry PANs, PIN blocks and keys into the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import json.encoder
import logging
import sys
import time
from collections.abc import MutableMapping
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
    event_dict["ts"] = _now_text()
    return event_dict


class _Clock:
    second = -1
    prefix = ""


def _now_text() -> str:
    """UTC now as ``2026-11-26T21:47:28.123Z`` (= ``datetime.isoformat(timespec="milliseconds")`` with ``Z``);
    the part up to the second is formatted once per second."""
    t = time.time()
    second = int(t)
    if second != _Clock.second:
        _Clock.second = second
        _Clock.prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
    return f"{_Clock.prefix}{int((t - second) * 1000):03d}Z"


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


#: strings the PAN scan left unchanged (MIDs, peers ...): the scan is skipped the next time. Only unchanged
#: values are kept, so no PAN is ever held here; bounded by clearing.
_CLEAN: set[str] = set()
_CLEAN_MAX = 4096


def _mask_text(value: str) -> str:
    if value in _CLEAN:
        return value
    masked = mask_pans_in_text(value)
    if masked == value:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(value)
    return masked


def _redact(fields: dict[str, Any]) -> None:
    """Exactly :func:`redact_processor`'s result, cheaper: the key rules are decided once per key name, a
    string too short to hold a PAN (< 13 characters) or a mapping of numbers needs no look, and a string
    found clean once is not scanned again."""
    plain_key = _PLAIN_KEY
    for key, value in fields.items():
        t = type(value)
        if value is None or t is int or t is float or t is bool or isinstance(value, int | float):
            continue
        plain = plain_key.get(key)
        if plain is None:
            plain = _plain(key)
        if not plain:
            fields[key] = redact_value(key, value)
        elif t is str:
            if len(value) >= 13:
                fields[key] = _mask_text(value)
        elif t is dict:
            for k, v in value.items():
                if not (isinstance(v, int | float) and (plain_key.get(k) or _plain(k))):
                    fields[key] = redact_value(key, value)
                    break
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
        _write(_dumps(fields))

    def txn(
        self,
        *,
        mti: str,
        txn_type: str,
        tid: str,
        mid: str,
        stan: str,
        batch: str,
        rrn: str,
        pan: str,
        amount: int,
        rc: str,
        reason: str,
        auth_code: str,
        latency_ms: float,
        steps: dict[str, float],
        peer: str,
        extra: dict[str, Any],
    ) -> None:
        """The ``event=txn`` line (SPEC §9): the same JSON object as ``info("txn", ...)`` with these keys,
        formatted directly (the per-request hot path). ``pan`` must be masked already; every other string
        gets the same look as in :func:`_redact` (long ones scanned for PANs), and ``extra`` goes through it."""
        if _Output.level > logging.INFO:
            return
        enc = _enc
        if len(mid) >= 13:
            mid = _mask_text(mid)
        if len(peer) >= 13:
            peer = _mask_text(peer)
        # steps: the engine's bucket names (plain keys, checked once each) -> float milliseconds
        plain = _PLAIN_KEY
        if all(plain.get(k) or _plain(k) for k in steps) and all(type(v) is float for v in steps.values()):
            steps_text = ",".join([f"{enc(k)}:{v!r}" for k, v in steps.items()])
        else:
            steps_text = _dumps(redact_value("steps", steps))[1:-1]
        head = (
            f'{{"mti":{enc(mti)},"txn_type":{enc(txn_type)},"tid":{enc(_short(tid))},"mid":{enc(mid)},'
            f'"stan":{enc(_short(stan))},"batch":{enc(_short(batch))},"rrn":{enc(_short(rrn))},'
            f'"pan":{enc(_masked(pan))},"amount":{int(amount)},"rc":{enc(_short(rc))},"reason":{enc(_short(reason))},'
            f'"auth_code":{enc(_short(auth_code))},"latency_ms":{float(latency_ms)!r},"steps":{{{steps_text}}},'
            f'"peer":{enc(peer)}'
        )
        if extra:
            _redact(extra)
            head += "," + _dumps(extra)[1:-1]
        _write(f'{head},"logger":{enc(self._name)},"event":"txn","level":"info","ts":"{_now_text()}"}}')


def _short(value: str) -> str:
    """A value that cannot hold a PAN by its length, or else scanned like any other (:func:`_redact`)."""
    return value if len(value) < 13 else _mask_text(value)


def _masked(pan: str) -> str:
    """The ``pan`` key's rule (:func:`redact_value`): already masked values pass, anything else is masked."""
    return redact_value("pan", pan)  # type: ignore[no-any-return]


_enc = json.encoder.encode_basestring  # the C encoder (ensure_ascii=False), as json.dumps uses


def _write(line: str) -> None:
    out = _Output.stream or sys.stdout
    out.write(line + "\n")
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
            _logger_name,
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
    """A structlog logger; ``name`` is recorded as ``logger``.

    Lazy: it takes the configuration in force when it logs, not when it was created. Modules create their
    loggers at import time, usually before :func:`configure_logging` runs; a logger bound at import would keep
    structlog's default console renderer, without the JSON format and the redaction processor.
    """
    # ``logger=`` cannot be an initial value of structlog.get_logger (it names its first parameter)
    return structlog.get_logger(**{_NAME: name}) if name else structlog.get_logger()


_NAME = "_logger_name"


def _logger_name(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """``logger`` key from :func:`get_logger`'s name, first in the line as a bound value would be."""
    name = event_dict.pop(_NAME, None)
    if name is None:
        return event_dict
    out: dict[str, Any] = {"logger": name}
    out.update(event_dict)
    return out
