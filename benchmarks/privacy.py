"""Central DP: the committee's DP-FedAvg against Flower's server-side DP wrapper.

The in-process federation of ``benchmarks/robustness.py`` (Fashion-MNIST, the MLP,
Dirichlet partitions), with many small miners: every miner takes part every round
(sampling rate 1, so fixed-size and Poisson sampling coincide and both mechanisms
get the same analysis), updates are clipped to C and the noised mean has noise
sigma * C / n per coordinate in both:

- ``pot``: the committee's round execution on signed submissions, with
  ``pot-dp = "central"`` (exact clipping, the lattice, discrete Gaussian noise from
  the noise key, epsilon from the ledger's own accountant);
- ``flwr``: Flower's ``DifferentialPrivacyServerSideFixedClipping`` around
  ``FedAvg`` (equal weights, as its accounted path requires), Gaussian noise from
  numpy, epsilon from Flower's RDP accountant (dp-accounting) for the same events.

Same partitions, initial model and training seeds. Also times the committee's
round with and without DP on the same batch. Prints one line per run; writes JSON
and, with ``--plot``, accuracy per round.

    python benchmarks/privacy.py --miners 200 --rounds 15 --noise 0.5,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from progress import steps
from robustness import (
    Arrays,
    FlowerRule,
    PoTRule,
    Reply,
    Rule,
    Task,
    dirichlet,
    get_arrays,
    load,
    make_model,
    set_arrays,
)

from pot_flower.protocol.privacy.accountant import spent
from pot_flower.protocol.privacy.config import privacy_settings
from pot_flower.protocol.privacy.mechanism import round_noise

MOMENTUM: float | None = None
"""PoT's server momentum (--momentum; None: the default preset's 0.4)."""


def pot_rule(
    model: Arrays,
    miners: int,
    sigma: float | None,
    clip: float,
    adaptive: bool = False,
) -> PoTRule:
    """The committee's execution, of a DP chain unless ``sigma`` is None."""
    privacy = (
        privacy_settings(
            dp="central",
            noise_multiplier=sigma,
            clip_norm=clip,
            expected_participants=miners,
            adaptive_clipping=adaptive,
        )
        if sigma is not None
        else None
    )
    # The mean without near-copy detection: what central DP composes with.
    settings: dict[str, object] = {"copy_tolerance": 0.0}
    if MOMENTUM is not None:
        settings["server_momentum"] = MOMENTUM
    rule = PoTRule("dp", settings, 0.0, privacy=privacy)
    rule.start(model, miners, 0)
    return rule


def flower_rule(
    miners: int, sigma: float, clip: float, seed: int, adaptive: bool = False
) -> FlowerRule:
    """Flower's server-side fixed- or adaptive-clipping DP wrapper around FedAvg."""
    import logging

    from flwr.common.logger import FLOWER_LOGGER
    from flwr.serverapp.strategy import (
        DifferentialPrivacyServerSideAdaptiveClipping,
        DifferentialPrivacyServerSideFixedClipping,
        FedAvg,
    )

    FLOWER_LOGGER.setLevel(logging.WARNING)
    rule = FlowerRule(
        "DP",
        lambda n, f: (
            DifferentialPrivacyServerSideAdaptiveClipping(
                FedAvg(),
                noise_multiplier=sigma,
                num_sampled_clients=n,
                initial_clipping_norm=clip,
            )
            if adaptive
            else DifferentialPrivacyServerSideFixedClipping(
                FedAvg(),
                noise_multiplier=sigma,
                clipping_norm=clip,
                num_sampled_clients=n,
            )
        ),
    )
    rule.start({}, miners, 0)
    np.random.seed(seed)  # Flower's noise comes from numpy's global generator
    return rule


def flower_epsilon(sigma: float, miners: int, rounds: int, delta: float) -> float:
    """Flower's own RDP accountant for the same releases (no amplification)."""
    from flwr.supercore.privacy_accounting import (
        GaussianPrivacyEvent,
        NeighboringRelation,
        PrivacyConfig,
        SamplingMethod,
    )
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=delta,
            population_size=miners,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )
    accountant.compose(
        GaussianPrivacyEvent(
            noise_multiplier=sigma, sample_size=miners, population_size=miners
        ),
        count=rounds,
    )
    return float(accountant.get_epsilon(delta))


