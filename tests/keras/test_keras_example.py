"""examples/quickstart-tensorflow: Keras miners, and Keras with PyTorch miners."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flower_support import LocalGrid
from flwr.app import ConfigRecord, MetricRecord

from pot_flower.audit import audit_ledger
from pot_flower.ops.superlink import flwr_run, local_superlink
from pot_flower.strategies import PoTStrategy

if not os.environ.get("CI"):  # CI installs the tensorflow extra: no skipping there
    pytest.importorskip("keras")

APP = Path(__file__).resolve().parents[2] / "examples" / "quickstart-tensorflow"
DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = pytest.mark.skipif(
    not DATA.exists(), reason="apt-get install dataset-fashion-mnist"
)


def test_keras_miners_send_stable_names_and_are_all_accepted(
    tmp_path: Path, example: None
) -> None:
    import tomllib

    from quickstart_tensorflow.client_app import app
    from quickstart_tensorflow.task import make_model

    from pot_flower.clients import keras_arrays

    config = tomllib.loads((APP / "pyproject.toml").read_text())
    run_config = dict(config["tool"]["flwr"]["app"]["config"])
    run_config["pot-keystore"] = str(tmp_path / "keys")
    grid = LocalGrid(app, 3, run_config=run_config)
    strategy = PoTStrategy(
        ledger_dir=tmp_path / "ledger", min_available_nodes=3, fraction_evaluate=0.0
    )
    initial = keras_arrays(make_model())
    result = strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=1,
        train_config=ConfigRecord({"lr": 0.05}),
        evaluate_fn=lambda r, arrays: MetricRecord({}),
    )
    assert [(r.accepted, r.rejected) for r in strategy.history] == [(3, 0)]
    assert list(result.arrays.keys()) == list(initial.keys())
    assert list(initial.keys())[:2] == ["0.conv2d.kernel", "0.conv2d.bias"]
    assert audit_ledger(tmp_path / "ledger" / "validator-0").ok


def test_keras_and_pytorch_miners_train_one_model_under_flwr_run(
    tmp_path: Path,
) -> None:
    """``-c model-layout=torch miner-frameworks=keras,torch``: partitions 0 and 2
    train with Keras, 1 and 3 with PyTorch; one committee checks them all."""
    metrics = tmp_path / "metrics.json"
    with local_superlink(tmp_path / "flwr-home") as env:
        proc = flwr_run(
            APP,
            env,
            run_config={
                "num-server-rounds": 2,
                "model-layout": "torch",
                "miner-frameworks": "keras,torch",
                "pot-ledger-dir": str(tmp_path / "ledger"),
                "pot-keystore": str(tmp_path / "keys"),
                "metrics-out": str(metrics),
            },
            num_supernodes=4,
            timeout=280,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "round 2/2" in output and "accepted 4  rejected 0" in output
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok and report.blocks == 3, report.problem
    accuracy = json.loads(metrics.read_text())["accuracy_by_round"]
    assert len(accuracy) == 3 and accuracy[-1] > 0.5, accuracy
