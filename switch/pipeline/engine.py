"""Build the authorization engine: services from the configuration, participants from the routes table.

``build_pipeline_handler(config, metrics, closers)`` is what ``switch.app.build_handler`` calls: it opens
the ledger store and the HSM client, registers their close functions in ``closers`` and returns the
server :class:`~switch.server.connection.Handler` (a :class:`TransactionManager`).

``build_manager(deps)`` wires participants for already-built services (tests use it with fakes).
"""

from __future__ import annotations

from collections.abc import Sequence

from switch.pipeline.deps import Deps
from switch.pipeline.manager import TransactionManager
from switch.pipeline.participant import Participant
from switch.pipeline.participants.card import CardCheck
from switch.pipeline.participants.duplicate import DuplicateCheck
from switch.pipeline.participants.keys_mac import KeysMac
from switch.pipeline.participants.limits import LimitsCheck
from switch.pipeline.participants.pin import PinCheck
from switch.pipeline.participants.post import Post
from switch.pipeline.participants.refund import refund_request
from switch.pipeline.participants.reply import Reply
from switch.pipeline.participants.reversal import reversal_request
from switch.pipeline.participants.settlement import Settlement
from switch.pipeline.participants.signon import NoEffect, SignOn
from switch.pipeline.participants.terminal import TerminalCheck
from switch.pipeline.participants.type import TypeCheck
from switch.pipeline.participants.validate import Validate
from switch.pipeline.participants.void import void_request
from switch.pipeline.routes import ROUTES_BY_NAME


def build_manager(deps: Deps) -> TransactionManager:
    """Participants (one instance each, stateless) and the manager for ``deps``."""
    post = Post(deps)
    registry: dict[str, Participant] = {
        "terminal": TerminalCheck(deps),
        "keys_mac": KeysMac(deps),
        "type": TypeCheck(),
        "duplicate": DuplicateCheck(deps),
        "card": CardCheck(deps),
        "pin": PinCheck(deps),
        "limits": LimitsCheck(deps),
        "post": post,
        "signon": SignOn(deps),
        "signoff": NoEffect("signoff"),
        "echo": NoEffect("echo"),
        "settlement": Settlement(deps),
        "reversal": Post(deps, reversal_request, "reversal"),
    }
    per_type_post = {"void": Post(deps, void_request, "void"), "refund": Post(deps, refund_request, "refund")}
    routes: dict[str, Sequence[Participant]] = {}
    for name, route in ROUTES_BY_NAME.items():
        steps: list[Participant] = []
        for step in route.steps:
            if step == "post" and name in per_type_post:
                steps.append(per_type_post[name])
            else:
                steps.append(registry[step])
        routes[name] = tuple(steps)
    unknown = (registry["terminal"], registry["keys_mac"], registry["type"])
    return TransactionManager(deps, Validate(), routes, unknown, Reply(deps), post)
