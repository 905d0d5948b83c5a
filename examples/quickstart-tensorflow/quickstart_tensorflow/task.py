"""Model, data and training loop (plain Keras 3; nothing here knows about PoT).

The CNN is the PyTorch quickstart's, layer for layer (37,610 parameters). A
``Permute`` before ``Flatten`` makes the dense layer read the features in
PyTorch's (channel, row, column) order, so the two frameworks' weights map onto
each other by transposes alone: :func:`to_torch_layout` and
:func:`from_torch_layout` (mixed federations, ``model-layout = "torch"``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no oneDNN/CPU-feature banners

import keras
import numpy as np
import tensorflow as tf
from flwr.app import Array, ArrayRecord

from pot_flower import datasets

# Simulated miners share the machine's cores; set before TensorFlow runs anything.
try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # already initialized in this process
    pass


def make_model() -> keras.Model:
    """Conv(8, 5x5) - pool - Conv(16, 5x5) - pool - Dense(128) - Dense(10)."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(8, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Permute((3, 1, 2)),  # (C, H, W): PyTorch's flatten order
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    return model


def compile_model(model: keras.Model, lr: float) -> None:
    """SGD with momentum 0.9 (as the PyTorch quickstart), logits in, accuracy out."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def to_inputs(images: np.ndarray) -> np.ndarray:
    """Normalized float32 images (N, 28, 28, 1)."""
    return datasets.normalized(images)[..., None]


def load_partition(
    partition_id: int,
    num_partitions: int,
    *,
    alpha: float,
    seed: int,
    source: str,
    data_dir: str,
) -> tuple[np.ndarray, np.ndarray]:
    """One client's non-IID (Dirichlet) share: the PyTorch quickstart's images."""
    images, labels = datasets.load_partition(
        partition_id,
        num_partitions,
        alpha=alpha,
        seed=seed,
        source=source,
        data_dir=data_dir,
    )
    return to_inputs(images), labels


def load_test(source: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000-image test set (centralized evaluation)."""
    images, labels = datasets.load_test(source, data_dir)
    return to_inputs(images), labels


def train(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> float:
    """Local SGD; returns the mean training loss of the last epoch."""
    keras.utils.set_random_seed(seed)
    compile_model(model, lr)
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return float(history.history["loss"][-1])


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) on (x, y)."""
    compile_model(model, 0.0)
    loss, accuracy = model.evaluate(x, y, batch_size=1000, verbose=0)
    return float(loss), float(accuracy)


# ------------------------------------------------- the PyTorch quickstart's layout
# Keras weight name -> (PyTorch name, axes that turn the Keras array into PyTorch's).
TORCH_LAYOUT: dict[str, tuple[str, tuple[int, ...]]] = {
    "0.conv2d.kernel": ("conv1.weight", (3, 2, 0, 1)),
    "0.conv2d.bias": ("conv1.bias", (0,)),
    "2.conv2d.kernel": ("conv2.weight", (3, 2, 0, 1)),
    "2.conv2d.bias": ("conv2.bias", (0,)),
    "6.dense.kernel": ("fc1.weight", (1, 0)),
    "6.dense.bias": ("fc1.bias", (0,)),
    "7.dense.kernel": ("fc2.weight", (1, 0)),
    "7.dense.bias": ("fc2.bias", (0,)),
}


def to_torch_layout(arrays: ArrayRecord) -> ArrayRecord:
    """Keras-named arrays -> the PyTorch quickstart's ``state_dict`` names/shapes."""
    return ArrayRecord(
        {
            torch_name: Array(
                np.ascontiguousarray(arrays[name].numpy().transpose(axes))
            )
            for name, (torch_name, axes) in TORCH_LAYOUT.items()
        }
    )


def from_torch_layout(arrays: ArrayRecord) -> ArrayRecord:
    """The inverse of :func:`to_torch_layout`."""
    return ArrayRecord(
        {
            name: Array(
                np.ascontiguousarray(
                    arrays[torch_name].numpy().transpose(np.argsort(axes))
                )
            )
            for name, (torch_name, axes) in TORCH_LAYOUT.items()
        }
    )
