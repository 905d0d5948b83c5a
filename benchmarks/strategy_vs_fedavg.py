"""Plain Flower FedAvg vs PoTStrategy (embedded committee of 4), side by side.

The same quickstart app (small CNN, Fashion-MNIST, Dirichlet(0.5) partitions), the
same seeds, the same simulated clients: each strategy runs with `flwr run` against a
fresh local SuperLink. Round wall time = end of one round's centralized evaluation
to the start of the next one's (train + aggregation/certification); round 1 (Ray
start-up) is excluded from means.

    python benchmarks/strategy_vs_fedavg.py --nodes 100 --rounds 20

At scale: ``--registered 10000 --nodes 1000`` simulates 10,000 SuperNodes and samples
1,000 a round (``fraction-train`` 0.1) for both strategies; PoT's miners are all
registered in genesis (``pot keys miners`` makes partition-0..9999's keys and the
allow-list; ``pot-miner-name = "partition-id"``), or register as they come with
``--registration open``. ``--data-partitions 1000``: node i trains on Dirichlet
share i mod 1000 (60,000 images do not make 10,000 shares of ten). Peak memory is
sampled every 0.2 s: the summed RSS of every process the run starts (SuperLink,
simulation, Ray) and the largest single one (the simulation process, which holds
the ServerApp and, for PoT, the embedded committee). Each round's train exchange
(Flower delivering the messages and the ClientApps training, ``pot_mod`` included)
is timed apart from the rest, the ServerApp's own work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from progress import steps

from pot_flower.ops.superlink import flwr_run, local_superlink

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "quickstart-pytorch"


@contextmanager
def peak_memory() -> Iterator[dict[str, int]]:
    """Peak summed and largest RSS of this process's descendants while inside."""
    import psutil

    peaks = {"tree_rss": 0, "largest_rss": 0}
    stop = threading.Event()
    me = psutil.Process()

    def sample() -> None:
        while not stop.wait(0.2):
            rss = []
            for child in me.children(recursive=True):
                try:
                    rss.append(child.memory_info().rss)
                except psutil.Error:
                    continue
            peaks["tree_rss"] = max(peaks["tree_rss"], sum(rss))
            peaks["largest_rss"] = max(peaks["largest_rss"], max(rss, default=0))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


def allow_list(work: Path, registered: int) -> dict[str, object]:
    """Keys for partition-0..N-1 and their allow-list (``pot keys miners``)."""
    keys, listed = work / "keys", work / "allowed.txt"
    command = [sys.executable, "-m", "pot_flower", "keys", "miners", str(keys)]
    subprocess.run(
        [*command, "--count", str(registered), "--allow-list", str(listed)],
        check=True,
        capture_output=True,
    )
    return {
        "pot-keystore": str(keys),
        "pot-miner-name": "partition-id",
        "pot-registration": "allow-list",
        "pot-allowed-miners": str(listed),
    }


def run_one(
    strategy: str,
    nodes: int,
    rounds: int,
    work: Path,
    extra: dict[str, object] | None = None,
    registered: int | None = None,
) -> dict[str, object]:
    out = work / f"{strategy}.json"
    supernodes = registered or nodes
    config: dict[str, object] = {
        "strategy": strategy,
        "num-server-rounds": rounds,
        "metrics-out": str(out),
        "pot-ledger-dir": str(work / f"ledger-{strategy}"),
        "pot-keystore": str(work / "keys"),
        "fraction-train": nodes / supernodes,
        **(extra or {}),
    }
    started = time.perf_counter()
    with local_superlink(work / f"home-{strategy}") as env, peak_memory() as peaks:
        proc = flwr_run(APP, env, run_config=config, num_supernodes=supernodes)
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
    # Flower's delivery and the ClientApps' training (pot_mod's signing included):
    # what is left of a round is the ServerApp's own work.
    exchange = [t.get("exchange_seconds", 0.0) for t in timeline[1:]]
    result: dict[str, object] = {
        "exchange_seconds": exchange,
        "median_exchange_seconds_excl_first": statistics.median(exchange[1:]),
        "final_accuracy": timeline[-1]["accuracy"],
        "accuracy_by_round": [t["accuracy"] for t in timeline],
        "round_seconds": times,
        "mean_round_seconds_excl_first": statistics.mean(times[1:]),
        "median_round_seconds_excl_first": statistics.median(times[1:]),
        "wall_seconds": wall,
        "peak_tree_rss_mb": peaks["tree_rss"] / 2**20,
        "peak_largest_process_rss_mb": peaks["largest_rss"] / 2**20,
    }
    if data.get("pot_rounds"):
        committee = [r["committee_seconds"] for r in data["pot_rounds"]]
        result["committee_seconds"] = committee
        result["mean_committee_seconds_excl_first"] = statistics.mean(committee[1:])
        result["rejected_total"] = sum(r["rejected"] for r in data["pot_rounds"])
    return result


def pair_ratio(fedavg: dict[str, object], pot: dict[str, object]) -> float:
    return (
        pot["median_round_seconds_excl_first"]
        / fedavg[  # type: ignore[operator]
            "median_round_seconds_excl_first"
        ]
    )


