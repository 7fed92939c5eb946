"""The HSM client as configured (``[hsm]``): address, pool, timeout, header length and optional TLS.

``hsm_client(cfg.hsm)`` is what the switch, provisioning and card issuance use. TLS (stdlib :mod:`ssl`) is on
when ``tls_ca`` is set: the HSM's certificate must chain to that CA and carry ``tls_server_name`` (default:
the host of ``address``); ``tls_cert``/``tls_key`` add a client certificate for an HSM that requires mutual
TLS. TLS 1.2 minimum. Errors are :class:`~switch.errors.ConfigError` naming the key, never file contents.
"""

from __future__ import annotations

import os
import ssl
import stat

from switch.config import HsmConfig, parse_hostport
from switch.errors import ConfigError
from switch.hsm.client import HsmClient


def _must_exist(path: str, key: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(key, "file not found")


def client_tls_context(cfg: HsmConfig) -> ssl.SSLContext | None:
    """The client-side context, or ``None`` for plain TCP (no ``tls_ca``)."""
    if not cfg.tls_ca:
        return None
    _must_exist(cfg.tls_ca, "hsm.tls_ca")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.tls_ca)
    except (ssl.SSLError, OSError, ValueError):
        raise ConfigError("hsm.tls_ca", "CA bundle cannot be loaded (PEM)") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    if cfg.tls_cert:
        _must_exist(cfg.tls_cert, "hsm.tls_cert")
        _must_exist(cfg.tls_key, "hsm.tls_key")
        if os.name == "posix" and os.stat(cfg.tls_key).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError("hsm.tls_key", "private key file must be owner-only (chmod 600)")
        try:
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        except (ssl.SSLError, OSError, ValueError):
            raise ConfigError("hsm.tls_key", "certificate and key cannot be loaded (PEM, matching pair)") from None
    return ctx


def hsm_client(cfg: HsmConfig, *, pool_size: int | None = None) -> HsmClient:
    """A client for the configured HSM (not started)."""
    host, port = parse_hostport(cfg.address, "hsm.address")
    ctx = client_tls_context(cfg)
    return HsmClient(
        host,
        port,
        pool_size=pool_size or cfg.pool_size,
        timeout_s=cfg.timeout_ms / 1000.0,
        header_len=cfg.header_len,
        tls=ctx,
        server_hostname=(cfg.tls_server_name or host) if ctx is not None else None,
    )
