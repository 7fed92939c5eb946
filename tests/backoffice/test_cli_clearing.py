"""``switch day close`` and ``switch clearing run`` through the real CLI, on both ledgers, with POS traffic
through the real switch.

The clearing file is checked against an independent recomputation from the journal, written here from SPEC §8
alone (which rows, DR/CR from the card's side, fees from the merchants' MDR and cap with round-half-up, net,
``M`` lines sorted by MID, ``T`` totals and the SHA-256 of every preceding line), and against the ledger's own
postings of the date (merchant payables, fee income, card accounts). Also: the file is never rewritten, an
open date is refused, a late reversal is an ADJUSTMENT in the next file, a disk error publishes nothing.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from tests.backoffice.conftest import (
    C1,
    C2,
    CARDS,
    LOST,
    MERCHANTS,
    MID_A,
    MID_B,
    PROGRAM_ID,
    TID_A,
    TID_B,
    TID_H,
    TZ,
    World,
    parse_ymd,
    ymd,
)
from tests.conftest import LOG_SINK

pytestmark = pytest.mark.asyncio

MERCHANT_KINDS = {"purchase": "DR", "void": "CR", "refund": "CR"}
PROGRAM_KINDS = {"topup": "CR", "rebate": "CR"}
TYPE = {"purchase": "PURCHASE", "void": "VOID", "refund": "REFUND", "topup": "TOPUP", "rebate": "REBATE"}


def spec_fee(amount: int, mid: str) -> int:
    """SPEC §8: round-half-up(amount × MDR bps / 10000), capped at the merchant's fee cap."""
    m = MERCHANTS[mid]
    fee = int((Decimal(amount) * m["mdr_bps"] / Decimal(10000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return min(fee, int(m["fee_cap"])) if m["fee_cap"] else fee


def _local(value: Any) -> str:
    ts = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return ts.astimezone(TZ).isoformat(timespec="seconds")


@dataclass
class Row:
    id: int
    kind: str
    rc: str
    status: str
    bdate: int
    rrn: str
    stan: str
    batch: str
    tid: str
    mid: str
    token: str
    amount: int
    fee: int
    created: Any
    auth: str
    orig_id: int | None


async def journal(world: World) -> dict[int, Row]:
    rows = await world.fetch(
        "SELECT id, kind, rc, status, business_date, rrn, stan, batch, tid, mid, card_token, amount, fee, "
        "created_at, auth_code, orig_id FROM journal ORDER BY id"
    )
    return {r[0]: Row(*r) for r in rows}


def recompute(rows: dict[int, Row], d: date, header: str) -> str:
    """The clearing file of business date ``d`` from SPEC §8 and the journal (``header`` is taken as written)."""
    day = int(ymd(d))
    masked = {c.token: c.masked for c in CARDS}
    reversals = [r for r in rows.values() if r.kind == "reversal" and r.rc == "00" and r.status == "ok"]
    reversed_on = {r.orig_id: r.bdate for r in reversals}

    def fee_of(r: Row) -> int:
        if r.kind == "purchase":
            return spec_fee(r.amount, r.mid)
        if r.kind == "void":  # the purchase's fee comes back
            assert r.orig_id is not None
            return fee_of(rows[r.orig_id])
        if r.kind == "refund":  # the fee on the refunded amount
            return spec_fee(r.amount, r.mid)
        return 0

    details: list[tuple[str, str, Row, int, Row | None]] = []  # (type, side, row, fee, original)
    for r in rows.values():
        if r.bdate != day or r.rc != "00":
            continue
        if r.kind in TYPE and reversed_on.get(r.id) != day:
            side = MERCHANT_KINDS.get(r.kind) or PROGRAM_KINDS[r.kind]
            fee = fee_of(r) if r.kind in MERCHANT_KINDS else 0
            assert r.fee == fee or r.kind not in MERCHANT_KINDS, (r, fee)  # the ledger charged the SPEC's fee
            details.append((TYPE[r.kind], side, r, fee, rows[r.orig_id] if r.orig_id else None))
        elif r.kind == "reversal" and r.status == "ok" and r.orig_id and rows[r.orig_id].bdate < day:
            orig = rows[r.orig_id]
            side = {"DR": "CR", "CR": "DR"}[MERCHANT_KINDS.get(orig.kind) or PROGRAM_KINDS[orig.kind]]
            fee = fee_of(orig) if orig.kind in MERCHANT_KINDS else 0
            details.append(("ADJUSTMENT", side, r, fee, orig))

    lines = [header]
    merchants: dict[str, list[int]] = {}
    total = {"DR": 0, "CR": 0}
    for seq, (typ, side, r, fee, orig) in enumerate(details, 1):
        merchant = (orig.kind if typ == "ADJUSTMENT" and orig else r.kind) in MERCHANT_KINDS
        net = r.amount - fee if merchant else r.amount
        o_rrn, o_date = (orig.rrn, str(orig.bdate)) if orig else ("", "")
        lines.append(
            f"D|{seq}|{typ}|{side}|{r.rrn}|{r.stan}|{r.batch}|{r.tid}|{r.mid}|{masked[r.token]}|{r.token}|"
            f"{r.amount}|{fee}|{net}|156|{_local(r.created)}|{r.auth}|{o_rrn}|{o_date}\n"
        )
        total[side] += r.amount
        if merchant:
            m = merchants.setdefault(r.mid, [0, 0, 0, 0])
            m[0] += 1
            m[1 if side == "DR" else 2] += r.amount
            m[3] += fee if side == "DR" else -fee
    fees = 0
    for mid in sorted(merchants):
        count, purchases, credits, mfees = merchants[mid]
        fees += mfees
        lines.append(f"M|{mid}|{count}|{purchases}|{credits}|{mfees}|{purchases - credits - mfees}\n")
    digest = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
    net = total["DR"] - total["CR"] - fees
    lines.append(f"T|{len(details)}|{total['DR']}|{total['CR']}|{fees}|{net}|{digest}\n")
    return "".join(lines)


def check_header(text: str, d: date) -> str:
    header = text.split("\n", 1)[0] + "\n"
    h = header.rstrip("\n").split("|")
    assert h[:2] == ["H", "1"] and h[2] and h[3] == PROGRAM_ID and h[4] == ymd(d), h
    assert datetime.fromisoformat(h[5]).utcoffset() is not None  # ISO 8601 with its offset
    return header


async def ledger_totals(world: World, d: date) -> dict[str, int]:
    """The date's postings by account kind (card side positive), straight from the ledger."""
    rows = await world.fetch(
        "SELECT a.kind, a.ref, SUM(p.amount) FROM postings p JOIN journal j ON j.id = p.journal_id "
        "JOIN accounts a ON a.id = p.account_id WHERE j.business_date = $1 GROUP BY a.kind, a.ref",
        int(ymd(d)),
    )
    out: dict[str, int] = {}
    for kind, ref, amount in rows:
        key = f"merchant:{ref}" if kind == "merchant" else kind
        out[key] = out.get(key, 0) + int(amount)
    return out


def parse(text: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {"H": [], "D": [], "M": [], "T": []}
    for line in text.splitlines():
        out[line[0]].append(line.split("|"))
    return out


async def test_clearing_file_recomputed_from_the_journal(world: World) -> None:
    d0 = await world.open_date()
    a = await world.pos(TID_A)
    b = await world.pos(TID_B)
    hall = await world.pos(TID_H)

    a1 = await a.purchase(C1.pan, C1.pin, 10000)  # fee 38
    a2 = await a.purchase(C1.pan, C1.pin, 2500)  # 9.5 fen -> 10
    assert (await b.purchase(C2.pan, C2.pin, 250)).rc == "00"  # 2.5 fen -> 3 (half-up, not half-even)
    assert (await b.purchase(C2.pan, C2.pin, 10000)).rc == "00"  # 100 fen -> capped at 50
    a3 = await a.purchase(C1.pan, C1.pin, 3000)  # 11.4 -> 11, then voided: the fee comes back
    assert (await a.void(C1.pan, 3000, a3)).rc == "00"
    a4 = await a.purchase(C2.pan, C2.pin, 1000)  # 3.8 -> 4
    assert (await a.refund(C2.pan, 400, a4)).rc == "00"  # fee on 4.00 returned: 1.52 -> 2
    same_day = a.purchase_fields(C1.pan, C1.pin, 500)
    assert (await a.send("0200", same_day)).rc == "00"
    assert (await a.reverse(same_day)).rc == "00"  # reversed the same day: absent
    assert (await a.purchase(LOST.pan, LOST.pin, 100)).rc == "41"  # declined: absent
    assert (await a.purchase(C1.pan, "000000", 100)).rc == "55"
    assert (await hall.topup(C1.pan, 5000)).rc == "00"
    late = b.purchase_fields(C2.pan, C2.pin, 2000)  # fee 20; reversed after the day closed
    b3 = await b.send("0200", late)
    assert b3.rc == "00" and all(x.rc == "00" for x in (a1, a2, a3, a4))
    orders = world.tmp / "orders.csv"
    orders.write_text(f"order_id,employer_id,pan,amount,item,note\nK1,E001,{C2.pan},12.34,福利,\n", "utf-8")
    await world.ok("topup", "import", str(orders), "--out", str(world.tmp / "r.csv"), "--no-progress")

    closed = await world.close_day()
    assert closed == d0 and await world.open_date() == d0 + timedelta(days=1)
    d1 = closed + timedelta(days=1)
    assert (await b.reverse(late)).rc == "00"  # late: the original's date is closed
    assert (await a.purchase(C1.pan, C1.pin, 1234)).rc == "00"  # d1: 4.6892 -> 5
    assert (await a.void(C1.pan, 2500, a2)).rc == "00"  # d1: a void of a d0 purchase, same open batch

    refused = await world.cli("clearing", "run", "--date", ymd(d1))
    assert refused.code == 1 and "not closed" in refused.err
    assert (await world.cli("clearing", "run", "--date", "2026-13-01")).code == 2

    r = await world.ok("clearing", "run", "--no-progress")  # default: the latest closed date
    path = world.clearing_dir / f"CLR_{ymd(d0)}.txt"
    assert r.out.startswith(f"clearing {ymd(d0)}: written {path}")
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    rows = await journal(world)
    assert text == recompute(rows, d0, check_header(text, d0))

    f = parse(text)
    kinds = [(x[2], x[3], x[11], x[12]) for x in f["D"]]
    assert ("PURCHASE", "DR", "2500", "10") in kinds and ("PURCHASE", "DR", "250", "3") in kinds
    assert ("PURCHASE", "DR", "10000", "50") in kinds and ("VOID", "CR", "3000", "11") in kinds
    assert ("REFUND", "CR", "400", "2") in kinds and ("TOPUP", "CR", "5000", "0") in kinds
    assert ("TOPUP", "CR", "1234", "0") in kinds and ("PURCHASE", "DR", "500", "2") not in kinds
    assert [x[1] for x in f["M"]] == sorted([MID_A, MID_B])
    purchase = next(x for x in f["D"] if x[4] == a1.f["37"])
    assert purchase[5:9] == [a1.f["11"], a1.f["60"][2:8], TID_A, MID_A] and purchase[16] == a1.f["38"]
    assert purchase[9] == C1.masked and purchase[10] == C1.token and purchase[13] == "9962"
    for card in CARDS:
        assert card.pan not in text

    # the ledger agrees: merchant payables = net_payable, fee income = total fees, cards = CR - DR
    led = await ledger_totals(world, d0)
    for m in f["M"]:
        assert led[f"merchant:{m[1]}"] == int(m[6])
    t = f["T"][0]
    assert led["fee_income"] == int(t[4])
    assert led["card"] == int(t[3]) - int(t[2])

    # never rewritten: a re-run leaves the bytes alone (and so does a re-run after more traffic)
    assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0
    again = await world.ok("clearing", "run", "--date", ymd(d0), "--no-progress")
    assert "unchanged" in again.out and path.read_bytes() == raw
    assert sorted(p.name for p in world.clearing_dir.iterdir()) == [path.name]

    # the late reversal is an ADJUSTMENT of the next file, with its original's RRN and date
    assert await world.close_day() == d1
    await world.ok("clearing", "run", "--no-progress")
    text1 = (world.clearing_dir / f"CLR_{ymd(d1)}.txt").read_text(encoding="utf-8")
    assert text1 == recompute(await journal(world), d1, check_header(text1, d1))
    f1 = parse(text1)
    adj = [x for x in f1["D"] if x[2] == "ADJUSTMENT"]
    assert len(adj) == 1 and adj[0][3] == "CR" and adj[0][8] == MID_B
    assert (adj[0][11], adj[0][12], adj[0][13]) == ("2000", "20", "1980")
    assert (adj[0][17], adj[0][18]) == (b3.f["37"], ymd(d0))
    void = next(x for x in f1["D"] if x[2] == "VOID")
    assert (void[11], void[12], void[17], void[18]) == ("2500", "10", a2.f["37"], ymd(d0))
    assert next(x for x in f1["M"] if x[1] == MID_B)[2:] == ["1", "0", "2000", "-20", "-1980"]
    led1 = await ledger_totals(world, d1)
    for m in f1["M"]:
        assert led1[f"merchant:{m[1]}"] == int(m[6])
    assert '"event":"clearing_written"' in LOG_SINK.getvalue()


async def test_default_date_refusals_and_an_empty_day(world: World) -> None:
    d0 = await world.open_date()
    r = await world.ok("clearing", "run", "--no-progress")  # nothing closed by hand: the day before the open one
    path = world.clearing_dir / f"CLR_{ymd(d0 - timedelta(days=1))}.txt"
    text = path.read_text(encoding="utf-8")
    header = check_header(text, d0 - timedelta(days=1))
    digest = hashlib.sha256(header.encode()).hexdigest()
    assert text == header + f"T|0|0|0|0|0|{digest}\n" and "written" in r.out
    assert (await world.cli("clearing", "run", "--date", ymd(d0))).code == 1
    assert (await world.cli("clearing", "run", "--date", ymd(d0 + timedelta(days=3)))).code == 1
    assert (await world.cli("clearing", "run", "--date", "20261")).code == 2


async def test_day_close_prints_the_closed_date(world: World) -> None:
    d0 = await world.open_date()
    r = await world.ok("day", "close")
    assert r.out == f"{ymd(d0)}\n"
    assert r.err.strip() == f"switch: business date {ymd(d0)} closed; {ymd(d0 + timedelta(days=1))} is open"
    r2 = await world.ok("day", "close")
    assert parse_ymd(r2.out.strip()) == d0 + timedelta(days=1)
    show = await world.ok("day", "show")
    assert show.out.strip() == (
        f"open business date {ymd(d0 + timedelta(days=2))}; last closed {ymd(d0 + timedelta(days=1))}"
    )
    # the POS follows at once: field 15 of a purchase carries the new business date
    pos = await world.pos(TID_A)
    ans = await pos.purchase(C1.pan, C1.pin, 100)
    assert ans.rc == "00" and ans.f["15"] == (d0 + timedelta(days=2)).strftime("%m%d")


class _FailingOs(SimpleNamespace):
    """``os`` for the clearing writer: the second ``write`` fails with ENOSPC (a full disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, fd: int, data: Any) -> int:
        self.writes += 1
        if self.writes >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


async def test_disk_error_leaves_nothing_half_written(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import switch.clearing.writer as writer

    d0 = await world.close_day()
    monkeypatch.setattr(writer, "BUFFER", 256)  # several writes for the provisioning day's ~7 lines
    monkeypatch.setattr(writer, "os", _FailingOs())
    r = await world.cli("clearing", "run", "--no-progress")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "No space left on device" in r.err and "nothing written" in r.err
    assert not world.clearing_dir.exists() or list(world.clearing_dir.iterdir()) == []  # no temp file either
    assert await world.fetch("SELECT business_date FROM clearing_files") == []
    monkeypatch.setattr(writer, "os", os)
    await world.ok("clearing", "run", "--no-progress")
    text = (world.clearing_dir / f"CLR_{ymd(d0)}.txt").read_text(encoding="utf-8")
    assert text == recompute(await journal(world), d0, check_header(text, d0))


async def test_a_lost_file_is_regenerated_byte_for_byte(world: World) -> None:
    pos = await world.pos(TID_A)
    assert (await pos.purchase(C1.pan, C1.pin, 777)).rc == "00"
    d0 = await world.close_day()
    await world.ok("clearing", "run", "--no-progress")
    path = world.clearing_dir / f"CLR_{ymd(d0)}.txt"
    raw = path.read_bytes()
    path.unlink()
    r = await world.ok("clearing", "run", "--date", ymd(d0), "--no-progress")
    assert "regenerated" in r.out and path.read_bytes() == raw
    path.chmod(0o600)
    path.write_bytes(raw.replace(b"|777|", b"|778|"))  # tampered: refused, left as found
    tampered = await world.cli("clearing", "run", "--date", ymd(d0))
    assert tampered.code == 1 and "trailer check" in tampered.err


async def test_a_date_the_clock_closed_moments_ago_is_not_cleared_yet(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(TZ)
    if now.second > 55:  # the run must start within the same minute
        await asyncio.sleep(61 - now.second)
        now = datetime.now(TZ)
    monkeypatch.setenv("SWITCH_PROGRAM_CUTOVER", now.strftime("%H:%M"))  # the clock's cut-over: this minute
    r = await world.cli("clearing", "run")
    assert r.code == 1 and "less than a minute ago" in r.err
    assert not world.clearing_dir.exists()
    closed = await world.close_day()  # closed by hand: the close waited for transactions in flight
    done = await world.ok("clearing", "run", "--date", ymd(closed), "--no-progress")
    assert "written" in done.out