def plot(summary: dict[str, Any], path: Path) -> None:
    """Accuracy and seconds per round, FedAvg against PoT (the first pair), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fedavg, pot = summary["fedavg"], summary["pot"]
    fig, (acc, secs) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, run in (("FedAvg", fedavg), ("PoT", pot)):
        accuracy = run["accuracy_by_round"]
        acc.plot(range(len(accuracy)), accuracy, marker="o", label=name)
        seconds = run["round_seconds"]
        secs.plot(range(1, len(seconds) + 1), seconds, marker="o", label=name)
    committee = pot.get("committee_seconds")
    if committee:
        secs.plot(range(1, len(committee) + 1), committee, "--", label="PoT: committee")
    acc.set_title("test accuracy")
    secs.set_title(f"seconds per round ({summary['nodes']} nodes)")
    for ax in (acc, secs):
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100, help="miners per round")
    parser.add_argument(
        "--registered",
        type=int,
        default=None,
        help="SuperNodes simulated (default: --nodes); --nodes of them train a round",
    )
    parser.add_argument(
        "--registration",
        choices=("allow-list", "open"),
        default=None,
        help="with --registered: every miner in genesis (allow-list, default) or "
        "registering on first submission (open)",
    )
    parser.add_argument(
        "--data-partitions",
        type=int,
        default=0,
        help="Dirichlet shares (0: one per SuperNode); node i trains on i mod this",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="pairs of runs, in ABBA order (FedAvg, PoT, PoT, FedAvg, ...) so that "
        "drift in the machine's load falls on both alike",
    )
    parser.add_argument(
        "--pot-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run-config for the PoT runs only, e.g. pot-commitment=pedersen",
    )
    parser.add_argument(
        "--json-out",
        type=Path,
        default=ROOT / "benchmarks/results/strategy_vs_fedavg.json",
    )
    args = parser.parse_args()
    extra: dict[str, object] = dict(item.split("=", 1) for item in args.pot_config)
    both: dict[str, object] = {"data-partitions": args.data_partitions}
    pairs: list[tuple[dict[str, object], dict[str, object]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="pot-bench-") as tmp,
        steps("flwr runs", 2 * args.repeats) as advance,
    ):
        for k in range(args.repeats):
            order = ("fedavg", "pot") if k % 2 == 0 else ("pot", "fedavg")
            runs = {}
            for name in order:
                work = Path(tmp) / f"{k}-{name}"
                work.mkdir()
                config = {**both, **(extra if name == "pot" else {})}
                if name == "pot" and args.registered and args.registration != "open":
                    config.update(allow_list(work, args.registered))
                runs[name] = run_one(
                    name, args.nodes, args.rounds, work, config, args.registered
                )
                advance()
            pairs.append((runs["fedavg"], runs["pot"]))
    fedavg, pot = pairs[0]
    ratios = [pair_ratio(f, p) for f, p in pairs]
    summary = {
        "nodes": args.nodes,
        "registered": args.registered or args.nodes,
        "registration": args.registration
        or ("allow-list" if args.registered else "open"),
        "data_partitions": args.data_partitions,
        "rounds": args.rounds,
        "pot_config": extra,
        "fedavg": fedavg,
        "pot": pot,
        "accuracy_ratio": pot["final_accuracy"] / fedavg["final_accuracy"],  # type: ignore[operator]
        "round_time_ratio": pot["mean_round_seconds_excl_first"]  # type: ignore[operator]
        / fedavg["mean_round_seconds_excl_first"],
        "round_time_ratio_median": pair_ratio(fedavg, pot),
        "pairs": [{"fedavg": f, "pot": p} for f, p in pairs[1:]],
        "round_time_ratio_median_per_pair": ratios,
        "round_time_ratio_median_of_pairs": statistics.median(ratios),
        "memory_ratio_tree": pot["peak_tree_rss_mb"] / fedavg["peak_tree_rss_mb"],  # type: ignore[operator]
        "memory_ratio_largest_process": pot["peak_largest_process_rss_mb"]  # type: ignore[operator]
        / fedavg["peak_largest_process_rss_mb"],
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1))
    plot(summary, args.json_out.with_suffix(".png"))
    for (f, p), ratio in zip(pairs, ratios, strict=True):
        print(
            f"fedavg acc {f['final_accuracy']:.4f} pot acc {p['final_accuracy']:.4f}; "
            f"median round fedavg {f['median_round_seconds_excl_first']:.2f}s pot "
            f"{p['median_round_seconds_excl_first']:.2f}s (ratio {ratio:.3f}; "
            f"committee {p['mean_committee_seconds_excl_first']:.2f}s/round; "
            f"train exchange fedavg {f['median_exchange_seconds_excl_first']:.2f}s "
            f"pot {p['median_exchange_seconds_excl_first']:.2f}s); "
            f"peak RSS fedavg {f['peak_tree_rss_mb']:.0f} MB "
            f"({f['peak_largest_process_rss_mb']:.0f} largest) pot "
            f"{p['peak_tree_rss_mb']:.0f} MB ({p['peak_largest_process_rss_mb']:.0f})"
        )
    print(f"median of per-pair ratios: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
