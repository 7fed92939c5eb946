"""Network management: sign-on (0800, 60.3 ``003``/``004``), sign-off (0820 ``002``) and echo (0820 ``301``).

Sign-on: the HSM generates fresh working keys under the terminal's TMK (PIK and TDK double-length, MAK
single-length; generated concurrently), the ledger stores them under the LMK, resets the MAC-failure count
and opens the terminal's next batch; the reply carries field 62 (SPEC §3: 60 bytes for ``004``, the first 40
for ``003``), the new batch in 60.2, and 12, 13, 32, 37.

Sign-off and echo answer ``00`` with no effect (sign-off does not drop the working keys: a terminal that
signed off may still have a reversal to send, MACed under them).
"""

from __future__ import annotations

from switch.iso.fields import format_field60
from switch.pipeline.context import TxnContext
from switch.pipeline.deps import Deps
from switch.pipeline.participant import Vote
from switch.telemetry import logs

_ZERO8 = bytes(8)


class SignOn:
    name = "signon"
    bucket = "hsm_keys"

    def __init__(self, deps: Deps) -> None:
        self._hsm = deps.hsm
        self._ledger = deps.store
        self._log = logs.get_logger("switch.txn")

    async def prepare(self, ctx: TxnContext) -> Vote:
        term = ctx.terminal
        req = ctx.request
        assert term is not None and req is not None
        nmic = req.fields["60"][8:11]
        keys = await self._hsm.working_keys(term.tmk_lmk, nmic == "004")
        batch, rrn = await self._ledger.signon(ctx.tid, keys)
        f62 = keys.pik_tmk + keys.pik_kcv[:4] + keys.mak_tmk + _ZERO8 + keys.mak_kcv[:4]
        if nmic == "004":
            f62 += keys.tdk_tmk + keys.tdk_kcv[:4]
        rf = ctx.reply_fields
        rf["62"] = f62.hex().upper()
        rf["60"] = format_field60("00", batch, nmic)
        rf["37"] = rrn
        ctx.rrn = rrn
        ctx.batch = batch
        ctx.require_signon = False
        ctx.mak_lmk = ""
        ctx.approve()
        self._log.info(logs.SIGNON, tid=ctx.tid, mid=ctx.mid, batch=batch, nmic=nmic, peer=ctx.info.peer)
        return Vote.STOP


class NoEffect:
    """Sign-off and echo: ``00``."""

    bucket = "checks"

    def __init__(self, name: str) -> None:
        self.name = name

    async def prepare(self, ctx: TxnContext) -> Vote:
        ctx.approve()
        return Vote.STOP
