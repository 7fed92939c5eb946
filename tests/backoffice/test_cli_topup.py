"""``switch topup import ORDERS.csv --out RESULTS.csv`` through the real CLI, on both ledgers: per-line results
(applied / duplicate / rejected:conflict / cap / unknown / lost / bad lines), idempotent re-runs, the money
moved from the program float with one SMS per applied line, refused whole in the settlement window."""

from __future__ import annotations

import csv
import io
import stat
from datetime import datetime
from pathlib import Path

import pytest

from tests.backoffice.conftest import (
    C1,
    C2,
    INACTIVE,
    LOST,
    NEARCAP,
    NOMOBILE,
    TID_H,
    TZ,
    UNKNOWN_PAN,
    World,
    window_now,
    ymd,
)
from tests.support.secrets import allow_card_data

pytestmark = pytest.mark.asyncio

HEADER = "order_id,employer_id,pan,amount,item,note\n"
ORDERS = HEADER + (
    f"T1,E001,{C1.pan},100.00,福利,十一月\n"  # 2 applied
    f"T2,E001,{NEARCAP.pan},10.01,福利,\n"  # 3 over the cap by 1 fen
    f"T3,E001,{NEARCAP.pan},10.00,福利,\n"  # 4 exactly to the cap
    f"T4,E001,{LOST.pan},1.00,,\n"  # 5 lost card
    f"T5,E001,{UNKNOWN_PAN},1.00,,\n"  # 6 unknown card
    "T6,E001,12345,1.00,,\n"  # 7 not a PAN
    f"T7,E001,{C2.pan},abc,,\n"  # 8 not an amount
    f"T8,E001,{C2.pan},0.00,,\n"  # 9 zero
    f"T1,E001,{C1.pan},100.00,福利,十一月\n"  # 10 the same order again
    f"T1,E001,{C1.pan},200.00,福利,十一月\n"  # 11 same id, other content
    f"T9,E002,{INACTIVE.pan},50.5,福利,\n"  # 12 issued, not yet activated: may be loaded
    f"T10,E001,{NOMOBILE.pan},1.00,,\n"  # 13 applied, no SMS (no mobile number)
    f"T11,E001,{C2.pan},1.001,,\n"  # 14 three decimals
    f"T12,E001,{C2.pan},1.00\n"  # 15 cells missing
)
FIRST = [
    ("2", "T1", "applied"),
    ("3", "T2", "rejected:cap"),
    ("4", "T3", "applied"),
    ("5", "T4", "rejected:card_lost"),
    ("6", "T5", "rejected:unknown_card"),
    ("7", "T6", "rejected:bad_pan"),
    ("8", "T7", "rejected:bad_amount"),
    ("9", "T8", "rejected:bad_amount"),
    ("10", "T1", "duplicate"),
    ("11", "T1", "rejected:conflict"),
    ("12", "T9", "applied"),
    ("13", "T10", "applied"),
    ("14", "T11", "rejected:bad_amount"),
    ("15", "", "rejected:bad_line"),
]


