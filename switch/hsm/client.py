"""Asynchronous payShield client: a small pool of pipelined connections (moov iso8583-connection's shape).

- Each connection carries many commands at once; replies are matched to requests by the message header
  (a per-connection counter of ``header_len`` digits), so they may come back in any order.
- Per-call timeout (``timeout_s``), enforced by one sweep timer per connection over the commands in send order
  (not a timer per command: on a busy switch that was a timer created and cancelled per HSM command); a command
  times out between ``timeout_s`` and ``timeout_s`` + 50 ms. A timed-out header stays reserved until its late
  reply arrives, so a late reply can never be taken for another request's; a connection that collects too many
  of them is recycled.
- Commands issued in the same event-loop iteration go out in one ``write`` (flushed by ``call_soon``): on a
  busy switch a purchase's MAC and PIN commands, and those of other requests, share one syscall (on loopback
  each send costs tens of microseconds of CPU, the HSM's receive side included).
- A dead connection is reconnected on demand with exponential backoff; while the HSM is unreachable calls fail
  at once with :class:`HsmUnavailable` rather than queueing.
- Errors: :class:`HsmUnavailable` (connect, timeout, dropped connection: RC 96), :class:`HsmError` with
  ``.code`` (any payShield error but ``01``, which the verify helpers return as ``False``).

Nothing is logged per call (hot path); connection events are logged once each.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from switch.hsm.dev import DEV_DECIMALIZATION_TABLE, DEV_PVK_LMK
from switch.hsm.errors import HsmError, HsmUnavailable
from switch.hsm.wire import FrameReader, HsmReply, Oversized, frame, parse_reply, response_code
from switch.telemetry.logs import get_logger

__all__ = [
    "KEY_TYPES",
    "Diagnostics",
    "GeneratedKey",
    "HsmClient",
    "HsmError",
    "HsmReply",
    "HsmUnavailable",
    "KeyWithCheckValue",
]

log = get_logger(__name__)

#: key type names -> payShield variant-LMK key type codes
KEY_TYPES: Final = {
    "ZMK": "000",
    "ZPK": "001",
    "TMK": "002",
    "TPK": "002",
    "PVK": "002",
    "TAK": "003",
    "ZAK": "008",
    "BDK": "009",
    "ZEK": "00A",
    "TEK": "00B",
    "DEK": "00B",
    "TDK": "00B",
    "CVK": "402",
}
#: key scheme under the LMK -> scheme of the same key exported under a TMK (SPEC §3: plain 3DES-ECB)
_EXPORT_SCHEME = {"Z": "Z", "U": "X", "T": "Y", "X": "X", "Y": "Y"}
_KEY_TEXT_LENGTH = {"U": 33, "X": 33, "T": 49, "Y": 49, "Z": 16}
_HEX_UPPER = frozenset(b"0123456789ABCDEF")
#: command name -> its code bytes, and code -> the reply's response code (filled as used)
_CODES: dict[str, bytes] = {
    c: c.encode("ascii") for c in ("A0", "A6", "A8", "BA", "BU", "CA", "DA", "DE", "DU", "JA", "M6", "M8", "NC", "PE")
}
_RESPONSE: dict[bytes, bytes] = {}
#: late replies a connection may owe before it is replaced
_MAX_ORPHANS = 256
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A0 mode 1: the key under the LMK, under the TMK (hex, no scheme prefix), and its check value (16H)."""

    key_lmk: str
    key_tmk: str
    kcv: str


@dataclass(frozen=True, slots=True)
class KeyWithCheckValue:
    key: str
    kcv: str


@dataclass(frozen=True, slots=True)
class Diagnostics:
    lmk_check_value: str
    firmware: str


def account_number(pan: str) -> str:
    """payShield's 12-digit account number: the PAN's 12 rightmost digits excluding the check digit."""
    acct = pan[-13:-1]
    if len(acct) != 12 or not acct.isdigit():
        raise ValueError("PAN too short or not numeric for an HSM account number")
    return acct


