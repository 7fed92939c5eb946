"""Optional TLS on the HSM link (stdlib ``ssl``; docs/SECURITY.md): the simulator's ``[server] tls_cert /
tls_key / tls_client_ca`` and the switch's ``[hsm] tls_ca / tls_cert / tls_key / tls_server_name``.

Mutual TLS works end to end (``switch serve`` as a process approves a purchase whose PIN and MACs went over
TLS); the link refuses a host without a client certificate, a plain-TCP host, an HSM certificate from another
CA or for another name; configuration mistakes stop start-up with one error naming the key."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from hsm_sim.config import ConfigError as SimConfigError
from hsm_sim.config import load_config as load_sim_config
from hsm_sim.server import HsmSimServer
from hsm_sim.tls import server_context
from switch.config import HsmConfig, load_config
from switch.errors import ConfigError
from switch.hsm.client import HsmClient
from switch.hsm.connect import client_tls_context, hsm_client
from switch.hsm.errors import HsmUnavailable
from tests.hostile.tlscerts import TlsFiles, make_tls_files
from tests.reliability.procs import SwitchProcess
from tests.reliability.world import open_world
from tests.support.pos import PosTerminal
from tests.support.realstack import hsm_config


def _tls_sim(tmp: Path, tls: TlsFiles, *, mutual: bool = True) -> HsmSimServer:
    cfg = hsm_config(tmp)
    server = dataclasses.replace(
        cfg.server, tls_cert=str(tls.cert), tls_key=str(tls.key), tls_client_ca=str(tls.ca) if mutual else ""
    )
    return HsmSimServer(dataclasses.replace(cfg, server=server))


def _client_cfg(port: int, tls: TlsFiles, **kw: str) -> HsmConfig:
    values = {"tls_ca": str(tls.ca), "tls_cert": str(tls.client_cert), "tls_key": str(tls.client_key)} | kw
    return HsmConfig(address=f"127.0.0.1:{port}", timeout_ms=1000, **values)


async def _diagnostics(client: HsmClient) -> None:
    await client.start()
    try:
        await client.diagnostics()
    finally:
        await client.close()


async def test_mutual_tls_link_and_what_it_refuses(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    sim = _tls_sim(tmp_path, tls)
    _host, port = await sim.start()
    try:
        await _diagnostics(hsm_client(_client_cfg(port, tls)))  # the certificate names 127.0.0.1 and localhost
        await _diagnostics(hsm_client(_client_cfg(port, tls, tls_server_name="localhost")))
        served = sim.stats.commands
        assert served == 2

        (tmp_path / "other").mkdir()
        refused = {
            "no client certificate": _client_cfg(port, tls, tls_cert="", tls_key=""),
            "another CA": _client_cfg(port, tls, tls_ca=str(make_tls_files(tmp_path / "other").ca)),
            "another name": _client_cfg(port, tls, tls_server_name="hsm.other.example"),
        }
        for what, cfg in refused.items():
            with pytest.raises(HsmUnavailable):
                await _diagnostics(hsm_client(cfg))
            assert sim.stats.commands == served, what
        with pytest.raises(HsmUnavailable):  # plain TCP to a TLS port: no answer it could read
            await _diagnostics(HsmClient("127.0.0.1", port, pool_size=1, timeout_s=0.5))
        assert sim.stats.commands == served
    finally:
        await sim.stop()


async def test_switch_process_over_tls_to_the_hsm(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    async with open_world(tmp_path, "sqlite") as world:
        sim = _tls_sim(tmp_path, tls)
        _host, port = await sim.start()
        proc = SwitchProcess(world.config_path, tmp_path / "switch-tls.log")
        try:
            hsm = {
                "address": f"127.0.0.1:{port}",
                "tls_ca": str(tls.ca),
                "tls_cert": str(tls.client_cert),
                "tls_key": str(tls.client_key),
                "tls_server_name": "localhost",
            }
            world.config_path.write_text(world.switch_toml(hsm=hsm))
            plain_before = world.hsm.stats.commands
            await proc.start()
            t = world.terminals[0]
            pos = await PosTerminal.connect("127.0.0.1", proc.cup_port, profile="cup", tid=t.tid, mid=t.mid,
                                            tmk=world.tmk)  # fmt: skip
            try:
                assert (await pos.signon()).rc == "00"
                card = world.cards[0]
                ans = await pos.purchase(card.pan, card.pin, 1234)
                assert ans.rc == "00" and ans.mac_ok
            finally:
                await pos.close()
            assert await proc.terminate() == 0
        finally:
            await proc.close()
            await sim.stop()
    assert sim.stats.commands >= 4  # key generation, MAC verify, PIN verify, reply MAC: all over TLS
    assert world.hsm.stats.commands == plain_before  # nothing went to the plain simulator


def test_tls_configuration_errors_name_the_key(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    cases = {
        "hsm.tls_key": {"SWITCH_HSM_TLS_CA": str(tls.ca), "SWITCH_HSM_TLS_CERT": str(tls.client_cert)},
        "hsm.tls_ca": {"SWITCH_HSM_TLS_CERT": str(tls.client_cert), "SWITCH_HSM_TLS_KEY": str(tls.client_key)},
    }
    for key, env in cases.items():
        with pytest.raises(ConfigError) as err:
            load_config(None, env)
        assert err.value.key == key
    with pytest.raises(ConfigError) as err:
        client_tls_context(HsmConfig(tls_ca=str(tmp_path / "missing.pem")))
    assert err.value.key == "hsm.tls_ca"
    os.chmod(tls.client_key, 0o640)
    with pytest.raises(ConfigError) as err:
        client_tls_context(HsmConfig(tls_ca=str(tls.ca), tls_cert=str(tls.client_cert), tls_key=str(tls.client_key)))
    assert err.value.key == "hsm.tls_key" and "owner-only" in str(err.value)

    with pytest.raises(SimConfigError) as sim_err:
        load_sim_config(None, {"HSM_SERVER_TLS_CERT": str(tls.cert)})
    assert sim_err.value.key == "server.tls_key"
    os.chmod(tls.key, 0o644)
    cfg = load_sim_config(None, {"HSM_SERVER_TLS_CERT": str(tls.cert), "HSM_SERVER_TLS_KEY": str(tls.key)})
    with pytest.raises(SimConfigError) as sim_err:
        server_context(cfg.server)  # what HsmSimServer.start() builds first
    assert sim_err.value.key == "server.tls_key"
