"""Model, data and training loop (plain PyTorch; nothing here knows about PoT)."""

from __future__ import annotations

import gzip
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
HUB_DATASET = "zalando-datasets/fashion_mnist"


class Net(nn.Module):
    """A small CNN (37,610 parameters): two conv layers, two dense layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def local_files_present(data_dir: str) -> bool:
    """Whether the Debian package's idx files are in ``data_dir``."""
    return all(
        (Path(data_dir) / f).exists() for pair in IDX_FILES.values() for f in pair
    )


@cache
def load_split(split: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) from the Debian package's idx files."""
    images, labels = IDX_FILES[split]
    return _read_idx(Path(data_dir) / images), _read_idx(Path(data_dir) / labels)


def to_tensors(
    images: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized float images (N, 1, 28, 28) and int64 labels."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - 0.2860) / 0.3530  # Fashion-MNIST mean / std
    return x, torch.from_numpy(labels.astype(np.int64))


def _dirichlet(num_partitions: int, alpha: float, seed: int):  # type: ignore[no-untyped-def]
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
def _partitioner(num_partitions: int, alpha: float, seed: int, data_dir: str):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    _, labels = load_split("train", data_dir)
    partitioner = _dirichlet(num_partitions, alpha, seed)
    # Partition indices by label: the images stay in numpy.
    partitioner.dataset = Dataset.from_dict(
        {"label": labels.astype(np.int64), "index": np.arange(len(labels))}
    )
    return partitioner


@cache
def _hub_dataset(num_partitions: int, alpha: float, seed: int):  # type: ignore[no-untyped-def]
    from flwr_datasets import FederatedDataset

    partitioner = _dirichlet(num_partitions, alpha, seed)
    return FederatedDataset(dataset=HUB_DATASET, partitioners={"train": partitioner})


def use_local(source: str, data_dir: str) -> bool:
    """Whether to read local files ('auto' prefers them when present)."""
    if source == "local" or (source == "auto" and local_files_present(data_dir)):
        if not local_files_present(data_dir):
            raise FileNotFoundError(
                f"Fashion-MNIST not found in {data_dir}: "
                "apt-get install dataset-fashion-mnist (or data-source='hub')"
            )
        return True
    return False


def load_partition(
    partition_id: int,
    num_partitions: int,
    *,
    alpha: float,
    seed: int,
    source: str,
    data_dir: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One client's non-IID (Dirichlet) share of the training set."""
    if use_local(source, data_dir):
        part = _partitioner(num_partitions, alpha, seed, data_dir).load_partition(
            partition_id
        )
        index = np.asarray(part[:]["index"], dtype=np.int64)
        images, labels = load_split("train", data_dir)
        return to_tensors(images[index], labels[index])
    part = _hub_dataset(num_partitions, alpha, seed).load_partition(partition_id)
    images = np.stack([np.asarray(img, dtype=np.uint8) for img in part[:]["image"]])
    return to_tensors(images, np.asarray(part[:]["label"]))


def load_test(source: str, data_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000-image test set (centralized evaluation)."""
    if use_local(source, data_dir):
        return to_tensors(*load_split("test", data_dir))
    from datasets import load_dataset

    test = load_dataset(HUB_DATASET, split="test")
    images = np.stack([np.asarray(img, dtype=np.uint8) for img in test[:]["image"]])
    return to_tensors(images, np.asarray(test[:]["label"]))


def train(
    net: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> float:
    """Local SGD; returns the mean training loss of the last epoch."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    mean_loss = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        mean_loss = total / max(batches, 1)
    return mean_loss


def evaluate(net: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) on (x, y)."""
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[i : i + 1000]) for i in range(0, len(x), 1000)])
        loss = float(nn.functional.cross_entropy(logits, y))
        accuracy = float((logits.argmax(1) == y).float().mean())
    return loss, accuracy


# ----------------------------------------------------- Proof-of-Training scoring
SCORE_EXAMPLES = 1000
SCORE_DATA_DIR = "/usr/share/datasets/fashion-mnist"


@cache
def _validation(data_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A validator's own labelled data (for the demo: the test set's last 1,000)."""
    x, y = load_test("auto", data_dir)
    return x[-SCORE_EXAMPLES:], y[-SCORE_EXAMPLES:]


_references: dict[bytes, np.ndarray] = {}


def _flat(arrays: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in arrays.values()])


def score(base: dict[str, np.ndarray], returned: dict[str, np.ndarray]) -> float:
    """FLTrust's trust score: the cosine of an update with one trained on own data.

    Validators run it (``pot-score-fn = "quickstart_pytorch.task:score"``): the
    reference update is one local epoch from ``base`` on the validator's data
    (``$POT_SCORE_DATA_DIR``), trained once per base model. An update that
    works against it (a sign flip, flipped labels) scores below zero.
    """
    key = _flat(base).tobytes()
    if key not in _references:
        x, y = _validation(os.environ.get("POT_SCORE_DATA_DIR", SCORE_DATA_DIR))
        net = Net()
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in base.items()})
        train(net, x, y, epochs=1, batch_size=32, lr=0.05, seed=0)
        trained = {k: v.detach().numpy() for k, v in net.state_dict().items()}
        _references.clear()  # one base model per round
        _references[key] = _flat(trained) - _flat(base)
    reference = _references[key]
    update = _flat(returned) - _flat(base)
    norms = float(np.linalg.norm(update) * np.linalg.norm(reference))
    return float(update @ reference / norms) if norms > 0 else 0.0
