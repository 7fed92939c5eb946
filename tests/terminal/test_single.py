"""Single transactions from the command line against a real switch over TCP: receipts, the state file, and
the terminal's own money-safety duties (reversal before the next request, reply MAC checked)."""

from __future__ import annotations

import os
import stat

from tests.support.stack import CARD, CARD2, HALL_TID, INACTIVE, LOST, POS_TID, Stack
from tests.terminal.conftest import LossyProxy, Sim, field_of


async def test_purchase_prints_a_receipt_with_masked_pan_rrn_auth_rc_and_balance(stack: Stack, sim: Sim) -> None:
    r = await sim("purchase", "--tid", POS_TID, "--pan", CARD.pan, "--amount", "100.00")
    assert r.code == 0, r.err
    assert "sign-on first: 00" in r.out  # never signed on: the terminal signs on by itself
    assert field_of(r.out, "CARD NO.") == CARD.pan[:6] + "******" + CARD.pan[-4:]
    assert field_of(r.out, "AMOUNT") == "RMB 100.00"
    assert field_of(r.out, "BALANCE") == f"RMB {(CARD.balance - 10000) / 100:.2f}"
    assert field_of(r.out, "RESPONSE") == "00 交易成功 Approved"
    assert len(field_of(r.out, "REF. NO.")) == 12 and len(field_of(r.out, "AUTH NO.")) == 6
    assert field_of(r.out, "MERCHANT") == "羊城西饼"
    assert await stack.balance(CARD.pan) == CARD.balance - 10000


async def test_state_file_is_owner_only_and_holds_keys_batch_stan_but_no_card_data(sim: Sim) -> None:
    assert (await sim("signon", "--tid", POS_TID)).code == 0
    r = await sim("purchase", "--tid", POS_TID, "--pan", CARD.pan, "--amount", "1500")
    assert r.code == 0
    path = sim.state / f"{POS_TID}.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sim.state).st_mode) == 0o700
    text = path.read_text()
    assert CARD.pan not in text and CARD.pin not in text
    st = sim.state_of(POS_TID)
    assert st["stan"] == 2 and st["queue"] == [] and st["version"] == 2
    assert isinstance(st["keys"], dict) and len(str(st["keys"]["mak"])) == 16
    assert st["totals"] == {"debit_amount": 1500, "debit_count": 1, "credit_amount": 0, "credit_count": 0}
    # the next command goes on from the saved state: next STAN, same batch, no new sign-on
    r = await sim("balance", "--tid", POS_TID, "--pan", CARD.pan)
    assert r.code == 0 and "sign-on" not in r.out
    assert field_of(r.out, "TRACE NO.") == "000003"
    assert field_of(r.out, "BATCH NO.") == st["batch"]


async def test_void_of_the_last_purchase_restores_the_balance(stack: Stack, sim: Sim) -> None:
    assert (await sim("purchase", "--pan", CARD.pan, "--amount", "2000")).code == 0
    r = await sim("void", "--pan", CARD.pan)
    assert r.code == 0 and field_of(r.out, "RESPONSE").startswith("00")
    assert field_of(r.out, "AMOUNT") == "RMB -20.00"
    assert await stack.balance(CARD.pan) == CARD.balance
    # voided: nothing left to void
    again = await sim("void", "--pan", CARD.pan)
    assert again.code == 2 and "no purchase to void" in again.err


async def test_refund_by_rrn_credits_the_card_and_settlement_balances(stack: Stack, sim: Sim) -> None:
    p = await sim("purchase", "--pan", CARD2.pan, "--amount", "3000")
    rrn = field_of(p.out, "REF. NO.")
    r = await sim("refund", "--pan", CARD2.pan, "--rrn", rrn, "--amount", "10.00")
    assert r.code == 0 and field_of(r.out, "RESPONSE").startswith("00"), r.out
    assert await stack.balance(CARD2.pan) == CARD2.balance - 3000 + 1000
    s = await sim("settle")
    assert s.code == 0
    assert field_of(s.out, "DEBITS (POS)") == "1 / RMB 30.00"
    assert field_of(s.out, "CREDITS (POS)") == "1 / RMB 10.00"
    assert field_of(s.out, "RECONCILIATION") == "对账平 BALANCED"
    # after settlement the terminal signs on again into the next batch
    batch = sim.state_of(POS_TID)["batch"]
    n = await sim("balance", "--pan", CARD2.pan)
    assert "sign-on first: 00" in n.out and int(field_of(n.out, "BATCH NO.")) > int(str(batch))


async def test_topup_goes_to_the_service_hall_terminal_by_default(stack: Stack, sim: Sim) -> None:
    r = await sim("topup", "--pan", CARD.pan, "--amount", "5000")
    assert r.code == 0 and field_of(r.out, "TID") == HALL_TID
    assert await stack.balance(CARD.pan) == CARD.balance + 5000
    refused = await sim("topup", "--tid", POS_TID, "--pan", CARD.pan, "--amount", "5000")
    assert refused.code == 0 and field_of(refused.out, "RESPONSE").startswith("58 ")


