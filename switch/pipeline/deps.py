"""What the participants are built with: the services (ledger store, HSM client, clock), configuration,
metrics, and the two pieces of in-process state the engine keeps (reference-data cache, in-flight
duplicate registry). Built once by :mod:`switch.pipeline.factory`; participants keep a reference.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from switch.config import ProgramConfig
from switch.telemetry.metrics import Metrics


class InflightRegistry:
    """Requests being processed, by duplicate key: a retransmission that arrives while the first is still
    in progress waits for the first one's reply fields (SPEC §5 rule 5)."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, ...], tuple[str, asyncio.Future[dict[str, str] | None]]] = {}

    def claim(self, key: tuple[str, ...], fingerprint: str) -> tuple[bool, str, asyncio.Future[dict[str, str] | None]]:
        """``(True, fp, fut)`` when this request now owns the key, else ``(False, owner_fp, owner_future)``."""
        slot = self._slots.get(key)
        if slot is not None:
            return False, slot[0], slot[1]
        fut: asyncio.Future[dict[str, str] | None] = asyncio.get_running_loop().create_future()
        self._slots[key] = (fingerprint, fut)
        return True, fingerprint, fut

    def release(self, key: tuple[str, ...], reply_fields: dict[str, str] | None) -> None:
        slot = self._slots.pop(key, None)
        if slot is not None and not slot[1].done():
            slot[1].set_result(reply_fields)

    def __len__(self) -> int:
        return len(self._slots)


@dataclass(slots=True)
class Deps:
    program: ProgramConfig
    store: Any
    hsm: Any
    clock: Any
    metrics: Metrics
    pvk_lmk: str = ""
    #: field 32 of replies: the acquiring institution (the program's first BIN)
    acquirer_id: str = ""
    inflight: InflightRegistry = field(default_factory=InflightRegistry)
    #: exception classes → results (see ``manager.result_of_exception``)
    hsm_unavailable_errors: tuple[type[BaseException], ...] = ()
    hsm_errors: tuple[type[BaseException], ...] = ()
    ledger_unavailable_errors: tuple[type[BaseException], ...] = ()