def _key_text(data: bytes, pos: int) -> tuple[str, int]:
    """Read a key (scheme-prefixed or 16H) from reply data at ``pos``."""
    lead = data[pos : pos + 1].decode("ascii", "replace")
    n = _KEY_TEXT_LENGTH.get(lead, 16)
    return data[pos : pos + n].decode("ascii"), pos + n


#: the timeout sweep runs at most this often (timeouts are this precise)
_SWEEP_S = 0.05


class _Connection(asyncio.Protocol):
    """One pipelined connection: pending futures by header."""

    def __init__(self, header_len: int, timeout_s: float = 2.0) -> None:
        self.header_len = header_len
        self.timeout_s = timeout_s
        #: (deadline, header, future) in send order = deadline order (one timeout per client)
        self._deadlines: collections.deque[tuple[float, bytes, asyncio.Future[bytes]]] = collections.deque()
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.modulus = 10 ** min(header_len, 6)
        self.next_id = 0
        #: header -> future, or None for a timed-out request whose reply has not come
        self.pending: dict[bytes, asyncio.Future[bytes] | None] = {}
        self.orphans = 0
        self.reader = FrameReader(keep=header_len + 4)
        self.transport: asyncio.Transport | None = None
        self.alive = False
        #: framed commands waiting for this iteration's flush
        self._out: list[bytes] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        self.alive = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._deadlines.clear()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if fut is not None and not fut.done():
                fut.set_exception(HsmUnavailable("HSM connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        hl = self.header_len
        for body in self.reader.feed(data):
            if isinstance(body, Oversized):
                continue
            header = body[:hl]
            if header not in self.pending:
                continue  # unsolicited or duplicate reply
            fut = self.pending.pop(header)
            if fut is None:
                self.orphans -= 1  # the late reply of a timed-out request
            elif not fut.done():
                fut.set_result(body)

    def eof_received(self) -> bool | None:
        return False

    def send(self, code: bytes, fields: bytes, loop: asyncio.AbstractEventLoop) -> tuple[bytes, asyncio.Future[bytes]]:
        pending = self.pending
        if len(pending) >= self.modulus:
            raise HsmUnavailable("too many HSM commands in flight")
        n = self.next_id
        while True:
            header = str(n).zfill(self.header_len).encode("ascii")
            n = (n + 1) % self.modulus
            if header not in pending:
                break
        self.next_id = n
        fut: asyncio.Future[bytes] = loop.create_future()
        pending[header] = fut
        out = self._out
        if not out:
            loop.call_soon(self._flush)
        out.append(frame(header + code + fields))
        self._deadlines.append((loop.time() + self.timeout_s, header, fut))
        if self._sweep_handle is None:
            self._sweep_handle = loop.call_later(self.timeout_s, self._sweep, loop)
        return header, fut

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Expire the commands whose deadline has passed and are still unanswered; re-arm for the next."""
        self._sweep_handle = None
        now = loop.time()
        deadlines = self._deadlines
        pending = self.pending
        while deadlines and deadlines[0][0] <= now:
            _deadline, header, fut = deadlines.popleft()
            if pending.get(header) is fut:
                self.expire(header)
        if deadlines and self.alive:
            self._sweep_handle = loop.call_later(max(deadlines[0][0] - now, _SWEEP_S), self._sweep, loop)

    @property
    def has_unflushed(self) -> bool:
        return bool(self._out)

    def _flush(self) -> None:
        out, self._out = self._out, []
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(out[0] if len(out) == 1 else b"".join(out))

    def expire(self, header: bytes) -> None:
        """Timeout of ``header``: keep it reserved until its reply arrives; recycle a connection owing many."""
        fut = self.pending.get(header)
        if fut is None:
            return
        self.pending[header] = None
        self.orphans += 1
        if not fut.done():
            fut.set_exception(HsmUnavailable("HSM command timed out"))
        if self.orphans > _MAX_ORPHANS and self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HsmClient:
    """payShield host-command client with a pool of pipelined connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        pool_size: int = 2,
        timeout_s: float = 2.0,
        header_len: int = 4,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        if pool_size < 1 or not 1 <= header_len <= 16:
            raise ValueError("pool_size must be >= 1 and header_len between 1 and 16")
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.header_len = header_len
        self._slots: list[_Connection | None] = [None] * pool_size
        self._connecting: list[asyncio.Future[_Connection] | None] = [None] * pool_size
        self._retry_at = [0.0] * pool_size
        self._backoff = [0.0] * pool_size
        self._rr = 0
        self._last: _Connection | None = None
        self._tasks: set[asyncio.Task[_Connection]] = set()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: TLS to the HSM (``switch.hsm.connect``): context and the name its certificate must carry
        self._tls = tls
        self._server_hostname = server_hostname

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the pool; an unreachable HSM is not fatal here (calls reconnect, with backoff)."""
        self._loop = asyncio.get_running_loop()
        self._closed = False
        results = await asyncio.gather(*(self._connect(i) for i in range(len(self._slots))), return_exceptions=True)
        if all(isinstance(r, BaseException) for r in results):
            log.warning("hsm_unreachable", host=self.host, port=self.port)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        conns = [c for c in self._slots if c is not None]
        self._slots = [None] * len(self._slots)
        for c in conns:
            c.close()
        if conns:
            await asyncio.wait([c.closed for c in conns], timeout=2.0)

    async def __aenter__(self) -> HsmClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(
        self, loop: asyncio.AbstractEventLoop, factory: Callable[[], _Connection], host: str, port: int
    ) -> Awaitable[tuple[asyncio.BaseTransport, _Connection]]:
        """One pool connection: plain TCP, or TLS with its handshake within the timeout."""
        if self._tls is None:
            return loop.create_connection(factory, host, port)
        return loop.create_connection(
            factory,
            host,
            port,
            ssl=self._tls,
            server_hostname=self._server_hostname,
            ssl_handshake_timeout=self.timeout_s,
        )

    async def _connect(self, i: int) -> _Connection:
        loop = self._loop or asyncio.get_running_loop()
        waiting = self._connecting[i]
        if waiting is not None:
            return await asyncio.shield(waiting)
        fut: asyncio.Future[_Connection] = loop.create_future()
        self._connecting[i] = fut
        try:
            try:
                _t, conn = await asyncio.wait_for(
                    self._open(loop, lambda: _Connection(self.header_len, self.timeout_s), self.host, self.port),
                    self.timeout_s,
                )
            except (OSError, TimeoutError) as exc:
                self._backoff[i] = min(max(self._backoff[i] * 2, _BACKOFF_MIN_S), _BACKOFF_MAX_S)
                self._retry_at[i] = loop.time() + self._backoff[i]
                err = HsmUnavailable(f"cannot connect to the HSM ({type(exc).__name__})")
                fut.set_exception(err)
                fut.exception()  # retrieved: waiters re-raise it
                raise err from None
            if self._closed:
                conn.close()
                raise HsmUnavailable("HSM client closed")
            if self._backoff[i]:
                log.info("hsm_reconnected", host=self.host, port=self.port, slot=i)
            self._backoff[i] = 0.0
            self._slots[i] = conn
            fut.set_result(conn)
            return conn
        finally:
            self._connecting[i] = None

    def _revive(self, i: int, loop: asyncio.AbstractEventLoop) -> None:
        """Reconnect slot ``i`` in the background when its backoff has elapsed."""
        if self._closed or self._connecting[i] is not None or loop.time() < self._retry_at[i]:
            return
        task = loop.create_task(self._connect(i))
        self._tasks.add(task)
        task.add_done_callback(self._reaped)

    def _reaped(self, task: asyncio.Task[_Connection]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # failures are reported through the calls that wait for them

    def _pick(self) -> _Connection | None:
        """A live connection without waiting, or None (then :meth:`_connection` waits for one)."""
        last = self._last
        if last is not None and last.alive and last.has_unflushed:
            return last  # join the write this iteration already started (round robin across iterations)
        n = len(self._slots)
        loop = self._loop or asyncio.get_running_loop()
        for _ in range(n):
            i = self._rr
            self._rr = (i + 1) % n
            conn = self._slots[i]
            if conn is not None and conn.alive:
                self._last = conn
                return conn
            self._revive(i, loop)
        return None

    async def _connection(self) -> _Connection:
        conn = self._pick()
        if conn is not None:
            return conn
        if self._closed:
            raise HsmUnavailable("HSM client closed")
        waiting = [f for f in self._connecting if f is not None]
        if not waiting:
            raise HsmUnavailable("HSM unreachable (reconnecting)")
        results = await asyncio.gather(*(asyncio.shield(f) for f in waiting), return_exceptions=True)
        for r in results:
            if isinstance(r, _Connection) and r.alive:
                return r
        raise HsmUnavailable("HSM unreachable")

    # -- raw command --------------------------------------------------------------------------------------
    async def call(self, command: str, fields: bytes = b"") -> HsmReply:
        """Send ``command`` with ``fields``; the reply whatever its error code. Raises :class:`HsmUnavailable`."""
        body = await self._request(command.encode("ascii"), fields)
        return parse_reply(body, self.header_len)

    async def _request(self, code: bytes, fields: bytes) -> bytes:
        """The reply body (header, response code, error code, data) of one command; its response code checked."""
        conn = self._pick()
        if conn is None:
            conn = await self._connection()
        _header, fut = conn.send(code, fields, self._loop or asyncio.get_running_loop())
        body = await fut
        hl = self.header_len
        expected = _RESPONSE.get(code)
        if expected is None:
            expected = _RESPONSE[code] = response_code(code)
        if body[hl : hl + 2] != expected or len(body) < hl + 4:
            raise HsmUnavailable(f"HSM replied {body[hl : hl + 2]!r} to {code.decode('ascii', 'replace')}")
        return body

    def _error(self, body: bytes) -> bytes:
        hl = self.header_len
        return body[hl + 2 : hl + 4]

    async def _ok(self, command: str, fields: bytes) -> bytes:
        body = await self._request(_CODES.get(command) or command.encode("ascii"), fields)
        error = self._error(body)
        if error != b"00":
            raise HsmError(command, error.decode("ascii", "replace"))
        return body[self.header_len + 4 :]

    async def _verdict(self, command: str, fields: bytes) -> bytes | None:
        """Reply data on ``00``, ``None`` on ``01`` (verification failure), :class:`HsmError` otherwise."""
        code = _CODES.get(command) or command.encode("ascii")
        return self._verdict_of(command, code, await self._request(code, fields))

    def _verdict_of(self, command: str, code: bytes, body: bytes) -> bytes | None:
        hl = self.header_len
        expected = _RESPONSE.get(code)
        if expected is None:
            expected = _RESPONSE[code] = response_code(code)
        if body[hl : hl + 2] != expected or len(body) < hl + 4:
            raise HsmUnavailable(f"HSM replied {body[hl : hl + 2]!r} to {command}")
        error = self._error(body)
        if error == b"00":
            return body[self.header_len + 4 :]
        if error == b"01":
            return None
        raise HsmError(command, error.decode("ascii", "replace"))

    # -- typed helpers: keys ------------------------------------------------------------------------------
    async def generate_key_under_tmk(self, key_type: str, scheme: str, tmk_lmk: str) -> GeneratedKey:
        """A0 mode 1: a new ``key_type`` key under the LMK (``scheme``) and under the TMK (3DES-ECB, SPEC §3)."""
        code = KEY_TYPES[key_type]
        fields = f"1{code}{scheme};1{tmk_lmk}{_EXPORT_SCHEME[scheme]}".encode("ascii")
        data = await self._ok("A0", fields)
        key_lmk, pos = _key_text(data, 0)
        key_tmk, pos = _key_text(data, pos)
        if key_tmk[:1] in ("X", "Y"):
            key_tmk = key_tmk[1:]
        return GeneratedKey(key_lmk, key_tmk, data[pos:].decode("ascii"))

    async def kcv(self, key_type: str, key_lmk: str) -> str:
        """BU: the key check value (16H) of a key under the LMK."""
        length_flag = {"U": "1", "X": "1", "T": "2", "Y": "2"}.get(key_lmk[:1], "0")
        data = await self._ok("BU", f"FF{length_flag}{key_lmk};{KEY_TYPES[key_type]}".encode("ascii"))
        return data.decode("ascii")

    async def diagnostics(self) -> Diagnostics:
        """NC: LMK check value and firmware number."""
        data = (await self._ok("NC", b"")).decode("ascii")
        return Diagnostics(data[:16], data[16:].strip())

    async def import_key(self, key_type: str, zmk_lmk: str, key_zmk: str, scheme: str = "U") -> KeyWithCheckValue:
        """A6: a key under a ZMK -> under the LMK (``scheme``), with its check value (6H)."""
        data = await self._ok("A6", f"{KEY_TYPES[key_type]}{zmk_lmk}{key_zmk}{scheme}".encode("ascii"))
        key, pos = _key_text(data, 0)
        return KeyWithCheckValue(key, data[pos:].decode("ascii"))

    async def export_key(
        self, key_type: str, zmk_lmk: str, key_lmk: str, scheme: str = "X", *, under_tmk: bool = False
    ) -> KeyWithCheckValue:
        """A8: a key under the LMK -> under a ZMK (or a TMK), with its check value (6H)."""
        flag = ";1" if under_tmk else ""
        data = await self._ok("A8", f"{KEY_TYPES[key_type]}{flag}{zmk_lmk}{key_lmk}{scheme}".encode("ascii"))
        key, pos = _key_text(data, 0)
        return KeyWithCheckValue(key, data[pos:].decode("ascii"))

    # -- typed helpers: PIN -------------------------------------------------------------------------------
    async def verify_pin_ibm(
        self,
        tpk_lmk: str,
        pvk_lmk: str,
        pin_block_hex: str,
        pan: str,
        offset: str,
        *,
        decimalization_table: str = DEV_DECIMALIZATION_TABLE,
        pin_format: str = "01",
    ) -> bool:
        """DA: IBM 3624 offset verification of a terminal PIN block (False only for payShield ``01``)."""
        acct = account_number(pan)
        fields = (
            f"{tpk_lmk}{pvk_lmk or DEV_PVK_LMK}12{pin_block_hex}{pin_format}04{acct}"
            f"{decimalization_table}{acct}{offset.ljust(12, 'F')}"
        )
        return await self._verdict("DA", fields.encode("ascii")) is not None

    async def pin_change_ibm(
        self,
        tpk_lmk: str,
        pvk_lmk: str,
        pin_block_hex: str,
        new_pin_block_hex: str,
        pan: str,
        offset: str,
        *,
        decimalization_table: str = DEV_DECIMALIZATION_TABLE,
        pin_format: str = "01",
    ) -> str | None:
        """DU: verify the current PIN and return the IBM offset of the new one (``None``: current PIN wrong)."""
        acct = account_number(pan)
        fields = (
            f"002{tpk_lmk}{pvk_lmk or DEV_PVK_LMK}12{pin_block_hex}{pin_format}04{acct}"
            f"{decimalization_table}{acct}{offset.ljust(12, 'F')}{new_pin_block_hex}"
        )
        data = await self._verdict("DU", fields.encode("ascii"))
        return None if data is None else data.decode("ascii").rstrip("F")

    async def translate_pin(
        self, tpk_lmk: str, zpk_lmk: str, pin_block_hex: str, pan: str, src_format: str = "01", dst_format: str = "01"
    ) -> str:
        """CA: a PIN block under a TPK -> under a ZPK (16H)."""
        fields = f"{tpk_lmk}{zpk_lmk}12{pin_block_hex}{src_format}{dst_format}{account_number(pan)}"
        data = (await self._ok("CA", fields.encode("ascii"))).decode("ascii")
        return data[2:18]

    async def encrypt_clear_pin(self, pin: str, pan: str) -> str:
        """BA: a clear PIN (development provisioning) -> the PIN under the LMK."""
        if not (4 <= len(pin) <= 12 and pin.isdigit()):
            raise ValueError("PIN must be 4 to 12 digits")
        data = await self._ok("BA", f"{pin.ljust(13, 'F')}{account_number(pan)}".encode("ascii"))
        return data.decode("ascii")

    async def ibm_offset(
        self, pvk_lmk: str, pin_lmk: str, pan: str, *, decimalization_table: str = DEV_DECIMALIZATION_TABLE
    ) -> str:
        """DE: the IBM 3624 offset of a PIN under the LMK (as many digits as the PIN)."""
        acct = account_number(pan)
        fields = f"{pvk_lmk or DEV_PVK_LMK}{pin_lmk}04{acct}{decimalization_table}{acct}"
        return (await self._ok("DE", fields.encode("ascii"))).decode("ascii").rstrip("F")

    async def generate_pin(self, pan: str, length: int = 6) -> str:
        """JA: a random PIN, returned under the LMK."""
        return (await self._ok("JA", f"{account_number(pan)}{length:02d}".encode("ascii"))).decode("ascii")

    async def print_pin_mailer(self, pan: str, pin_lmk: str, lines: Sequence[str], document: str = "C") -> None:
        """PE: print a PIN mailer (on the simulator: a line of its owner-only mailer file)."""
        if any(";" in s for s in lines):
            raise ValueError("PIN mailer lines cannot contain ';'")
        text = "".join(f"{s};" for s in lines)
        await self._ok("PE", f"{document}{account_number(pan)}{pin_lmk}".encode("ascii") + text.encode("utf-8"))

    # -- typed helpers: MAC -------------------------------------------------------------------------------
    async def generate_mac(self, mak_lmk: str, data: bytes) -> bytes:
        """M6, UnionPay ECB (SPEC §3): the 8 ASCII MAC characters of field 64."""
        head = f"00091003{mak_lmk}{len(data):04X}".encode("ascii")
        return await self._ok("M6", head + data)

    async def verify_mac(self, mak_lmk: str, data: bytes, mac8: bytes) -> bool:
        """M8, UnionPay ECB: ``True`` when ``mac8`` (8 ASCII hex characters) is the MAC of ``data``."""
        if len(mac8) != 8 or not all(b in _HEX_UPPER for b in mac8):
            return False  # not even the shape of a MAC: wrong, not an HSM failure
        head = f"00091003{mak_lmk}{len(data):04X}".encode("ascii")
        return await self._verdict("M8", head + data + mac8) is not None

    def verify_mac_nowait(self, mak_lmk: str, data: bytes, mac8: bytes) -> asyncio.Future[bool] | None:
        """:meth:`verify_mac` sent at once, its verdict as a future (no coroutine, no task: the switch verifies a
        MAC per request while it goes on with the next rules); ``None`` when no connection is ready (use
        :meth:`verify_mac`). Same errors as :meth:`verify_mac`, through the future."""
        loop = self._loop or asyncio.get_running_loop()
        out: asyncio.Future[bool] = loop.create_future()
        if len(mac8) != 8 or not all(b in _HEX_UPPER for b in mac8):
            out.set_result(False)
            return out
        conn = self._pick()
        if conn is None:
            return None
        head = f"00091003{mak_lmk}{len(data):04X}".encode("ascii")
        _header, raw = conn.send(b"M8", head + data + mac8, loop)

        def done(reply: asyncio.Future[bytes]) -> None:
            if out.done():
                return
            if reply.cancelled():
                out.cancel()
                return
            exc = reply.exception()
            if exc is not None:
                out.set_exception(exc)
                return
            try:
                out.set_result(self._verdict_of("M8", b"M8", reply.result()) is not None)
            except Exception as err:  # HsmUnavailable (wrong reply code), HsmError
                out.set_exception(err)

        raw.add_done_callback(done)
        return out
