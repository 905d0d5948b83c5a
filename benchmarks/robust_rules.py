"""Validator time per round of every robust rule, on synthetic fixed-point updates.

Each rule runs as round execution runs it (the robust stage on an ``(n, d)`` int64
matrix of updates), single-threaded BLAS, median of ``--repeat`` runs. The O(n**2)
rules (Krum, Multi-Krum, NNM, the copy check) are also timed at ``--large`` miners.

    python benchmarks/robust_rules.py --miners 100 --params 100000 --large 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from pot_flower.protocol.robust import (
    Aggregator,
    PreAggregator,
    RobustConfig,
    robust_aggregate,
)
from pot_flower.protocol.robust.rules import copy_groups

QUADRATIC = {"krum", "multi-krum", "nnm", "copy-check"}


def updates(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Honest-looking updates: norm about 2**20 units (1.0), spread per miner."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(d)
    rows = common + rng.standard_normal((n, d))
    rows *= (1 << 20) / np.sqrt(d)
    return np.rint(rows).astype(np.int64)


def cases() -> dict[str, RobustConfig]:
    f = 300_000
    out = {a.value: RobustConfig(aggregator=a, byzantine_ppm=f) for a in Aggregator}
    for p in PreAggregator:
        out[f"{p.value}+mean"] = RobustConfig(
            pre_aggregators=(p,), byzantine_ppm=f, clip_norm_units=1 << 20
        )
    out["recommended"] = RobustConfig(
        aggregator=Aggregator.TRIMMED_MEAN,
        pre_aggregators=(PreAggregator.ADAPTIVE_CLIP, PreAggregator.NNM),
        byzantine_ppm=f,
    )
    return out


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--miners", type=int, default=100)
    ap.add_argument("--params", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--json-out", type=Path, default=Path("benchmarks/results/robust_rules.json")
    )
    args = ap.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    for n in sorted({args.miners, args.large}):
        rows = updates(n, args.params)
        weights = [100] * n
        commitments = [i.to_bytes(4, "big") for i in range(n)]
        for name, config in {**cases(), "copy-check": RobustConfig()}.items():
            quadratic = name.split("+")[0] in QUADRATIC
            if n == args.large and n != args.miners and not quadratic:
                continue
            if name == "copy-check":
                seconds = timed(
                    lambda r=rows, c=commitments: copy_groups(r, c, 100_000),
                    args.repeat,
                )
            else:
                seconds = timed(
                    lambda c=config, r=rows, w=weights: robust_aggregate(
                        c, r, w, seed=b"s", previous=None
                    ),
                    args.repeat,
                )
            results.setdefault(name, {})[str(n)] = seconds
            print(f"{name:26s} n={n:5d} d={args.params}: {seconds:8.3f} s", flush=True)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(
        json.dumps({"params": args.params, "seconds": results}, indent=1)
    )
    plot({"params": args.params, "seconds": results}, args.json_out.with_suffix(".png"))
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    """Validator seconds per rule against miners per round (log-log), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # 13 rules: no repeats
    for name, by_n in out["seconds"].items():
        sizes = sorted(by_n, key=int)
        ax.loglog(
            [int(n) for n in sizes], [by_n[n] for n in sizes], marker="o", label=name
        )
    ax.set_xlabel("miners per round")
    ax.set_ylabel("seconds per round (one validator)")
    ax.set_title(f"Robust rules at {out['params']:,} parameters")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
