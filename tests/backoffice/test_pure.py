"""Pure parts of the back office: money, CSV validation, SMS text, clearing records, atomic writer."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.backoffice.csvio import AtomicCsvWriter, BadLine, Member, Order, parse_members, parse_orders
from switch.backoffice.money import AmountError, format_yuan, mdr_fee, parse_yuan, rebate_amount
from switch.backoffice.render import render_csv, render_table
from switch.backoffice.smstext import NoticeKind, render_sms
from switch.clearing.records import CR, DR, ClearingAccumulator, DetailRecord, header_line, verify_clearing_text
from switch.clearing.writer import AtomicFileWriter, FileAlreadyWritten
from switch.errors import HandledError

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "fen"),
    [("100.00", 10000), ("0.01", 1), ("12", 1200), ("0.5", 50), ("5000.00", 500000), (" 1.10 ", 110)],
)
def test_parse_yuan(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "-1.00", "+1", "1.001", "1e3", "1,000.00", "01.00", ".5", "abc", "1."])
def test_parse_yuan_rejects(text: str) -> None:
    with pytest.raises(AmountError):
        parse_yuan(text)


@given(st.integers(min_value=0, max_value=10**13))
def test_yuan_round_trip(fen: int) -> None:
    assert parse_yuan(format_yuan(fen)) == fen


def test_format_yuan_negative() -> None:
    assert format_yuan(-5) == "-0.05"


@pytest.mark.parametrize(
    ("amount", "bps", "cap", "fee"),
    [
        (10000, 38, 2000, 38),  # 0.38 %
        (150, 100, 2000, 2),  # 1.5 → 2 (half up)
        (149, 100, 2000, 1),
        (50, 100, 2000, 1),  # 0.5 → 1
        (49, 100, 2000, 0),
        (1_000_000, 38, 2000, 2000),  # 3800 capped
        (1_000_000, 38, 0, 3800),  # no cap configured
    ],
)
def test_mdr_fee(amount: int, bps: int, cap: int, fee: int) -> None:
    assert mdr_fee(amount, bps, cap) == fee


def test_rebate_floor() -> None:
    assert rebate_amount(1999, 500) == 99  # 99.95 → 99
    assert rebate_amount(-100, 500) == 0
    assert rebate_amount(100, 0) == 0


def test_sms_texts() -> None:
    t = datetime(2026, 11, 22, 14, 3, tzinfo=CST)
    assert render_sms(NoticeKind.PURCHASE, "0019", t, 10000, 40000) == (
        "您尾号0019的工会会员服务卡11月22日14:03消费100.00元，余额400.00元。"
    )
    assert "充值50.00元" in render_sms("topup", "0019", t, 5000, 45000)
    assert "撤销" in render_sms("void", "0019", t, 1, 1)
    assert "退货" in render_sms("refund", "0019", t, 1, 1)
    assert render_sms("rebate", "0019", datetime(2026, 3, 1, 0, 5, tzinfo=CST), 505, 100505) == (
        "您尾号0019的工会会员服务卡03月01日00:05返现5.05元，余额1005.05元。"
    )
    with pytest.raises(ValueError):
        render_sms("purchase", "9900010000000019", t, 1, 1)


def test_parse_members(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text(
        "\ufeffmember_id,name,mobile,employer_id\n"
        "M1,张三,13800000000,E001\n"
        "M2,李四,1380000000,E001\n"  # short mobile
        "M3,,13800000001,E001\n"
        "M4,王五,13800000002\n"
        "\n"
        "M5,赵六,13900000000,E002\n",
        encoding="utf-8",
    )
    out = list(parse_members(f))
    assert [type(x) for x in out] == [Member, BadLine, BadLine, BadLine, Member]
    assert [getattr(x, "reason", "ok") for x in out] == ["ok", "bad_mobile", "bad_name", "bad_line", "ok"]
    assert out[0] == Member(2, "M1", "张三", "13800000000", "E001")
    assert out[-1].line == 7


def test_parse_orders(tmp_path: Path) -> None:
    f = tmp_path / "o.csv"
    f.write_text(
        "order_id,employer_id,pan,amount,item,note\n"
        "O1,E001,9900010000000019,100.00,节日福利,\n"
        "O2,E001,9900010000000018,100.00,x,\n"  # bad Luhn
        "O3,E001,9900010000000019,0.00,x,\n"
        "O4,E001,9900010000000019,1.005,x,\n"
        ",E001,9900010000000019,1.00,x,\n",
        encoding="utf-8",
    )
    out = list(parse_orders(f))
    assert isinstance(out[0], Order) and out[0].amount_fen == 10000 and out[0].item == "节日福利"
    assert [x.reason for x in out[1:] if isinstance(x, BadLine)] == [
        "bad_pan",
        "bad_amount",
        "bad_amount",
        "bad_order_id",
    ]
    assert "9900010000000019" not in repr(out)


def test_missing_header_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "o.csv"
    f.write_text("order_id,pan\n", encoding="utf-8")
    with pytest.raises(HandledError, match="header"):
        list(parse_orders(f))
    with pytest.raises(HandledError, match="not found"):
        list(parse_orders(tmp_path / "nope.csv"))


def test_atomic_csv_writer_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.csv"
    with AtomicCsvWriter(target, ["a", "b"]) as w:
        w.row(["1", "x,y"])
    assert target.read_text() == 'a,b\n1,"x,y"\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(RuntimeError), AtomicCsvWriter(tmp_path / "bad.csv", ["a"]) as w:
        raise RuntimeError("boom")
    assert not (tmp_path / "bad.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_file_writer_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "CLR_20261122.txt"
    with AtomicFileWriter(target) as w:
        w.write(b"one\n")
    assert target.read_bytes() == b"one\n"
    assert not os.access(target, os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o440
    with pytest.raises(FileAlreadyWritten), AtomicFileWriter(target) as w:
        w.write(b"two\n")
    assert target.read_bytes() == b"one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CLR_20261122.txt"]


def _rec(
    side: str, typ: str, amount: int, fee: int, mid: str = "898520154110001", merchant: bool = True
) -> DetailRecord:
    return DetailRecord(
        type=typ,
        side=side,
        rrn="000000000001",
        stan="000001",
        batch="000001",
        tid="10000001",
        mid=mid,
        masked_pan="990001******0019",
        card_token="ab" * 32,
        amount=amount,
        fee=fee,
        merchant=merchant,
        local_datetime="2026-11-22T14:03:05+08:00",
    )


def test_clearing_lines_and_hash() -> None:
    acc = ClearingAccumulator()
    parts = [header_line("CLR20261122", "UNIONCARD", date(2026, 11, 22), datetime(2026, 11, 23, 0, 40, tzinfo=CST))]
    assert parts[0] == "H|1|CLR20261122|UNIONCARD|20261122|2026-11-23T00:40:00+08:00\n"
    acc.feed_text(parts[0])
    for r in (
        _rec(DR, "PURCHASE", 10000, 38),
        _rec(CR, "VOID", 10000, 38),
        _rec(DR, "PURCHASE", 1_000_000, 2000, mid="898520154110002"),
        _rec(CR, "TOPUP", 50000, 0, mid="", merchant=False),
    ):
        line = acc.add(r)
        acc.feed_text(line)
        parts.append(line)
    assert parts[1].startswith("D|1|PURCHASE|DR|000000000001|000001|000001|10000001|898520154110001|990001******0019|")
    assert parts[1].endswith("|10000|38|9962|156|2026-11-22T14:03:05+08:00|||\n")
    assert parts[4].endswith("|50000|0|50000|156|2026-11-22T14:03:05+08:00|||\n")
    m = acc.merchant_lines()
    assert m == "M|898520154110001|2|10000|10000|0|0\nM|898520154110002|1|1000000|0|2000|998000\n"
    acc.feed_text(m)
    parts.append(m)
    trailer = acc.trailer_line()
    body = "".join(parts)
    assert trailer == (f"T|4|1010000|60000|2000|948000|{hashlib.sha256(body.encode()).hexdigest()}\n")
    assert verify_clearing_text(body + trailer)
    assert not verify_clearing_text(body.replace("10000|38|9962", "10000|39|9961") + trailer)


def test_tables() -> None:
    t = render_table(["名称", "amount"], [["羊城西饼", "1.00"], ["x", "100.00"]], numeric=[1])
    lines = t.splitlines()
    assert lines[0] == "名称      amount"
    assert lines[2] == "羊城西饼    1.00"
    assert render_csv(["a"], [["1"]]) == "a\n1\n"


def test_card_rebates_floor_per_merchant() -> None:
    from switch.backoffice.rebatecalc import card_rebates, month_bounds

    rows = [("c1", "m1", 1999, 500), ("c1", "m2", 1999, 500), ("c2", "m1", -500, 500), ("c3", "m1", 19, 500)]
    assert card_rebates(rows) == {"c1": 198}  # 99 + 99, not floor(3998 * 5 %) = 199
    assert month_bounds("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    with pytest.raises(ValueError):
        month_bounds("2026-13")
    with pytest.raises(ValueError):
        month_bounds("202611")
