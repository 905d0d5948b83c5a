"""Fashion-MNIST for the examples, as numpy: offline first, any framework.

The Debian package ``dataset-fashion-mnist`` puts the idx files in
``/usr/share/datasets/fashion-mnist``; with ``source="auto"`` they are used when
present, else Flower Datasets' hub copy. Partitions are Dirichlet over labels
(Flower Datasets' ``DirichletPartitioner``), so a PyTorch miner and a Keras miner
with the same ``partition-id`` train on the same images.

>>> x, y = load_partition(0, 10, alpha=0.5, seed=42)  # doctest: +SKIP
>>> x.shape, x.dtype, y.dtype  # doctest: +SKIP
((N, 28, 28), dtype('uint8'), dtype('int64'))
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
HUB_DATASET = "zalando-datasets/fashion_mnist"
CACHE_ENV = "POT_DATA_CACHE"
"""Where partition indices are kept (else ``~/.cache/pot-flower/partitions``)."""
MEAN, STD = 0.2860, 0.3530  # of the training images, scaled to [0, 1]


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def local_files_present(data_dir: str = DATA_DIR) -> bool:
    """Whether the Debian package's idx files are in ``data_dir``."""
    return all(
        (Path(data_dir) / f).exists() for pair in IDX_FILES.values() for f in pair
    )


@cache
def load_split(split: str, data_dir: str = DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) from the Debian package's idx files."""
    images, labels = IDX_FILES[split]
    return _read_idx(Path(data_dir) / images), _read_idx(Path(data_dir) / labels)


def normalized(images: np.ndarray) -> np.ndarray:
    """float32 images, scaled to [0, 1] and standardized (Fashion-MNIST's mean/std)."""
    return ((images.astype(np.float32) / 255.0) - MEAN) / STD


def use_local(source: str, data_dir: str = DATA_DIR) -> bool:
    """Whether to read local files ('auto' prefers them when present)."""
    if source not in ("auto", "local", "hub"):
        raise ValueError(f"data-source must be auto, local or hub, not {source!r}")
    if source == "local" or (source == "auto" and local_files_present(data_dir)):
        if not local_files_present(data_dir):
            raise FileNotFoundError(
                f"Fashion-MNIST not found in {data_dir}: "
                "apt-get install dataset-fashion-mnist (or data-source='hub')"
            )
        return True
    return False


def _dirichlet(num_partitions: int, alpha: float, seed: int) -> Any:
    from flwr_datasets.partitioner import DirichletPartitioner

    return DirichletPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        alpha=alpha,
        seed=seed,
        min_partition_size=10,
        self_balancing=True,
    )


@cache
def _partitioner(num_partitions: int, alpha: float, seed: int, data_dir: str) -> Any:
    from datasets import Dataset

    _, labels = load_split("train", data_dir)
    partitioner = _dirichlet(num_partitions, alpha, seed)
    # Partition indices by label: the images stay in numpy.
    partitioner.dataset = Dataset.from_dict(
        {"label": labels.astype(np.int64), "index": np.arange(len(labels))}
    )
    return partitioner


@cache
def _hub_dataset(num_partitions: int, alpha: float, seed: int) -> Any:
    from flwr_datasets import FederatedDataset

    partitioner = _dirichlet(num_partitions, alpha, seed)
    return FederatedDataset(dataset=HUB_DATASET, partitioners={"train": partitioner})


def _cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(home) / "pot-flower" / "partitions"


@cache
def _partition_indices(
    num_partitions: int, alpha: float, seed: int, data_dir: str
) -> dict[int, np.ndarray]:
    """Every partition's indices into the training set, computed once per machine.

    Flower Datasets' partitioner takes seconds (the Deployment Engine starts a
    process per message, each paying it again): the result, a pure function of
    the labels and the settings, is kept on disk by their digest.
    """
    _, labels = load_split("train", data_dir)
    key = hashlib.sha256(
        f"{num_partitions}/{alpha!r}/{seed}/".encode() + labels.tobytes()
    ).hexdigest()[:32]
    file = _cache_dir() / f"dirichlet-{key}.npz"
    try:
        with np.load(file) as stored:
            return {int(k[1:]): stored[k] for k in stored.files}
    except (OSError, ValueError, KeyError):
        pass
    partitioner = _partitioner(num_partitions, alpha, seed, data_dir)
    indices = {
        i: np.asarray(partitioner.load_partition(i)[:]["index"], dtype=np.int64)
        for i in range(num_partitions)
    }
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"p{i}": v for i, v in indices.items()})  # type: ignore[arg-type]
        os.replace(tmp, file)
    except OSError:  # no cache, no harm: computed again next time
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return indices


def _partition_index(
    partition_id: int, num_partitions: int, alpha: float, seed: int, data_dir: str
) -> np.ndarray:
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} not in [0, {num_partitions})")
    return _partition_indices(num_partitions, alpha, seed, data_dir)[partition_id]


def load_partition(
    partition_id: int,
    num_partitions: int,
    *,
    alpha: float,
    seed: int,
    source: str = "auto",
    data_dir: str = DATA_DIR,
) -> tuple[np.ndarray, np.ndarray]:
    """One client's non-IID (Dirichlet) share of the training set (uint8, int64)."""
    if use_local(source, data_dir):
        images, labels = load_split("train", data_dir)
        index = _partition_index(partition_id, num_partitions, alpha, seed, data_dir)
        return images[index], labels[index].astype(np.int64)
    part = _hub_dataset(num_partitions, alpha, seed).load_partition(partition_id)
    images = np.stack([np.asarray(img, dtype=np.uint8) for img in part[:]["image"]])
    return images, np.asarray(part[:]["label"], dtype=np.int64)


def load_test(
    source: str = "auto", data_dir: str = DATA_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000-image test set (centralized evaluation), uint8 and int64."""
    if use_local(source, data_dir):
        images, labels = load_split("test", data_dir)
        return images, labels.astype(np.int64)
    from datasets import load_dataset

    test = load_dataset(HUB_DATASET, split="test")
    images = np.stack([np.asarray(img, dtype=np.uint8) for img in test[:]["image"]])
    return images, np.asarray(test[:]["label"], dtype=np.int64)
