"""The transaction manager: frame body in, reply body out, through the participants of the request's route.

``TransactionManager.__call__`` is the server's :class:`~switch.server.connection.Handler`:

1. ``parse``: decode the body (a :class:`CodecError` is answered RC 30 when MTI/11/41/42 could be read,
   else the connection is closed);
2. ``validate`` and the route's participants in SPEC §5 order; the first decline wins;
3. a decline decided while the request MAC is still being verified waits for it: a wrong MAC answers
   ``A0`` whatever the later rule said (SPEC §5 order; see ``keys_mac``);
4. the reply step always runs (``reply``), then every started participant's ``finish`` (reverse order);
5. one ``event=txn`` log line and the request metrics.

Exceptions from a participant become results in one place (:func:`result_of_exception`): HSM down or
timing out / HSM error → 96, ledger unavailable → 91, anything else → 96, so a decodable request is always
answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from switch.app import format_error_reply
from switch.iso.codec import CodecError, decode_message
from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Finisher, Participant, Vote
from switch.pipeline.results import Result
from switch.rc import RC
from switch.server.connection import ConnectionInfo
from switch.telemetry import logs
from switch.telemetry.masking import mask_pan

_perf = time.perf_counter


def result_of_exception(exc: BaseException, deps: Deps) -> Result:
    """The one mapping from an exception escaping a participant to its result (and so to field 39)."""
    if isinstance(exc, deps.hsm_unavailable_errors):
        return Result.HSM_UNAVAILABLE
    if isinstance(exc, deps.hsm_errors):
        return Result.HSM_ERROR
    if isinstance(exc, deps.ledger_unavailable_errors):
        return Result.LEDGER_UNAVAILABLE
    return Result.INTERNAL_ERROR


class TransactionManager:
    """Runs one request through its route's participants."""

    def __init__(
        self,
        deps: Deps,
        validate: Participant,
        routes: dict[str, Sequence[Participant]],
        unknown: Sequence[Participant],
        reply: Any,
        post: Any,
    ) -> None:
        self._post = post
        self._deps = deps
        self._validate = validate
        # (participant, has finish) resolved once: no Protocol isinstance checks per request
        self._routes = {name: tuple((p, isinstance(p, Finisher)) for p in steps) for name, steps in routes.items()}
        self._unknown = tuple((p, isinstance(p, Finisher)) for p in unknown)
        self._reply = reply
        self._metrics = deps.metrics
        self._log = logs.get_logger("switch.txn")
        self._txn_log = logs.EventLog("switch.txn")  # the per-request line: the cheap path

    async def __call__(self, body: bytes, info: ConnectionInfo) -> bytes | None:
        t0 = _perf()
        ctx = TxnContext(body, info, info.profile, t0)
        try:
            request = decode_message(body, info.profile)
        except CodecError as exc:
            error_reply = format_error_reply(body, info, exc)  # raises CloseConnection when unanswerable
            ctx.add_time("parse", _perf() - t0)
            ctx.mti = exc.partial.get("t", "")
            ctx.stan = exc.partial.get("11", "")
            ctx.tid = exc.partial.get("41", "")
            ctx.mid = exc.partial.get("42", "")
            ctx.decline(Result.FORMAT_ERROR)
            ctx.log_extra["field"] = exc.field
            self._record(ctx)
            return error_reply
        ctx.request = request
        ctx.mti = request.mti
        ctx.add_time("parse", _perf() - t0)
        started: list[Finisher] = []
        try:
            await self._run(ctx, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never unanswered: a decodable request gets a reply
            self._fail(ctx, exc)
        out: bytes | None = None
        try:
            try:
                out = await self._build_reply(ctx)
            finally:
                if ctx.durable is not None:  # nothing goes out before the ledger's commit is durable
                    out = await self._durable(ctx, out)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(ctx, exc, "reply")
            ctx.rc = RC.SYSTEM_MALFUNCTION
            out = self._reply.fallback(ctx)
        finally:
            for p in reversed(started):
                try:
                    await p.finish(ctx)
                except Exception:
                    self._log.exception("finish_error", step=type(p).__name__)
            task = ctx.mac_task
            if task is not None:
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved: it was reported through the answer already
        self._record(ctx)
        return out

    async def _run(self, ctx: TxnContext, started: list[Finisher]) -> None:
        vote = await self._step(self._validate, ctx)
        if vote is Vote.STOP:
            return
        steps = self._routes[ctx.route.name] if ctx.route is not None else self._unknown
        for p, finishes in steps:
            if finishes:
                started.append(p)  # type: ignore[arg-type]
            vote = await self._step(p, ctx)
            if vote is Vote.STOP:
                break
        if ctx.rc is None:
            ctx.decline(Result.INTERNAL_ERROR)  # a route that decided nothing is a bug; answer anyway
        await self._settle_mac(ctx)
        if ctx.dup_owner and not ctx.journaled and ctx.rc is not RC.APPROVED:
            t = _perf()
            try:
                await self._post.journal_decline(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(ctx, exc, "journal_decline")
            finally:
                ctx.add_time("ledger", _perf() - t)

    async def _step(self, p: Participant, ctx: TxnContext) -> Vote:
        t = _perf()
        try:
            return await p.prepare(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(ctx, exc, p.name)
            return Vote.STOP
        finally:
            ctx.add_time(p.bucket, _perf() - t)

    async def _settle_mac(self, ctx: TxnContext) -> None:
        """A decline decided while the MAC check was in flight: a wrong MAC wins (rule 3 before the rest)."""
        task = ctx.mac_task
        if task is None or ctx.mac_ok is not None:
            return
        try:
            ok = await task
        except Exception as exc:
            ctx.mac_ok = False
            if ctx.result not in (Result.HSM_UNAVAILABLE, Result.HSM_ERROR, Result.LEDGER_UNAVAILABLE):
                ctx.rc = None
                self._fail(ctx, exc, "keys_mac")
            return
        ctx.mac_ok = ok
        if not ok:
            # the later rule's decline is replaced; its side effects were gated on the MAC (none happened)
            ctx.rc = None
            ctx.result = None
            ctx.no_reply_mac = True
            ctx.decline(Result.MAC_WRONG)

    def _fail(self, ctx: TxnContext, exc: BaseException, step: str = "") -> None:
        result = result_of_exception(exc, self._deps)
        if result in (Result.HSM_UNAVAILABLE, Result.HSM_ERROR):
            # switch_hsm_errors_total counts failed HSM commands, in the HSM adapter (once each)
            self._log.warning(logs.HSM_ERROR, step=step, kind=type(exc).__name__, tid=ctx.tid, stan=ctx.stan)
        elif result is Result.LEDGER_UNAVAILABLE:
            self._log.warning("ledger_error", step=step, kind=type(exc).__name__, tid=ctx.tid, stan=ctx.stan)
        else:
            self._log.error("internal_error", step=step, kind=type(exc).__name__, exc_info=exc)
        if ctx.rc is None or ctx.rc is RC.APPROVED:
            ctx.rc = None
            ctx.decline(result)

    async def _durable(self, ctx: TxnContext, out: bytes | None) -> bytes | None:
        """Wait for the commit of the ledger outcome the reply was built from; if it failed, the outcome never
        took effect: answer 91 instead (a reply built from it is dropped, never written)."""
        durable, ctx.durable = ctx.durable, None
        t = _perf()
        try:
            await durable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for k in ctx.ledger_fields or ():
                ctx.reply_fields.pop(k, None)
            ctx.journaled = False
            ctx.rrn = ctx.auth_code = ""
            ctx.rc = ctx.result = None
            self._fail(ctx, exc, "ledger")
            return await self._build_reply(ctx)
        finally:
            ctx.add_time("ledger", _perf() - t)
        return out

    async def _build_reply(self, ctx: TxnContext) -> bytes | None:
        t = _perf()
        try:
            out: bytes | None = await self._reply.build(ctx)
            return out
        finally:
            ctx.add_time("reply", _perf() - t)

    def _record(self, ctx: TxnContext) -> None:
        latency = _perf() - ctx.t0
        rc = ctx.rc.value if ctx.rc is not None else "96"
        self._metrics.requests.inc(mti=ctx.mti or "?", rc=rc)
        self._metrics.latency.observe(latency)
        steps = ctx.steps
        for k, v in steps.items():
            steps[k] = round(v, 3)
        self._txn_log.txn(
            mti=ctx.mti,
            txn_type=ctx.txn_type,
            tid=ctx.tid,
            mid=ctx.mid,
            stan=ctx.stan,
            batch=ctx.batch,
            rrn=ctx.rrn,
            pan=mask_pan(ctx.pan),
            amount=ctx.amount,
            rc=rc,
            reason=ctx.result.value if ctx.result is not None else "",
            auth_code=ctx.auth_code,
            latency_ms=round(latency * 1000, 3),
            steps=steps,
            peer=ctx.info.peer,
            extra=ctx.log_extra,
        )
