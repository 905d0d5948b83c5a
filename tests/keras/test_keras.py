"""Keras miners: stable weight names, the PyTorch layout, a held-out Keras app.

The held-out app (``heldout_keras_app``) is written as Flower's docs write a Keras
ClientApp; under PoTStrategy it gets only ``pot_mod`` added, and must reach the
accuracy it reaches under plain FedAvg.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from flower_support import LocalGrid
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp.strategy import FedAvg

from pot_flower.audit import audit_ledger
from pot_flower.clients import keras_arrays, keras_names, load_keras_arrays, with_pot
from pot_flower.strategies import PoTStrategy

if not os.environ.get("CI"):  # CI installs the tensorflow extra: no skipping there
    pytest.importorskip("keras")
import keras

DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def small_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2),
        ]
    )


def test_names_are_stable_whatever_keras_called_the_layers_before() -> None:
    first, second = small_model(), small_model()
    # Keras numbers auto-named layers per process: the paths differ...
    assert first.weights[0].path != second.weights[0].path
    # ...the names the committee compares do not.
    assert (
        keras_names(first)
        == keras_names(second)
        == [
            "0.dense.kernel",
            "0.dense.bias",
            "1.batchnormalization.gamma",
            "1.batchnormalization.beta",
            "1.batchnormalization.moving_mean",
            "1.batchnormalization.moving_variance",
            "2.dense.kernel",
            "2.dense.bias",
        ]
    )


def test_arrays_round_trip_bit_for_bit() -> None:
    source, target = small_model(), small_model()
    record = keras_arrays(source)
    load_keras_arrays(target, record)
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def _altered(record: ArrayRecord, change: str) -> ArrayRecord:
    arrays = {k: v.numpy() for k, v in record.items()}
    if change == "missing":
        arrays.pop("2.dense.bias")
    elif change == "unexpected":
        arrays["3.dense.kernel"] = np.zeros((2, 2), np.float32)
    elif change == "shape":
        arrays["0.dense.kernel"] = np.zeros((4, 4), np.float32)
    elif change == "order":
        arrays = dict(reversed(list(arrays.items())))
    elif change == "get_weights":  # Flower's index keys
        arrays = {str(i): v for i, v in enumerate(arrays.values())}
    return ArrayRecord({k: Array(v) for k, v in arrays.items()})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "missing \\['2.dense.bias'\\]"),
        ("unexpected", "unexpected \\['3.dense.kernel'\\]"),
        ("shape", "0.dense.kernel: shape \\(4, 4\\) sent"),
        ("order", "in another order"),
        ("get_weights", "missing \\['0.dense.kernel'"),
    ],
)
def test_arrays_that_do_not_fit_are_refused_and_nothing_is_assigned(
    change: str, message: str
) -> None:
    model = small_model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        load_keras_arrays(model, _altered(keras_arrays(small_model()), change))
    assert all(
        np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)
    )


def test_an_unbuilt_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no weights yet"):
        keras_arrays(keras.Sequential([keras.layers.Dense(2)]))


def test_the_keras_cnn_is_the_pytorch_cnn_in_the_torch_layout(example: None) -> None:
    """Same outputs from the same weights: Keras and PyTorch miners can share it."""
    import torch
    from quickstart_tensorflow.task import (
        from_torch_layout,
        make_model,
        to_torch_layout,
    )
    from quickstart_tensorflow.torch_miner import Net

    keras.utils.set_random_seed(3)
    model = make_model()
    record = keras_arrays(model)
    torch_record = to_torch_layout(record)
    net = Net()
    net.load_state_dict(torch_record.to_torch_state_dict())  # names and shapes fit
    x = np.random.default_rng(0).standard_normal((16, 28, 28, 1)).astype(np.float32)
    expected = model(x).numpy()
    got = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    back = from_torch_layout(torch_record)
    assert all(np.array_equal(back[k].numpy(), record[k].numpy()) for k in record)


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
def test_a_heldout_keras_app_under_pot_matches_fedavg(tmp_path: Path) -> None:
    """Only ``pot_mod`` added: every update accepted, accuracy as under FedAvg."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import heldout_keras_app as heldout
    finally:
        sys.path.remove(str(Path(__file__).parent))
    nodes, rounds = 4, 3
    keras.utils.set_random_seed(0)
    initial = ArrayRecord(heldout.build().get_weights())
    accuracy: dict[str, float] = {}
    for name in ("fedavg", "pot"):
        config = {"pot-keystore": str(tmp_path / "keys")}
        if name == "fedavg":
            grid = LocalGrid(heldout.app, nodes, run_config=config)
            strategy: FedAvg | PoTStrategy = FedAvg(
                fraction_evaluate=0.0, min_available_nodes=nodes
            )
        else:
            grid = LocalGrid(with_pot(heldout.app), nodes, run_config=config)
            strategy = PoTStrategy(
                ledger_dir=tmp_path / "ledger",
                min_available_nodes=nodes,
                fraction_evaluate=0.0,
            )
        result = strategy.start(
            grid=grid,
            initial_arrays=initial,
            num_rounds=rounds,
            train_config=ConfigRecord({}),
            evaluate_fn=lambda r, arrays: MetricRecord({}),
        )
        accuracy[name] = heldout.accuracy(result.arrays)
    assert isinstance(strategy, PoTStrategy)
    assert [(r.accepted, r.rejected) for r in strategy.history] == [(nodes, 0)] * rounds
    assert audit_ledger(tmp_path / "ledger" / "validator-0").ok
    assert accuracy["fedavg"] > 0.6, accuracy
    # PoT rounds weights to fixed point: the same training, within noise.
    assert abs(accuracy["pot"] - accuracy["fedavg"]) <= 0.03, accuracy


class Scale(keras.layers.Layer):
    """Keras' subclassing guide's way: add_weight() without a name."""

    def build(self, shape: tuple[int, ...]) -> None:
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")
        self.b = self.add_weight(shape=(shape[-1],), initializer="zeros")

    def call(self, x):  # type: ignore[no-untyped-def]
        return x * self.w + self.b


class Tempered(keras.Model):
    """A model owning a weight of its own besides its layers'."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(2)
        self.temperature = self.add_weight(shape=(), initializer="ones")

    def call(self, x):  # type: ignore[no-untyped-def]
        return self.dense(x) / self.temperature


def test_unnamed_weights_are_named_by_position_not_by_keras_counter() -> None:
    def build() -> keras.Model:
        return keras.Sequential([keras.Input((3,)), Scale(), keras.layers.Dense(2)])

    first, second = build(), build()
    assert first.layers[0].weights[0].name != second.layers[0].weights[0].name
    assert keras_names(first) == keras_names(second)
    assert keras_names(first)[:2] == ["0.scale.0", "0.scale.1"]
    load_keras_arrays(second, keras_arrays(first))


def test_weights_the_model_owns_travel_too() -> None:
    model = Tempered()
    model(np.zeros((1, 4), np.float32))
    names = keras_names(model)
    assert len(names) == len(model.weights) == 3
    assert names[-1] == "model.0"


def test_a_shared_layer_is_sent_once() -> None:
    shared = keras.layers.Dense(3)
    inner = keras.Sequential([keras.Input((3,)), shared])
    outer = keras.Sequential([keras.Input((3,)), shared, inner])
    assert len(keras_names(outer)) == len({id(v) for v in outer.weights}) == 2


def test_bfloat16_weights_are_refused_with_a_reason() -> None:
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, dtype="bfloat16")]
    )
    with pytest.raises(ValueError, match="bfloat16 weights cannot travel"):
        keras_arrays(model)
