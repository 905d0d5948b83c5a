"""The quickstart's score function: FLTrust's trust score on a validator's own data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

QUICKSTART = Path(__file__).resolve().parents[2] / "examples/quickstart-pytorch"
DATA = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DATA.exists(), reason="dataset-fashion-mnist not installed")
def test_training_scores_above_zero_and_its_sign_flip_below() -> None:
    sys.path.insert(0, str(QUICKSTART))
    try:
        from quickstart_pytorch.task import Net, load_split, score, to_tensors, train
    finally:
        sys.path.remove(str(QUICKSTART))
    torch.manual_seed(0)
    net = Net()
    base = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    images, labels = load_split("train", str(DATA))
    x, y = to_tensors(images[:1000], labels[:1000])
    train(net, x, y, epochs=1, batch_size=32, lr=0.05, seed=1)
    honest = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    flipped = {k: base[k] - (honest[k] - base[k]) for k in base}
    assert score(base, honest) > 0.3
    assert score(base, flipped) < -0.3
    assert score(base, base) == 0.0
    assert np.isfinite(score(base, honest))
