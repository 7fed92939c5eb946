"""A UnionPay-style POS terminal as a state machine, without I/O.

The :class:`Terminal` builds each request (next STAN, the open batch, PIN blocks under the PIK, MAC under the
MAK), and interprets each reply: reply MAC verified under the MAK, working keys recovered from the sign-on
reply's field 62 with the TMK and checked against their KCVs, the batch journal and settlement totals kept,
and the store-and-forward queue kept exactly as a UnionPay terminal keeps it:

- a reversal record is queued *before* a purchase, void or top-up is sent, cleared by a properly MACed
  answer, kept (reason ``98``) when no answer comes, set to ``A0`` when an approval arrives with a bad or
  missing MAC;
- a refund advice (0220) is queued *before* it is sent and stays queued until a **definitive** answer: a
  reply whose MAC verifies under our MAK and whose RC is not a "try again" (``96``, ``91``, ``A0``, ``98``).
  No reply, an approval with a bad or missing MAC, a ``96`` or ``91`` (the switch's ``96`` after an HSM
  failure carries no MAC at all) leave it queued, to be sent again with the same STAN and content (the MAC
  under the MAK of the day: the switch's duplicate check ignores field 64 and answers a retransmission
  from its record, so the card is credited once). Only a definitive approval counts in the batch totals.

The queued records are sent again, oldest first, before the next request and before settlement
(:class:`~terminal_sim.session.Session` does the I/O and applies the retry bound). An advice's card fields
(2, 14, 35) are kept sealed with AES-GCM under a key derived from the TMK (HKDF-SHA256), so the state file
never holds a PAN in clear; in memory the record keeps the request object itself.

All state lives in :class:`~terminal_sim.state.TerminalState` so it can be saved between commands.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from switch.crypto.des import decrypt_ecb, encrypt_ecb, kcv
from switch.crypto.mac import mac_unionpay_ecb
from switch.crypto.pinblock import format_iso0
from switch.iso.codec import mac_block, replace_mac
from switch.iso.fields import FieldFormatError, SettlementTotals, parse_balance54, parse_settlement48
from switch.iso.header import CupHeader
from switch.iso.message import IsoMessage, reply_mti
from switch.iso.profiles import WireProfile
from switch.iso.tpdu import Tpdu
from switch.rc import RC
from switch.telemetry.masking import mask_pan
from terminal_sim import messages as m
from terminal_sim.fastwire import EcbMac, FieldCache
from terminal_sim.state import Forward, JournalEntry, TerminalState, WorkingKeys

#: the TPDU our terminals send (destination 0003, source 0000) and the header (software 31, sub-version 310000)
DEFAULT_TPDU = Tpdu("0003", "0000")
DEFAULT_HEADER = CupHeader()
_ZERO_MAC = "0" * 16
_ZERO8 = bytes(8)
#: field 48 counts are 3 digits: a terminal whose batch holds this many debits or credits must settle first
MAX_BATCH_COUNT = 999
#: answers to a reversal or an advice that mean "try again later" rather than "done"
RETRY_RCS = frozenset({RC.MAC_ERROR, RC.SYSTEM_MALFUNCTION, RC.ISSUER_UNAVAILABLE, RC.NO_REPLY})
REVERSAL_RETRY_RCS = RETRY_RCS
#: an advice's fields that are card data: kept sealed in the queue, never in clear in the state file
SEALED_FIELDS = ("2", "14", "35", "36", "52")
_SEAL_INFO = b"terminal-sim store-and-forward v1 "
_NONCE = 12


class KeyCheckError(ValueError):
    """Field 62 of a sign-on reply did not yield keys whose KCVs match (the text names the key only)."""


class ForwardError(ValueError):
    """A queued advice cannot be rebuilt (its sealed card data does not open under this TMK)."""


@dataclass(frozen=True, slots=True)
class Card:
    """What the terminal reads from a card (and the PIN the cardholder types). ``repr`` masks it."""

    pan: str = field(repr=False)
    expiry: str = ""
    pin: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Card({mask_pan(self.pan)})"


@dataclass(slots=True)
class Request:
    """One encoded request and what the terminal needs to interpret its reply."""

    type: m.TxnType
    fields: dict[str, str]
    body: bytes
    amount: int = 0
    card: Card | None = None
    #: void / refund: the journal entry of the original
    original: JournalEntry | None = None
    #: settlement: the totals the terminal sent
    totals: SettlementTotals | None = None
    #: reversal: the queued record it clears
    reversal_of: Forward | None = None
    #: the same bytes sent again (a duplicate): its answer changes nothing the first one did not
    retransmission: bool = False
    #: advice: its store-and-forward record (queued before it is sent, until a definitive answer)
    stored: Forward | None = None
    #: a queued advice sent again by the terminal (not a new request of the mix)
    resent: bool = False

    @property
    def stan(self) -> str:
        return self.fields["11"]

    @property
    def reply_mti(self) -> str:
        return reply_mti(self.type.mti)


@dataclass(slots=True)
class Answer:
    """The terminal's reading of a reply (or of its absence).

    ``status``: ``ok`` (reply accepted), ``bad_mac`` (an approval whose MAC is wrong or missing: not
    accepted, reversed if reversible), ``bad_keys`` (sign-on keys failed their KCV check), ``timeout``
    (no reply: reversed if reversible), ``not_sent`` (nothing left the terminal).
    """

    request: Request
    status: str
    msg: IsoMessage | None = None
    latency_s: float = 0.0
    detail: str = ""
    #: reply MAC verified under our MAK (``None`` when the reply carries none)
    mac_ok: bool | None = None
    #: a reply that ends a reversal or an advice: MAC verified, RC not a "try again" (:data:`RETRY_RCS`)
    definitive: bool = False

    @property
    def kind(self) -> str:
        return self.request.type.name

    @property
    def fields(self) -> dict[str, str]:
        return self.msg.fields if self.msg is not None else {}

    @property
    def rc(self) -> str:
        """Field 39, or ``""`` when there was no reply."""
        return self.fields.get("39", "")

    @property
    def answered(self) -> bool:
        return self.msg is not None

    @property
    def approved(self) -> bool:
        return self.status == "ok" and self.rc == RC.APPROVED

    @property
    def balance(self) -> int | None:
        f54 = self.fields.get("54")
        if not f54:
            return None
        try:
            return parse_balance54(f54).amount_fen
        except FieldFormatError:
            return None

    @property
    def sign_on_required(self) -> bool:
        h = self.msg.header if self.msg is not None else None
        return h is not None and h.requires_sign_on

    @property
    def settlement(self) -> SettlementTotals | None:
        f48 = self.fields.get("48")
        if self.kind != "settle" or not f48:
            return None
        try:
            return parse_settlement48(f48)
        except FieldFormatError:
            return None


def _count_attempt(rec: Forward) -> None:
    rec.attempts += 1
    if not rec.first_sent:
        rec.first_sent = time.time()


def recover_keys(f62_hex: str, tmk: bytes) -> WorkingKeys:
    """PIK, MAK (and TDK) from a sign-on reply's field 62 under ``tmk``, each checked against its KCV."""
    raw = bytes.fromhex(f62_hex)
    if len(raw) not in (40, 60):
        raise KeyCheckError("field 62 must be 40 or 60 bytes")
    pik = decrypt_ecb(tmk, raw[0:16])
    mak = decrypt_ecb(tmk, raw[20:28])
    if kcv(pik) != raw[16:20]:
        raise KeyCheckError("PIK check value does not match")
    if raw[28:36] != _ZERO8 or kcv(mak) != raw[36:40]:
        raise KeyCheckError("MAK check value does not match")
    tdk = b""
    if len(raw) == 60:
        tdk = decrypt_ecb(tmk, raw[40:56])
        if kcv(tdk) != raw[56:60]:
            raise KeyCheckError("TDK check value does not match")
    return WorkingKeys(pik, mak, tdk)


