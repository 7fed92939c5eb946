"""Optional TLS on the POS listeners, over real sockets, on asyncio and on uvloop (the production loop).

Certificates are generated at test time (``tests/hostile/tlscerts.py``). Covered: echo over TLS on both
profiles, mutual TLS (a terminal without a client certificate is refused), a plain-TCP client and a client
that never finishes its handshake on a TLS port (cut, counted, others unaffected), caps counted before the
handshake, configuration errors naming the key, and ``start_switch`` wiring the keys.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import pytest

from switch.app import BasicHandler, start_switch
from switch.config import SwitchConfig, load_config, with_overrides
from switch.errors import ConfigError
from switch.server.tls import server_tls_context
from switch.telemetry.metrics import Metrics
from tests.hostile.conftest import Clients, StartServer, closed_by_peer, wait_for
from tests.hostile.tlscerts import TlsFiles, make_tls_files
from tests.server.wire import echo_request, read_reply


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


def client_context(files: TlsFiles, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    if with_cert:
        ctx.load_cert_chain(str(files.client_cert), str(files.client_key))
    return ctx


@pytest.mark.parametrize("profile", ["cup", "iso87"])
async def test_echo_over_tls(start_server: StartServer, clients: Clients, tls_files: TlsFiles, profile: str) -> None:
    server = await start_server(tls=server_tls_context(str(tls_files.cert), str(tls_files.key)))
    reader, writer = await clients.open(server.address(profile), tls=client_context(tls_files))
    for i in range(3):  # a long connection, several requests
        writer.write(echo_request(f"00000{i}", profile))
        reply = await read_reply(reader, profile)
        assert reply.fields["39"] == "00" and reply.fields["11"] == f"00000{i}"
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    conn = next(iter(server.state.connections))
    assert conn.info.tls


async def test_mutual_tls_requires_a_client_certificate(
    start_server: StartServer, clients: Clients, tls_files: TlsFiles
) -> None:
    ctx = server_tls_context(str(tls_files.cert), str(tls_files.key), str(tls_files.ca))
    server = await start_server(tls=ctx)
    reader, writer = await clients.open(server.address("cup"), tls=client_context(tls_files, with_cert=True))
    writer.write(echo_request("000001"))
    assert (await read_reply(reader)).fields["39"] == "00"
    # Without a certificate: under TLS 1.3 the client learns it on its first read.
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        r2, w2 = await clients.open(server.address("cup"), tls=client_context(tls_files))
        w2.write(echo_request("000002"))
        await read_reply(r2)
    await wait_for(lambda: server.metrics.connections_closed.get(reason="tls_handshake") == 1)


async def test_plain_client_on_a_tls_port_is_cut_and_others_unaffected(
    start_server: StartServer, clients: Clients, tls_files: TlsFiles
) -> None:
    server = await start_server(tls=server_tls_context(str(tls_files.cert), str(tls_files.key)))
    good_r, good_w = await clients.open(server.address("cup"), tls=client_context(tls_files))
    bad_r, bad_w = await clients.open(server.address("cup"))
    bad_w.write(echo_request("000001"))  # cleartext ISO 8583 where a ClientHello belongs
    assert b"\x60\x00\x03" not in await closed_by_peer(bad_r)
    good_w.write(echo_request("000002"))
    assert (await read_reply(good_r)).fields["39"] == "00"
    await wait_for(lambda: server.metrics.connections_closed.get(reason="tls_handshake") == 1)


async def test_stalled_handshake_is_cut_by_the_frame_timeout(
    start_server: StartServer, clients: Clients, tls_files: TlsFiles
) -> None:
    server = await start_server(
        tls=server_tls_context(str(tls_files.cert), str(tls_files.key)), frame_timeout_s=0.3, idle_timeout_s=30
    )
    reader, _w = await clients.open(server.address("cup"))  # TCP only: never says hello
    assert await closed_by_peer(reader) == b""
    closed = server.metrics.connections_closed
    await wait_for(lambda: closed.get(reason="tls_handshake") + closed.get(reason="frame_timeout") == 1)


async def test_connection_caps_count_before_the_handshake(
    start_server: StartServer, clients: Clients, tls_files: TlsFiles
) -> None:
    server = await start_server(
        tls=server_tls_context(str(tls_files.cert), str(tls_files.key)), max_connections_per_ip=2
    )
    for _ in range(2):
        await clients.open(server.address("cup"))  # half-open: TCP up, no handshake
    await wait_for(lambda: len(server.state.connections) == 2)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await clients.open(server.address("cup"), tls=client_context(tls_files))
    assert server.metrics.connections_refused.get(reason="max_connections_per_ip") == 1


def test_tls_configuration_errors_name_the_key(tls_files: TlsFiles, tmp_path: Path) -> None:
    assert server_tls_context("", "") is None
    with pytest.raises(ConfigError, match=r"server\.tls_key"):
        server_tls_context(str(tls_files.cert), "")
    with pytest.raises(ConfigError, match=r"server\.tls_cert: file not found"):
        server_tls_context(str(tmp_path / "missing.pem"), str(tls_files.key))
    os.chmod(tls_files.key, 0o644)
    with pytest.raises(ConfigError, match="owner-only"):
        server_tls_context(str(tls_files.cert), str(tls_files.key))
    os.chmod(tls_files.key, 0o600)
    with pytest.raises(ConfigError, match=r"server\.tls_key: certificate and key cannot be loaded") as err:
        server_tls_context(str(tls_files.client_cert), str(tls_files.key))  # not a matching pair
    assert "BEGIN" not in str(err.value)
    with pytest.raises(ConfigError, match=r"server\.tls_key"):
        load_config(None, {"SWITCH_SERVER_TLS_CERT": str(tls_files.cert)})


async def test_start_switch_serves_tls_from_the_configuration(clients: Clients, tls_files: TlsFiles) -> None:
    cfg = with_overrides(
        SwitchConfig(),
        "server",
        listen={"cup": "127.0.0.1:0"},
        http="",
        tls_cert=str(tls_files.cert),
        tls_key=str(tls_files.key),
    )
    app = await start_switch(cfg, handler=BasicHandler(Metrics()))
    try:
        reader, writer = await clients.open(app.server.address("cup"), tls=client_context(tls_files))
        writer.write(echo_request("000777"))
        assert (await read_reply(reader)).fields["11"] == "000777"
    finally:
        await clients.close_all()
        await app.stop(1.0)
