"""Build the authorization engine from the configuration (``switch.app.build_handler`` calls this).

``build_pipeline_handler(config, metrics, closers)`` opens the ledger store and the HSM client, registers
their close functions in ``closers`` and returns the server :class:`~switch.server.connection.Handler` (a
:class:`~switch.pipeline.manager.TransactionManager`). Importing this module fails (ImportError) while the
services it needs are not installed, which makes ``switch.app`` fall back to its basic handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from switch.config import SwitchConfig
from switch.pipeline.adapters import open_services
from switch.pipeline.engine import build_manager
from switch.server.connection import Handler
from switch.telemetry.metrics import Metrics

__all__ = ["build_manager", "build_pipeline_handler"]


async def build_pipeline_handler(
    config: SwitchConfig, metrics: Metrics, closers: list[Callable[[], Awaitable[Any]]]
) -> Handler:
    """The authorization engine over the configured ledger and HSM (see module docstring)."""
    deps = await open_services(config, metrics, closers)
    return build_manager(deps)
