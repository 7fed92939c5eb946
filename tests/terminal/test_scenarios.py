"""Scenario files: every shipped scenario passes against the real switch; a mismatch exits 1 with a readable
diff; a broken scenario file is one line naming where."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from terminal_sim.scenario import ScenarioError, eval_amount, load_scenario, scenario_paths
from tests.support.stack import Stack
from tests.terminal.conftest import Sim

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


async def test_every_shipped_scenario_passes_against_the_switch(stack: Stack, sim: Sim) -> None:
    r = await sim("run", str(SCENARIOS))
    assert r.code == 0, r.out[-3000:] + r.err
    n = len(list(SCENARIOS.glob("*.toml")))
    assert f"{n} of {n} scenarios passed" in r.out
    assert "MISMATCH" not in r.out


def test_there_is_a_scenario_per_transaction_type_and_per_decline_reason() -> None:
    types: set[str] = set()
    rcs: set[str] = set()
    for path in scenario_paths([SCENARIOS]):
        sc = load_scenario(path)
        for step in sc.steps:
            types.add(step.do)
            if step.get("lose_reply"):
                types.add("reversal")
            want = step.get("expect_rc")
            rcs.update([want] if isinstance(want, str) else want or [])
    assert types >= {
        "signon",
        "signoff",
        "echo",
        "balance",
        "purchase",
        "void",
        "refund",
        "topup",
        "pinchange",
        "settle",
        "reversal",
    }
    declines = {
        "03",
        "12",
        "13",
        "14",
        "15",
        "21",
        "25",
        "30",
        "41",
        "51",
        "54",
        "55",
        "58",
        "61",
        "62",
        "64",
        "65",
        "75",
        "94",
        "97",
        "A0",
    }
    assert declines <= rcs, sorted(declines - rcs)


async def test_a_mismatch_exits_1_with_a_readable_diff(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "wrong.toml"
    path.write_text(
        'name = "expects the wrong things"\n[cards]\nlost = { status = "lost" }\nalice = { status = "active" }\n'
        '[[step]]\ndo = "purchase"\ncard = "lost"\namount = 100\nexpect_rc = "00"\n'
        '[[step]]\ndo = "balance"\ncard = "alice"\nexpect_rc = ["00", "55"]\n'
        '[[step]]\ndo = "purchase"\ncard = "alice"\namount = 100\nexpect_balance_delta = -99\n',
        encoding="utf-8",
    )
    r = await sim("run", str(path))
    assert r.code == 1
    assert "rc: expected 00 (Approved), got 41 (Lost card, pick up)" in r.out
    assert "balance: expected" in r.out and "(-0.99), got" in r.out
    assert "FAILED: 2 of 3 steps did not match" in r.out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[step]]\ndo = "purchase"\namount = 1\ncolour = "red"\n', "step 1: unknown key 'colour'"),
        ('[[step]]\ndo = "teleport"\n', "step 1: do must be one of"),
        ('[[step]]\ndo = "balance"\ncard = "bob"\n', "card 'bob' is not declared"),
        ('[cards]\nx = { colour = "red" }\n[[step]]\ndo = "balance"\n', "unknown selector 'colour'"),
        ('name = "no steps"\n', "no [[step]]"),
        ("[[step]\n", "not valid TOML"),
    ],
)
async def test_broken_scenario_files_are_one_line_errors(sim: Sim, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    r = await sim("run", str(path))
    assert r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 1


async def test_a_card_the_keys_file_cannot_supply_stops_that_scenario(sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "greedy.toml"
    path.write_text('[cards]\nx = { status = "active", min_balance = 99999999 }\n[[step]]\ndo = "balance"\n')
    r = await sim("run", str(path))
    assert r.code == 1 and "card 'x': no card in the keys file matches" in r.out


def test_amount_expressions() -> None:
    assert eval_amount(100, None, "s") == 100
    assert eval_amount("1.50", None, "s") == 150
    assert eval_amount("balance + 1", 500, "s") == 501
    assert eval_amount("500000 - balance + 1", 499000, "s") == 1001
    for bad in ("balance *2", "", "1 2", True):
        with pytest.raises(ScenarioError):
            eval_amount(bad, 5, "s")
    with pytest.raises(ScenarioError, match="add a balance step"):
        eval_amount("balance", None, "s")


def test_shipped_scenarios_are_valid_toml_with_names() -> None:
    for path in SCENARIOS.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data.get("name"), path.name


async def test_scenarios_over_the_iso87_profile(stack: Stack, sim: Sim) -> None:
    names = ("purchase", "void", "refund", "pinchange", "reversal", "duplicate", "settlement")
    r = await sim("run", *(str(SCENARIOS / f"{n}.toml") for n in names), port=stack.port("iso87"), profile="iso87")
    assert r.code == 0, r.out[-3000:] + r.err
    assert f"{len(names)} of {len(names)} scenarios passed" in r.out
