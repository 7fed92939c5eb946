"""Loggers for the back office that follow the logging configuration made at run time.

``switch.telemetry.logs.get_logger(name)`` binds its logger when called, so a module-level logger created
before ``configure_logging`` keeps structlog's default set-up (console text on stdout, without the masking
processor). Operator commands configure logging only once they have read their configuration, after every
module is imported; their loggers must therefore resolve the configuration at each call, as structlog's lazy
proxy does.
"""

from __future__ import annotations

from typing import Any

import structlog


class _LazyLogger:
    """``log.info(event, **kw)`` etc.: binds a structlog logger with the configuration current at the call."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(structlog.get_logger().bind(logger=self._name), method)


def get_logger(name: str) -> Any:
    """A lazy structlog logger recording ``logger=name``; same events and processors as the switch's."""
    return _LazyLogger(name)
