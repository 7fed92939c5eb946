"""The terminal's store-and-forward queue: refund advices (0220) and reversals (0400) sent again, same STAN and
content, until a definitive, MAC-verified answer, before any new request and before settlement; the retry
bound; card data sealed in the state file. Against the real switch over TCP (HSM stopped and started again,
replies damaged on the line), plus the pure rules of what ends a queued message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from switch.iso.codec import decode_message, encode_message, mac_block, replace_mac, reply_to
from switch.iso.profiles import CUP
from switch.telemetry.masking import mask_pan
from terminal_sim.client import Link
from terminal_sim.session import ForwardPolicy, Session, SessionError
from terminal_sim.state import JournalEntry, StateStore, TerminalState, WorkingKeys
from terminal_sim.terminal import Card, ForwardError, Request, Terminal
from tests.support.stack import CARD, CARD2, MID, POS2_TID, POS_TID, TMK, Stack
from tests.terminal.conftest import LossyProxy, Sim, field_of
from tests.terminal.test_terminal_unit import EX, signed_on

# ---------------------------------------------------------------------------------- against the real switch


async def hsm_back(stack: Stack) -> None:
    """Start the HSM again and wait until the switch uses it (its client reconnects with a backoff of up to
    2 s): another terminal signs on until approved."""
    await stack.hsm_up()
    pos = await stack.pos(tid=POS2_TID, signon=False)
    for _ in range(100):
        if (await pos.signon()).rc == "00":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the switch never used the HSM again")


async def test_advice_answered_96_while_the_hsm_is_down_is_kept_and_sent_before_settlement(
    stack: Stack, sim: Sim
) -> None:
    p = await sim("purchase", "--pan", CARD2.pan, "--amount", "3000")
    assert p.code == 0, p.err
    rrn = field_of(p.out, "REF. NO.")
    await stack.hsm_down()
    try:
        r = await sim("refund", "--pan", CARD2.pan, "--rrn", rrn, "--amount", "10.00")
        assert r.code == 1 and field_of(r.out, "RESPONSE").startswith("96"), r.out
        assert "refund advice (trace 000003) kept" in r.out and "advice kept" in r.err
        st = sim.state_of(POS_TID)
        queue = st["queue"]
        assert isinstance(queue, list) and [(q["kind"], q["attempts"]) for q in queue] == [("refund", 3)]
        rec = queue[0]
        assert rec["masked_pan"] == mask_pan(CARD2.pan) and rec["fields"]["37"] == rrn
        assert not {"2", "14", "35", "64"} & set(rec["fields"]) and rec["sealed"]
        assert CARD2.pan not in (sim.state / f"{POS_TID}.json").read_text()
        assert await stack.balance(CARD2.pan) == CARD2.balance - 3000  # nothing recorded yet
        # still down: the advice goes first and nothing new is sent while it is owed
        b = await sim("balance", "--pan", CARD2.pan)
        assert b.code == 1 and "refund advice (trace 000003) is still owed" in b.err, b.err
        after = sim.state_of(POS_TID)
        assert after["stan"] == st["stan"] and after["queue"][0]["attempts"] == 6  # type: ignore[index]
    finally:
        await hsm_back(stack)
    s = await sim("settle")
    assert s.code == 0, s.err
    assert "refund advice of trace 000003 first: 00" in s.out
    assert field_of(s.out, "DEBITS (POS)") == "1 / RMB 30.00"
    assert field_of(s.out, "CREDITS (POS)") == "1 / RMB 10.00"
    assert field_of(s.out, "RECONCILIATION") == "对账平 BALANCED"
    assert await stack.balance(CARD2.pan) == CARD2.balance - 3000 + 1000
    assert sim.state_of(POS_TID)["queue"] == []


async def test_refund_approved_with_a_bad_mac_is_resent_and_credited_once(
    stack: Stack, sim: Sim, proxy: LossyProxy
) -> None:
    p = await sim("purchase", "--pan", CARD.pan, "--amount", "5000")
    rrn = field_of(p.out, "REF. NO.")
    proxy.corrupt_mti, proxy.corrupt_replies = "0230", 3  # the advice and its two immediate resends
    r = await sim("refund", "--pan", CARD.pan, "--rrn", rrn, "--amount", "20.00", port=proxy.port)
    assert proxy.corrupted == 3
    assert r.code == 1 and "MAC" in r.err and "advice kept" in r.err, r.err
    assert r.out.count("refund advice of trace 000003 (sent again)") == 2
    refund_rrn = field_of(r.out, "REF. NO.")
    # the switch did credit the card at the first one; the terminal did not count it
    assert await stack.balance(CARD.pan) == CARD.balance - 5000 + 2000
    assert sim.state_of(POS_TID)["totals"] == {
        "debit_amount": 5000,
        "debit_count": 1,
        "credit_amount": 0,
        "credit_count": 0,
    }
    # the next command (a new process's worth of state: rebuilt from the file) sends it first
    n = await sim("balance", "--pan", CARD.pan, port=proxy.port)
    assert n.code == 0, n.err
    assert "refund advice of trace 000003 first: 00" in n.out
    assert field_of(n.out, "BALANCE") == f"RMB {(CARD.balance - 3000) / 100:.2f}"  # credited once
    st = sim.state_of(POS_TID)
    journal = st["journal"]
    assert isinstance(journal, list) and [(e["kind"], e["rrn"]) for e in journal][-1] == ("refund", refund_rrn)
    s = await sim("settle", port=proxy.port)
    assert field_of(s.out, "CREDITS (POS)") == "1 / RMB 20.00"
    assert field_of(s.out, "RECONCILIATION") == "对账平 BALANCED"
    assert await stack.balance(CARD.pan) == CARD.balance - 3000


async def test_an_advice_that_cannot_be_opened_is_given_up_printed_and_the_batch_does_not_balance(
    stack: Stack, sim: Sim, proxy: LossyProxy
) -> None:
    p = await sim("purchase", "--pan", CARD.pan, "--amount", "4000")
    rrn = field_of(p.out, "REF. NO.")
    proxy.drop_replies = 3  # the switch records the refund; no answer ever reaches the terminal
    r = await sim("refund", "--pan", CARD.pan, "--rrn", rrn, "--amount", "15.00", "--timeout", "0.3", port=proxy.port)
    assert r.code == 1 and "no reply" in r.err and "advice kept" in r.err, r.err
    assert await stack.balance(CARD.pan) == CARD.balance - 4000 + 1500
    # the terminal's TMK was replaced (a new key ceremony): the sealed card data no longer opens
    other = sim.keys.with_name("other-keys.toml")
    other.write_text(sim.keys.read_text().replace(TMK, "1" * 32, 1))
    sim2 = Sim(sim.capsys, other, sim.state, sim.port)
    s = await sim2("settle")
    assert s.code == 0, s.err
    assert (
        "given up: refund advice (trace 000003) " + mask_pan(CARD.pan) + " RMB 15.00 after 3 sends"
        " (last answer: card data cannot be opened (another TMK?))"
    ) in s.out
    assert field_of(s.out, "CREDITS (HOST)") == "1 / RMB 15.00"
    assert field_of(s.out, "CREDITS (POS)") == "0 / RMB 0.00"
    assert field_of(s.out, "RECONCILIATION") == "对账不平 NOT BALANCED"  # how the operator learns of it
    given_up = sim.state_of(POS_TID)["given_up"]
    assert isinstance(given_up, list) and [(g["kind"], g["sealed"]) for g in given_up] == [("refund", "")]


def _session(stack: Stack, policy: ForwardPolicy) -> Session:
    term = Terminal(TerminalState(POS_TID, MID), bytes.fromhex(TMK), CUP)
    return Session(term, Link("127.0.0.1", stack.port("cup"), CUP), timeout_s=5.0, policy=policy)


async def test_an_advice_is_given_up_only_past_both_bounds_and_the_terminal_goes_on(stack: Stack) -> None:
    session = _session(stack, ForwardPolicy(burst=2, limit=3, min_age_s=3600))
    state = session.state
    card = Card(CARD.pan, CARD.expiry, CARD.pin)
    try:
        assert (await session.run(lambda t: t.purchase(card, 3000))).approved
        sale = state.journal[-1]
        await stack.hsm_down()
        try:
            a = await session.run(lambda t: t.refund(card, 1000, sale))
            assert a.rc == "96" and [(r.kind, r.attempts) for r in state.queue] == [("refund", 2)]
            # past the count but not the age: still owed, nothing new sent
            stan = state.stan
            with pytest.raises(SessionError, match=r"refund advice \(trace 000003\) is still owed \(4 sends"):
                await session.run(lambda t: t.balance(card))
            assert state.stan == stan and not session.given_up
            session.policy = ForwardPolicy(burst=2, limit=3, min_age_s=0)
            b = await session.run(lambda t: t.balance(card))  # given up at once; the balance goes out
            assert b.rc == "96" and state.queue == []
        finally:
            await stack.hsm_up()
        assert [(r.kind, r.stan, r.attempts, r.last, r.sealed) for r in state.given_up] == [
            ("refund", "000003", 4, "96 (MAC not verified)", "")
        ]
        assert session.given_up == state.given_up
        assert CARD.pan not in json.dumps(state.to_json())
        settled = await session.settle()  # the switch never recorded the refund: the batch balances
        assert settled.settlement is not None and settled.settlement.code == "1"
        assert await stack.balance(CARD.pan) == CARD.balance - 3000
    finally:
        await session.close()


async def test_reversal_answered_96_is_kept_and_sent_again(stack: Stack, proxy: LossyProxy) -> None:
    term = Terminal(TerminalState(POS_TID, MID), bytes.fromhex(TMK), CUP)
    session = Session(term, Link("127.0.0.1", proxy.port, CUP), timeout_s=0.5)
    card = Card(CARD.pan, CARD.expiry, CARD.pin)
    try:
        await session.prepare()
        proxy.drop_replies = 1
        lost = await session.run(lambda t: t.purchase(card, 700))
        assert lost.status == "timeout" and term.state.pending is not None
        await stack.hsm_down()
        try:
            with pytest.raises(SessionError, match=r"reversal of purchase \(trace 000002\) is still owed"):
                await session.prepare()
            assert term.state.pending is not None and term.state.pending.attempts == 3
        finally:
            await hsm_back(stack)
        answers = await session.prepare()
        assert [(a.kind, a.rc) for a in answers] == [("reversal", "00")] and term.state.queue == []
        assert await stack.balance(CARD.pan) == CARD.balance
    finally:
        await session.close()


# ------------------------------------------------------------------------------------------- pure rules


def _refund(t: Terminal) -> Request:
    sale = JournalEntry("purchase", "000002", "000001", 5000, "000000000123", "123456", "1122", pan=EX["pan"])
    return t.refund(Card(EX["pan"], "3012"), 2000, sale)


def _reply(t: Terminal, req: Request, rc: str, mac: str) -> bytes:
    msg = reply_to(decode_message(req.body, CUP))
    msg.fields.update({"39": rc, "37": "000000000124"})
    if mac == "none":
        return encode_message(msg, CUP)
    msg.fields["64"] = "0" * 16
    body = encode_message(msg, CUP)
    code = t.mac(mac_block(body, CUP))
    return replace_mac(body, code if mac == "good" else bytes(b ^ 1 for b in code))


@pytest.mark.parametrize(
    ("rc", "mac", "stays", "counted"),
    [
        ("00", "good", False, True),
        ("25", "good", False, False),  # a definitive decline: done, nothing counted
        ("96", "none", True, False),  # the switch's 96 after an HSM failure carries no MAC
        ("91", "good", True, False),
        ("A0", "none", True, False),
        ("00", "bad", True, False),
        ("00", "none", True, False),
        ("13", "bad", True, False),  # a decline whose MAC does not verify cannot be trusted either
    ],
)
def test_only_a_definitive_mac_verified_answer_ends_an_advice(rc: str, mac: str, stays: bool, counted: bool) -> None:
    t = signed_on()
    req = _refund(t)
    t.before_send(req)
    answer = t.on_reply(req, decode_message(_reply(t, req, rc, mac), CUP))
    assert answer.definitive is not stays
    assert (t.state.queue == [req.stored]) is stays
    assert (t.state.totals.credit_count, t.state.totals.credit_amount) == ((1, 2000) if counted else (0, 0))
    if stays:  # its answer is remembered for the operator
        assert req.stored is not None and req.stored.last and req.stored.attempts == 1


def test_a_queued_advice_keeps_its_card_data_sealed_and_is_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    t = signed_on()
    t.state.keys = WorkingKeys(bytes(range(16)), bytes(range(8)))  # not the SPEC's keys: this file is kept
    req = _refund(t)
    t.before_send(req)
    store = StateStore(tmp_path / "s")
    store.save(t.state)
    text = store.path("10000001").read_text()
    assert EX["pan"] not in text and EX["pan"][6:] not in text
    rec = json.loads(text)["queue"][0]
    assert rec["kind"] == "refund" and not {"2", "14", "35", "64"} & set(rec["fields"])
    back = store.load("10000001", "898520154110001")
    again = Terminal(back, t._tmk, CUP).forward(back.queue[0])
    assert again.fields == req.fields and again.body == req.body and again.resent
    assert again.card is not None and again.card.pan == EX["pan"]
    other = store.load("10000001", "898520154110001")
    with pytest.raises(ForwardError, match=r"refund advice \(trace 000001\)") as exc:
        Terminal(other, bytes(16), CUP).forward(other.queue[0])  # another TMK
    assert EX["pan"] not in str(exc.value)
    moved = store.load("10000001", "898520154110001")
    moved.queue[0].fields["11"] = "000009"  # the sealed data is bound to its terminal, batch and STAN
    with pytest.raises(ForwardError):
        Terminal(moved, t._tmk, CUP).forward(moved.queue[0])


def test_nothing_sent_owes_nothing_and_a_version_1_state_file_is_read(tmp_path: Path) -> None:
    t = signed_on()
    t.state.keys = WorkingKeys(bytes(range(16)), bytes(range(8)))
    req = _refund(t)
    t.before_send(req)
    t.on_no_reply(req, False, "cannot connect")
    assert t.state.queue == []
    t.before_send(req)
    t.on_no_reply(req, True, "no reply in time")
    assert req.stored is not None and t.state.queue == [req.stored] and req.stored.last == "no reply"
    store = StateStore(tmp_path)
    store.path("10000001").write_text(
        json.dumps(
            {
                "version": 1, "tid": "10000001", "mid": "898520154110001", "batch": "000004", "stan": 7, "keys": None,
                "pending_reversal": {"kind": "purchase", "fields": {"11": "000007", "4": "000000000100"},
                                     "reason": "98", "attempts": 1},
                "totals": {"debit_amount": 0, "debit_count": 0, "credit_amount": 0, "credit_count": 0},
                "journal": [], "history": [], "needs_signon": True,
            }
        )
    )  # fmt: skip
    old = store.load("10000001", "898520154110001")
    assert old.pending is not None and old.pending.stan == "000007" and old.queue == [old.pending]
