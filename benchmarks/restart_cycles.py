"""SIGKILL and restart backups at random moments; check they always rejoin.

A committee of 4 validator processes (`pot committee up` layout, loopback) runs PoT
rounds driven by a RemoteCommittee. Each cycle kills a random backup at a random
moment (mid-round or between rounds), lets the others run a random amount of work
while it is down (rounds and pings; often more than a checkpoint interval, so that
it must catch up by state transfer), restarts it, sometimes kills it again a
random moment into its catch-up and restarts it once more, then checks that it
reaches the others' head with an identical ledger that verifies. After the cycles
the primary is killed and the next round must commit within twice the view-change
timeout.

    python benchmarks/restart_cycles.py --cycles 10 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from process_support import ProcessCommittee  # noqa: E402

CAUGHT_UP = "ledger caught up"
CATCHING_UP = "catching up the ledger"


def wait_for_log(
    c: ProcessCommittee, vid: int, text: str, after: int, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in c.log(vid)[after:]:
            return True
        time.sleep(0.02)
    return False


def cycle(c: ProcessCommittee, rng: random.Random, number: int) -> dict[str, object]:
    primary = c.primary()
    backup = rng.choice([v for v in range(c.n) if v != primary])
    transfers_before = c.log(backup).count(CAUGHT_UP)
    moment = rng.choice(["mid-round", "between rounds"])
    if moment == "mid-round":
        worker = threading.Thread(target=c.round)
        worker.start()
        time.sleep(rng.uniform(0.0, 0.3))
        c.kill(backup)
        worker.join()
    else:
        c.kill(backup)
    rounds, pings = rng.randint(0, 3), rng.choice([0, 3, 12, 20])
    for _ in range(rounds):
        c.round()
    c.pings(pings)
    killed_in_catch_up = False
    if pings >= 12 and rng.random() < 0.5:
        # Freeze two others: each request to them costs the restarted validator
        # a deadline, so its state transfer is slow enough to be killed in it.
        frozen = rng.sample([v for v in range(c.n) if v != backup], 2)
        for vid in frozen:
            c.pause(vid)
        mark = len(c.log(backup))
        c.restart(backup, wait=False)
        if wait_for_log(c, backup, CATCHING_UP, after=mark, timeout=20):
            time.sleep(rng.uniform(0.0, 2.0))
            c.kill(backup)
            killed_in_catch_up = CAUGHT_UP not in c.log(backup)[-2000:]
        for vid in frozen:
            c.resume(vid)
        if c.processes[backup].poll() is not None:
            c.restart(backup, wait=False)
    else:
        c.restart(backup, wait=False)
    started = time.monotonic()
    height = c.round()
    heights = c.wait_converged(height, timeout=90)
    converged_s = time.monotonic() - started
    ok = heights == [height] * c.n
    problem = None
    try:
        c.ledgers_agree()
    except AssertionError as exc:
        ok, problem = False, str(exc)[:300]
    return {
        "cycle": number,
        "killed": backup,
        "moment": moment,
        "rounds_while_down": rounds,
        "pings_while_down": pings,
        "killed_again_during_catch_up": killed_in_catch_up,
        "state_transfer": c.log(backup).count(CAUGHT_UP) > transfers_before,
        "height": height,
        "converged_s": round(converged_s, 2),
        "ok": ok,
        "problem": problem,
    }


def run(cycles: int, seed: int, directory: Path) -> dict[str, object]:
    rng = random.Random(seed)
    c = ProcessCommittee(directory)
    results = []
    try:
        c.round()
        for number in range(cycles):
            results.append(cycle(c, rng, number))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        c.kill(c.primary())
        started = time.monotonic()
        c.round()
        after_primary_kill = time.monotonic() - started
        budget = 2 * c.committee.config.view_change_timeout_ms / 1000
    finally:
        codes = c.close()
    return {
        "cycles": cycles,
        "seed": seed,
        "all_rejoined": all(r["ok"] for r in results),
        "state_transfers": sum(bool(r["state_transfer"]) for r in results),
        "killed_during_catch_up": sum(
            bool(r["killed_again_during_catch_up"]) for r in results
        ),
        "converged_s_max": max(float(r["converged_s"]) for r in results),  # type: ignore[arg-type]
        "round_after_primary_kill_s": round(after_primary_kill, 2),
        "primary_kill_budget_s": budget,
        "primary_kill_within_budget": after_primary_kill < budget,
        "exit_codes": codes,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--json-out",
        type=Path,
        default=ROOT / "benchmarks/results/restart_cycles.json",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-restarts-") as tmp:
        summary = run(args.cycles, args.seed, Path(tmp) / "committee")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1))
    brief = {k: v for k, v in summary.items() if k != "results"}
    print(json.dumps(brief))


if __name__ == "__main__":
    main()