def local_updates(task: Task, model: Arrays, round_: int, seed: int) -> list[Arrays]:
    net = make_model(seed, task.hidden)
    out = []
    for m in range(len(task.parts)):
        set_arrays(net, model)
        task.train(net, m, seed=seed * 100_003 + round_ * 1009 + m, flip=False)
        out.append(get_arrays(net))
    return out


def current_clip(rule: Rule) -> float | None:
    """The clip norm an adaptive rule will use next (None if it is fixed)."""
    state = getattr(rule, "state", None)
    if state is not None and state.dp_clip_units is not None:
        return float(state.dp_clip_units / 2**20)
    strategy = getattr(rule, "strategy", None)
    return getattr(strategy, "clipping_norm", None)


def run(
    task: Task,
    rule: str,
    sigma: float | None,
    clip: float,
    rounds: int,
    seed: int,
    on_round: Callable[[], None] = lambda: None,
) -> dict[str, object]:
    model = get_arrays(make_model(seed, task.hidden))
    miners = len(task.parts)
    adaptive = rule.endswith("-adaptive")
    chosen: Rule = (
        flower_rule(miners, sigma, clip, seed, adaptive)
        if rule.startswith("flwr") and sigma is not None
        else pot_rule(model, miners, sigma, clip, adaptive)
    )
    net = make_model(seed, task.hidden)
    accuracy, norms, clips = [], [], []
    started = time.perf_counter()
    for r in range(rounds):
        returned = local_updates(task, model, r, seed)
        norms.append(median_norm(model, returned))
        clips.append(current_clip(chosen))
        replies = [Reply(m, arrays, 1) for m, arrays in enumerate(returned)]
        model = chosen.round(model, replies, set())
        set_arrays(net, model)
        accuracy.append(task.accuracy(net))
        on_round()
    epsilon = None
    if sigma is not None:
        epsilon = (
            flower_epsilon(sigma, miners, rounds, 1e-5)
            if rule.startswith("flwr")
            else spent(chosen.state.params.privacy, rounds).epsilon  # type: ignore[attr-defined]
        )
    return {
        "rule": rule if sigma is not None else "no-dp",
        "noise_multiplier": sigma,
        "accuracy": accuracy,
        "final_accuracy": accuracy[-1],
        "epsilon": epsilon,
        "median_update_norm": statistics.median(norms),
        "median_update_norms": norms,
        "clip_norms": clips if adaptive else None,
        "seconds": time.perf_counter() - started,
    }


def median_norm(model: Arrays, returned: list[Arrays]) -> float:
    base = np.concatenate([a.ravel() for a in model.values()])
    return statistics.median(
        float(np.linalg.norm(np.concatenate([a.ravel() for a in u.values()]) - base))
        for u in returned
    )


