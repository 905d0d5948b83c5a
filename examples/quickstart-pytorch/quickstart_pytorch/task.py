"""Model, data and training loop (plain PyTorch; nothing here knows about PoT)."""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import torch
from torch import nn

from pot_flower import datasets
from pot_flower.datasets import load_split

__all__ = [
    "Net",
    "evaluate",
    "load_partition",
    "load_split",
    "load_test",
    "score",
    "to_tensors",
    "train",
]


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


def to_tensors(
    images: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized float images (N, 1, 28, 28) and int64 labels."""
    x = torch.from_numpy(datasets.normalized(images)).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


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
    return to_tensors(
        *datasets.load_partition(
            partition_id,
            num_partitions,
            alpha=alpha,
            seed=seed,
            source=source,
            data_dir=data_dir,
        )
    )


def load_test(source: str, data_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000-image test set (centralized evaluation)."""
    return to_tensors(*datasets.load_test(source, data_dir))


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
