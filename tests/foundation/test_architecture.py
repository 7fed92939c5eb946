"""Import directions of docs/CONTRACTS.md and ARCHITECTURE.md, checked on the source (ast, no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: modules that must stay pure: no event loop, no logging, no database, no sockets
PURE_LEAVES = ["switch/iso", "switch/crypto", "switch/rc.py", "switch/hsm/wire.py", "switch/ledger/models.py"]
IMPURE = {"asyncio", "logging", "structlog", "sqlite3", "asyncpg", "socket", "uvloop", "switch.telemetry",
          "switch.server", "switch.pipeline", "switch.ledger.sqlite", "switch.ledger.postgres", "switch.app"}
#: what the simulators may use of the switch
SIM_ALLOWED = ("switch.iso", "switch.crypto", "switch.rc", "switch.hsm.wire", "switch.telemetry")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        p = ROOT / part
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.exists() else [])
    return out


def violates(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def test_pure_leaves_stay_pure() -> None:
    bad = [(str(f.relative_to(ROOT)), n) for f in files(*PURE_LEAVES) for n in imports_of(f) if violates(n, IMPURE)]
    assert not bad, bad


def test_simulators_use_only_the_switch_pure_leaves() -> None:
    bad = [
        (str(f.relative_to(ROOT)), n)
        for f in files("hsm_sim", "terminal_sim")
        for n in imports_of(f)
        if n.startswith("switch") and not n.startswith(SIM_ALLOWED)
    ]
    assert not bad, bad


def test_nothing_imports_the_simulators() -> None:
    bad = [(str(f.relative_to(ROOT)), n) for f in files("switch") for n in imports_of(f)
           if violates(n, {"hsm_sim", "terminal_sim"})]
    assert not bad, bad


def test_pipeline_depends_on_interfaces_not_backends_or_sockets() -> None:
    forbidden = {"switch.ledger.sqlite", "switch.ledger.postgres", "switch.server.listener", "sqlite3", "asyncpg"}
    bad = [(str(f.relative_to(ROOT)), n) for f in files("switch/pipeline") if f.name != "factory.py"
           for n in imports_of(f) if violates(n, forbidden)]
    assert not bad, bad
