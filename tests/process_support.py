"""A local committee of validator processes driven round by round (for kill tests)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pot_flower.audit import audit_ledger
from pot_flower.committee.remote import RemoteCommittee
from pot_flower.encoding import encode
from pot_flower.ops.committee_file import load_committee, read_key
from pot_flower.ops.local import COORDINATOR, prepare, start, stop_all, wait_healthy
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.submission import build_submission
from pot_flower.validator.ledger import Ledger
from pot_flower.zk.signatures import SigningKey

RUN = 9


class ProcessCommittee:
    """``n`` validator processes on loopback and a coordinator that drives rounds."""

    def __init__(self, directory: Path, n: int = 4, params: int = 1000) -> None:
        self.directory = directory
        self.path = prepare(n, directory)
        self.committee = load_committee(self.path)
        self.processes = start(self.path)
        assert wait_healthy(self.path, timeout=60)
        self.remote = RemoteCommittee(
            self.committee.config,
            self.committee.addresses,
            COORDINATOR,
            read_key(directory / f"{COORDINATOR}.key"),
            run=RUN,
            model={"w": np.zeros(params, np.float32)},
            norm_bound_units=max_norm_units(10.0),
        )

    @property
    def n(self) -> int:
        return self.committee.config.n

    def round(self, miners: int = 3) -> int:
        """One PoT round with ``miners`` honest submissions; its height."""
        refs, payloads = honest_batch(self.remote, range(miners))
        return self.remote.certify_round(refs, payloads).height

    def pings(self, count: int) -> None:
        """Requests that execute but touch no chain (they move checkpoints)."""
        for i in range(count):
            operation = encode({"kind": "ping", "digest": b"%d" % time.time_ns()})
            self.remote._client.call(operation, timeout=30)
            del i

    def live(self) -> list[int]:
        """Validators whose process is running."""
        return [v for v, p in self.processes.items() if p.poll() is None]

    def primary(self) -> int:
        """The primary of the view a live validator is in."""
        return self.remote._client.health(self.live()[0]).view % self.n

    def kill(self, vid: int) -> None:
        process = self.processes[vid]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def pause(self, vid: int) -> None:
        os.kill(self.processes[vid].pid, signal.SIGSTOP)

    def resume(self, vid: int) -> None:
        os.kill(self.processes[vid].pid, signal.SIGCONT)

    def restart(self, vid: int, *, wait: bool = True) -> None:
        self.processes.update(start(self.path, [vid]))
        if wait:
            assert wait_healthy(self.path, [vid], timeout=60)

    def log(self, vid: int) -> str:
        return (self.directory / f"validator-{vid}" / "validator.log").read_text()

    def ledger_dir(self, vid: int) -> Path:
        return self.directory / f"validator-{vid}" / "chains" / f"run-{RUN}"

    def heights(self) -> list[int]:
        heights = []
        for vid in range(self.n):
            directory = self.ledger_dir(vid)
            if not directory.exists():
                heights.append(-1)
                continue
            with Ledger(directory) as ledger:
                heights.append(ledger.head_height())
        return heights

    def wait_converged(self, height: int, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            heights = self.heights()
            if all(h == height for h in heights):
                break
            time.sleep(0.3)
        return heights

    def ledgers_agree(self, timeout: float = 10) -> None:
        """Every ledger verifies and all hold the same blocks.

        The head's certificate reaches a validator that did not vote for it a
        moment later (or with the next round): wait for it a little.
        """
        deadline = time.monotonic() + timeout
        while True:
            problems = {}
            for vid in range(self.n):
                report = audit_ledger(self.ledger_dir(vid))
                if not report.ok:
                    problems[vid] = report.problem
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not problems, problems
        bodies = []
        for vid in range(self.n):
            with Ledger(self.ledger_dir(vid)) as ledger:
                bodies.append([b.body for b in ledger.blocks()])
        assert all(b == bodies[0] for b in bodies), [len(b) for b in bodies]

    def close(self) -> dict[int, int]:
        """Stop everything (by PID); the exit status of each validator."""
        self.remote.close()
        for process in self.processes.values():
            if process.poll() is None:  # a paused one must hear SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
        stop_all(self.processes, timeout=15)
        return {vid: p.returncode for vid, p in self.processes.items()}


def honest_batch(
    remote: RemoteCommittee, nodes: Iterable[int]
) -> tuple[list[SubmissionRef], dict[bytes, bytes]]:
    """Honest updates of miners ``nodes`` (node i signs as ``miner-i``), next round."""
    ticket, current = remote.ticket(), remote.model
    refs, payloads = [], {}
    for i in nodes:
        sub = build_submission(
            SigningKey.from_seed(b"miner-%d" % i),
            run=remote.params.run,
            round_=ticket.round,
            node=i,
            nonce=ticket.nonce,
            received=current,
            returned={"w": current["w"] + np.float32(0.01 * (i + 1))},
            num_examples=5,
        )
        digest = hashlib.sha256(sub.payload).digest()
        payloads[digest] = sub.payload
        refs.append(SubmissionRef(i, sub.envelope_bytes, sub.signature, digest))
    return refs, payloads
