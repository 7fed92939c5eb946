"""``switch report card PAN --from --to`` (cardholder statement, "personal flow") and ``switch report employer
ID --month`` (employer top-up statement, "enterprise flow") through the real CLI, on both ledgers."""

from __future__ import annotations

import csv
import io
import stat
from datetime import timedelta

import pytest

from tests.backoffice.conftest import C1, C2, INACTIVE, TID_A, TID_H, UNKNOWN_PAN, World, ymd

pytestmark = pytest.mark.asyncio


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_card_statement(world: World) -> None:
    d0 = await world.open_date()
    a = await world.pos(TID_A)
    hall = await world.pos(TID_H)
    p = await a.purchase(C1.pan, C1.pin, 12000)
    assert p.rc == "00"
    await world.close_day()
    assert (await hall.topup(C1.pan, 3000)).rc == "00"
    assert (await a.refund(C1.pan, 2000, p)).rc == "00"
    d1 = d0 + timedelta(days=1)

    table = await world.ok("report", "card", C1.pan, "--from", d1.isoformat(), "--to", ymd(d1))
    lines = table.out.splitlines()
    assert lines[0].startswith(f"card {C1.masked}  会员{C1.member_id}  member {C1.member_id}")
    assert lines[2] == f"opening balance {(C1.balance - 12000) / 100:.2f}"
    assert lines[-1] == "credits 50.00  debits 0.00  closing balance 430.00  (2 transactions)"
    assert C1.pan not in table.out

    r = await world.ok(
        "report",
        "card",
        C1.token,
        "--from",
        ymd(d0),
        "--to",
        ymd(d1),
        "--format",
        "csv",
        "--out",
        str(world.tmp / "st.csv"),
    )
    assert r.out == "" and "st.csv" in r.err
    assert stat.S_IMODE((world.tmp / "st.csv").stat().st_mode) == 0o600
    rows = _csv((world.tmp / "st.csv").read_text(encoding="utf-8"))
    assert [(x["business_date"], x["type"], x["amount"], x["balance"]) for x in rows] == [
        (ymd(d0), "topup", "500.00", "500.00"),  # the provisioning load (from the program float)
        (ymd(d0), "purchase", "-120.00", "380.00"),
        (ymd(d1), "topup", "30.00", "410.00"),
        (ymd(d1), "refund", "20.00", "430.00"),
    ]
    assert rows[1]["merchant"] == "羊城西饼" and rows[1]["reference"] == p.f["37"]
    assert "balance     430.00" in (await world.ok("cards", "show", C1.pan)).out

    assert (await world.cli("report", "card", UNKNOWN_PAN, "--from", ymd(d0), "--to", ymd(d1))).code == 1
    assert (await world.cli("report", "card", C1.pan, "--from", ymd(d1), "--to", ymd(d0))).code == 2
    assert (await world.cli("report", "card", C1.pan, "--from", "yesterday")).code == 2
    default = await world.ok("report", "card", C1.pan, "--format", "csv")  # this month up to the open date
    assert [x["type"] for x in _csv(default.out)][-2:] == ["topup", "refund"]


async def test_employer_statement(world: World) -> None:
    month = (await world.open_date()).strftime("%Y-%m")
    orders = world.tmp / "orders.csv"
    orders.write_text(
        "order_id,employer_id,pan,amount,item,note\n"
        f"E1-1,E001,{C1.pan},100.00,十一月福利,工会\n"
        f"E1-2,E001,{C2.pan},50.00,十一月福利,\n"
        f"E2-1,E002,{INACTIVE.pan},20.00,慰问,\n"
        f"E1-3,E001,{C1.pan},99999.00,超限,\n",  # rejected (cap): not on the statement
        encoding="utf-8",
    )
    await world.ok("topup", "import", str(orders), "--out", str(world.tmp / "r.csv"), "--no-progress")

    table = await world.ok("report", "employer", "E001", "--month", month)
    assert table.out.splitlines()[0] == f"employer E001  top-ups {month}"
    assert table.out.splitlines()[-1] == "2 orders, 2 cards, total 150.00"
    assert "E2-1" not in table.out and "E1-3" not in table.out and C1.pan not in table.out
    rows = _csv((await world.ok("report", "employer", "E001", "--month", month, "--format", "csv")).out)
    assert [(x["order_id"], x["masked_pan"], x["member_id"], x["amount"], x["item"]) for x in rows] == [
        ("E1-1", C1.masked, C1.member_id, "100.00", "十一月福利"),
        ("E1-2", C2.masked, C2.member_id, "50.00", "十一月福利"),
    ]
    other = _csv((await world.ok("report", "employer", "E002", "--format", "csv")).out)  # default: this month
    assert [(x["order_id"], x["amount"]) for x in other] == [("E2-1", "20.00")]
    empty = await world.ok("report", "employer", "E999", "--month", month)
    assert empty.out.splitlines()[-1] == "0 orders, 0 cards, total 0.00"
    assert (await world.cli("report", "employer", "E001", "--month", "2026/11")).code == 2
