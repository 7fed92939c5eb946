"""``switch cards issue|show|lost|freeze|close|unlock-pin`` through the real CLI, on both ledgers.

Issuance: per-line validation and duplicates, PAN = BIN + sequence + Luhn (recomputed here from the token), the
initial PIN generated in the HSM and printed to its owner-only mailer file (never to the report), status
INACTIVE until the first PIN change at a real terminal. Card operations: journaled operator actions, masked
output, the POS sees each new status.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import stat
import time
from pathlib import Path

import pytest

from switch.backoffice.tokens import card_token, make_pan
from tests.backoffice.conftest import C1, C2, NEARCAP, TID_A, TID_H, TOKEN_KEY, UNKNOWN_PAN, World

pytestmark = pytest.mark.asyncio

MEMBERS = (
    "member_id,name,mobile,employer_id\n"
    "N0001,李四,13912345678,E100\n"  # 2 issued
    "N0002,王五,12345,E100\n"  # 3 bad mobile
    "N0001,李四,13912345678,E100\n"  # 4 same member twice in the file
    f"{C1.member_id},老会员,13800000009,E001\n"  # 5 already has a card
    "N 3,赵六,13700000001,E100\n"  # 6 bad member id
    "N0004,,13700000002,E100\n"  # 7 no name
    "\n"
    "N0005,钱七,13700000003,E200\n"  # 9 issued
    "N0006,孙八,13700000004\n"  # 10 a cell missing
)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _mailers(world: World) -> list[dict[str, object]]:
    if not world.mailer_file.exists():
        return []
    return [json.loads(x) for x in world.mailer_file.read_text(encoding="utf-8").splitlines()]


def _pan_of(token: str, bin_: str = "990001") -> tuple[str, int]:
    """The PAN behind ``token``, searched as BIN + sequence + Luhn (the only way issuance may number cards)."""
    for seq in range(1, 1000):
        pan = make_pan(bin_, seq)
        if card_token(pan, TOKEN_KEY) == token:
            return pan, seq
    raise AssertionError("the token is not a BIN + sequence + Luhn PAN")


async def test_issue_validates_each_line_and_issues_inactive_cards(world: World) -> None:
    members = world.tmp / "MEMBERS.csv"
    members.write_text(MEMBERS, encoding="utf-8")
    out = world.tmp / "CARDS.csv"
    r = await world.ok("cards", "issue", str(members), "--out", str(out), "--no-progress")
    assert "8 lines, 2 issued, 1 duplicate, 5 rejected" in r.out, r.out
    rows = _rows(out)
    assert [(x["line"], x["member_id"], x["result"]) for x in rows] == [
        ("2", "N0001", "issued"),
        ("3", "N0002", "rejected:bad_mobile"),
        ("4", "N0001", "rejected:duplicate_member_id"),
        ("5", C1.member_id, "duplicate"),
        ("6", "", "rejected:bad_member_id"),
        ("7", "N0004", "rejected:bad_name"),
        ("9", "N0005", "issued"),
        ("10", "", "rejected:bad_line"),
    ]
    assert rows[3]["masked_pan"] == C1.masked and rows[3]["card_token"] == C1.token
    issued = [x for x in rows if x["result"] == "issued"]
    seqs = []
    for row in issued:
        pan, seq = _pan_of(row["card_token"])
        seqs.append(seq)
        assert row["masked_pan"] == f"{pan[:6]}******{pan[-4:]}" and len(pan) == 16
        assert row["expiry"].isdigit() and len(row["expiry"]) == 4
    assert seqs[0] > 6 and seqs[1] == seqs[0] + 1  # numbered after the provisioned cards, in file order

    # the report is owner-only and carries no PAN and no PIN; the PINs exist only on the HSM's mailers
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    mailers = _mailers(world)
    assert stat.S_IMODE(world.mailer_file.stat().st_mode) == 0o600
    assert [m["lines"][1] for m in mailers] == ["N0001", "N0005"]  # type: ignore[index]
    report_text = out.read_text(encoding="utf-8") + r.out + r.err
    for row, m in zip(issued, mailers, strict=True):
        pan, _ = _pan_of(row["card_token"])
        assert m["account"] == pan[-5:-1]  # the HSM's account number: PAN digits before the check digit
        assert m["lines"] == [row["name"], row["member_id"], row["employer_id"], row["masked_pan"]]
        assert pan not in report_text
        assert f",{m['pin']}," not in report_text and f"{m['pin']}\n" not in report_text

    # stored INACTIVE, with the member's data; each issuance journaled as an operator action
    show = await world.ok("cards", "show", issued[0]["card_token"])
    assert "status      inactive" in show.out and "balance     0.00" in show.out and "139****5678" in show.out
    journal = await world.fetch("SELECT kind, card_token FROM journal WHERE source = 'operator' ORDER BY id")
    assert journal == [("card_issue", issued[0]["card_token"]), ("card_issue", issued[1]["card_token"])]

    # a re-run issues nothing twice and prints no new mailer
    again = await world.ok("cards", "issue", str(members), "--out", str(out), "--no-progress")
    assert "0 issued, 3 duplicate" in again.out
    assert [x["result"] for x in _rows(out)][:2] == ["duplicate", "rejected:bad_mobile"]
    assert len(_mailers(world)) == 2


async def test_issued_card_is_inactive_until_the_first_pin_change(world: World) -> None:
    members = world.tmp / "members.csv"
    members.write_text("member_id,name,mobile,employer_id\nN0100,周九,13900000100,E100\n", encoding="utf-8")
    await world.ok("cards", "issue", str(members), "--no-progress")  # --out defaults next to the input
    row = _rows(world.tmp / "members.cards.csv")[0]
    pan, _ = _pan_of(row["card_token"])
    pin = str(_mailers(world)[0]["pin"])
    expiry = row["expiry"]

    pos = await world.pos(TID_A)
    assert (await pos.balance(pan, pin, expiry=expiry)).rc == "21"  # INACTIVE: only a PIN change
    assert (await pos.purchase(pan, pin, 100, expiry=expiry)).rc == "21"
    assert (await pos.pinchange(pan, "000000", "246810", expiry=expiry)).rc == "55"  # the mailer PIN is needed
    assert (await pos.pinchange(pan, pin, "246810", expiry=expiry)).rc == "00"
    assert "status      active" in (await world.ok("cards", "show", pan)).out
    ans = await pos.balance(pan, "246810", expiry=expiry)
    assert (ans.rc, ans.balance) == ("00", 0)
    assert (await pos.balance(pan, pin, expiry=expiry)).rc == "55"


async def test_issue_refuses_bad_input_files_with_one_line(world: World) -> None:
    missing = await world.cli("cards", "issue", str(world.tmp / "nope.csv"), "--out", str(world.tmp / "o.csv"))
    assert missing.code == 1 and missing.err.count("\n") == 1 and "nope.csv" in missing.err
    bad = world.tmp / "bad.csv"
    bad.write_text("member,full_name,phone\nN1,x,13900000000\n", encoding="utf-8")
    r = await world.cli("cards", "issue", str(bad), "--out", str(world.tmp / "o.csv"))
    assert r.code == 1 and "lacks column(s) name, employer_id" in r.err
    assert not (world.tmp / "o.csv").exists()
    usage = await world.cli("cards", "issue")
    assert usage.code == 2


async def test_issue_without_hsm_stops_before_numbering_any_card(world: World) -> None:
    members = world.tmp / "members.csv"
    members.write_text("member_id,name,mobile,employer_id\nN0200,吴十,13900000200,E100\n", encoding="utf-8")
    await world.hsm.stop(0.2)
    r = await world.cli("cards", "issue", str(members), "--out", str(world.tmp / "o.csv"), "--no-progress")
    assert r.code == 1 and "HSM unavailable" in r.err and r.err.count("\n") == 1
    assert await world.fetch("SELECT token FROM cards WHERE member_id = 'N0200'") == []
    await world.hsm.start()


# ------------------------------------------------------------------------------------------------ operations
async def test_card_operations_are_journaled_masked_and_seen_by_the_pos(world: World) -> None:
    show = await world.ok("cards", "show", C1.pan)
    assert show.out.splitlines()[0] == f"card        {C1.masked}"
    assert "balance     500.00" in show.out and "138****0001" in show.out and C1.pan not in show.out
    assert (await world.cli("cards", "show", UNKNOWN_PAN)).code == 1
    assert (await world.cli("cards", "show", "1234")).code == 2
    assert (await world.cli("cards", "show", C1.pan[:-1] + str((int(C1.pan[-1]) + 1) % 10))).code == 2

    pos = await world.pos(TID_A)
    frozen = await world.ok("cards", "freeze", C1.pan, "--operator", "alice")
    assert frozen.out.strip() == f"card {C1.masked}: active -> frozen"
    assert (await pos.purchase(C1.pan, C1.pin, 100)).rc == "62"
    assert (await world.ok("cards", "lost", C2.pan, "--operator", "bob")).out.strip().endswith("active -> lost")
    assert (await pos.purchase(C2.pan, C2.pin, 100)).rc == "41"
    refused = await world.cli("cards", "freeze", C2.pan)
    assert refused.code == 1 and "lost" in refused.err
    assert (await world.ok("cards", "close", C1.pan)).out.strip().endswith("frozen -> closed")
    closed = await world.cli("cards", "lost", C1.pan)
    assert closed.code == 1 and "closed" in closed.err
    assert (await world.cli("cards", "unlock-pin", C1.pan)).code == 1

    rows = await world.fetch(
        "SELECT kind, card_token, detail, amount FROM journal WHERE source = 'operator' ORDER BY id"
    )
    assert [(k, t, a) for k, t, _d, a in rows] == [
        ("card_action", C1.token, 0),
        ("card_action", C2.token, 0),
        ("card_action", C1.token, 0),
    ]
    assert rows[0][2] == "freeze by alice: active->frozen" and rows[1][2] == "lost by bob: active->lost"
    assert (
        await world.fetch(
            "SELECT p.journal_id FROM postings p JOIN journal j ON j.id = p.journal_id WHERE j.source = 'operator'"
        )
        == []
    )
    assert (await world.balance(C1), await world.balance(C2)) == (C1.balance, C2.balance)


async def test_unlock_pin_resets_the_try_counter(world: World) -> None:
    pos = await world.pos(TID_H)
    answers = [(await pos.balance(NEARCAP.pan, "999999")).rc for _ in range(3)]
    assert answers == ["55", "55", "75"]
    assert (await pos.balance(NEARCAP.pan, NEARCAP.pin)).rc == "75"
    assert "pin_tries   3" in (await world.ok("cards", "show", NEARCAP.pan)).out
    r = await world.ok("cards", "unlock-pin", NEARCAP.pan, "--operator", "carol")
    assert r.out.strip() == f"card {NEARCAP.masked}: PIN tries reset; status active"
    assert "pin_tries   0" in (await world.ok("cards", "show", NEARCAP.pan)).out
    # the engine may reuse a card it read within its reference-data bound (database.refdata_ttl_ms)
    deadline = time.monotonic() + 3.0
    rc = (await pos.balance(NEARCAP.pan, NEARCAP.pin)).rc
    while rc == "75" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        rc = (await pos.balance(NEARCAP.pan, NEARCAP.pin)).rc
    assert rc == "00"
    detail = await world.fetch("SELECT detail FROM journal WHERE kind = 'card_action'")
    assert detail == [("unlock-pin by carol: active->active",)]
