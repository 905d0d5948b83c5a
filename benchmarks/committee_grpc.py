"""Commit latency of a committee of validator processes over gRPC on loopback.

For n = 4, 7, 16, votes broadcast and relayed through the primary: `pot committee
up`-style processes (real keys, SQLite records with synchronous=FULL, gRPC
streams), one coordinator submitting digest-sized requests one after the other;
latency = submit to f + 1 matching signed replies. Then, for n = 4, a round batch of
100 honest updates of 100k parameters through the RemoteCommittee (upload,
availability receipts, order, execute, votes, certificate).

    python benchmarks/committee_grpc.py [--requests 200] [--sizes 4,7,16] [--votes both]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pot_flower.committee.remote import RemoteCommittee
from pot_flower.encoding import encode
from pot_flower.ops.committee_file import load_committee, read_key
from pot_flower.ops.local import COORDINATOR, prepare, running
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.submission import build_submission
from pot_flower.transport.gateway import Gateway
from pot_flower.zk.signatures import SigningKey

ROOT = Path(__file__).resolve().parents[1]
ROUTINGS = {"broadcast": (False,), "relay": (True,), "both": (False, True)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(n: int, requests: int, work: Path, relay: bool) -> dict[str, float]:
    routing = "relay" if relay else "broadcast"
    path = prepare(n, work / f"n{n}-{routing}", tuning={"relay-votes": relay})
    with running(path):
        committee = load_committee(path)
        key = read_key(path.parent / f"{COORDINATOR}.key")
        client = Gateway(committee.config, COORDINATOR, key, committee.addresses)
        try:
            client.call(encode({"kind": "ping", "digest": b"warm-up"}), timeout=30)
            samples = []
            for i in range(requests):
                digest = hashlib.sha256(b"%d" % i).digest()
                started = time.perf_counter()
                client.call(encode({"kind": "ping", "digest": digest}), timeout=30)
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            client.close()
    return {
        "validators": n,
        "votes": routing,
        "requests": requests,
        "p50_ms": round(percentile(samples, 0.5), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
        "mean_ms": round(statistics.mean(samples), 2),
    }


def batch(n: int, updates: int, params: int, work: Path) -> dict[str, float]:
    path = prepare(n, work / f"batch-n{n}")
    with running(path):
        committee_file = load_committee(path)
        rng = np.random.default_rng(0)
        model = {"w": rng.standard_normal(params).astype(np.float32)}
        committee = RemoteCommittee(
            committee_file.config,
            committee_file.addresses,
            COORDINATOR,
            read_key(path.parent / f"{COORDINATOR}.key"),
            run=1,
            model=model,
            norm_bound_units=max_norm_units(100.0),
        )
        try:
            ticket = committee.ticket()
            refs, payloads = [], {}
            for i in range(updates):
                returned = {
                    "w": (model["w"] + 0.01 * rng.standard_normal(params)).astype(
                        np.float32
                    )
                }
                sub = build_submission(
                    SigningKey.from_seed(b"miner-%d" % i),
                    run=1,
                    round_=ticket.round,
                    node=i,
                    nonce=ticket.nonce,
                    received=model,
                    returned=returned,
                    num_examples=100,
                )
                digest = hashlib.sha256(sub.payload).digest()
                payloads[digest] = sub.payload
                refs.append(SubmissionRef(i, sub.envelope_bytes, sub.signature, digest))
            started = time.perf_counter()
            certified = committee.certify_round(refs, payloads)
            seconds = time.perf_counter() - started
            accepted = len(certified.body.accepted)
        finally:
            committee.close()
    return {
        "validators": n,
        "updates": updates,
        "parameters": params,
        "batch_mb": round(sum(len(p) for p in payloads.values()) / 1e6, 1),
        "certify_seconds": round(seconds, 2),
        "accepted": accepted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sizes", default="4,7,16")
    parser.add_argument(
        "--votes",
        choices=sorted(ROUTINGS),
        default="both",
        help="vote routing to measure: all-to-all, through the primary, or both",
    )
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument(
        "--json-out", type=Path, default=ROOT / "benchmarks/results/committee_grpc.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-grpc-") as tmp:
        work = Path(tmp)
        rows = []
        for n in [int(x) for x in args.sizes.split(",")]:
            requests = args.requests if n < 16 else max(50, args.requests // 4)
            for relay in ROUTINGS[args.votes]:
                rows.append(latency(n, requests, work, relay))
                print(json.dumps(rows[-1]), flush=True)
        big = batch(4, args.updates, args.params, work)
        print(json.dumps(big), flush=True)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"latency": rows, "batch": big}, indent=1))
    print(
        "; ".join(
            f"n={r['validators']} {r['votes']} p50 {r['p50_ms']} ms "
            f"p99 {r['p99_ms']} ms"
            for r in rows
        )
        + f"; batch of {big['updates']} x {big['parameters']} params: "
        + f"{big['certify_seconds']} s"
    )


if __name__ == "__main__":
    main()
