"""The chaos soak's coordinator: a ServerApp stand-in that can be killed and resumed.

Run as a process (``benchmarks/soak.py`` starts it, kills it with SIGKILL and
starts it again):

    python tests/soak_support.py --committee DIR/committee.toml --journal J \\
        --rounds 100 --seed 1 --incarnation 0 [--resume]

It drives a :class:`~pot_flower.committee.remote.RemoteCommittee` the way
``PoTStrategy`` does in a real ``flwr run`` with ``pot-committee``: built with
``resume=True`` (what ``pot-resume-run`` sets) after a kill, it asks the validators
for the highest block a quorum holds, certifies it if need be and continues from the
next round. Each round submits the signed updates of a random 80 % of the
registered miners (an allow-list of ``--miners`` keys; ``--dropout`` of them drop
out), chosen from the seed, the round and the incarnation.

Everything it does goes to an append-only journal (one JSON object per line,
fsynced before the step it announces): ``start``, ``up`` (the head it holds, after
a resume too), ``submit`` (the round and its miners, before the batch leaves),
``certified`` (the block's hash and accepted miners, after the certificate), ``error``
and ``done``. A line cut short by SIGKILL is ignored by :func:`read_journal`.
Exit status: 0 done, 5 the committee failed a round (the soak resumes it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RUN = 4242
PARAMS = 1000
EXIT_ROUND_FAILED = 5


def miner_key(i: int) -> Any:
    from pot_flower.zk.signatures import SigningKey

    return SigningKey.from_seed(b"soak-miner-%d" % i)


def chosen(
    seed: int, height: int, incarnation: int, miners: int, dropout: float
) -> list[int]:
    """The miners whose updates round ``height`` submits (the others dropped out)."""
    rng = random.Random(f"soak/{seed}/{height}/{incarnation}")
    keep = max(1, round(miners * (1 - dropout)))
    return sorted(rng.sample(range(miners), keep))


def trained(base: np.ndarray, seed: int, height: int, miner: int) -> np.ndarray:
    """An honest-looking update: the round's shared direction plus its own noise."""
    shared = np.random.default_rng([seed, height]).standard_normal(base.shape)
    own = np.random.default_rng([seed, height, miner]).standard_normal(base.shape)
    step = (shared + own) * (0.01 / np.sqrt(2))
    return np.asarray(base + step, dtype=base.dtype)


class Journal:
    """Append-only JSON lines, each on disk before the step it announces."""

    def __init__(self, path: Path, incarnation: int) -> None:
        self.path = path
        self.incarnation = incarnation
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: str, **fields: Any) -> None:
        entry = {"ev": event, "inc": self.incarnation, "t": time.time(), **fields}
        os.write(self._fd, (json.dumps(entry) + "\n").encode())
        os.fsync(self._fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete entry of a journal (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "ev" in entry:
            entries.append(entry)
    return entries


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--committee", type=Path, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incarnation", type=int, default=0)
    parser.add_argument("--miners", type=int, default=10)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--resume", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    journal = Journal(args.journal, args.incarnation)
    journal.write("start", pid=os.getpid(), resume=args.resume)

    from pot_flower.committee.base import CommitteeError
    from pot_flower.committee.remote import RemoteCommittee
    from pot_flower.ops.committee_file import load_committee, read_key
    from pot_flower.ops.local import COORDINATOR
    from pot_flower.protocol.batch import SubmissionRef
    from pot_flower.protocol.fixedpoint import max_norm_units
    from pot_flower.protocol.submission import build_submission
    from pot_flower.transport.gateway import DuplicateCoordinator

    committee = load_committee(args.committee)
    keys = [miner_key(i) for i in range(args.miners)]
    started = time.monotonic()
    height = -1
    try:
        remote = RemoteCommittee(
            committee.config,
            committee.addresses,
            COORDINATOR,
            read_key(args.committee.parent / f"{COORDINATOR}.key"),
            run=RUN,
            model={"w": np.zeros(PARAMS, np.float32)},
            norm_bound_units=max_norm_units(10.0),
            registration="allow-list",
            allowed_miners=tuple(k.verify_key.raw for k in keys),
            channel_credentials=committee.channel_credentials(COORDINATOR),
            timeout=args.timeout,
            resume=args.resume,
        )
    except (CommitteeError, DuplicateCoordinator) as exc:
        journal.write("error", h=None, error=f"{type(exc).__name__}: {exc}")
        return EXIT_ROUND_FAILED
    try:
        head = remote.ticket().round - 1
        journal.write(
            "up",
            head=head,
            hash=remote.last_certificate.block.hex(),
            took=round(time.monotonic() - started, 3),
        )
        while True:
            ticket = remote.ticket()
            height = ticket.round
            if height > args.rounds:
                break
            current = remote.model
            miners = chosen(
                args.seed, height, args.incarnation, args.miners, args.dropout
            )
            refs, payloads = [], {}
            for i in miners:
                sub = build_submission(
                    keys[i],
                    run=RUN,
                    round_=height,
                    node=i,
                    nonce=ticket.nonce,
                    received=current,
                    returned={"w": trained(current["w"], args.seed, height, i)},
                    num_examples=10,
                )
                digest = hashlib.sha256(sub.payload).digest()
                payloads[digest] = sub.payload
                refs.append(SubmissionRef(i, sub.envelope_bytes, sub.signature, digest))
            journal.write("submit", h=height, miners=miners)
            began = time.monotonic()
            result = remote.certify_round(refs, payloads)
            took = time.monotonic() - began
            records = result.body.submissions
            accepted = sorted(r.node for r in records if r.reason is None)
            rejected = {str(r.node): str(r.reason) for r in records if r.reason}
            journal.write(
                "certified",
                h=result.height,
                hash=result.block.hex(),
                accepted=accepted,
                rejected=rejected,
                latency=round(took, 4),
            )
        journal.write("done", head=height - 1)
        return 0
    except (CommitteeError, DuplicateCoordinator) as exc:
        journal.write("error", h=height, error=f"{type(exc).__name__}: {exc}")
        return EXIT_ROUND_FAILED
    finally:
        remote.close()


if __name__ == "__main__":
    sys.exit(main())
