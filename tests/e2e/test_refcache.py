"""The engine's reference-data cache never decides wrongly on a ref another process changed meanwhile
(docs/DECISIONS.md, "Authorization engine" 14): the changes below are made on the ledger behind the engine's
back, as the back-office CLI or another worker would, right after the engine cached the refs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pos import parse_field62_keys
from tests.support.stack import CARD, CARD2, POS_TID, Stack


def _engine(stack: Stack) -> Any:
    if stack.backend == "fake":
        pytest.skip("the reference cache sits in front of the real ledger")
    return stack.app.server._handler._deps  # type: ignore[attr-defined]


async def _elsewhere(stack: Stack, sql: str, *args: Any) -> None:
    """A write on the ledger that the engine's cache does not see (another process's)."""
    store = _engine(stack).store._store

    async def fn(tx: Any) -> None:
        await tx.execute(sql, *args)

    await store.write(fn)


async def test_card_frozen_elsewhere_is_declined_at_once(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"  # the card's ref is cached now
    token = _engine(stack).store.token(CARD.pan)
    await _elsewhere(stack, "UPDATE cards SET status = 'frozen' WHERE token = $1", token)
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "62"
    assert (await pos.balance(CARD.pan, CARD.pin)).rc == "62"
    assert await stack.balance(CARD.pan) == CARD.balance - 100


async def test_card_unfrozen_elsewhere_is_approved_at_once(stack: Stack) -> None:
    pos = await stack.pos()
    token = _engine(stack).store.token(CARD.pan)
    await _elsewhere(stack, "UPDATE cards SET status = 'frozen' WHERE token = $1", token)
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "62"  # a frozen ref is cached now
    await _elsewhere(stack, "UPDATE cards SET status = 'active' WHERE token = $1", token)
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"


async def test_pin_locked_elsewhere_is_75_even_with_the_right_pin(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    token = _engine(stack).store.token(CARD.pan)
    await _elsewhere(stack, "UPDATE cards SET pin_tries = 3 WHERE token = $1", token)
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "75"
    assert await stack.pin_tries(CARD.pan) == 3  # a right PIN never unlocks
    assert await stack.balance(CARD.pan) == CARD.balance - 100


async def test_pin_tries_counted_elsewhere_are_cleared_by_a_right_pin(stack: Stack) -> None:
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    token = _engine(stack).store.token(CARD.pan)
    await _elsewhere(stack, "UPDATE cards SET pin_tries = 2 WHERE token = $1", token)
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"
    assert await stack.pin_tries(CARD.pan) == 0
    await _elsewhere(stack, "UPDATE cards SET pin_tries = 2 WHERE token = $1", token)
    assert (await pos.purchase(CARD.pan, CARD.pin, 99_999_999)).rc == "61"  # declined later: still cleared
    assert await stack.pin_tries(CARD.pan) == 0


async def test_sign_on_elsewhere_new_keys_are_accepted_not_counted_as_failures(stack: Stack) -> None:
    deps = _engine(stack)
    pos = await stack.pos()
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "00"  # the terminal's keys are cached now
    term = await deps.store._store.terminal(POS_TID)
    keys = await deps.hsm.working_keys(term.tmk_lmk, True)
    batch, _rrn = await deps.store._store.signon(POS_TID, keys)  # as another worker would (cache not told)
    f62 = keys.pik_tmk + keys.pik_kcv[:4] + keys.mak_tmk + bytes(8) + keys.mak_kcv[:4] + keys.tdk_tmk + keys.tdk_kcv[:4]
    pos.keys = parse_field62_keys(f62.hex().upper(), pos.tmk)
    pos.batch = batch
    ans = await pos.purchase(CARD2.pan, CARD2.pin, 100)
    assert ans.rc == "00" and ans.mac_ok
    assert await stack.pin_tries(CARD2.pan) == 0
    assert (await deps.store._store.terminal(POS_TID)).mac_failures == 0
