"""In-memory stand-ins for the pipeline's ports (``switch.pipeline.ports``): a ledger with the SPEC money
rules and an "HSM" whose LMK is the identity. For testing the engine's rule order and concurrency without
the real services; the end-to-end suite runs on the real HSM simulator and ledger backends.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from switch.iso.fields import format_balance54, parse_settlement48
from switch.pipeline.ports import (
    CardRef,
    MerchantRef,
    Outcome,
    PinBlockError,
    Request,
    StoredReply,
    TerminalRef,
    WorkingKeys,
)
from tests.support.pos import kcv, pin_block_iso0, tdes_decrypt, tdes_encrypt


class FakeClock:
    def __init__(self, now: datetime | None = None, window: str = "23:20-00:30") -> None:
        self.tz = ZoneInfo("Asia/Shanghai")
        self._now = now
        a, b = window.split("-")
        self.window = (int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:]))

    def now(self) -> datetime:
        return self._now or datetime.now(self.tz)

    def business_date(self) -> date:
        n = self.now()
        return (n + timedelta(days=1)).date() if (n.hour, n.minute) >= (23, 20) else n.date()

    def in_settlement_window(self) -> bool:
        n = self.now()
        m = n.hour * 60 + n.minute
        a, b = self.window
        return a <= m < b if a <= b else (m >= a or m < b)


@dataclass
class FakeCard:
    pan: str
    expiry: str
    status: str
    pin: str
    balance: int
    pin_tries: int = 0
    daily_amount: int = 0
    daily_count: int = 0


@dataclass
class Txn:
    kind: str
    req: Request
    rc: str
    fields: dict[str, str]
    status: str = "ok"  # ok | voided | reversed
    refunded: int = 0


@dataclass
class FakeLedger:
    terminals: dict[str, TerminalRef] = field(default_factory=dict)
    merchants: dict[str, MerchantRef] = field(default_factory=dict)
    cards: dict[str, FakeCard] = field(default_factory=dict)
    journal: dict[tuple[str, ...], Txn] = field(default_factory=dict)
    cap: int = 500000
    daily_amount_limit: int = 1000000
    daily_count_limit: int = 50
    mac_max: int = 3
    fail: bool = False
    _rrn: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _check(self) -> None:
        if self.fail:
            raise ConnectionError("ledger down")

    async def terminal(self, tid: str, *, fresh: bool = False) -> TerminalRef | None:
        self._check()
        return self.terminals.get(tid)

    async def merchant(self, mid: str) -> MerchantRef | None:
        return self.merchants.get(mid)

    async def card(self, pan: str, *, fresh: bool = False) -> CardRef | None:
        c = self.cards.get(pan)
        return None if c is None else CardRef(pan, c.expiry, c.status, c.pin, c.pin_tries)

    async def signon(self, tid: str, keys: WorkingKeys) -> tuple[str, str]:
        t = self.terminals[tid]
        batch = f"{int(t.batch or '0') + 1:06d}"
        self.terminals[tid] = replace(t, pik_lmk=keys.pik_lmk, mak_lmk=keys.mak_lmk, batch=batch, mac_failures=0)
        return batch, self.rrn()

    def rrn(self) -> str:
        return f"{next(self._rrn):012d}"

    async def mac_failure(self, tid: str) -> int:
        t = self.terminals[tid]
        n = t.mac_failures + 1
        self.terminals[tid] = replace(t, mac_failures=n)
        return n

    async def mac_success(self, tid: str) -> None:
        self.terminals[tid] = replace(self.terminals[tid], mac_failures=0)

    async def pin_result(self, card_token: str, ok: bool, max_tries: int) -> int:
        c = self.cards[card_token]
        c.pin_tries = 0 if ok else c.pin_tries + 1
        return c.pin_tries

    async def find_reply_card(
        self, dup_key: tuple[str, ...], pan: str
    ) -> tuple[StoredReply | None, CardRef | None, bool]:
        return await self.find_reply(dup_key), await self.card(pan), True

    async def find_reply(self, dup_key: tuple[str, ...]) -> StoredReply | None:
        self._check()
        t = self.journal.get(dup_key)
        return None if t is None else StoredReply(t.req.fingerprint, t.rc, t.fields)

    async def execute(self, req: Request) -> Outcome:
        self._check()
        await asyncio.sleep(0)
        out = self._apply(req)
        fields = {"37": self.rrn(), **out.fields}
        self.journal[req.dup_key] = Txn(req.kind, req, out.rc, fields)
        return replace(out, fields=fields)

    def _find(self, pred: object) -> Txn | None:
        for t in self.journal.values():
            if pred(t):  # type: ignore[operator]
                return t
        return None

    def _apply(self, r: Request) -> Outcome:
        card = self.cards.get(r.card_token)
        bal = lambda: {"54": format_balance54(card.balance)} if card else {}  # noqa: E731
        if r.kind == "declined":
            return Outcome(r.rc, {}, r.reason)
        if r.kind == "balance":
            return Outcome("00", bal())
        if r.kind == "purchase":
            assert card
            if card.daily_amount + r.amount > self.daily_amount_limit:
                return Outcome("61", {}, "over_daily_amount")
            if card.daily_count + 1 > self.daily_count_limit:
                return Outcome("65", {}, "over_daily_count")
            if r.amount > card.balance:
                return Outcome("51", bal(), "insufficient_funds")
            card.balance -= r.amount
            card.daily_amount += r.amount
            card.daily_count += 1
            return Outcome("00", {"38": f"{next(self._rrn) % 1000000:06d}", **bal()})
        if r.kind == "topup":
            assert card
            if card.balance + r.amount > self.cap:
                return Outcome("61", {}, "over_balance_cap")
            card.balance += r.amount
            return Outcome("00", {"38": f"{next(self._rrn) % 1000000:06d}", **bal()})
        if r.kind == "pinchange":
            assert card
            card.pin = r.new_pin_offset
            if card.status == "inactive":
                card.status = "active"
            return Outcome("00", {})
        if r.kind == "void":
            o = self._find(lambda t: t.kind == "purchase" and t.rc == "00" and t.fields.get("37") == r.orig_rrn
                           and t.req.stan == r.orig_stan and t.req.batch == r.orig_batch)
            if o is None:
                return Outcome("25", {}, "original_not_found")
            if o.req.amount != r.amount:
                return Outcome("64", {}, "original_amount_mismatch")
            if o.status != "ok" or o.req.tid != r.tid or o.req.batch != r.batch or o.refunded:
                return Outcome("12", {}, "original_not_voidable")
            o.status = "voided"
            assert card
            card.balance += r.amount
            card.daily_amount -= r.amount
            card.daily_count -= 1
            return Outcome("00", {"38": o.fields["38"], **bal()})
        if r.kind == "refund":
            o = self._find(lambda t: t.kind == "purchase" and t.rc == "00" and t.fields.get("37") == r.orig_rrn)
            if o is None or o.status != "ok":
                return Outcome("25", {}, "original_not_found")
            if o.refunded + r.amount > o.req.amount:
                return Outcome("13", {}, "refund_exceeds_original")
            o.refunded += r.amount
            assert card
            card.balance += r.amount
            return Outcome("00", {})
        if r.kind == "reversal":
            o = self._find(lambda t: t.req.kind in ("purchase", "void", "topup") and t.req.tid == r.tid
                           and t.req.mid == r.mid and t.req.batch == r.batch and t.req.stan == r.orig_stan)
            if o is None or o.rc != "00" or o.status == "reversed":
                return Outcome("00", {})
            if o.req.amount != r.amount:
                return Outcome("25", {}, "reversal_amount_mismatch")
            c = self.cards[o.req.card_token]
            if o.req.kind == "purchase":
                c.balance += o.req.amount
            elif o.req.kind == "topup":
                c.balance -= o.req.amount
            else:
                c.balance -= o.req.amount
                for t in self.journal.values():
                    if t.kind == "purchase" and t.fields.get("37") == o.req.orig_rrn:
                        t.status = "ok"
            o.status = "reversed"
            return Outcome("00", {})
        if r.kind == "settlement":
            theirs = parse_settlement48(r.totals48)
            deb = [t for t in self.journal.values() if t.kind == "purchase" and t.rc == "00" and t.status == "ok"
                   and t.req.tid == r.tid and t.req.batch == r.batch]
            cred = [t for t in self.journal.values() if t.kind in ("refund", "topup") and t.rc == "00"
                    and t.status == "ok" and t.req.tid == r.tid and t.req.batch == r.batch]
            da, dc = sum(t.req.amount for t in deb), len(deb)
            ca, cc = sum(t.req.amount for t in cred), len(cred)
            code = "1" if (da, dc, ca, cc) == (theirs.debit_amount, theirs.debit_count, theirs.credit_amount,
                                               theirs.credit_count) else "2"
            g = f"{da:012d}{dc:03d}{ca:012d}{cc:03d}{code}"
            return Outcome("00", {"48": g + "0" * 30 + code})
        raise AssertionError(r.kind)


class FakeHsm:
    """Keys "under the LMK" are their clear hex; PIN offsets are the clear PINs."""

    def __init__(self) -> None:
        self.fail = False
        self.delay = 0.0

    async def _io(self) -> None:
        if self.fail:
            raise TimeoutError("hsm down")
        await asyncio.sleep(self.delay)

    async def verify_mac(self, mak_lmk: str, data: bytes, mac: bytes) -> bool:
        from tests.support.pos import mac_unionpay_ecb

        await self._io()
        return mac_unionpay_ecb(bytes.fromhex(mak_lmk), data) == mac

    async def generate_mac(self, mak_lmk: str, data: bytes) -> bytes:
        from tests.support.pos import mac_unionpay_ecb

        await self._io()
        return mac_unionpay_ecb(bytes.fromhex(mak_lmk), data)

    def _pin(self, pik_lmk: str, block: str, pan: str) -> str:
        clear = tdes_decrypt(bytes.fromhex(pik_lmk), bytes.fromhex(block))
        pan_field = bytes.fromhex("0000" + pan[-13:-1])
        pf = bytes(a ^ b for a, b in zip(clear, pan_field, strict=True)).hex().upper()
        n = int(pf[1], 16)
        if pf[0] != "0" or not 4 <= n <= 12 or not pf[2 : 2 + n].isdigit():
            raise PinBlockError("invalid PIN block")
        return pf[2 : 2 + n]

    async def verify_pin(self, pik_lmk: str, pin_block: str, pan: str, offset: str, pvk: str) -> bool:
        await self._io()
        return self._pin(pik_lmk, pin_block, pan) == offset

    async def change_pin(
        self, pik_lmk: str, pin_block: str, new_pin_block: str, pan: str, offset: str, pvk: str
    ) -> str | None:
        await self._io()
        if self._pin(pik_lmk, pin_block, pan) != offset:
            return None
        return self._pin(pik_lmk, new_pin_block, pan)

    async def working_keys(self, tmk_lmk: str, with_tdk: bool) -> WorkingKeys:
        import os

        await self._io()
        tmk = bytes.fromhex(tmk_lmk)
        pik, mak, tdk = os.urandom(16), os.urandom(8), os.urandom(16)
        return WorkingKeys(pik.hex(), tdes_encrypt(tmk, pik), kcv(pik), mak.hex(), tdes_encrypt(tmk, mak), kcv(mak),
                           tdk.hex(), tdes_encrypt(tmk, tdk), kcv(tdk))


__all__ = ["FakeClock", "FakeHsm", "FakeLedger", "pin_block_iso0"]
