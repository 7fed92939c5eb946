"""Simulator configuration (``config/hsm.toml``): frozen dataclasses per section, every key with a default,
overridable by ``HSM_<SECTION>_<KEY>`` environment variables. An unknown or invalid key stops start-up with
:class:`ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "HSM_"


class ConfigError(Exception):
    """Invalid configuration; ``key`` is ``section.key`` (or the environment variable)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid configuration {key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ServerSection:
    #: loopback by default: the simulator is a test device
    listen: str = "127.0.0.1:1500"
    #: payShield message header length (characters echoed in each reply)
    header_len: int = 4
    #: largest request body accepted (longer ones are skipped and answered with 15)
    max_body_bytes: int = 32768
    #: close a connection that sent no complete command for this long (0 = never)
    idle_timeout_s: float = 0.0
    #: close a connection whose started command does not complete within this time (slow senders)
    frame_timeout_s: float = 10.0
    max_connections: int = 256
    #: TLS on the host port (PEM files; "" = plain TCP); the key file must be owner-only
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM CA bundle: when set, hosts must present a certificate signed by it (mutual TLS)
    tls_client_ca: str = ""


@dataclass(frozen=True, slots=True)
class LmkSection:
    #: LMK key file (20 lines of 32 hex); "" = the built-in Thales test LMK set (development only)
    file: str = ""


@dataclass(frozen=True, slots=True)
class PinSection:
    #: the PIN mailer "printer" (owner-only JSON lines)
    mailer_file: str = "var/pin_mailers.jsonl"
    #: PIN length of JA when the command gives none
    default_length: int = 6


@dataclass(frozen=True, slots=True)
class FaultsSection:
    #: added to every reply (tests only)
    latency_ms: float = 0.0
    #: share of commands answered with ``error_code`` instead of being executed
    error_rate: float = 0.0
    error_code: str = "13"
    #: share of commands read but never answered
    drop_rate: float = 0.0
    #: commands the faults apply to ("" = all), comma-separated
    commands: str = ""
    #: random seed of the fault decisions (0 = unseeded)
    seed: int = 0


@dataclass(frozen=True, slots=True)
class LoggingSection:
    level: str = "info"
    #: "" = stdout
    file: str = ""


@dataclass(frozen=True, slots=True)
class HsmSimConfig:
    server: ServerSection = field(default_factory=ServerSection)
    lmk: LmkSection = field(default_factory=LmkSection)
    pin: PinSection = field(default_factory=PinSection)
    faults: FaultsSection = field(default_factory=FaultsSection)
    logging: LoggingSection = field(default_factory=LoggingSection)


_SECTIONS: dict[str, Any] = {f.name: f.default_factory for f in dataclasses.fields(HsmSimConfig)}


def parse_hostport(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(key, "expected HOST:PORT")
    return host.strip("[]"), int(port)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    from_env = isinstance(value, str)
    if typ is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if from_env and value.strip().lstrip("-").isdigit():
            return int(value)
    elif typ is float and not isinstance(value, bool):
        if isinstance(value, int | float):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, str):
        return value
    raise ConfigError(key, f"expected {typ.__name__}")


def _validate(cfg: HsmSimConfig) -> None:
    parse_hostport(cfg.server.listen, "server.listen")
    if not 1 <= cfg.server.header_len <= 16:
        raise ConfigError("server.header_len", "must be between 1 and 16")
    if not 64 <= cfg.server.max_body_bytes <= 65535:
        raise ConfigError("server.max_body_bytes", "must be between 64 and 65535")
    if cfg.server.max_connections < 1:
        raise ConfigError("server.max_connections", "must be at least 1")
    if bool(cfg.server.tls_cert) != bool(cfg.server.tls_key):
        raise ConfigError(
            "server.tls_key" if cfg.server.tls_cert else "server.tls_cert", "tls_cert and tls_key go together"
        )
    if cfg.server.tls_client_ca and not cfg.server.tls_cert:
        raise ConfigError("server.tls_client_ca", "needs tls_cert and tls_key")
    if not 4 <= cfg.pin.default_length <= 12:
        raise ConfigError("pin.default_length", "must be between 4 and 12")
    for name in ("error_rate", "drop_rate"):
        if not 0.0 <= getattr(cfg.faults, name) <= 1.0:
            raise ConfigError(f"faults.{name}", "must be between 0 and 1")
    if len(cfg.faults.error_code) != 2 or not cfg.faults.error_code.isdigit():
        raise ConfigError("faults.error_code", "expected a 2-digit payShield error code")
    if cfg.logging.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("logging.level", "expected debug, info, warning or error")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> HsmSimConfig:
    """Read ``path`` (optional) and apply ``HSM_<SECTION>_<KEY>`` overrides from ``env``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("--config", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"invalid TOML: {exc}") from None
    sections: dict[str, Any] = {}
    known_env: set[str] = set()
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
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            known_env.add(name)
            if env is not None and name in env:
                values[key] = _coerce(env[name], typ, f"{section}.{key} ({name})")
        sections[section] = cls(**values)
    if data:
        raise ConfigError(next(iter(data)), "unknown section")
    if env is not None:
        for name in env:
            if name.startswith(ENV_PREFIX) and name not in known_env:
                raise ConfigError(name, "unknown configuration variable")
    cfg = HsmSimConfig(**sections)
    _validate(cfg)
    return cfg
