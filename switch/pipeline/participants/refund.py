"""Refund advice (0220): original approved purchase within ``refund_days`` (30), matched by 37 (and 61 when
it carries the original date); cumulative refunds ≤ original amount (``13`` otherwise); not found → ``25``.
Idempotent under retransmission (the duplicate rule replays the stored answer).
"""

from __future__ import annotations

from dataclasses import replace

from switch.iso.fields import FieldFormatError, parse_field61
from switch.pipeline.context import TxnContext
from switch.pipeline.participants.post import base_request
from switch.pipeline.ports import Request


def refund_request(ctx: TxnContext) -> Request:
    assert ctx.request is not None
    f = ctx.request.fields
    try:
        f61 = parse_field61(f["61"])
    except FieldFormatError:
        f61 = None
    return replace(
        base_request(ctx, "refund"),
        orig_rrn=f.get("37", ""),
        orig_batch=f61.orig_batch if f61 else "",
        orig_stan=f61.orig_stan if f61 else "",
        orig_date=f61.orig_date if f61 else "",
    )
