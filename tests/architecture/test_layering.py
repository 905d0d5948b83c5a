"""The rooms' import rules (README, ARCHITECTURE), checked on the source with ast.

Each room may import only the rooms below it; the pure core imports no I/O library.
A planted violation must fail the check (a check that cannot fail is a defect).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = {
    "pot_flower": REPO / "pot_flower",
    "pot_flower.strategies": REPO / "strategies",
    "pot_flower.clients": REPO / "clients",
    "pot_flower.zk": REPO / "zk",
}
FOUNDATION = {"encoding", "patience", "zk"}
CORE = FOUNDATION | {"consensus", "protocol", "validator", "transport", "committee"}
# Which rooms each room may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "encoding": set(),
    "patience": set(),
    "zk": {"encoding"},
    "consensus": {"encoding", "zk"},
    "protocol": {"encoding", "zk"},
    "validator": {"encoding", "patience", "zk", "protocol"},
    "transport": {"encoding", "patience", "zk", "protocol", "consensus", "validator"},
    "committee": CORE - {"committee"},
    "audit": CORE | {"ops"},
    "ops": CORE,
    "sim": CORE | {"audit"},
    "attacks": set(),
    "datasets": set(),
    "keystore": {"zk"},
    "report": CORE | {"audit"},
    "clients": {"encoding", "zk", "protocol", "attacks", "keystore"},
    "strategies": CORE | {"ops", "keystore"},
    "cli": CORE | {"audit", "ops", "sim", "report", "keystore"},
    "__main__": {"cli"},
    "__init__": {"strategies", "clients", "committee", "audit", "protocol", "keystore"},
}
# Libraries a room must not import: the pure core does no I/O.
PURE = {"flwr", "grpc", "google", "sqlite3", "torch", "tensorflow", "typer", "rich"}
MAY_NOT_USE: dict[str, set[str]] = {
    "encoding": PURE,
    "zk": PURE,
    "consensus": PURE,
    "protocol": PURE,
    "attacks": PURE,
    "datasets": PURE,
    "keystore": PURE,
    "validator": PURE - {"sqlite3"},
    "transport": {"flwr", "sqlite3", "torch", "tensorflow", "typer", "rich"},
    "committee": {"flwr", "sqlite3", "torch", "tensorflow", "typer", "rich"},
    "clients": {"grpc", "sqlite3", "typer", "rich"},
    "strategies": {"grpc", "sqlite3", "typer", "rich"},
}


def room(module: str) -> str:
    """``pot_flower.consensus.replica`` -> ``consensus``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules(sources: dict[str, Path]) -> Iterator[tuple[str, Path]]:
    for package, root in sources.items():
        for file in sorted(root.rglob("*.py")):
            rel = file.relative_to(root).with_suffix("")
            yield ".".join([package, *rel.parts]).removesuffix(".__init__"), file


def imports(file: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.ImportFrom):
            yield "<relative import>"


def violations(sources: dict[str, Path]) -> list[str]:
    """Every import that breaks a rule, as ``module: imported (rule)``."""
    found = []
    for module, file in modules(sources):
        here = room(module)
        allowed = MAY_IMPORT.get(here)
        if allowed is None:
            found.append(f"{module}: room {here!r} has no rule")
            continue
        for name in imports(file):
            if name == "<relative import>":
                found.append(f"{module}: relative import (use absolute imports)")
            elif name.startswith("pot_flower"):
                there = room(name)
                if there != here and there not in allowed:
                    found.append(f"{module}: {name} ({here} may not import {there})")
            elif name.split(".")[0] in MAY_NOT_USE.get(here, set()):
                found.append(f"{module}: {name} ({here} does no such I/O)")
    return found


def test_every_import_follows_the_layering() -> None:
    assert violations(SOURCES) == []


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("consensus/bad.py", "import grpc\n", "consensus does no such I/O"),
        ("protocol/bad.py", "import flwr.app\n", "protocol does no such I/O"),
        ("protocol/bad.py", "from pot_flower.validator import x\n", "protocol may not"),
        ("consensus/bad.py", "from pot_flower.ops.daemon import x\n", "may not import"),
        ("validator/bad.py", "import sqlite3\nimport grpc\n", "validator does no"),
        ("committee/bad.py", "from pot_flower.strategies import x\n", "may not"),
        ("transport/bad.py", "from pot_flower.committee.base import x\n", "may not"),
        ("zk/bad.py", "from . import x\n", "relative import"),
        ("newroom/bad.py", "x = 1\n", "has no rule"),
    ],
)
def test_a_planted_violation_fails(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    root = tmp_path / "pot_flower"
    planted = root / path
    planted.parent.mkdir(parents=True)
    planted.write_text(source)
    found = violations({"pot_flower": root})
    assert len(found) == 1 and expected in found[0], found


def test_clients_and_strategies_never_import_each_other() -> None:
    assert "strategies" not in MAY_IMPORT["clients"]
    assert "clients" not in MAY_IMPORT["strategies"]
    for core in CORE:
        assert not MAY_IMPORT[core] & {"strategies", "clients", "ops"}, core
