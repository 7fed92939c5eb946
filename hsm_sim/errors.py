"""payShield error codes the simulator answers (SPEC §10b) and the exception that carries one."""

from __future__ import annotations

OK = "00"
VERIFICATION_FAILURE = "01"
INVALID_KEY_TYPE = "04"
INVALID_KEY_LENGTH_FLAG = "05"
SOURCE_KEY_PARITY = "10"
DESTINATION_KEY_PARITY = "11"
INJECTED_FAULT = "13"  # payShield "LMK error; report to supervisor": the fault injector's default
INVALID_INPUT = "15"
INVALID_PIN_BLOCK = "20"
INVALID_FORMAT_CODE = "23"
PIN_LENGTH = "24"
COMMAND_DISABLED = "68"


class CommandError(Exception):
    """A command ends with payShield error ``code``; ``reason`` names the field, never its value."""

    def __init__(self, code: str, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason
