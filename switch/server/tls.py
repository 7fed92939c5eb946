"""Optional TLS on the POS listeners (stdlib :mod:`ssl`), built from the ``[server] tls_*`` keys.

TLS 1.2 minimum, the interpreter's default cipher suites, no compression. ``tls_client_ca`` turns on mutual
TLS: the terminal must present a certificate signed by that CA. The private key file must be readable by its
owner only: a key that every local account can read is not a secret, so start-up refuses it.
Errors are :class:`~switch.errors.ConfigError` naming the key, never file contents.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import stat

from switch.errors import ConfigError

__all__ = ["TlsSession", "server_tls_context"]


def _check_readable(path: str, key: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(key, "file not found")


def server_tls_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext | None:
    """The server-side context, or ``None`` when TLS is off (``cert`` and ``key`` both empty)."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("server.tls_key" if cert else "server.tls_cert", "tls_cert and tls_key go together")
    _check_readable(cert, "server.tls_cert")
    _check_readable(key, "server.tls_key")
    if os.name == "posix" and os.stat(key).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("server.tls_key", "private key file must be owner-only (chmod 600)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # no compression (CRIME); no renegotiation (a client-driven CPU sink in TLS 1.2)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError):
        raise ConfigError("server.tls_key", "certificate and key cannot be loaded (PEM, matching pair)") from None
    if client_ca:
        _check_readable(client_ca, "server.tls_client_ca")
        try:
            ctx.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError, ValueError):
            raise ConfigError("server.tls_client_ca", "CA bundle cannot be loaded (PEM)") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class TlsSession:
    """Server side of one TLS connection over memory BIOs (sans-IO, like the frame decoder).

    The connection feeds it ciphertext (:meth:`receive` returns the plaintext now available) and asks it for
    the ciphertext to send (:meth:`take_output`). Doing TLS here rather than with ``loop.start_tls`` keeps the
    socket under the connection's own caps and timers from its first byte, and behaves the same on asyncio
    and uvloop (uvloop starts reading after ``connection_made`` whatever the protocol asked).
    Errors are :class:`ssl.SSLError`; callers log the exception *type* only.
    """

    __slots__ = ("_in", "_obj", "_out", "established", "peer_closed")

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        #: the handshake completed
        self.established = False
        #: the peer sent close_notify: no more plaintext will come
        self.peer_closed = False

    def receive(self, data: bytes) -> bytes:
        """Take ciphertext; return the application bytes it completed (maybe none)."""
        self._in.write(data)
        if not self.established:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.established = True
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        self._obj.write(plaintext)

    def take_output(self) -> bytes:
        """Ciphertext to write to the socket (handshake messages, records, alerts)."""
        return self._out.read()

    def close_notify(self) -> None:
        """Queue a close_notify alert (best effort: the socket closes either way)."""
        if self.established:
            with contextlib.suppress(ssl.SSLError):
                self._obj.unwrap()
