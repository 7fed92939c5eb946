"""The audit is an oracle that can fail: after a real run with a crash it passes, and each kind of damage a
switch could do (an approval lost, an RRN changed, an RRN given twice, money created, an effect nobody
accepted) is reported."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.reliability.audit import audit
from tests.reliability.crash import run_crashes
from tests.reliability.world import open_world


async def test_audit_reports_each_kind_of_damage(tmp_path: Path) -> None:
    async with open_world(tmp_path, "sqlite") as world:
        run = await run_crashes(world, tmp_path, crashes=1, seed=7, n_pos=3, n_hall=1)
        assert run.report.problems == []
        seen, settled = run.seen, run.settlements
        store = await world.open_store()
        try:
            ok = await audit(store, seen, world.cards, settled)
            assert ok.problems == [] and ok.approvals_checked > 0

            purchases = [i for i, s in enumerate(seen) if s.accepted_approval and s.kind == "purchase"]
            first, second = seen[purchases[0]], seen[purchases[1]]

            # a purchase the terminal never accepted (as if the switch had kept an unanswered one in force)
            lost_answer = [s for i, s in enumerate(seen) if i != purchases[0]]
            report = await audit(store, lost_answer, world.cards, settled)
            assert any("no terminal accepted it" in p for p in report.problems), report.problems
            assert report.money_lost > 0

            # the terminal was told another RRN than the ledger holds
            changed = list(seen)
            changed[purchases[0]] = dataclasses.replace(first, rrn="999999999999")
            report = await audit(store, changed, world.cards, settled)
            assert any("ledger has purchase" in p for p in report.problems), report.problems

            # one RRN given to two requests
            twice = list(seen)
            twice[purchases[1]] = dataclasses.replace(second, rrn=first.rrn)
            report = await audit(store, twice, world.cards, settled)
            assert any(f"RRN {first.rrn} given to two requests" in p for p in report.problems), report.problems

            # an approval the terminal accepted that the ledger does not hold
            ghost = dataclasses.replace(first, stan="999999")
            report = await audit(store, [*seen, ghost], world.cards, settled)
            assert any("not in the ledger" in p for p in report.problems), report.problems

            # money created: a card credited without a posting
            await store.write(lambda tx: tx.execute("UPDATE accounts SET balance = balance + 1 WHERE id = "
                                                    "(SELECT MIN(id) FROM accounts WHERE kind = 'card')"))  # fmt: skip
            report = await audit(store, seen, world.cards, settled)
            assert report.money_lost == 1
            assert any("ledger invariant" in p for p in report.problems), report.problems
        finally:
            await store.close()
