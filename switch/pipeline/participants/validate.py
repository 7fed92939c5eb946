"""Rule 1: mandatory fields and formats of the request's type (missing or bad → ``30``).

Also identifies the route (the *answer* for an unknown type, 40/12, is given later by ``type``, after the
terminal and MAC rules, in SPEC order) and fills the context's normalized request fields.
"""

from __future__ import annotations

import hashlib

from switch.iso.fields import FieldFormatError, parse_field60, parse_track2
from switch.pipeline.context import TxnContext
from switch.pipeline.participant import Vote
from switch.pipeline.results import Result
from switch.pipeline.routes import find_route

_BASE = ("11", "41", "42", "60")


def fingerprint(fields: dict[str, str]) -> str:
    """Digest of a request's business content (every field but the MAC): equal for a retransmission.

    BLAKE2b-128 over ``k=value\x1f`` for each field in numeric order, hashed in one update (the same digest
    as one update per piece: stored fingerprints stay comparable)."""
    text = "".join([f"{k}={fields[k]}\x1f" for k in sorted(fields, key=int) if k != "64"])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Validate:
    name = "validate"
    bucket = "parse"

    async def prepare(self, ctx: TxnContext) -> Vote:
        req = ctx.request
        assert req is not None
        fields = req.fields
        ctx.stan = fields.get("11", "")
        ctx.tid = fields.get("41", "")
        ctx.mid = fields.get("42", "")
        route, why = find_route(req.mti, fields)
        ctx.route = route
        if route is None:
            ctx.log_extra["type_result"] = why
        else:
            ctx.txn_type = route.name
        mandatory = route.mandatory if route is not None else _BASE
        for k in mandatory:
            if not fields.get(k):
                return self._bad(ctx, Result.MISSING_FIELD, k)
        if route is not None:
            for group in route.any_of:
                if not any(fields.get(k) for k in group):
                    return self._bad(ctx, Result.MISSING_FIELD, "/".join(group))
        if len(ctx.stan) != 6 or len(ctx.tid) != 8 or len(ctx.mid) != 15:
            return self._bad(ctx, Result.BAD_FIELD, "11/41/42")
        f60 = fields.get("60")
        if f60:
            try:
                ctx.batch = parse_field60(f60).batch
            except FieldFormatError:
                return self._bad(ctx, Result.BAD_FIELD, "60")
        pan = fields.get("2", "")
        track = fields.get("35")
        if track:
            try:
                t2 = parse_track2(track)
            except FieldFormatError:
                return self._bad(ctx, Result.BAD_FIELD, "35")
            if pan and pan != t2.pan:
                return self._bad(ctx, Result.BAD_FIELD, "2/35")
            pan = t2.pan
            ctx.expiry = t2.expiry_yymm
        if pan:
            if not 12 <= len(pan) <= 19:
                return self._bad(ctx, Result.BAD_FIELD, "2")
            ctx.pan = pan
        exp = fields.get("14")
        if exp:
            if len(exp) != 4 or not "01" <= exp[2:] <= "12":
                return self._bad(ctx, Result.BAD_FIELD, "14")
            ctx.expiry = exp
        amount = fields.get("4")
        if amount:
            ctx.amount = int(amount)  # the codec checked the digits
        if fields.get("49", "156") != "156" and route is not None and route.mac:
            return self._bad(ctx, Result.BAD_FIELD, "49")
        if route is not None and route.dedupe:
            ctx.fingerprint = fingerprint(fields)
        return Vote.CONTINUE

    @staticmethod
    def _bad(ctx: TxnContext, result: Result, field: str) -> Vote:
        ctx.decline(result)
        ctx.log_extra["field"] = field
        ctx.no_reply_mac = True
        return Vote.STOP
