"""Shared exception types. Messages name keys, fields and positions, never card data or keys."""

from __future__ import annotations


class SwitchError(Exception):
    """Root of the switch's own errors."""


class ConfigError(SwitchError):
    """Invalid configuration; ``key`` is ``section.key`` (or the option / variable name)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid configuration {key}: {reason}")
        self.key = key
        self.reason = reason


class UsageError(SwitchError):
    """A CLI invocation that does not make sense (exit code 2)."""


class HandledError(SwitchError):
    """An expected operational failure reported as one line (exit code 1)."""
