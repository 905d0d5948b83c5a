"""PBFT core throughput and latency over the in-memory transport, real signatures.

One process runs every replica, so wall time per decision is the *serial* work of
the whole committee (every replica verifying every vote, encoding its durable state
after every step); on separate hosts each replica does roughly 1/n of it in
parallel. Two modes per committee size:

* latency: one closed-loop client, one request outstanding at a time;
* throughput: several closed-loop clients, the primary batches what waits.

Usage::

    python benchmarks/consensus.py [--sizes 4,7,16] [--requests 200] [--out FILE]

Prints one summary line and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pot_flower.consensus.memory import MemoryDriver
from pot_flower.sim.simulator import percentile


def measure(
    n: int, clients: int, requests: int, persist: bool, relay: bool = False
) -> dict[str, float]:
    ids = [f"client-{i}" for i in range(clients)]
    committee = MemoryDriver(
        n,
        clients=ids,
        persist=persist,
        checkpoint_interval=32,
        window=128,
        max_batch=32,
        max_in_flight=2,
        relay_votes=relay,
    )
    started: dict[str, float] = {}
    done = {c: 0 for c in ids}
    latencies: list[float] = []
    submitted = 0
    t0 = time.perf_counter()
    while sum(done.values()) < requests:
        for c in ids:
            if not committee.clients[c].busy and submitted < requests:
                started[c] = time.perf_counter()
                committee.submit(c, b"op-%d" % submitted)
                submitted += 1
        committee.run(max_messages=50)
        for c in ids:
            if len(committee.completed[c]) > done[c]:
                done[c] = len(committee.completed[c])
                latencies.append((time.perf_counter() - started[c]) * 1000)
    elapsed = time.perf_counter() - t0
    decisions = committee.replicas[0].last_executed
    return {
        "validators": n,
        "votes": "relay" if relay else "broadcast",
        "clients": clients,
        "requests": requests,
        "persist": persist,
        "decisions": decisions,
        "decisions_per_s": round(decisions / elapsed, 2),
        "requests_per_s": round(requests / elapsed, 2),
        "latency_p50_ms": round(percentile(latencies, 50), 3),
        "latency_p99_ms": round(percentile(latencies, 99), 3),
        "latency_mean_ms": round(statistics.fmean(latencies), 3),
        "messages": committee.delivered,
        "elapsed_s": round(elapsed, 3),
    }


def plot(report: dict[str, Any], path: Path) -> None:
    """Decisions per second and median latency against committee size, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, latency) = plt.subplots(1, 2, figsize=(10, 3.6))
    series: dict[str, list[dict[str, Any]]] = {}
    for row in report["rows"]:
        series.setdefault(f"{row['votes']}, {row['clients']} client(s)", []).append(row)
    for label, rows in sorted(series.items()):
        sizes = [r["validators"] for r in rows]
        rate.plot(sizes, [r["decisions_per_s"] for r in rows], marker="o", label=label)
        latency.plot(
            sizes, [r["latency_p50_ms"] for r in rows], marker="o", label=label
        )
    rate.set_ylabel("decisions / s")
    latency.set_ylabel("median latency (ms)")
    for ax in (rate, latency):
        ax.set_xlabel("validators")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("PBFT core, in memory, Ed25519")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="4,7,16")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8, help="throughput mode")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/consensus.json")
    )
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for relay in (False, True):
            for clients in (1, args.clients):
                rows.append(measure(n, clients, args.requests, True, relay))
    report = {
        "benchmark": "consensus",
        "transport": "in-memory, one process runs every replica",
        "signatures": "Ed25519 (libsodium via PyNaCl)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out.with_suffix(".png"))
    for row in rows:
        print(
            f"n={row['validators']:>2} {row['votes']:>9} clients={row['clients']}: "
            f"{row['decisions_per_s']:>7} decisions/s {row['requests_per_s']:>7} req/s "
            f"p50 {row['latency_p50_ms']} ms p99 {row['latency_p99_ms']} ms",
            file=sys.stderr,
        )
    summary = " ".join(
        f"n={r['validators']}/{r['votes']}/c={r['clients']}:{r['decisions_per_s']}dps"
        f",p50={r['latency_p50_ms']}ms,p99={r['latency_p99_ms']}ms"
        for r in rows
    )
    print(f"consensus {summary} -> {args.out}")


if __name__ == "__main__":
    main()
