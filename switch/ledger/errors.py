"""The ledger's exceptions. Messages name tables, keys and operations, never card data or keys."""

from __future__ import annotations

from switch.errors import SwitchError


class LedgerError(SwitchError):
    """A ledger problem an operator can act on (schema missing or too old, bad DSN, bad provisioning data)."""


class StoreUnavailable(LedgerError):
    """The balance store cannot be reached or cannot commit right now; the engine answers RC 91."""


class DuplicateKey(LedgerError):
    """An idempotency key that is already journaled (internal: the store answers with the stored outcome)."""

    def __init__(self, key: str) -> None:
        super().__init__("idempotency key already journaled")
        self.key = key
