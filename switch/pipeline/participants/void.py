"""Void (same batch, full amount): matched by 61 (original batch + STAN) and 37 (original RRN).

The ledger decides under the card's lock: original not found → ``25``; amount differs → ``64``; found but
not an approved purchase of this terminal in the open batch, or already voided/reversed → ``12``. A void
credits the card and reverses the merchant posting and fee.
"""

from __future__ import annotations

from dataclasses import replace

from switch.iso.fields import FieldFormatError, parse_field61
from switch.pipeline.context import TxnContext
from switch.pipeline.participants.post import base_request
from switch.pipeline.ports import Request


def void_request(ctx: TxnContext) -> Request:
    assert ctx.request is not None
    f = ctx.request.fields
    try:
        f61 = parse_field61(f["61"])
    except FieldFormatError:
        f61 = None
    r = base_request(ctx, "void")
    return replace(
        r,
        orig_rrn=f.get("37", ""),
        orig_auth=f.get("38", ""),
        orig_batch=f61.orig_batch if f61 else "",
        orig_stan=f61.orig_stan if f61 else "",
    )