class Terminal:
    """Builds requests and reads replies for one terminal (see the module docstring)."""

    def __init__(
        self,
        state: TerminalState,
        tmk: bytes,
        profile: WireProfile,
        *,
        tpdu: Tpdu = DEFAULT_TPDU,
        header: CupHeader = DEFAULT_HEADER,
        operator: str = "001",
        swipe: bool = True,
        wire: FieldCache | None = None,
        verify_replies: bool = True,
    ) -> None:
        self.state = state
        self._tmk = tmk
        self.profile = profile
        self.tpdu = tpdu if profile.has_tpdu else None
        self.header = header if profile.has_header else None
        self.operator = operator
        self.swipe = swipe
        self._separator = "D" if profile.name == "cup" else "="
        self._pin_blocks: dict[tuple[str, str], str] = {}
        #: shared between the terminals of a load run (same profile, TPDU and header)
        self._wire = wire if wire is not None else FieldCache(profile, self.tpdu, self.header)
        self._mac: tuple[bytes, EcbMac] | None = None
        self._aead: AESGCM | None = None
        #: False only against a bare echo server (benchmark baseline), which cannot MAC its replies
        self.verify_replies = verify_replies

    @property
    def tid(self) -> str:
        return self.state.tid

    @property
    def batch_full(self) -> bool:
        """The batch cannot take one more transaction (its settlement counts would overflow)."""
        t = self.state.totals
        return t.debit_count >= MAX_BATCH_COUNT or t.credit_count >= MAX_BATCH_COUNT

    @property
    def mid(self) -> str:
        return self.state.mid

    # -- crypto -------------------------------------------------------------------------------------
    def pin_block(self, pin: str, pan: str) -> str:
        """Format 0 PIN block under the PIK, hex (cached per card while the keys last)."""
        key = (pin, pan)
        block = self._pin_blocks.get(key)
        if block is None:
            keys = self.state.keys
            if keys is None:
                raise KeyCheckError("no working keys: sign on first")
            block = encrypt_ecb(keys.pik, format_iso0(pin, pan)).hex().upper()
            self._pin_blocks[key] = block
        return block

    def mac(self, mab: bytes) -> bytes:
        """UnionPay ECB MAC under our MAK (all zeros before the first sign-on)."""
        keys = self.state.keys
        mak = keys.mak if keys is not None else _ZERO8
        cached = self._mac
        if cached is None or cached[0] != mak:
            cached = self._mac = (mak, EcbMac(mak))
        return cached[1].mac(mab)

    def encode(self, t: m.TxnType, fields: dict[str, str], *, mak: bytes | None = None) -> bytes:
        """Encode a request; MACed types get field 64 under ``mak`` (default: our MAK)."""
        if not t.mac:
            return self._wire.encode(t.mti, fields)
        body = self._wire.encode(t.mti, {**fields, "64": _ZERO_MAC})
        mab = mac_block(body, self.profile)
        return replace_mac(body, self.mac(mab) if mak is None else mac_unionpay_ecb(mak, mab))

    def _request(self, t: m.TxnType, fields: dict[str, str], **kw: object) -> Request:
        return Request(t, fields, self.encode(t, fields), **kw)  # type: ignore[arg-type]

    def _card(self, card: Card, *, pin: bool) -> dict[str, str]:
        return m.card_fields(card.pan, card.expiry, swipe=self.swipe, pin=pin, track_separator=self._separator)

    def _financial(self, t: m.TxnType, card: Card, *, pin: bool) -> dict[str, str]:
        s = self.state
        return m.financial(t, s.next_stan(), s.tid, s.mid, s.batch, self._card(card, pin=pin))

    # -- requests -----------------------------------------------------------------------------------
    def signon(self, nmic: str = "004") -> Request:
        t = m.TYPES["signon"]
        if nmic != t.nmic:
            t = m.TxnType("signon", "0800", nmic=nmic, mac=False)
        s = self.state
        return self._request(t, m.management(t, s.next_stan(), s.tid, s.mid, s.batch, self.operator))

    def management(self, name: str) -> Request:
        """Sign-off or echo."""
        t = m.TYPES[name]
        s = self.state
        return self._request(t, m.management(t, s.next_stan(), s.tid, s.mid, s.batch))

    def balance(self, card: Card) -> Request:
        t = m.TYPES["balance"]
        f = m.with_pin(self._financial(t, card, pin=True), self.pin_block(card.pin, card.pan))
        return self._request(t, f, card=card)

    def purchase(self, card: Card, amount: int) -> Request:
        t = m.TYPES["purchase"]
        f = self._financial(t, card, pin=True)
        f["4"] = m.amount(amount)
        m.with_pin(f, self.pin_block(card.pin, card.pan))
        return self._request(t, f, card=card, amount=amount)

    def void(self, card: Card, original: JournalEntry, *, pin: bool = False, amount: int | None = None) -> Request:
        """Void ``original`` (its full amount unless ``amount`` says otherwise, which the switch refuses)."""
        t = m.TYPES["void"]
        f = self._financial(t, card, pin=pin)
        fen = original.amount if amount is None else amount
        f["4"] = m.amount(fen)
        m.original(f, original.rrn, original.auth, original.batch, original.stan)
        if pin:
            m.with_pin(f, self.pin_block(card.pin, card.pan))
        return self._request(t, f, card=card, amount=fen, original=original)

    def refund(self, card: Card, amount: int, original: JournalEntry) -> Request:
        t = m.TYPES["refund"]
        f = self._financial(t, card, pin=False)
        f["4"] = m.amount(amount)
        m.original(f, original.rrn, "", original.batch, original.stan, original.date)
        return self._request(t, f, card=card, amount=amount, original=original)

    def topup(self, card: Card, amount: int) -> Request:
        t = m.TYPES["topup"]
        f = self._financial(t, card, pin=False)
        f["4"] = m.amount(amount)
        return self._request(t, f, card=card, amount=amount)

    def pinchange(self, card: Card, new_pin: str) -> Request:
        t = m.TYPES["pinchange"]
        f = m.with_pin(self._financial(t, card, pin=True), self.pin_block(card.pin, card.pan))
        f["62"] = self.pin_block(new_pin, card.pan)
        return self._request(t, f, card=card)

    def settle(self) -> Request:
        s = self.state
        tot = s.totals
        totals = SettlementTotals.of(tot.debit_amount, tot.debit_count, tot.credit_amount, tot.credit_count)
        f = m.settlement(s.next_stan(), s.tid, s.mid, s.batch, totals, self.operator)
        return self._request(m.TYPES["settle"], f, totals=totals)

    def reversal(self) -> Request | None:
        """The oldest reversal the terminal owes (same STAN as the original), or ``None``."""
        p = self.state.pending
        return None if p is None else self.forward(p)

    def forward(self, rec: Forward) -> Request:
        """The request that sends queued ``rec`` again: its reversal (0400, the original's STAN), or the advice
        itself (same STAN and fields; MAC under the current MAK). :class:`ForwardError` when an advice's sealed
        card data cannot be opened."""
        if not rec.is_advice:
            t = m.TYPES["reversal"]
            return self._request(t, m.reversal(rec.fields, rec.reason), amount=rec.amount, reversal_of=rec)
        req = rec.request
        if req is None:  # after a restart: rebuilt from the state file
            card, card_fields = self._unseal(rec)
            fields = {**rec.fields, **card_fields}
            orig = self.state.find(rrn=fields.get("37", "")) if fields.get("37") else None
            original = orig if orig is not None and orig.kind == "purchase" else None
            req = Request(m.TYPES[rec.kind], fields, b"", rec.amount, card, original, stored=rec)
            rec.request = req
        req.body = self.encode(req.type, req.fields)
        req.resent = True
        return req

    # -- sealing an advice's card data ----------------------------------------------------------------
    def _sealer(self) -> AESGCM:
        if self._aead is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO + self.tid.encode())
            self._aead = AESGCM(hkdf.derive(self._tmk))
        return self._aead

    def _aad(self, rec: Forward) -> bytes:
        return f"{self.tid}|{rec.kind}|{rec.batch}|{rec.stan}".encode()

    def _seal(self, rec: Forward, card: Card | None, card_fields: dict[str, str]) -> str:
        pan = card.pan if card else card_fields.get("2", "")
        expiry = card.expiry if card else ""
        plain = json.dumps({"pan": pan, "expiry": expiry, "fields": card_fields}).encode()
        nonce = os.urandom(_NONCE)
        return base64.urlsafe_b64encode(nonce + self._sealer().encrypt(nonce, plain, self._aad(rec))).decode()

    def _unseal(self, rec: Forward) -> tuple[Card, dict[str, str]]:
        try:
            raw = base64.urlsafe_b64decode(rec.sealed.encode())
            plain = self._sealer().decrypt(raw[:_NONCE], raw[_NONCE:], self._aad(rec))
            d = json.loads(plain)
            return Card(str(d["pan"]), str(d["expiry"])), {str(k): str(v) for k, v in d["fields"].items()}
        except (InvalidTag, ValueError, KeyError, TypeError, AttributeError):
            raise ForwardError(f"the card data of {rec.describe()} cannot be opened with this TMK") from None

    def _advice_record(self, req: Request) -> Forward:
        f = req.fields
        kept = {k: v for k, v in f.items() if k not in SEALED_FIELDS and k != "64"}
        card = req.card
        rec = Forward(req.type.name, kept, reason="", masked_pan=mask_pan(card.pan) if card else "")
        rec.sealed = self._seal(rec, card, {k: f[k] for k in SEALED_FIELDS if k in f})
        return rec

    # -- before sending / after the reply ------------------------------------------------------------
    def before_send(self, req: Request) -> None:
        """Queue what the request will owe unless definitively answered: the reversal of a purchase, void or
        top-up; the advice itself. Count the attempt of a record sent again."""
        t = req.type
        if t.reversible:
            f = req.fields
            kept = {k: f[k] for k in (*m.REVERSAL_FIELDS, "41", "42") if k in f}
            self.state.enqueue(Forward(t.name, kept, "98"))
        elif t.advice:
            rec = req.stored
            if rec is None or all(r is not rec for r in self.state.queue):
                rec = self.state.owed(t.name, req.stan, req.fields.get("60", "")[2:8])
            if rec is None:
                rec = self.state.enqueue(self._advice_record(req))
            req.stored = rec
            rec.request = req
            _count_attempt(rec)
        elif req.reversal_of is not None:
            _count_attempt(req.reversal_of)

    def on_no_reply(self, req: Request, sent: bool, reason: str) -> Answer:
        """No reply: what is queued stays queued (a reversal with reason 98); if nothing left the terminal, the
        attempt does not count, and a request that never left owes nothing."""
        rec = req.stored if req.type.advice else req.reversal_of
        if not sent:
            if req.type.reversible:
                pending = self.state.owed(req.type.name, req.stan, req.fields.get("60", "")[2:8])
                if pending is not None:
                    self.state.forget(pending)
            elif rec is not None:
                rec.attempts -= 1
                if rec.attempts <= 0 and rec.is_advice:
                    self.state.forget(rec)
        elif rec is not None:
            rec.last = "no reply"
        return Answer(req, "timeout" if sent else "not_sent", detail=reason)

    def on_reply(self, req: Request, msg: IsoMessage, latency_s: float = 0.0) -> Answer:
        """Interpret a reply (already matched by MTI, 11 and 41) and update the terminal's state."""
        f = msg.fields
        rc = f.get("39", "")
        status, detail = "ok", ""
        mac_ok: bool | None = None
        if not self.verify_replies:
            pass
        elif req.type.mac and "64" in f:
            mac_ok = self.state.keys is not None and self.mac(msg.mac_data).hex().upper() == f["64"]
            if not mac_ok:
                detail = "reply MAC wrong"
                if rc == RC.APPROVED:
                    status = "bad_mac"
        elif req.type.mac and rc == RC.APPROVED:
            status, detail = "bad_mac", "approval without a MAC"
        trusted = mac_ok is True or not self.verify_replies or not req.type.mac
        definitive = status == "ok" and rc not in RETRY_RCS and trusted
        answer = Answer(req, status, msg, latency_s, detail, mac_ok, definitive)
        rec = req.stored if req.type.advice else req.reversal_of
        if rec is not None:
            rec.last = "bad MAC" if status == "bad_mac" else rc if trusted else f"{rc} (MAC not verified)"
        # "MAC error, sign on again": the header says so on cup; an A0 says so on any profile
        if answer.sign_on_required or rc == RC.MAC_ERROR:
            self.state.needs_signon = True
        if req.retransmission:
            if req.type.advice:
                if definitive and req.stored is not None:
                    self.state.forget(req.stored)
            elif status == "ok":
                self._clear_pending(req)
            return answer
        handler = getattr(self, f"_after_{req.type.name}", None)
        if handler is not None:
            handler(answer)
        return answer

    # per-type effects of an answer
    def _owed_reversal(self, req: Request) -> Forward | None:
        return self.state.owed(req.type.name, req.stan, req.fields.get("60", "")[2:8])

    def _clear_pending(self, req: Request) -> None:
        p = self._owed_reversal(req)
        if p is not None:
            self.state.forget(p)

    def _settle_reversible(self, a: Answer) -> bool:
        """Common part of purchase/void/top-up: True when the approval is accepted."""
        if a.status == "bad_mac":
            p = self._owed_reversal(a.request)
            if p is not None:
                p.reason = RC.MAC_ERROR.value
            return False
        self._clear_pending(a.request)
        return a.rc == RC.APPROVED

    def _journal(self, a: Answer) -> JournalEntry:
        req, f = a.request, a.fields
        card = req.card
        entry = JournalEntry(
            kind=req.type.name,
            stan=req.stan,
            batch=req.fields.get("60", "")[2:8] or self.state.batch,
            amount=req.amount,
            rrn=f.get("37", ""),
            auth=f.get("38", ""),
            date=f.get("13", ""),
            masked_pan=mask_pan(card.pan) if card else "",
            pan=card.pan if card else "",
        )
        self.state.journal.append(entry)
        return entry

    def _after_signon(self, a: Answer) -> None:
        if a.rc != RC.APPROVED or a.status != "ok":
            return
        try:
            keys = recover_keys(a.fields.get("62", ""), self._tmk)
        except (KeyCheckError, ValueError) as exc:
            a.status, a.detail = "bad_keys", str(exc) if isinstance(exc, KeyCheckError) else "field 62 unusable"
            return
        self.state.keys = keys
        self._pin_blocks.clear()
        batch = a.fields.get("60", "")[2:8]
        if len(batch) == 6 and batch.isdigit():
            self.state.open_batch(batch)
        self.state.needs_signon = False

    def _after_purchase(self, a: Answer) -> None:
        if self._settle_reversible(a):
            self._journal(a)
            t = self.state.totals
            t.debit_amount += a.request.amount
            t.debit_count += 1

    def _after_void(self, a: Answer) -> None:
        if self._settle_reversible(a):
            self._journal(a)
            orig = a.request.original
            if orig is not None and not orig.voided:
                orig.voided = True
                if orig.batch == self.state.batch:
                    t = self.state.totals
                    t.debit_amount -= orig.amount
                    t.debit_count -= 1

    def _after_topup(self, a: Answer) -> None:
        if self._settle_reversible(a):
            self._journal(a)
            t = self.state.totals
            t.credit_amount += a.request.amount
            t.credit_count += 1

    def _after_refund(self, a: Answer) -> None:
        """An advice counts once, on its definitive approval; anything not definitive leaves it queued."""
        if not a.definitive:
            return
        req = a.request
        if req.stored is not None:
            self.state.forget(req.stored)
        if a.rc != RC.APPROVED:
            return
        entry = self._journal(a)
        # an advice of a batch left behind (the terminal signed on again meanwhile) counts in that batch,
        # which the switch keeps; this terminal's totals are the open batch's
        if entry.batch == self.state.batch:
            t = self.state.totals
            t.credit_amount += req.amount
            t.credit_count += 1
        if req.original is not None:
            req.original.refunded += req.amount

    def _after_reversal(self, a: Answer) -> None:
        p = a.request.reversal_of
        if p is None or all(r is not p for r in self.state.queue):
            return
        if a.definitive:
            self.state.forget(p)

    def _after_settle(self, a: Answer) -> None:
        if a.rc == RC.APPROVED:
            # the switch closed the batch: the next sign-on opens the next one
            self.state.needs_signon = True