async def test_declines_print_their_meaning_and_expect_turns_them_into_exit_1(sim: Sim) -> None:
    r = await sim("purchase", "--pan", CARD.pan, "--pin", "000000", "--amount", "100")
    assert r.code == 0 and field_of(r.out, "RESPONSE") == "55 密码错 Incorrect PIN"
    r = await sim("balance", "--pan", LOST.pan, "--expect", "00")
    assert r.code == 1 and "expected 00" in r.err and "41" in r.err
    assert len(r.err.strip().splitlines()) == 1


async def test_pinchange_activates_and_the_new_pin_works(stack: Stack, sim: Sim) -> None:
    r = await sim("pinchange", "--pan", INACTIVE.pan, "--new-pin", "246810")
    assert r.code == 0 and field_of(r.out, "RESPONSE").startswith("00"), r.out
    assert (await sim("balance", "--pan", INACTIVE.pan, "--pin", "246810", "--expect", "00")).code == 0


async def test_iso87_profile_and_manual_entry(stack: Stack, sim: Sim) -> None:
    r = await sim(
        "purchase", "--pan", CARD.pan, "--amount", "700", "--manual", port=stack.port("iso87"), profile="iso87"
    )
    assert r.code == 0 and field_of(r.out, "RESPONSE").startswith("00"), r.out
    assert await stack.balance(CARD.pan) == CARD.balance - 700


async def test_lost_reply_leaves_a_reversal_that_goes_first_next_time(
    stack: Stack, sim: Sim, proxy: LossyProxy
) -> None:
    assert (await sim("signon")).code == 0
    proxy.drop_replies = 1
    r = await sim("purchase", "--pan", CARD.pan, "--amount", "4000", "--timeout", "0.5", port=proxy.port)
    assert r.code == 1 and "no reply" in r.err and "reversal pending" in r.err
    assert await stack.balance(CARD.pan) == CARD.balance - 4000  # the switch did debit it
    st = sim.state_of(POS_TID)
    queue = st["queue"]
    assert isinstance(queue, list) and len(queue) == 1
    pending = queue[0]
    assert pending["kind"] == "purchase" and pending["reason"] == "98" and pending["fields"]["4"] == "000000004000"
    assert CARD.pan not in (sim.state / f"{POS_TID}.json").read_text()
    n = await sim("balance", "--pan", CARD.pan)
    assert n.code == 0
    assert "reversal of trace 000002 first: 00" in n.out
    assert await stack.balance(CARD.pan) == CARD.balance
    assert field_of(n.out, "BALANCE") == f"RMB {CARD.balance / 100:.2f}"
    assert sim.state_of(POS_TID)["queue"] == []


async def test_approval_with_a_bad_reply_mac_is_not_accepted_and_is_reversed(
    stack: Stack, sim: Sim, proxy: LossyProxy
) -> None:
    assert (await sim("signon")).code == 0
    proxy.corrupt_replies = 1
    r = await sim("purchase", "--pan", CARD.pan, "--amount", "2500", port=proxy.port)
    assert r.code == 1 and "MAC" in r.err
    queue = sim.state_of(POS_TID)["queue"]
    assert isinstance(queue, list) and [(q["kind"], q["reason"]) for q in queue] == [("purchase", "A0")]
    assert sim.state_of(POS_TID)["totals"] == {
        "debit_amount": 0,
        "debit_count": 0,
        "credit_amount": 0,
        "credit_count": 0,
    }
    s = await sim("settle")
    assert "reversal of trace 000002 first: 00" in s.out
    assert field_of(s.out, "RECONCILIATION") == "对账平 BALANCED"
    assert await stack.balance(CARD.pan) == CARD.balance


async def test_switch_unreachable_is_one_line_exit_1_and_nothing_owed(sim: Sim, proxy: LossyProxy) -> None:
    assert (await sim("signon")).code == 0
    port = proxy.port
    await proxy.stop()
    r = await sim("purchase", "--pan", CARD.pan, "--amount", "100", port=port)
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1 and "cannot connect" in r.err
    assert sim.state_of(POS_TID)["queue"] == []  # nothing left the terminal: nothing to reverse


async def test_usage_errors_exit_2(sim: Sim) -> None:
    assert (await sim("purchase", "--pan", CARD.pan)).code == 2
    assert (await sim("purchase", "--pan", CARD.pan, "--amount", "1,00")).code == 2
    r = await sim("purchase", "--amount", "100", "--pan", "12ab")
    assert r.code == 2 and r.err.startswith("terminal-sim: --pan")
