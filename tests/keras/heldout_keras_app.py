"""A Keras ClientApp written as Flower's docs write one: nothing of pot-flower.

Weights travel as ``ArrayRecord(model.get_weights())`` (keys "0", "1", ...) and
come back with ``model.set_weights(record.to_numpy_ndarrays())``; the model has
a BatchNormalization layer (non-trainable moving statistics travel too). The
data: Fashion-MNIST from the Debian package, split into shards by node.
"""

from __future__ import annotations

import gzip
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

DATA = "/usr/share/datasets/fashion-mnist"
PER_NODE = 1500


def read(name: str) -> np.ndarray:
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def shard(node: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (
        read("train-images-idx3-ubyte.gz"),
        read("train-labels-idx1-ubyte.gz"),
    )
    rows = slice(node * PER_NODE, (node + 1) * PER_NODE)
    return images[rows].astype("float32")[..., None] / 255.0, labels[rows]


def test_set() -> tuple[np.ndarray, np.ndarray]:
    images, labels = (
        read("t10k-images-idx3-ubyte.gz"),
        read("t10k-labels-idx1-ubyte.gz"),
    )
    return images[:2000].astype("float32")[..., None] / 255.0, labels[:2000]


def build() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    model = build()
    model.set_weights(msg.content["arrays"].to_numpy_ndarrays())
    x, y = shard(int(context.node_config["partition-id"]))
    keras.utils.set_random_seed(int(context.node_config["partition-id"]))
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.get_weights()),
            "metrics": MetricRecord(
                {
                    "train_loss": float(history.history["loss"][-1]),
                    "num-examples": len(x),
                }
            ),
        }
    )
    return Message(content=content, reply_to=msg)


def accuracy(arrays: ArrayRecord) -> float:
    model = build()
    model.set_weights(arrays.to_numpy_ndarrays())
    x, y = test_set()
    return float(model.evaluate(x, y, verbose=0)[1])
