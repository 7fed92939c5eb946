"""Exceptions of the HSM client. Texts name the command and the error code, never keys, PINs or PANs."""

from __future__ import annotations

from switch.errors import SwitchError


class HsmClientError(SwitchError):
    """Root of the HSM client's errors."""


class HsmUnavailable(HsmClientError):
    """The HSM cannot be reached, timed out, or dropped the connection: the engine answers RC 96."""


class HsmError(HsmClientError):
    """The HSM answered a payShield error code other than ``00``/``01`` (``code``): RC 96, or 99 for a PIN
    block the HSM cannot use (20, 23, 24)."""

    def __init__(self, command: str, code: str) -> None:
        super().__init__(f"HSM command {command} failed with error {code}")
        self.command = command
        self.code = code
