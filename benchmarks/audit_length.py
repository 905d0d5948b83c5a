"""How long ``pot ledger verify`` takes on a long ledger of the quickstart model.

An embedded committee of 4 certifies ``--rounds`` rounds of the quickstart CNN
(37,610 parameters; ``--miners`` honest miners a round, default robust preset),
then ``pot ledger verify`` runs on validator 0's ledger as a user runs it (a fresh
process, Python's bytecode cache on; median of ``--repeats``): ``--full`` (every
block recomputed) and again once a first verification left its checkpoint
(blocks re-hashed and matched, models' identities compared; see
:mod:`pot_flower.audit.checkpoint`).

    python benchmarks/audit_length.py --rounds 1000 --miners 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from progress import steps

from pot_flower.committee.base import Ticket
from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import Arrays
from pot_flower.protocol.robust.config import PRESETS
from pot_flower.protocol.submission import build_submission
from pot_flower.zk.signatures import SigningKey

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {  # the quickstart CNN's state dict (examples/quickstart-pytorch)
    "conv1.weight": (8, 1, 5, 5),
    "conv1.bias": (8,),
    "conv2.weight": (16, 8, 5, 5),
    "conv2.bias": (16,),
    "fc1.weight": (128, 256),
    "fc1.bias": (128,),
    "fc2.weight": (10, 128),
    "fc2.bias": (10,),
}


def honest_round(
    ticket: Ticket,
    model: Arrays,
    miners: list[tuple[int, SigningKey]],
    shared: Arrays,
    rng: np.random.Generator,
) -> tuple[list[SubmissionRef], dict[bytes, bytes]]:
    """Signed updates of ``miners`` (index, key; node = index + 1) for ``ticket``.

    A step all miners share plus their own noise, as SGD steps on one task are.
    """
    refs, payloads = [], {}
    for i, key in miners:
        step = {
            k: 0.005 * (shared[k] + rng.standard_normal(v.shape)).astype(np.float32)
            for k, v in model.items()
        }
        sub = build_submission(
            key,
            run=1,
            round_=ticket.round,
            node=1 + i,
            nonce=ticket.nonce,
            received=model,
            returned={k: v + step[k] for k, v in model.items()},
            num_examples=100,
        )
        digest = hashlib.sha256(sub.payload).digest()
        payloads[digest] = sub.payload
        refs.append(SubmissionRef(1 + i, sub.envelope_bytes, sub.signature, digest))
    return refs, payloads


def build_ledger(directory: Path, rounds: int, miners: int, seed: int) -> Path:
    """``rounds`` certified rounds; validator 0's ledger directory."""
    rng = np.random.default_rng(seed)
    model: Arrays = {
        k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in SHAPES.items()
    }
    keys = [SigningKey.from_seed(b"audit-miner-%d" % i) for i in range(miners)]
    committee = EmbeddedCommittee(
        directory,
        run=1,
        model=model,
        norm_bound_units=max_norm_units(100.0),
        robust=PRESETS["default"],
    )
    shared = {
        k: rng.standard_normal(v.shape).astype(np.float32) for k, v in model.items()
    }
    with steps("rounds certified", total=rounds) as advance:
        for _ in range(rounds):
            ticket = committee.ticket()
            miners = list(enumerate(keys))
            refs, payloads = honest_round(ticket, model, miners, shared, rng)
            model = committee.certify_round(refs, payloads).model
            advance()
    committee.close()
    return directory / "validator-0"


def verify_seconds(
    ledger: Path, extra: list[str], repeats: int, cache: Path
) -> list[float]:
    """Wall seconds of ``pot ledger verify`` (a fresh process each time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["POT_AUDIT_CACHE"] = str(cache)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pot_flower",
                "ledger",
                "verify",
                str(ledger),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout + proc.stderr)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--miners", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ledger", type=Path, help="reuse a ledger built before")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/audit_length.json"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pot-audit-length-"))
    started = time.perf_counter()
    ledger = args.ledger or build_ledger(
        work / "committee", args.rounds, args.miners, args.seed
    )
    built = time.perf_counter() - started
    cache = work / "verified"
    full = verify_seconds(ledger, ["--full"], args.repeats, cache)
    again = verify_seconds(ledger, [], args.repeats, cache)
    result = {
        "rounds": args.rounds,
        "miners_per_round": args.miners,
        "build_seconds": None if args.ledger else built,
        "ledger": "reused" if args.ledger else "built",
        "ledger_bytes": sum(f.stat().st_size for f in ledger.rglob("*") if f.is_file()),
        "full_verify_seconds": full,
        "full_verify_median_seconds": statistics.median(full),
        "checkpoint_verify_seconds": again,
        "checkpoint_verify_median_seconds": statistics.median(again),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
