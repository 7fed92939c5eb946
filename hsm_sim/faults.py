"""Fault injection for tests (moov's "test-case code" idea): added latency, error replies, dropped replies.

The settings are plain attributes, changeable while the server runs (``server.faults.drop_rate = 1.0``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

from hsm_sim.config import FaultsSection


class Fault(Enum):
    NONE = "none"
    ERROR = "error"
    DROP = "drop"


@dataclass(slots=True)
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_code: str = "13"
    drop_rate: float = 0.0
    #: command codes the faults apply to (empty = every command)
    commands: frozenset[str] = frozenset()
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_config(cls, section: FaultsSection) -> Faults:
        return cls(
            latency_ms=section.latency_ms,
            error_rate=section.error_rate,
            error_code=section.error_code,
            drop_rate=section.drop_rate,
            commands=frozenset(c.strip() for c in section.commands.split(",") if c.strip()),
            rng=random.Random(section.seed or None),
        )

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.error_rate or self.drop_rate)

    def clear(self) -> None:
        self.latency_ms = self.error_rate = self.drop_rate = 0.0
        self.commands = frozenset()

    def applies(self, command: str) -> bool:
        return not self.commands or command in self.commands

    def decide(self) -> Fault:
        if self.drop_rate and self.rng.random() < self.drop_rate:
            return Fault.DROP
        if self.error_rate and self.rng.random() < self.error_rate:
            return Fault.ERROR
        return Fault.NONE
