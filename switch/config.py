"""Switch configuration: TOML file + ``SWITCH_<SECTION>_<KEY>`` environment overrides.

Every key has a default (``config/switch.toml`` lists them all, commented). Unknown sections or keys and
values of the wrong type stop start-up with a :class:`ConfigError` naming ``section.key`` (SPEC §1). TOML
loaders ignore unknown keys by default; here they are an error, because a misspelt limit must not silently
fall back to its default.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, get_type_hints

from switch.errors import ConfigError

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]*):(\d{1,5})$")


def parse_hostport(value: str, key: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8583`` for IPv6); port 0 means ephemeral."""
    m = _HOSTPORT.match(value.strip())
    if not m or int(m.group(2)) > 65535:
        raise ConfigError(key, "expected HOST:PORT")
    host = m.group(1).strip("[]") or "127.0.0.1"
    return host, int(m.group(2))


def parse_hhmm(value: str, key: str) -> time:
    m = _HHMM.match(value.strip())
    if not m:
        raise ConfigError(key, "expected HH:MM")
    return time(int(m.group(1)), int(m.group(2)))


def parse_window(value: str, key: str) -> tuple[time, time]:
    start, sep, end = value.partition("-")
    if not sep:
        raise ConfigError(key, "expected HH:MM-HH:MM")
    return parse_hhmm(start, key), parse_hhmm(end, key)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    #: profile name -> HOST:PORT. Both profiles listen by default.
    listen: dict[str, str] = field(default_factory=lambda: {"cup": "127.0.0.1:8583", "iso87": "127.0.0.1:8584"})
    http: str = "127.0.0.1:9108"
    idle_timeout_s: float = 60.0
    max_frame_bytes: int = 2048
    max_connections: int = 4096
    max_connections_per_ip: int = 2048
    max_inflight_per_connection: int = 32
    max_inflight: int = 1024
    #: how long shutdown waits for in-flight requests before cancelling them
    shutdown_grace_s: float = 10.0
    #: a slow reader that does not take a reply within this time is disconnected
    write_timeout_s: float = 10.0
    #: a frame (or TLS handshake) that has started must complete within this (slowloris defence)
    frame_timeout_s: float = 15.0
    workers: int = 1
    #: PEM certificate chain and private key for TLS on the POS listeners; both empty = plain TCP
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM CA bundle; when set, terminals must present a client certificate it signed (mutual TLS)
    tls_client_ca: str = ""


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: str = "sqlite:///var/switch.db"
    #: SQLite only: FULL (fsync before every reply) or NORMAL
    sqlite_synchronous: str = "FULL"
    #: most requests sharing one durable commit
    group_commit_max: int = 64
    #: PostgreSQL pool size
    pool_size: int = 8
    #: how long the engine may use a terminal/merchant/card ref read earlier (ms; 0 = read every time).
    #: Changes by other processes (CLI, other workers) are seen within this bound; docs/DECISIONS.md
    refdata_ttl_ms: int = 1000


@dataclass(frozen=True, slots=True)
class HsmConfig:
    address: str = "127.0.0.1:1500"
    header_len: int = 4
    pool_size: int = 2
    timeout_ms: int = 2000
    #: key references under the LMK (development defaults are derived by the HSM simulator's dev LMK)
    pvk_lmk: str = ""
    #: the HSM console command that turns clear development keys of a provisioning file into keys under the LMK
    #: (SPEC §10b: clear components never travel over the host port); split like a shell command line
    ceremony_command: str = "hsm-sim keys import-clear"
    #: TLS to the HSM (docs/SECURITY.md): PEM CA bundle that signed the HSM's certificate; "" = plain TCP
    tls_ca: str = ""
    #: client certificate and owner-only key, for an HSM that requires mutual TLS ("" = none)
    tls_cert: str = ""
    tls_key: str = ""
    #: name the HSM's certificate must carry; "" = the host of ``address``
    tls_server_name: str = ""


@dataclass(frozen=True, slots=True)
class ProgramConfig:
    program_id: str = "UNIONCARD"
    bins: list[str] = field(default_factory=lambda: ["990001"])
    max_txn_amount: int = 500000
    daily_amount_limit: int = 1000000
    daily_count_limit: int = 50
    balance_cap: int = 500000
    timezone: str = "Asia/Shanghai"
    cutover: str = "23:20"
    settlement_window: str = "23:20-00:30"
    refund_days: int = 30
    pin_max_tries: int = 3
    mac_max_failures: int = 3


@dataclass(frozen=True, slots=True)
class FilesConfig:
    var_dir: str = "var"
    clearing_dir: str = "var/clearing"


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    #: file | http
    gateway: str = "file"
    sms_file: str = "var/sms.jsonl"
    webhook_url: str = ""


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    #: empty = stdout
    file: str = ""


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    #: secret for the keyed PAN hash (card token). Development default; set per deployment.
    pan_token_key: str = "dev-only-pan-token-key-change-me"


@dataclass(frozen=True, slots=True)
class SwitchConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    hsm: HsmConfig = field(default_factory=HsmConfig)
    program: ProgramConfig = field(default_factory=ProgramConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)