def committee_overhead(
    task: Task, clip: float, seed: int, repeats: int
) -> dict[str, float]:
    """Committee seconds per round with and without DP, on the same updates."""
    model = get_arrays(make_model(seed, task.hidden))
    returned = local_updates(task, model, 0, seed)
    timings: dict[str, list[float]] = {"dp": [], "no-dp": []}
    replies = [Reply(m, arrays, 1) for m, arrays in enumerate(returned)]
    pot_rule(model, len(returned), 1.0, clip).round(model, replies, set())  # imports
    for _ in range(repeats):
        for name, sigma in (("no-dp", None), ("dp", 1.0)):
            round_noise.cache_clear()  # one validator's cost: it draws the noise
            committee = pot_rule(model, len(returned), sigma, clip)
            committee.round(model, replies, set())
            timings[name].append(committee.committee_seconds[-1])
    no_dp, dp = statistics.median(timings["no-dp"]), statistics.median(timings["dp"])
    params = sum(a.size for a in model.values())
    return {
        "miners": len(returned),
        "parameters": params,
        "committee_seconds_no_dp": no_dp,
        "committee_seconds_dp": dp,
        "dp_seconds": dp - no_dp,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--train-examples", type=int, default=60_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--clip", type=float, default=0.5)
    parser.add_argument("--noise", default="0.5,1,2")
    parser.add_argument("--seeds", default="1")
    parser.add_argument(
        "--momentum",
        type=float,
        default=None,
        help="PoT's server momentum (default: the default preset's 0.4)",
    )
    parser.add_argument(
        "--adaptive",
        default="",
        help="noise multipliers to run with adaptive clipping too (--clip: initial)",
    )
    parser.add_argument("--overhead-repeats", type=int, default=5)
    parser.add_argument("--json-out", default="benchmarks/results/privacy.json")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    global MOMENTUM
    MOMENTUM = args.momentum

    x, y = load("train")
    x_test, y_test = load("test")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(y))[: args.train_examples]
        xs, ys = x[order], y[order]
        parts = dirichlet(ys.numpy(), args.miners, args.alpha, seed)
        task = Task(
            xs,
            ys,
            x_test,
            y_test,
            xs[:0],
            ys[:0],
            parts,
            args.hidden,
            1,
            args.lr,
            args.batch,
        )
        plan: list[tuple[str, float | None]] = [("pot", None)]
        for sigma in (float(s) for s in args.noise.split(",") if s):
            plan += [("pot", sigma), ("flwr", sigma)]
        for sigma in (float(s) for s in args.adaptive.split(",") if s):
            plan += [("pot-adaptive", sigma), ("flwr-adaptive", sigma)]
        for rule, sigma in plan:
            with steps(f"seed {seed} {rule} sigma={sigma}", args.rounds) as advance:
                result = run(
                    task, rule, sigma, args.clip, args.rounds, seed, on_round=advance
                )
            result["seed"] = seed
            runs.append(result)
            print(
                f"seed {seed} {result['rule']:13s} sigma={sigma} final "
                f"{result['final_accuracy']:.4f} epsilon {result['epsilon']} "
                f"(median update norm {result['median_update_norm']:.3f}, "
                f"{result['seconds']:.0f} s)",
                flush=True,
            )
    overhead = committee_overhead(task, args.clip, seeds[-1], args.overhead_repeats)
    summary = []
    pairs = [("", float(s)) for s in args.noise.split(",") if s] + [
        ("-adaptive", float(s)) for s in args.adaptive.split(",") if s
    ]
    for suffix, sigma in pairs:
        pot = [
            r
            for r in runs
            if r["rule"] == f"pot{suffix}" and r["noise_multiplier"] == sigma
        ]
        flwr = [
            r
            for r in runs
            if r["rule"] == f"flwr{suffix}" and r["noise_multiplier"] == sigma
        ]
        ratios = [
            float(p["final_accuracy"]) / float(f["final_accuracy"])  # type: ignore[arg-type]
            for p, f in zip(pot, flwr, strict=True)
        ]
        summary.append(
            {
                "clipping": "adaptive" if suffix else "fixed",
                "noise_multiplier": sigma,
                "pot_accuracy": statistics.median(
                    float(p["final_accuracy"]) for p in pot
                ),  # type: ignore[arg-type]
                "flwr_accuracy": statistics.median(
                    float(f["final_accuracy"]) for f in flwr
                ),  # type: ignore[arg-type]
                "accuracy_ratio_median": statistics.median(ratios),
                "pot_epsilon": pot[0]["epsilon"],
                "flwr_epsilon": flwr[0]["epsilon"],
            }
        )
    out = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
        "summary": summary,
        "committee_overhead": overhead,
    }
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(runs, args.plot)
    for s in summary:
        print(
            f"{s['clipping']} sigma {s['noise_multiplier']}: pot "
            f"{s['pot_accuracy']:.4f} flwr {s['flwr_accuracy']:.4f} "
            f"ratio {s['accuracy_ratio_median']:.4f}; "
            f"epsilon pot {s['pot_epsilon']} flwr {s['flwr_epsilon']}"
        )
    print(json.dumps({"summary": summary, "committee_overhead": overhead}))
    return 0


def plot(runs: list[dict[str, object]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in runs:
        if r["seed"] != runs[0]["seed"]:
            continue
        sigma = r["noise_multiplier"]
        label = f"{r['rule']}" + (
            f" sigma={sigma} eps={r['epsilon']:.1f}" if sigma else ""
        )
        style = "--" if str(r["rule"]).startswith("flwr") else "-"
        ax.plot(range(1, len(r["accuracy"]) + 1), r["accuracy"], style, label=label)  # type: ignore[arg-type]
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
