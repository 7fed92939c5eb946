"""``switch cards issue|show|lost|freeze|close|unlock-pin`` (SPEC §7). Output masks the PAN."""

from __future__ import annotations

import argparse
from pathlib import Path

from switch.backoffice.cards import issue_cards, show_card_text
from switch.backoffice.oplog import get_logger
from switch.backoffice.ports import BackofficeStore
from switch.backoffice.runtime import (
    add_progress_flag,
    default_out,
    operator_name,
    system_now,
    token_from_arg,
    with_store,
)
from switch.cli import config_from_args
from switch.errors import HandledError

log = get_logger(__name__)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cards", help="card issuance and card operations")
    s = p.add_subparsers(dest="cards_command", metavar="ACTION")
    s.required = True
    issue = s.add_parser("issue", parents=[common], help="issue named cards for union members (status INACTIVE)")
    issue.add_argument("members", type=Path, metavar="MEMBERS.csv", help="member_id,name,mobile,employer_id")
    issue.add_argument(
        "--out", type=Path, metavar="CARDS.csv", help="per-line issuance report (default: MEMBERS.cards.csv)"
    )
    add_progress_flag(issue)
    issue.set_defaults(func=run_issue)
    show = s.add_parser("show", parents=[common], help="show a card (PAN masked)")
    show.add_argument("card", metavar="PAN|TOKEN")
    show.set_defaults(func=run_show)
    helps = {
        "lost": "report the card lost (RC 41 from now on)",
        "freeze": "freeze the card (RC 62)",
        "close": "close the card for good (RC 62)",
        "unlock-pin": "reset the PIN try counter of a PIN-locked card",
    }
    for action, text in helps.items():
        a = s.add_parser(action, parents=[common], help=text)
        a.add_argument("card", metavar="PAN|TOKEN")
        a.add_argument("--operator", metavar="NAME", help="operator recorded in the journal (default: $USER)")
        a.set_defaults(func=run_action, action=action)


def run_issue(args: argparse.Namespace) -> int:
    from switch.backoffice.hsm_issuer import HsmIssuer

    cfg = config_from_args(args)
    out = args.out or default_out(args.members, "cards")

    async def go(store: BackofficeStore) -> str:
        async with HsmIssuer.from_config(cfg) as hsm:
            summary = await issue_cards(
                store,
                hsm,
                members_path=args.members,
                out_path=out,
                bin_=cfg.program.bins[0],
                token_key=cfg.security.pan_token_key,
                now=system_now,
                progress=not args.no_progress,
            )
        return summary.text()

    print(with_store(cfg, go))
    print(f"report: {out} (PIN mailers printed by the HSM)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    token = token_from_arg(args.card, cfg)
    card = with_store(cfg, lambda store: store.card_by_token(token))
    if card is None:
        raise HandledError("unknown card")
    print(show_card_text(card), end="")
    return 0


def run_action(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    token = token_from_arg(args.card, cfg)

    async def go(store: BackofficeStore) -> tuple[str, str, str]:
        card = await store.card_by_token(token)
        if card is None:
            raise HandledError("unknown card")
        operator = operator_name(args)
        old, new = await store.card_action(token, args.action, operator, system_now())
        log.info("card_action", card=card.masked_pan, action=args.action, old=old, new=new, operator=operator)
        return card.masked_pan, old, new

    masked, old, new = with_store(cfg, go)
    if args.action == "unlock-pin":
        print(f"card {masked}: PIN tries reset; status {new}")
    else:
        print(f"card {masked}: {old} -> {new}")
    return 0