_SECTIONS: dict[str, type[Any]] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(SwitchConfig)
}


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check/convert one value (TOML value or environment string) to the declared type."""
    from_env = isinstance(value, str)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
    elif typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ == list[str]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        if from_env:
            return [v.strip() for v in value.split(",") if v.strip()]
    elif typ == dict[str, str]:
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        if from_env:
            pairs = [p.partition("=") for p in value.split(",") if p.strip()]
            if all(sep for _, sep, _ in pairs):
                return {k.strip(): v.strip() for k, _, v in pairs}
    raise ConfigError(key, f"expected {getattr(typ, '__name__', str(typ))}")


def _validate(cfg: SwitchConfig) -> None:
    """Semantic checks that types alone cannot express."""
    for profile, addr in cfg.server.listen.items():
        if profile not in ("cup", "iso87"):
            raise ConfigError(f"server.listen.{profile}", "unknown profile (cup | iso87)")
        parse_hostport(addr, f"server.listen.{profile}")
    parse_hostport(cfg.server.http, "server.http") if cfg.server.http else None
    parse_hostport(cfg.hsm.address, "hsm.address")
    if bool(cfg.hsm.tls_cert) != bool(cfg.hsm.tls_key):
        raise ConfigError("hsm.tls_key" if cfg.hsm.tls_cert else "hsm.tls_cert", "tls_cert and tls_key go together")
    if (cfg.hsm.tls_cert or cfg.hsm.tls_server_name) and not cfg.hsm.tls_ca:
        raise ConfigError("hsm.tls_ca", "TLS to the HSM needs the CA that signed its certificate")
    if cfg.database.sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA", "OFF"):
        raise ConfigError("database.sqlite_synchronous", "expected FULL or NORMAL")
    if not 0 <= cfg.database.refdata_ttl_ms <= 60000:
        raise ConfigError("database.refdata_ttl_ms", "must be between 0 and 60000")
    if not cfg.database.dsn.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("database.dsn", "expected sqlite:///PATH or postgresql://...")
    parse_hhmm(cfg.program.cutover, "program.cutover")
    parse_window(cfg.program.settlement_window, "program.settlement_window")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(cfg.program.timezone)
    except Exception as exc:
        raise ConfigError("program.timezone", "unknown time zone") from exc
    if not cfg.program.bins or not all(b.isdigit() and 6 <= len(b) <= 8 for b in cfg.program.bins):
        raise ConfigError("program.bins", "expected a list of 6-8 digit BINs")
    for name in ("max_txn_amount", "daily_amount_limit", "daily_count_limit", "balance_cap"):
        if getattr(cfg.program, name) <= 0:
            raise ConfigError(f"program.{name}", "must be positive")
    if cfg.notify.gateway not in ("file", "http"):
        raise ConfigError("notify.gateway", "expected file or http")
    if cfg.logging.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("logging.level", "expected debug, info, warning or error")
    if not 64 <= cfg.server.max_frame_bytes <= 65535:
        raise ConfigError("server.max_frame_bytes", "must be between 64 and 65535")
    if cfg.server.workers < 1:
        raise ConfigError("server.workers", "must be at least 1")
    if cfg.server.workers > 1 and cfg.database.dsn.startswith("sqlite:"):
        # one process owns a SQLite ledger (its group-commit writer); scale-out needs PostgreSQL
        raise ConfigError("server.workers", "more than one worker needs PostgreSQL")
    for name in ("idle_timeout_s", "write_timeout_s", "frame_timeout_s", "shutdown_grace_s"):
        if getattr(cfg.server, name) <= 0:
            raise ConfigError(f"server.{name}", "must be positive")
    for name in ("max_connections", "max_connections_per_ip", "max_inflight_per_connection", "max_inflight"):
        if getattr(cfg.server, name) < 1:
            raise ConfigError(f"server.{name}", "must be at least 1")
    if bool(cfg.server.tls_cert) != bool(cfg.server.tls_key):
        raise ConfigError(
            "server.tls_key" if cfg.server.tls_cert else "server.tls_cert", "tls_cert and tls_key go together"
        )
    if cfg.server.tls_client_ca and not cfg.server.tls_cert:
        raise ConfigError("server.tls_client_ca", "needs tls_cert and tls_key")


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> SwitchConfig:
    """Read ``path`` (optional) and apply ``SWITCH_<SECTION>_<KEY>`` overrides from ``env``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError("--config", f"file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"invalid TOML: {exc}") from exc
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        raw = data.pop(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(section, "expected a table")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in hints:
                raise ConfigError(f"{section}.{key}", "unknown key")
            values[key] = _coerce(value, hints[key], f"{section}.{key}")
        for key, typ in hints.items():
            env_name = f"SWITCH_{section}_{key}".upper()
            if env is not None and env_name in env:
                values[key] = _coerce(env[env_name], typ, f"{section}.{key} ({env_name})")
        sections[section] = cls(**values)
    if data:
        raise ConfigError(next(iter(data)), "unknown section")
    if env is not None:
        known = {f"SWITCH_{s}_{k}".upper() for s, c in _SECTIONS.items() for k in get_type_hints(c)}
        for name in env:
            if name.startswith("SWITCH_") and name not in known:
                raise ConfigError(name, "unknown configuration variable")
    cfg = SwitchConfig(**sections)
    _validate(cfg)
    return cfg


def with_overrides(cfg: SwitchConfig, section: str, **values: Any) -> SwitchConfig:
    """Return ``cfg`` with some keys of one section replaced (CLI flags, tests), validated like a file."""
    new = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})
    _validate(new)
    return new
