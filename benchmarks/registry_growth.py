"""Open registration growing to 10,000 miners: the committee's rounds as it grows.

An embedded committee of 4 certifies ``--rounds`` rounds of the quickstart CNN
(37,610 parameters, ``default`` robust preset) under open registration; each round
``--miners`` miners submit, half of them new (they register in that block) and half
drawn from those already registered, until ``--registered`` keys are on the chain.
Reported per round: the committee's seconds, the registry's size, and the process's
peak RSS; then ``pot ledger verify`` of validator 0's ledger.

    python benchmarks/registry_growth.py --registered 10000 --miners 1000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from audit_length import SHAPES, honest_round
from progress import steps

from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import Arrays
from pot_flower.protocol.robust.config import PRESETS
from pot_flower.zk.signatures import SigningKey

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registered", type=int, default=10_000)
    parser.add_argument("--miners", type=int, default=1000, help="miners a round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/registry_growth.json"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)
    model: Arrays = {
        k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in SHAPES.items()
    }
    keys = [
        SigningKey.from_seed(b"registry-miner-%d" % i) for i in range(args.registered)
    ]
    work = Path(tempfile.mkdtemp(prefix="pot-registry-"))
    committee = EmbeddedCommittee(
        work / "committee",
        run=1,
        model=model,
        norm_bound_units=max_norm_units(100.0),
        robust=PRESETS["default"],
    )
    shared = {
        k: rng.standard_normal(v.shape).astype(np.float32) for k, v in model.items()
    }
    registered: list[int] = []
    rounds = []
    fresh = args.miners // 2 or 1
    with steps("rounds", total=-(-args.registered // fresh)) as advance:
        while len(registered) < args.registered:
            new = list(
                range(len(registered), min(len(registered) + fresh, args.registered))
            )
            old = pick.sample(registered, min(args.miners - len(new), len(registered)))
            ticket = committee.ticket()
            miners = [(i, keys[i]) for i in sorted(new + old)]
            refs, payloads = honest_round(ticket, model, miners, shared, rng)
            started = time.perf_counter()
            certified = committee.certify_round(refs, payloads)
            seconds = time.perf_counter() - started
            model = certified.model
            registered += new
            rounds.append(
                {
                    "round": ticket.round,
                    "submissions": len(refs),
                    "accepted": len(certified.body.accepted),
                    "registered_in_block": len(certified.body.registrations),
                    "registry": len(committee.validators[0].app.state.miners),
                    "committee_seconds": seconds,
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    / 1024,
                }
            )
            advance()
    committee.close()
    started = time.perf_counter()
    ledger = work / "committee" / "validator-0"
    verify = subprocess.run(
        [sys.executable, "-m", "pot_flower", "ledger", "verify", "--full", str(ledger)],
        capture_output=True,
        text=True,
    )
    result = {
        "registered": args.registered,
        "miners_per_round": args.miners,
        "rounds": rounds,
        "final_registry": rounds[-1]["registry"],
        "committee_seconds_median": sorted(r["committee_seconds"] for r in rounds)[
            len(rounds) // 2
        ],
        "verify_ok": verify.returncode == 0,
        "verify_seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}))
    if not result["verify_ok"]:
        sys.exit(verify.stdout + verify.stderr)


if __name__ == "__main__":
    main()
