"""``switch provision FILE.toml``: merchants, terminals and cards (SPEC §7), idempotent.

A second run changes nothing already there: an entry whose MID / TID / card token exists is left as it is
(and counted as ``unchanged``). A new card's opening ``balance`` is posted as a TOPUP from the program float
(journal row + postings, key ``provision|<token>``), without an SMS notice.

Clear development secrets never reach the database: a clear ``tmk`` becomes a TMK under the LMK through
the HSM key-ceremony console, a clear ``pin`` becomes an IBM 3624 offset through the HSM (``BA`` + ``DE``),
both behind :class:`ProvisionHsm`, and only for entries that are new. ``tmk_lmk`` / ``pin_offset`` are
taken as given. Error messages name the entry (``card #3``) and the key, never the PAN, PIN or key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from switch.crypto.luhn import luhn_valid
from switch.ledger.errors import LedgerError
from switch.ledger.journal import Entry, insert_entry, post
from switch.ledger.keys import FLOAT_ACCOUNT, format_rrn
from switch.ledger.store import LedgerStore
from switch.ledger.tx import Tx, open_business_date

_MID = re.compile(r"^[0-9A-Za-z]{15}$")
_TID = re.compile(r"^[0-9A-Za-z]{8}$")
_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_KEY_LMK = re.compile(r"^(U[0-9A-Fa-f]{32}|T[0-9A-Fa-f]{48}|[0-9A-Fa-f]{32})$")
_YYMM = re.compile(r"^\d{2}(0[1-9]|1[0-2])$")

_MERCHANT_KEYS = {"mid", "name", "mdr_bps", "fee_cap", "rebate_bps", "status"}
_TERMINAL_KEYS = {"tid", "mid", "kind", "tmk", "tmk_lmk", "status"}
_CARD_KEYS = {
    "pan",
    "expiry",
    "pin",
    "pin_offset",
    "status",
    "balance",
    "member_id",
    "name",
    "mobile",
    "employer_id",
    "daily_amount_limit",
    "daily_count_limit",
}


class ProvisionError(LedgerError):
    """A provisioning file that cannot be applied; names the entry and key, never card data or keys."""


@dataclass(frozen=True, slots=True)
class MerchantSpec:
    mid: str
    name: str
    mdr_bps: int
    fee_cap: int
    rebate_bps: int
    status: str = "active"


@dataclass(frozen=True, slots=True)
class TerminalSpec:
    tid: str
    mid: str
    kind: str
    tmk: str = ""  # clear (development only)
    tmk_lmk: str = ""
    status: str = "active"


@dataclass(frozen=True, slots=True)
class CardSpec:
    pan: str
    expiry: str
    status: str
    balance: int
    pin: str = ""  # clear (development only)
    pin_offset: str = ""
    member_id: str = ""
    name: str = ""
    mobile: str = ""
    employer_id: str = ""
    daily_amount_limit: int | None = None
    daily_count_limit: int | None = None

    def __repr__(self) -> str:  # never the PAN or PIN
        return f"CardSpec(pan={self.pan[:6]}******{self.pan[-4:]}, status={self.status})"


@dataclass(frozen=True, slots=True)
class ProvisioningFile:
    merchants: tuple[MerchantSpec, ...]
    terminals: tuple[TerminalSpec, ...]
    cards: tuple[CardSpec, ...]


@dataclass(slots=True)
class ProvisionReport:
    created: dict[str, int] = field(default_factory=lambda: {"merchant": 0, "terminal": 0, "card": 0})
    unchanged: dict[str, int] = field(default_factory=lambda: {"merchant": 0, "terminal": 0, "card": 0})
    loaded_fen: int = 0

    def text(self) -> str:
        parts = [f"{self.created[k]} {k}s created, {self.unchanged[k]} unchanged" for k in self.created]
        return "provision: " + "; ".join(parts) + f"; opening balances {self.loaded_fen} fen"


class ProvisionHsm(Protocol):
    """The HSM steps for clear development secrets (only entries not yet provisioned are sent)."""

    async def tmks_under_lmk(self, clear_tmks: Sequence[str]) -> list[str]: ...
    async def pin_offset(self, pin: str, pan: str) -> str: ...


# ------------------------------------------------------------------------------------------------ parsing
def load_provisioning(path: Path) -> ProvisioningFile:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ProvisionError(f"provisioning file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"provisioning file is not valid TOML: {exc}") from None
    return parse_provisioning(data)


def parse_provisioning(data: Mapping[str, Any]) -> ProvisioningFile:
    """Validate a provisioning document (SPEC §7); raises :class:`ProvisionError` naming entry and key."""
    unknown = set(data) - {"merchant", "terminal", "card"}
    if unknown:
        raise ProvisionError(f"unknown table [{sorted(unknown)[0]}] (expected [[merchant]], [[terminal]], [[card]])")
    merchants = tuple(_merchant(i, m) for i, m in enumerate(_tables(data, "merchant"), 1))
    terminals = tuple(_terminal(i, t) for i, t in enumerate(_tables(data, "terminal"), 1))
    cards = tuple(_card(i, c) for i, c in enumerate(_tables(data, "card"), 1))
    _unique("merchant", "mid", [m.mid for m in merchants])
    _unique("terminal", "tid", [t.tid for t in terminals])
    _unique("card", "pan", [c.pan for c in cards], show=False)
    return ProvisioningFile(merchants, terminals, cards)


def _tables(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items = data.get(name, [])
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise ProvisionError(f"{name}: expected an array of tables [[{name}]]")
    return items


def _unique(what: str, key: str, values: list[str], *, show: bool = True) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values, 1):
        if v in seen:
            raise ProvisionError(f"{what} #{i}: duplicate {key}" + (f" {v}" if show else ""))
        seen.add(v)


def _get(entry: Mapping[str, Any], where: str, key: str, typ: type, default: Any = ...) -> Any:
    if key not in entry:
        if default is ...:
            raise ProvisionError(f"{where}: missing {key}")
        return default
    value = entry[key]
    if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ProvisionError(f"{where}: {key} must be an integer")
    if typ is str and not isinstance(value, str):
        raise ProvisionError(f"{where}: {key} must be a string")
    return value


def _check_keys(entry: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ProvisionError(f"{where}: unknown key {extra[0]}")


def _merchant(i: int, m: Mapping[str, Any]) -> MerchantSpec:
    where = f"merchant #{i}"
    _check_keys(m, where, _MERCHANT_KEYS)
    spec = MerchantSpec(
        mid=_get(m, where, "mid", str),
        name=_get(m, where, "name", str),
        mdr_bps=_get(m, where, "mdr_bps", int, 0),
        fee_cap=_get(m, where, "fee_cap", int, 0),
        rebate_bps=_get(m, where, "rebate_bps", int, 0),
        status=_get(m, where, "status", str, "active"),
    )
    if not _MID.match(spec.mid):
        raise ProvisionError(f"{where}: mid must be 15 characters")
    if not spec.name.strip():
        raise ProvisionError(f"{where}: name must not be empty")
    if not (0 <= spec.mdr_bps <= 10000 and spec.fee_cap >= 0 and 0 <= spec.rebate_bps <= 10000):
        raise ProvisionError(f"{where}: mdr_bps / rebate_bps must be 0..10000 and fee_cap >= 0")
    if spec.status not in ("active", "suspended", "closed"):
        raise ProvisionError(f"{where}: status must be active, suspended or closed")
    return spec


def _terminal(i: int, t: Mapping[str, Any]) -> TerminalSpec:
    where = f"terminal #{i}"
    _check_keys(t, where, _TERMINAL_KEYS)
    spec = TerminalSpec(
        tid=_get(t, where, "tid", str),
        mid=_get(t, where, "mid", str),
        kind=_get(t, where, "kind", str, "pos"),
        tmk=_get(t, where, "tmk", str, ""),
        tmk_lmk=_get(t, where, "tmk_lmk", str, ""),
        status=_get(t, where, "status", str, "active"),
    )
    if not _TID.match(spec.tid):
        raise ProvisionError(f"{where}: tid must be 8 characters")
    if spec.kind not in ("pos", "service_hall"):
        raise ProvisionError(f"{where}: kind must be pos or service_hall")
    if spec.status not in ("active", "suspended", "closed"):
        raise ProvisionError(f"{where}: status must be active, suspended or closed")
    if bool(spec.tmk) == bool(spec.tmk_lmk):
        raise ProvisionError(f"{where}: give exactly one of tmk (clear, development) or tmk_lmk")
    if spec.tmk and not _HEX32.match(spec.tmk):
        raise ProvisionError(f"{where}: tmk must be 32 hex characters (double-length key)")
    if spec.tmk_lmk and not _KEY_LMK.match(spec.tmk_lmk):
        raise ProvisionError(f"{where}: tmk_lmk must be a key under the LMK (U + 32 hex)")
    return spec


def _card(i: int, c: Mapping[str, Any]) -> CardSpec:
    where = f"card #{i}"
    _check_keys(c, where, _CARD_KEYS)
    spec = CardSpec(
        pan=_get(c, where, "pan", str),
        expiry=_get(c, where, "expiry", str),
        status=_get(c, where, "status", str, "active"),
        balance=_get(c, where, "balance", int, 0),
        pin=_get(c, where, "pin", str, ""),
        pin_offset=_get(c, where, "pin_offset", str, ""),
        member_id=_get(c, where, "member_id", str, ""),
        name=_get(c, where, "name", str, ""),
        mobile=_get(c, where, "mobile", str, ""),
        employer_id=_get(c, where, "employer_id", str, ""),
        daily_amount_limit=_get(c, where, "daily_amount_limit", int, None),
        daily_count_limit=_get(c, where, "daily_count_limit", int, None),
    )
    if not (spec.pan.isdigit() and 13 <= len(spec.pan) <= 19 and luhn_valid(spec.pan)):
        raise ProvisionError(f"{where}: pan must be 13-19 digits with a valid check digit")
    if not _YYMM.match(spec.expiry):
        raise ProvisionError(f"{where}: expiry must be YYMM")
    if spec.status not in ("inactive", "active", "lost", "frozen", "closed"):
        raise ProvisionError(f"{where}: status must be inactive, active, lost, frozen or closed")
    if spec.balance < 0:
        raise ProvisionError(f"{where}: balance must not be negative")
    if bool(spec.pin) == bool(spec.pin_offset):
        raise ProvisionError(f"{where}: give exactly one of pin (clear, development) or pin_offset")
    if spec.pin and not (spec.pin.isdigit() and 4 <= len(spec.pin) <= 12):
        raise ProvisionError(f"{where}: pin must be 4-12 digits")
    if spec.pin_offset and not (spec.pin_offset.isdigit() and 4 <= len(spec.pin_offset) <= 12):
        raise ProvisionError(f"{where}: pin_offset must be 4-12 digits")
    for key in ("daily_amount_limit", "daily_count_limit"):
        value = getattr(spec, key)
        if value is not None and value <= 0:
            raise ProvisionError(f"{where}: {key} must be positive")
    return spec


# ------------------------------------------------------------------------------------------------ applying
async def _existing(tx: Tx) -> tuple[set[str], set[str], set[str]]:
    mids = {r[0] for r in await tx.fetch("SELECT mid FROM merchants")}
    tids = {r[0] for r in await tx.fetch("SELECT tid FROM terminals")}
    tokens = {r[0] for r in await tx.fetch("SELECT token FROM cards")}
    return mids, tids, tokens


async def provision(
    store: LedgerStore, spec: ProvisioningFile, *, bins: Sequence[str], hsm: ProvisionHsm | None
) -> ProvisionReport:
    """Apply ``spec`` (see module docstring). ``hsm`` may be ``None`` when the file holds no clear secrets."""
    mids, tids, tokens = await store.read(_existing, snapshot=True)
    token_of = {c.pan: store.token(c.pan) for c in spec.cards}
    known_mids = mids | {m.mid for m in spec.merchants}
    for i, t in enumerate(spec.terminals, 1):
        if t.tid not in tids and t.mid not in known_mids:
            raise ProvisionError(f"terminal #{i}: merchant {t.mid} is neither provisioned nor in the file")

    new_terminals = [t for t in spec.terminals if t.tid not in tids]
    clear = [t for t in new_terminals if t.tmk]
    tmk_lmk = {t.tid: t.tmk_lmk for t in new_terminals if t.tmk_lmk}
    if clear:
        if hsm is None:
            raise ProvisionError("clear development TMKs need the HSM key ceremony (hsm.ceremony_command)")
        converted = await hsm.tmks_under_lmk([t.tmk for t in clear])
        if len(converted) != len(clear):
            raise ProvisionError("the HSM key ceremony returned a different number of keys")
        tmk_lmk.update({t.tid: k for t, k in zip(clear, converted, strict=True)})

    new_cards = [c for c in spec.cards if token_of[c.pan] not in tokens]
    offsets: dict[str, str] = {}
    for c in new_cards:
        if c.pin_offset:
            offsets[c.pan] = c.pin_offset
        else:
            if hsm is None:
                raise ProvisionError("clear development PINs need the HSM (encrypt + IBM offset)")
            offsets[c.pan] = await hsm.pin_offset(c.pin, c.pan)

    async def apply(tx: Tx) -> ProvisionReport:
        # a fresh report per run: the writer may replay an operation after rolling its batch back
        report = ProvisionReport()
        now = store.env.clock.now()
        ts = tx.ts(now)
        for m in spec.merchants:
            if await tx.fetchval("SELECT 1 FROM merchants WHERE mid = $1", m.mid):
                report.unchanged["merchant"] += 1
                continue
            account = await _account(tx, "merchant", m.mid, None)
            await tx.execute(
                "INSERT INTO merchants (mid, name, status, mdr_bps, fee_cap, rebate_bps, account_id, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                m.mid,
                m.name,
                m.status,
                m.mdr_bps,
                m.fee_cap,
                m.rebate_bps,
                account,
                ts,
            )
            report.created["merchant"] += 1
        for t in spec.terminals:
            if await tx.fetchval("SELECT 1 FROM terminals WHERE tid = $1", t.tid):
                report.unchanged["terminal"] += 1
                continue
            await tx.execute(
                "INSERT INTO terminals (tid, mid, kind, status, tmk_lmk, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                t.tid,
                t.mid,
                t.kind,
                t.status,
                tmk_lmk[t.tid],
                ts,
            )
            report.created["terminal"] += 1
        bdate = await open_business_date(tx, store.env.clock.business_date())
        for c in spec.cards:
            token = token_of[c.pan]
            if await tx.fetchval("SELECT 1 FROM cards WHERE token = $1", token):
                report.unchanged["card"] += 1
                continue
            account = await _account(tx, "card", token, 0)
            sequence = await _note_sequence(tx, c.pan, bins)
            await tx.execute(
                "INSERT INTO cards (token, first6, last4, sequence, expiry, status, pin_offset, member_id, name, "
                "mobile, employer_id, account_id, limit_daily_amount, limit_daily_count, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)",
                token,
                c.pan[:6],
                c.pan[-4:],
                sequence,
                c.expiry,
                c.status,
                offsets[c.pan],
                c.member_id,
                c.name,
                c.mobile,
                c.employer_id,
                account,
                c.daily_amount_limit,
                c.daily_count_limit,
                ts,
            )
            if c.balance > 0:
                rrn = format_rrn(await tx.next_rrn())
                jid = await insert_entry(
                    tx,
                    Entry(
                        idem_key=f"provision|{token}",
                        kind="topup",
                        source="provision",
                        rc="00",
                        business_date=bdate,
                        created_at=ts,
                        rrn=rrn,
                        card_token=token,
                        amount=c.balance,
                        detail="opening balance",
                    ),
                )
                await post(tx, jid, [(account, c.balance), (FLOAT_ACCOUNT, -c.balance)])
                await tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", c.balance, account)
                report.loaded_fen += c.balance
            report.created["card"] += 1
        return report

    return await store.write(apply)


async def _account(tx: Tx, kind: str, ref: str, balance: int | None) -> int:
    existing = await tx.fetchval("SELECT id FROM accounts WHERE kind = $1 AND ref = $2", kind, ref)
    if existing is not None:
        return int(existing)
    return int(
        await tx.fetchval(
            "INSERT INTO accounts (kind, ref, balance) VALUES ($1, $2, $3) RETURNING id", kind, ref, balance
        )
    )


async def _note_sequence(tx: Tx, pan: str, bins: Sequence[str]) -> int | None:
    """A program card's sequence number (PAN = BIN + sequence + check digit); issuance continues after it."""
    for b in bins:
        if pan.startswith(b) and len(pan) > len(b) + 1:
            seq = int(pan[len(b) : -1])
            name = f"card_seq|{b}"
            current = await tx.fetchval("SELECT value FROM counters WHERE name = $1", name)
            if current is None:
                await tx.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", name, seq)
            elif int(current) < seq:
                await tx.execute("UPDATE counters SET value = $1 WHERE name = $2", seq, name)
            return seq
    return None
