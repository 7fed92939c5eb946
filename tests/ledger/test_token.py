"""The store's card token (pre-keyed HMAC) is the back office's ``card_token`` for every key length."""

from __future__ import annotations

import random

import pytest

from switch.backoffice.tokens import card_token
from switch.ledger.store import LedgerStore


@pytest.mark.parametrize("key", ["", "k", "dev-only-pan-token-key-change-me", "x" * 64, "y" * 65, "键" * 40])
def test_store_token_equals_card_token(key: str) -> None:
    store = LedgerStore(None, backend_name="sqlite", token_key=key, env=None)  # type: ignore[arg-type]
    rng = random.Random(key)
    for _ in range(200):
        pan = str(rng.randrange(10**11, 10**19))
        assert store.token(pan) == card_token(pan, key)