def _results(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


async def test_import_reports_each_line_moves_money_once_and_notifies(world: World) -> None:
    orders = world.tmp / "ORDERS.csv"
    orders.write_text(ORDERS, encoding="utf-8")
    out = world.tmp / "RESULTS.csv"
    r = await world.ok("topup", "import", str(orders), "--out", str(out), "--no-progress")
    assert r.out.splitlines()[0] == (
        "topup import: 14 lines, 4 applied (161.50), 1 duplicate, 9 rejected "
        "(bad_amount=3, bad_line=1, bad_pan=1, cap=1, card_lost=1, conflict=1, unknown_card=1)"
    )
    rows = _results(out)
    assert [(x["line"], x["order_id"], x["result"]) for x in rows] == FIRST
    assert rows[0]["masked_pan"] == C1.masked and rows[0]["amount"] == "100.00" and rows[10]["amount"] == "50.50"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for card in (C1, C2, NEARCAP, LOST):
        assert card.pan not in out.read_text(encoding="utf-8") + r.out + r.err

    assert await world.balance(C1) == C1.balance + 10000
    assert await world.balance(NEARCAP) == 500000
    assert await world.balance(INACTIVE) == 5050
    assert await world.balance(NOMOBILE) == NOMOBILE.balance + 100
    assert await world.balance(C2) == C2.balance

    # one journal row per applied order, on the open business date, the money from the program float (#1)
    today = ymd(await world.open_date())
    journal = await world.fetch(
        "SELECT j.idem_key, j.kind, j.source, j.amount, j.business_date, j.card_token FROM journal j "
        "WHERE j.source = 'bulk' ORDER BY j.id"
    )
    assert [(k, kind, src, a, str(d)) for k, kind, src, a, d, _ in journal] == [
        ("topup|T1", "topup", "bulk", 10000, today),
        ("topup|T3", "topup", "bulk", 1000, today),
        ("topup|T9", "topup", "bulk", 5050, today),
        ("topup|T10", "topup", "bulk", 100, today),
    ]
    legs = await world.fetch(
        "SELECT p.account_id, p.amount FROM postings p JOIN journal j ON j.id = p.journal_id "
        "WHERE j.idem_key = 'topup|T1' ORDER BY p.amount"
    )
    assert legs[0] == (1, -10000) and legs[1][1] == 10000 and len(legs) == 2

    # one SMS per applied line with a mobile number, committed with the money, in the SPEC's wording
    notices = await world.fetch(
        "SELECT n.kind, n.mobile, n.text, j.created_at FROM notices n JOIN journal j ON j.id = n.journal_id "
        "WHERE j.source = 'bulk' ORDER BY j.id"
    )
    assert [(k, m) for k, m, _t, _c in notices] == [
        ("topup", C1.mobile),
        ("topup", NEARCAP.mobile),
        ("topup", INACTIVE.mobile),
    ]
    created = notices[0][3]
    local = (created if isinstance(created, datetime) else datetime.fromisoformat(created)).astimezone(TZ)
    assert notices[0][2] == (
        f"您尾号{C1.last4}的工会会员服务卡{local:%m}月{local:%d}日{local:%H:%M}充值100.00元，余额600.00元。"
    )
    assert notices[1][2].endswith("充值10.00元，余额5000.00元。")

    # a re-run applies nothing: every applied line is now a duplicate, the rest is answered as before
    again = await world.ok("topup", "import", str(orders), "--out", str(out), "--no-progress")
    assert "0 applied (0.00), 5 duplicate, 9 rejected" in again.out
    expected = [(line, oid, "duplicate" if res == "applied" else res) for line, oid, res in FIRST]
    assert [(x["line"], x["order_id"], x["result"]) for x in _results(out)] == expected
    assert await world.balance(C1) == C1.balance + 10000
    assert len(await world.fetch("SELECT id FROM journal WHERE source = 'bulk'")) == 4

    # an order id already applied with other content is a conflict, never a second load
    other = world.tmp / "ORDERS2.csv"
    other.write_text(HEADER + f"T3,E001,{NEARCAP.pan},10.00,福利,备注不同\nT20,E001,{C2.pan},0.01,,\n", "utf-8")
    third = await world.ok("topup", "import", str(other), "--out", str(out), "--no-progress")
    assert [x["result"] for x in _results(out)] == ["rejected:conflict", "applied"]
    assert "1 applied (0.01)" in third.out
    assert await world.balance(C2) == C2.balance + 1


async def test_import_is_refused_whole_in_the_settlement_window(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    orders = world.tmp / "orders.csv"
    orders.write_text(HEADER + f"W1,E001,{C1.pan},1.00,,\n", encoding="utf-8")
    out = world.tmp / "results.csv"
    monkeypatch.setenv("SWITCH_PROGRAM_SETTLEMENT_WINDOW", window_now())
    r = await world.cli("topup", "import", str(orders), "--out", str(out))
    assert r.code == 1
    assert r.err == "switch: top-ups are paused during the settlement window; nothing was applied\n"
    assert not out.exists() and await world.fetch("SELECT id FROM journal WHERE source = 'bulk'") == []
    pos = await world.pos(TID_H)  # the POS side of the same rule
    assert (await pos.topup(C1.pan, 100)).rc == "90"
    assert await world.balance(C1) == C1.balance


async def test_large_import_in_chunks_with_progress(world: World) -> None:
    n = 4100  # three database chunks
    lines = [f"B{i:05d},E001,{(C1, C2)[i % 2].pan},{1 + i % 3}.00,福利,批量" for i in range(n)]
    orders = world.tmp / "orders.csv"
    orders.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    out = world.tmp / "results.csv"
    r = await world.ok("topup", "import", str(orders), "--out", str(out))
    assert f"{n} lines, {n} applied" in r.out
    assert f"topup import: {n}/{n} 100.0%" in r.err  # the progress display (stderr)
    total = sum(1 + i % 3 for i in range(n)) * 100
    assert await world.balance(C1) + await world.balance(C2) == C1.balance + C2.balance + total
    assert len(_results(out)) == n
    again = await world.ok("topup", "import", str(orders), "--out", str(out), "--no-progress")
    assert f"0 applied (0.00), {n} duplicate, 0 rejected" in again.out and again.err == ""


async def test_import_accepts_a_file_without_header_and_refuses_unreadable_ones(world: World) -> None:
    bare = world.tmp / "bare.csv"
    bare.write_text(f"H1,E001,{C2.pan},2.00,福利,\n", encoding="utf-8")
    allow_card_data(bare)  # an order file, though without the header line that declares its PAN column
    r = await world.ok("topup", "import", str(bare), "--no-progress")  # --out defaults to bare.results.csv
    assert [x["result"] for x in _results(world.tmp / "bare.results.csv")] == ["applied"]
    assert "results: " in r.out
    missing = await world.cli("topup", "import", str(world.tmp / "none.csv"), "--out", str(world.tmp / "x.csv"))
    assert missing.code == 1 and missing.err.startswith("switch: ") and missing.err.count("\n") == 1
    latin = world.tmp / "latin1.csv"
    latin.write_bytes(HEADER.encode() + f"L1,E001,{C2.pan},1.00,caf\xe9,\n".encode("latin-1"))
    bad = await world.cli("topup", "import", str(latin), "--out", str(world.tmp / "x.csv"))
    assert bad.code == 1 and "not UTF-8" in bad.err
    assert not (world.tmp / "x.csv").exists()
