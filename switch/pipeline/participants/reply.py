"""The reply (always runs): MTI + 10, echoed fields, the steps' reply fields, 39, header, MAC.

MAC (SPEC §3): the reply of a MACed type carries field 64 computed in the HSM over the encoded reply's MAB
(encoded once with a placeholder, then patched), whenever the switch holds a MAK it trusts for the
terminal. It is left out when there is none to use: unknown terminal, no working keys, a request whose MAC
failed (``A0``), a format error. If the HSM cannot MAC the reply, the reply goes without field 64 (an
approved, committed request keeps its ``00``: the terminal rejects the unMACed reply and reverses, which
undoes it; anything else becomes ``96``).
"""

from __future__ import annotations

from typing import Any

from switch.iso.codec import ECHOED_FIELDS, CodecError, encode_message, mac_block, replace_mac, reply_to
from switch.iso.header import PROCESSING_SIGN_ON
from switch.iso.message import IsoMessage
from switch.iso.profiles import WireProfile
from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.replycodec import ReplyEncoder
from switch.pipeline.results import Result
from switch.rc import RC
from switch.telemetry import logs

_MAC_PLACEHOLDER = "0" * 16
_NO_MAC_RCS = frozenset({RC.MAC_ERROR, RC.FORMAT_ERROR, RC.UNKNOWN_TERMINAL})
#: the request already failed in the HSM: its 96 goes without a MAC (terminals check the MAC of approvals
#: only), not after a second HSM timeout and a second ``hsm_error`` line for the same failure
_HSM_FAILED = frozenset({Result.HSM_UNAVAILABLE, Result.HSM_ERROR})


class Reply:
    name = "reply"
    bucket = "reply"

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._log = logs.get_logger("switch.txn")
        self._stamp_second = -1
        self._stamp = ("", "", "")
        self._encoders: dict[str, ReplyEncoder] = {}
        self._skeletons: dict[tuple[object, ...], tuple[str, Any, Any]] = {}

    def _skeleton(self, req: IsoMessage, require_signon: bool) -> IsoMessage:
        """``reply_to(req)`` (header asking for a sign-on when ``require_signon``), its MTI, TPDU and header
        built once per distinct request MTI/TPDU/header (a handful per terminal population)."""
        key = (req.mti, req.tpdu, req.header, require_signon)
        parts = self._skeletons.get(key)
        if parts is None:
            reply = reply_to(req)  # ValueError for a response MTI: not cached
            header = reply.header
            if header is not None and require_signon:
                header = header.with_processing_requirement(PROCESSING_SIGN_ON)
            if len(self._skeletons) >= 4096:
                self._skeletons.clear()
            parts = self._skeletons[key] = (reply.mti, reply.tpdu, header)
        fields = req.fields
        return IsoMessage(parts[0], {k: fields[k] for k in ECHOED_FIELDS if k in fields}, parts[1], parts[2])

    def _encoder(self, profile: WireProfile) -> ReplyEncoder:
        enc = self._encoders.get(profile.name)
        if enc is None:
            enc = self._encoders[profile.name] = ReplyEncoder(profile)
        return enc

    def _stamps(self) -> tuple[str, str, str]:
        """Fields 12, 13 (local time/date) and 15 (business date MMDD), formatted once per second."""
        now = self._deps.clock.now()
        second = int(now.timestamp())
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = (
                now.strftime("%H%M%S"),
                now.strftime("%m%d"),
                self._deps.clock.business_date().strftime("%m%d"),
            )
        return self._stamp

    async def build(self, ctx: TxnContext) -> bytes | None:
        if ctx.reply_body is not None:
            return ctx.reply_body
        req = ctx.request
        assert req is not None
        profile = ctx.profile
        rc = ctx.rc or RC.SYSTEM_MALFUNCTION
        try:
            reply = self._skeleton(req, ctx.require_signon)
        except ValueError:
            return None  # a response MTI sent to us: nothing to answer (it is logged)
        fields = reply.fields
        if ctx.reply_fields:
            fields.update(ctx.reply_fields)
        fields["39"] = rc.value
        route = ctx.route
        if route is not None:
            adds = route.reply_adds
            if "12" in adds and "12" not in fields:
                fields["12"], fields["13"], f15 = self._stamps()
                if "15" in adds and "15" not in fields:
                    fields["15"] = f15
            elif "15" in adds and "15" not in fields:
                fields["15"] = self._stamps()[2]
            if "32" in adds:
                fields["32"] = self._deps.acquirer_id
        want_mac = (
            route is not None
            and route.mac
            and bool(ctx.mak_lmk)
            and not ctx.no_reply_mac
            and rc not in _NO_MAC_RCS
            and ctx.result not in _HSM_FAILED
        )
        try:
            encoder = self._encoder(profile)
            if not want_mac:
                fields.pop("64", None)
                return encoder.encode(reply)
            fields["64"] = _MAC_PLACEHOLDER
            body = encoder.encode(reply)
        except CodecError as exc:
            self._log.error("reply_encode_error", field=exc.field, reason=exc.reason, tid=ctx.tid)
            return self._minimal(ctx, reply)
        try:
            mac8 = await self._deps.hsm.generate_mac(ctx.mak_lmk, mac_block(body, profile))
        except Exception as exc:  # counted in switch_hsm_errors_total by the HSM adapter
            self._log.warning(logs.HSM_ERROR, step="reply_mac", kind=type(exc).__name__, tid=ctx.tid, stan=ctx.stan)
            if rc is not RC.APPROVED and not ctx.journaled:
                ctx.rc = None
                ctx.decline(Result.HSM_UNAVAILABLE)
                fields["39"] = ctx.rc.value if ctx.rc else RC.SYSTEM_MALFUNCTION.value
            fields.pop("64", None)
            return encode_message(reply, profile)
        return replace_mac(body, mac8)

    def fallback(self, ctx: TxnContext) -> bytes | None:
        """A 96 reply with only the echoed fields (after an unexpected error while building the reply)."""
        assert ctx.request is not None
        try:
            reply = reply_to(ctx.request)
        except ValueError:
            return None
        return self._minimal(ctx, reply)

    def _minimal(self, ctx: TxnContext, reply: IsoMessage) -> bytes | None:
        """Last resort when a reply field could not be encoded: echo fields + 96."""
        keep: dict[str, Any] = {
            k: v for k, v in reply.fields.items() if k in ("3", "4", "11", "25", "41", "42", "49", "60")
        }
        keep["39"] = RC.SYSTEM_MALFUNCTION.value
        reply.fields = keep
        ctx.rc = RC.SYSTEM_MALFUNCTION
        try:
            return encode_message(reply, ctx.profile)
        except CodecError:
            return None
