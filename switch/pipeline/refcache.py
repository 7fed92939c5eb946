"""Reference data (terminal, merchant, card refs) kept in process for a short, bounded time.

Every authorization needs its terminal, merchant and card; reading them from the ledger costs a statement
(or a PostgreSQL round trip) each. :class:`RefCache` keeps each ref for at most ``ttl_s`` (``database.
refdata_ttl_ms``, default 1 s) and drops it at once when this process writes to it (sign-on, MAC-failure
counter, PIN tries, PIN change: :class:`~switch.pipeline.adapters.LedgerAdapter` calls :meth:`drop_*`).
Changes made by other processes (the back-office CLI, other PostgreSQL workers) are therefore seen within
``ttl_s``. Why that is safe (docs/DECISIONS.md, "Authorization engine"):

- money never moves on a stale ref: the ledger re-reads and re-checks the locked card row (status, PIN
  lock) inside the commit transaction;
- a stale key or PIN offset never counts a failure: a MAC or PIN that fails against cached refs is checked
  again against fresh ones first (:mod:`~switch.pipeline.participants.keys_mac`, ``pin``).

A read that overlaps a write of this process is not cached (generation check), so an entry never outlives
the write that made it stale. Unknown terminals and cards are not cached (a provisioned card is usable at
once). Size is bounded: the map is emptied when it exceeds ``max_entries``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from switch.pipeline.ports import CardRef, MerchantRef, TerminalRef

V = TypeVar("V")

_now = time.monotonic


class RefMap(Generic[V]):
    """key -> (expiry, value) with a generation counter that voids reads overlapping a drop."""

    __slots__ = ("_data", "_gen", "_max", "_ttl", "hits", "misses")

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._data: dict[str, tuple[float, V]] = {}
        self._gen = 0
        self.hits = 0
        self.misses = 0

    async def get(self, key: str, load: Callable[[str], Awaitable[V | None]]) -> V | None:
        hit = self._data.get(key)
        if hit is not None and hit[0] > _now():
            self.hits += 1
            return hit[1]
        self.misses += 1
        gen = self._gen
        value = await load(key)
        if value is not None and gen == self._gen and self._ttl > 0:
            if len(self._data) >= self._max:
                self._data.clear()
            self._data[key] = (_now() + self._ttl, value)
        return value

    def peek(self, key: str) -> V | None:
        """The cached value if still fresh, else None (no load)."""
        hit = self._data.get(key)
        if hit is not None and hit[0] > _now():
            self.hits += 1
            return hit[1]
        return None

    def generation(self) -> int:
        return self._gen

    def put(self, key: str, value: V, generation: int) -> None:
        """Cache ``value`` read while the generation was ``generation`` (dropped if a write came between)."""
        if generation == self._gen and self._ttl > 0:
            if len(self._data) >= self._max:
                self._data.clear()
            self._data[key] = (_now() + self._ttl, value)

    def drop(self, key: str) -> None:
        self._gen += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        self._gen += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class RefCache:
    """The three maps the engine uses; ``ttl_s <= 0`` disables caching (every lookup reads)."""

    def __init__(self, ttl_s: float, max_entries: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.terminals: RefMap[TerminalRef] = RefMap(ttl_s, max_entries)
        self.merchants: RefMap[MerchantRef] = RefMap(ttl_s, max_entries)
        self.cards: RefMap[CardRef] = RefMap(ttl_s, max_entries)

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def clear(self) -> None:
        self.terminals.clear()
        self.merchants.clear()
        self.cards.clear()
