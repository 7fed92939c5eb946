"""SPEC §9 as the engine produces it: one ``event=txn`` line per request with the per-step timings, the
``signon`` / ``mac_error`` / ``hsm_error`` events, the request metrics, and never a full PAN."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import LOG_SINK
from tests.support.secrets import find_secrets
from tests.support.stack import CARD, HALL_TID, Stack

TXN_KEYS = {"ts", "level", "mti", "txn_type", "tid", "mid", "stan", "batch", "rrn", "pan", "amount", "rc",
            "auth_code", "latency_ms", "steps", "peer"}


def _lines(since: int) -> list[dict[str, Any]]:
    out = []
    for line in LOG_SINK.getvalue()[since:].splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def test_txn_line_per_request_with_steps_and_masked_pan(stack: Stack) -> None:
    mark = len(LOG_SINK.getvalue())
    pos = await stack.pos()
    ans = await pos.purchase(CARD.pan, CARD.pin, 1234)
    assert ans.rc == "00"
    lines = _lines(mark)
    txns = [x for x in lines if x.get("event") == "txn"]
    assert [t["mti"] for t in txns] == ["0800", "0200"]
    t = txns[-1]
    assert set(t) >= TXN_KEYS, TXN_KEYS - set(t)
    assert t["txn_type"] == "purchase" and t["rc"] == "00" and t["rrn"] == ans.f["37"]
    assert t["auth_code"] == ans.f["38"] and t["amount"] == 1234 and t["stan"] == ans.f["11"]
    assert t["pan"] == CARD.pan[:6] + "******" + CARD.pan[-4:]
    assert {"parse", "mac", "hsm_pin", "ledger", "reply"} <= set(t["steps"]), t["steps"]
    assert all(isinstance(v, float | int) for v in t["steps"].values())
    assert any(x.get("event") == "signon" for x in lines)
    assert not find_secrets(LOG_SINK.getvalue()[mark:])


async def test_mac_error_and_hsm_error_events(stack: Stack) -> None:
    mark = len(LOG_SINK.getvalue())
    pos = await stack.pos()
    good = pos.keys["mak"]
    pos.keys["mak"] = bytes(8)
    assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "A0"
    pos.keys["mak"] = good
    await stack.hsm_down()
    try:
        assert (await pos.purchase(CARD.pan, CARD.pin, 100)).rc == "96"
    finally:
        await stack.hsm_up()
    events = [x.get("event") for x in _lines(mark)]
    assert "mac_error" in events and "hsm_error" in events


async def test_request_metrics_by_mti_and_rc(stack: Stack) -> None:
    pos = await stack.pos()
    await pos.purchase(CARD.pan, CARD.pin, 100)
    await pos.purchase(CARD.pan, "000000", 100)
    hall = await stack.pos(tid=HALL_TID)
    await hall.topup(CARD.pan, 100)
    m = stack.metrics
    assert m.requests.get(mti="0200", rc="00") == 2
    assert m.requests.get(mti="0200", rc="55") == 1
    assert m.requests.get(mti="0800", rc="00") == 2
    assert m.latency.count() >= 5
    text = m.render()
    assert "switch_requests_total" in text and 'rc="55"' in text
