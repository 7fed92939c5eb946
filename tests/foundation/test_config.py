"""Configuration loading: defaults, TOML, env overrides, one-line errors naming the key (SPEC §1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from switch.config import SwitchConfig, load_config
from switch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_switch_toml_equals_the_defaults() -> None:
    assert load_config(ROOT / "config" / "switch.toml", {}) == SwitchConfig()


def test_every_default_key_is_documented_in_switch_toml() -> None:
    import dataclasses
    import tomllib

    data = tomllib.loads((ROOT / "config" / "switch.toml").read_text())
    for section in dataclasses.fields(SwitchConfig):
        keys = {f.name for f in dataclasses.fields(getattr(SwitchConfig(), section.name))}
        assert set(data[section.name]) == keys, section.name


def test_env_overrides_every_type() -> None:
    cfg = load_config(
        None,
        {
            "SWITCH_PROGRAM_SETTLEMENT_WINDOW": "03:00-03:30",
            "SWITCH_PROGRAM_BALANCE_CAP": "700000",
            "SWITCH_PROGRAM_BINS": "990001,990002",
            "SWITCH_SERVER_IDLE_TIMEOUT_S": "1.5",
            "SWITCH_SERVER_LISTEN": "cup=127.0.0.1:0,iso87=127.0.0.1:0",
            "SWITCH_DATABASE_DSN": "postgresql://127.0.0.1/test",
        },
    )
    assert cfg.program.settlement_window == "03:00-03:30"
    assert cfg.program.balance_cap == 700000
    assert cfg.program.bins == ["990001", "990002"]
    assert cfg.server.idle_timeout_s == 1.5
    assert cfg.server.listen == {"cup": "127.0.0.1:0", "iso87": "127.0.0.1:0"}
    assert cfg.database.dsn.startswith("postgresql://")


def test_env_beats_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[program]\nbalance_cap = 100\n")
    assert load_config(path, {}).program.balance_cap == 100
    assert load_config(path, {"SWITCH_PROGRAM_BALANCE_CAP": "200"}).program.balance_cap == 200


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ("[program]\nbalance_kap = 1\n", {}, "program.balance_kap"),
        ("[programme]\n", {}, "programme"),
        ('[program]\nbalance_cap = "lots"\n', {}, "program.balance_cap"),
        ('[program]\ncutover = "25:00"\n', {}, "program.cutover"),
        ('[program]\nsettlement_window = "23:20"\n', {}, "program.settlement_window"),
        ('[program]\ntimezone = "Mars/Olympus"\n', {}, "program.timezone"),
        ('[server]\nlisten = { x25 = "127.0.0.1:1" }\n', {}, "server.listen.x25"),
        ('[database]\ndsn = "mysql://x"\n', {}, "database.dsn"),
        ("", {"SWITCH_PROGRAM_MAX_TXN_AMOUNT": "1e5"}, "program.max_txn_amount"),
        ("", {"SWITCH_PROGRAM_NO_SUCH_KEY": "1"}, "SWITCH_PROGRAM_NO_SUCH_KEY"),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path: Path, toml: str, env: dict[str, str], key: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path, env)
    assert err.value.key.startswith(key)
    assert key in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_reports_bad_config_in_one_line_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[program]\nbalance_cap = -5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "switch", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "program.balance_cap" in lines[0]


def test_cli_usage_error_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "switch", "no-such-command"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2
