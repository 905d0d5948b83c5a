"""Plain Flower FedAvg vs PoTStrategy (embedded committee of 4), side by side.

The same quickstart app (small CNN, Fashion-MNIST, Dirichlet(0.5) partitions), the
same seeds, the same simulated clients: each strategy runs with `flwr run` against a
fresh local SuperLink. Round wall time = end of one round's centralized evaluation
to the start of the next one's (train + aggregation/certification); round 1 (Ray
start-up) is excluded from means.

    python benchmarks/strategy_vs_fedavg.py --nodes 100 --rounds 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pot_flower.ops.superlink import flwr_run, local_superlink

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "quickstart-pytorch"


def run_one(strategy: str, nodes: int, rounds: int, work: Path) -> dict[str, object]:
    out = work / f"{strategy}.json"
    config: dict[str, object] = {
        "strategy": strategy,
        "num-server-rounds": rounds,
        "metrics-out": str(out),
        "pot-ledger-dir": str(work / f"ledger-{strategy}"),
        "pot-keystore": str(work / "keys"),
    }
    started = time.perf_counter()
    with local_superlink(work / f"home-{strategy}") as env:
        proc = flwr_run(APP, env, run_config=config, num_supernodes=nodes)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"{strategy} run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    data = json.loads(out.read_text())
    timeline = data["timeline"]
    times = [
        timeline[i]["eval_start"] - timeline[i - 1]["eval_end"]
        for i in range(1, len(timeline))
    ]
    result: dict[str, object] = {
        "final_accuracy": timeline[-1]["accuracy"],
        "accuracy_by_round": [t["accuracy"] for t in timeline],
        "round_seconds": times,
        "mean_round_seconds_excl_first": statistics.mean(times[1:]),
        "median_round_seconds_excl_first": statistics.median(times[1:]),
        "wall_seconds": wall,
    }
    if data.get("pot_rounds"):
        committee = [r["committee_seconds"] for r in data["pot_rounds"]]
        result["committee_seconds"] = committee
        result["mean_committee_seconds_excl_first"] = statistics.mean(committee[1:])
        result["rejected_total"] = sum(r["rejected"] for r in data["pot_rounds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--json-out",
        type=Path,
        default=ROOT / "benchmarks/results/strategy_vs_fedavg.json",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-bench-") as tmp:
        work = Path(tmp)
        fedavg = run_one("fedavg", args.nodes, args.rounds, work)
        pot = run_one("pot", args.nodes, args.rounds, work)
    summary = {
        "nodes": args.nodes,
        "rounds": args.rounds,
        "fedavg": fedavg,
        "pot": pot,
        "accuracy_ratio": pot["final_accuracy"] / fedavg["final_accuracy"],  # type: ignore[operator]
        "round_time_ratio": pot["mean_round_seconds_excl_first"]  # type: ignore[operator]
        / fedavg["mean_round_seconds_excl_first"],
        "round_time_ratio_median": pot["median_round_seconds_excl_first"]  # type: ignore[operator]
        / fedavg["median_round_seconds_excl_first"],
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1))
    print(
        f"fedavg acc {fedavg['final_accuracy']:.4f} "
        f"pot acc {pot['final_accuracy']:.4f} "
        f"(ratio {summary['accuracy_ratio']:.4f}); round time fedavg "
        f"{fedavg['mean_round_seconds_excl_first']:.2f}s pot "
        f"{pot['mean_round_seconds_excl_first']:.2f}s (ratio "
        f"{summary['round_time_ratio']:.3f}; committee "
        f"{pot['mean_committee_seconds_excl_first']:.2f}s/round)"
    )


if __name__ == "__main__":
    main()
