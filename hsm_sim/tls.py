"""Optional TLS on the simulator's host port (stdlib :mod:`ssl`), from ``[server] tls_cert / tls_key /
tls_client_ca``, as payShield offers TLS on its host port.

TLS 1.2 minimum, no compression, no renegotiation. ``tls_client_ca`` turns on mutual TLS: the host (the
switch) must present a certificate signed by that CA, so only it may talk to the HSM. The private key file
must be owner-only. Errors are :class:`~hsm_sim.config.ConfigError` naming the key, never file contents.
"""

from __future__ import annotations

import os
import ssl
import stat

from hsm_sim.config import ConfigError, ServerSection


def _must_exist(path: str, key: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(key, "file not found")


def server_context(server: ServerSection) -> ssl.SSLContext | None:
    """The server-side context, or ``None`` when TLS is off (no ``tls_cert``)."""
    if not server.tls_cert:
        return None
    _must_exist(server.tls_cert, "server.tls_cert")
    _must_exist(server.tls_key, "server.tls_key")
    if os.name == "posix" and os.stat(server.tls_key).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("server.tls_key", "private key file must be owner-only (chmod 600)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(server.tls_cert, server.tls_key)
    except (ssl.SSLError, OSError, ValueError):
        raise ConfigError("server.tls_key", "certificate and key cannot be loaded (PEM, matching pair)") from None
    if server.tls_client_ca:
        _must_exist(server.tls_client_ca, "server.tls_client_ca")
        try:
            ctx.load_verify_locations(cafile=server.tls_client_ca)
        except (ssl.SSLError, OSError, ValueError):
            raise ConfigError("server.tls_client_ca", "CA bundle cannot be loaded (PEM)") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
