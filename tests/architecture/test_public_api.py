"""The public API is importable from ``pot_flower``; the core never pulls in Flower."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pot_flower


@pytest.mark.parametrize("name", pot_flower.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(pot_flower, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'PotStrategy'"):
        _ = pot_flower.PotStrategy  # type: ignore[attr-defined]


def test_the_core_loads_without_flower_or_grpc() -> None:
    code = (
        "import sys, pot_flower.consensus.replica, pot_flower.protocol.execution, "
        "pot_flower.validator.chains; "
        "print(sorted(m for m in ('flwr', 'grpc') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
