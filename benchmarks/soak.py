"""Chaos soak: N PoT rounds on a remote committee while everything fails at once.

A committee of 4 validator processes (f = 1; `pot committee up --local` layout,
loopback) certifies ``--rounds`` rounds driven by a coordinator process
(``tests/soak_support.py``: a RemoteCommittee, as PoTStrategy drives it in a real
``flwr run``) while

- validators are SIGKILLed at random moments (one at a time: f = 1), kept down
  for a random number of rounds (often past a checkpoint, so they come back by
  state transfer), restarted, and sometimes killed again during their ledger
  catch-up;
- ``--drop`` and ``--delay`` of the validator-to-validator messages (and of their
  peer calls: block and payload fetches) are dropped or delayed by the test-only
  fault layer (``tests/fault_transport.py``, which wraps the daemon's entry point);
- ``--dropout`` of the registered miners drop out of every round;
- the coordinator is SIGKILLed ``--coordinator-kills`` times at random moments and
  resumed at once through the resume path of ``pot-resume-run`` (``resume=True``).

At the end it checks that every round was certified exactly once, that the four
ledgers are identical and pass ``pot ledger verify``, and that every round's block
holds the miners of a batch submitted for it, all accepted; exit status 1 if not.
It reports uptime (rounds certified within ``--deadline`` of their first
submission), latency percentiles and the faults injected, in one line and in
``--out`` (JSON).

    python benchmarks/soak.py --rounds 100 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fault_transport as ft  # noqa: E402
import soak_support as coordinator  # noqa: E402
from progress import steps  # noqa: E402

from pot_flower.audit import audit_ledger  # noqa: E402
from pot_flower.ops.committee_file import load_committee  # noqa: E402
from pot_flower.ops.local import prepare, stop_all, wait_healthy  # noqa: E402
from pot_flower.protocol.block import RoundBlock, parse_block  # noqa: E402
from pot_flower.transport import pot_pb2, pot_pb2_grpc  # noqa: E402
from pot_flower.transport.channels import open_channel  # noqa: E402
from pot_flower.validator.ledger import Ledger  # noqa: E402
from pot_flower.validator.reads import LATEST, read_block  # noqa: E402

N_VALIDATORS = 4
CATCHING_UP = "catching up the ledger"
CAUGHT_UP = "ledger caught up"
PAPER_UPTIME = 0.992
WITHIN_S = (1, 2, 5, 10, 30)
RECOVERY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Settings:
    rounds: int = 100
    seed: int = 1
    drop: float = 0.05
    delay: float = 0.05
    delay_max_ms: float = 500.0
    dropout: float = 0.2
    miners: int = 10
    kills: int = 10
    coordinator_kills: int = 5
    catch_up_kill_share: float = 0.5
    resume_kill_share: float = 0.3
    deadline_s: float = 10.0
    max_wall_s: float = 0.0  # 0: 120 + 20 s per round
    tuning: tuple[tuple[str, int], ...] = ()  # committee-file [committee] overrides

    def wall_limit(self) -> float:
        return self.max_wall_s or 120.0 + 20.0 * self.rounds


class Soak:
    """The committee, the coordinator, the chaos, and what they left behind."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.s = settings
        self.dir = directory
        self.path = prepare(
            N_VALIDATORS, directory / "committee", tuning=dict(settings.tuning)
        )
        self.addresses = load_committee(self.path).addresses
        self.faults = ft.Faults(
            drop=settings.drop,
            delay=settings.delay,
            seed=settings.seed,
            delay_max_s=settings.delay_max_ms / 1000,
        )
        self.journal = directory / "journal.jsonl"
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.validators: dict[int, subprocess.Popen[bytes]] = {}
        self.incarnations = dict.fromkeys(range(N_VALIDATORS), 0)
        self.killed: set[int] = set()  # down on purpose
        self.coordinator: subprocess.Popen[bytes] | None = None
        self.coordinator_incarnation = 0
        self.coordinator_killed = False
        self.timeline: list[dict[str, Any]] = []
        self.defects: list[tuple[str, str]] = []  # (invariant, what happened)
        self.validator_exits: list[dict[str, Any]] = []
        self.coordinator_exits: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.kill_plan: list[int] = []

    # ------------------------------------------------------------ reading
    def entries(self) -> list[dict[str, Any]]:
        return coordinator.read_journal(self.journal)

    def head(self) -> int:
        """The highest round a coordinator holds the certificate of."""
        best = -1
        for e in self.entries():
            if e["ev"] == "certified":
                best = max(best, int(e["h"]))
            elif e["ev"] == "up":
                best = max(best, int(e["head"]))
        return best

    def submitted(self) -> int:
        """The highest round whose batch a coordinator has submitted."""
        return max(
            (int(e["h"]) for e in self.entries() if e["ev"] == "submit"), default=-1
        )

    def finished(self) -> bool:
        return any(e["ev"] == "done" for e in self.entries())

    def ledger_dir(self, vid: int) -> Path:
        return (
            self.path.parent / f"validator-{vid}" / "chains" / f"run-{coordinator.RUN}"
        )

    def height(self, vid: int) -> int:
        block = read_block(self.ledger_dir(vid), LATEST, False)
        return -1 if block is None else block.height

    def log(self, vid: int) -> str:
        path = self.path.parent / f"validator-{vid}" / "validator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def note(self, event: str, **fields: Any) -> None:
        entry = {"t": self.now(), "event": event, **fields}
        with self.lock:
            self.timeline.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)

    def defect(self, invariant: str, text: str) -> None:
        with self.lock:
            self.defects.append((invariant, text))
        self.note("DEFECT", invariant=invariant, what=text)

    def wait_for(
        self,
        condition: Callable[[], bool],
        timeout: float,
        *,
        abortable: bool = True,
        poll: float = 0.05,
    ) -> bool:
        """Poll ``condition``; give up at the deadline (or at the end, if abortable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if abortable and self.stop.is_set():
                break
            time.sleep(poll)
        return condition()

    def serving(self, vid: int) -> bool:
        """Whether validator ``vid`` answers its health check with "serving"."""
        channel = open_channel(self.addresses[vid])
        try:
            stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
            reply = stub.Health(pot_pb2.HealthRequest(), timeout=1)
            return bool(reply.status == "serving")
        except grpc.RpcError:
            return False
        finally:
            channel.close()

    def primary(self) -> int | None:
        """The primary of the view most live validators are in (Health)."""
        views: list[int] = []
        for address in self.addresses.values():
            channel = open_channel(address)
            try:
                stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
                reply = stub.Health(pot_pb2.HealthRequest(), timeout=1)
                if not reply.in_view_change:
                    views.append(int(reply.view))
            except grpc.RpcError:
                continue
            finally:
                channel.close()
        if not views:
            return None
        view = max(set(views), key=lambda v: (views.count(v), v))
        return view % N_VALIDATORS

    # ---------------------------------------------------------- processes
    def start_validator(self, vid: int) -> None:
        with self.lock:
            inc = self.incarnations[vid]
            self.incarnations[vid] = inc + 1
            self.validators.update(ft.start(self.path, [vid], self.faults, inc))
            self.killed.discard(vid)

    def kill_validator(self, vid: int) -> None:
        with self.lock:
            self.killed.add(vid)
            process = self.validators[vid]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def start_coordinator(self, resume: bool) -> None:
        inc = self.coordinator_incarnation
        self.coordinator_incarnation += 1
        log = open(self.dir / "coordinator.log", "ab")  # noqa: SIM115 (the child's)
        command = [
            sys.executable,
            str(ROOT / "tests" / "soak_support.py"),
            f"--committee={self.path}",
            f"--journal={self.journal}",
            f"--rounds={self.s.rounds}",
            f"--seed={self.s.seed}",
            f"--incarnation={inc}",
            f"--miners={self.s.miners}",
            f"--dropout={self.s.dropout}",
            *(["--resume"] if resume else []),
        ]
        with self.lock:
            self.coordinator = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT
            )
            self.coordinator_killed = False
        log.close()

    def kill_coordinator(self) -> None:
        with self.lock:
            process = self.coordinator
            self.coordinator_killed = True
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()

    # -------------------------------------------------------------- chaos
    def validator_chaos(self, rng: random.Random) -> None:
        """Kill one validator at a time at random rounds; it must always recover."""
        n = self.s.rounds
        plan = sorted(rng.sample(targets(n), min(self.s.kills, len(targets(n)))))
        self.kill_plan = plan
        for number, target in enumerate(plan):
            # Mid-round or just after: a random moment once round `target` is out.
            if not self.wait_for(lambda t=target: self.submitted() >= t, 600):  # type: ignore[misc]
                return
            if self.finished() or self.stop.is_set():
                return
            time.sleep(rng.uniform(0.0, 0.5))
            victim = rng.randrange(N_VALIDATORS)
            was_primary = victim == self.primary()
            head = self.head()
            self.kill_validator(victim)
            down_rounds = rng.choice([0, 1, 2, 4, 8, 12, 16])
            self.note(
                "validator killed",
                vid=victim,
                primary=was_primary,
                head=head,
                down_rounds=down_rounds,
            )
            self.wait_for(
                lambda h=head, d=down_rounds: (
                    self.head() >= min(h + d, n)  # type: ignore[misc]
                    or self.finished()
                ),
                60,
            )
            mark = len(self.log(victim))
            self.start_validator(victim)
            self.note("validator restarted", vid=victim, head=self.head())
            killed_in_catch_up = False
            if rng.random() < self.s.catch_up_kill_share:
                killed_in_catch_up = self.kill_during_catch_up(victim, mark, rng)
            began = time.monotonic()
            # Recovered: its process serves again and its ledger holds the head.
            recovered = self.wait_for(
                lambda v=victim: self.serving(v) and self.height(v) >= self.head(),  # type: ignore[misc]
                RECOVERY_TIMEOUT_S,
                abortable=False,
            )
            took = round(time.monotonic() - began, 2)
            transfer = CAUGHT_UP in self.log(victim)[mark:]
            self.note(
                "validator recovered" if recovered else "validator did NOT recover",
                vid=victim,
                cycle=number,
                took_s=took,
                state_transfer=transfer,
                killed_in_catch_up=killed_in_catch_up,
                height=self.height(victim),
                head=self.head(),
            )
            if not recovered:
                self.defect(
                    "validators_recover",
                    f"validator {victim} did not reach the certified head "
                    f"{self.head()} within {RECOVERY_TIMEOUT_S:.0f} s of its restart "
                    f"(its ledger: {self.height(victim)})",
                )
                return
            time.sleep(rng.uniform(0.0, 1.0))

    def kill_during_catch_up(self, vid: int, mark: int, rng: random.Random) -> bool:
        """Kill ``vid`` a random moment into its ledger catch-up (if it has one)."""
        if not self.wait_for(
            lambda: CATCHING_UP in self.log(vid)[mark:], 15, poll=0.01
        ):
            self.note("no catch-up to kill", vid=vid)
            return False
        time.sleep(rng.uniform(0.0, 0.05))
        done_before = CAUGHT_UP in self.log(vid)[mark:]
        self.kill_validator(vid)
        self.note("validator killed during catch-up", vid=vid, finished=done_before)
        self.start_validator(vid)
        self.note("validator restarted", vid=vid, head=self.head())
        return not done_before

    def coordinator_chaos(self, rng: random.Random) -> None:
        """SIGKILL the coordinator at random moments; it is resumed at once."""
        n = self.s.rounds
        count = min(self.s.coordinator_kills, len(targets(n)))
        for target in sorted(rng.sample(targets(n), count)):
            if not self.wait_for(lambda t=target: self.submitted() >= t, 600):  # type: ignore[misc]
                return
            if self.finished() or self.stop.is_set():
                return
            time.sleep(rng.uniform(0.0, 0.8))
            if self.finished():
                return
            ups = sum(e["ev"] == "up" for e in self.entries())
            submitted, head = self.submitted(), self.head()
            killed_inc = self.coordinator_incarnation - 1
            self.kill_coordinator()
            self.note(
                "coordinator killed",
                in_flight=submitted if submitted > head else None,
                head=head,
            )
            if rng.random() < self.s.resume_kill_share:
                # Again, a random moment after its successor started: while it
                # imports, or in the middle of its resume (certifying the head).
                started = self.wait_for(
                    lambda k=killed_inc: any(  # type: ignore[misc]
                        e["ev"] == "start" and e["inc"] > k for e in self.entries()
                    ),
                    30,
                    poll=0.01,
                )
                if started and not self.finished():
                    time.sleep(rng.uniform(0.0, 1.2))
                    up = sum(e["ev"] == "up" for e in self.entries()) > ups
                    self.kill_coordinator()
                    self.note("coordinator killed while resuming", resumed=up)
            # The next kill comes after the resumed coordinator is up.
            self.wait_for(
                lambda u=ups: (
                    sum(e["ev"] == "up" for e in self.entries()) > u  # type: ignore[misc]
                    or self.finished()
                ),
                120,
            )

    # ---------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        rng = random.Random(self.s.seed)
        wall = time.monotonic()
        self.validators = {}
        for vid in range(N_VALIDATORS):
            self.start_validator(vid)
        if not wait_healthy(self.path, timeout=60):
            raise RuntimeError("validators did not become healthy")
        self.start_coordinator(resume=False)
        chaos = [
            threading.Thread(
                target=self.validator_chaos,
                args=(random.Random(rng.random()),),
                daemon=True,
            ),
            threading.Thread(
                target=self.coordinator_chaos,
                args=(random.Random(rng.random()),),
                daemon=True,
            ),
        ]
        # Kills begin once genesis is certified (a chain nobody opened cannot resume).
        if self.wait_for(lambda: self.head() >= 0, 120):
            for thread in chaos:
                thread.start()
        try:
            self.supervise()
        finally:
            self.stop.set()
            for thread in chaos:
                if thread.is_alive():
                    thread.join(timeout=RECOVERY_TIMEOUT_S + 30)
            if self.coordinator is not None and self.coordinator.poll() is None:
                self.kill_coordinator()
        soak_s = time.monotonic() - wall
        try:
            checks = self.check()
        finally:
            codes = self.close()
        return self.report(checks, codes, soak_s, time.monotonic() - wall)

    def supervise(self) -> None:
        """Restart what exits: the coordinator (resumed), validators we did not kill."""
        failures_in_a_row = 0
        last_head = -1
        with steps("soak rounds", total=self.s.rounds) as advance:
            while True:
                head = self.head()
                for _ in range(max(0, head - max(last_head, 0))):
                    advance()
                last_head = max(last_head, head)
                with self.lock:
                    process = self.coordinator
                    killed = self.coordinator_killed
                assert process is not None
                code = process.poll()
                if code is not None:
                    if self.finished():
                        return
                    exit_ = {"t": self.now(), "code": code, "killed": killed}
                    self.coordinator_exits.append(exit_)
                    if not killed:
                        failures_in_a_row += 1
                        errors = [e for e in self.entries() if e["ev"] == "error"]
                        reason = errors[-1]["error"] if errors else f"exit {code}"
                        self.note("coordinator failed", code=code, error=reason[:300])
                        if failures_in_a_row > 20:
                            self.defect(
                                "no_stall",
                                f"the coordinator failed 20 times in a row: {reason}",
                            )
                            return
                    else:
                        failures_in_a_row = 0
                    self.start_coordinator(resume=True)
                    self.note("coordinator resumed", head=head)
                for vid in range(N_VALIDATORS):
                    with self.lock:  # the chaos thread may be replacing it
                        p = self.validators[vid]
                        gone = p.poll() is not None and vid not in self.killed
                    if gone:
                        self.validator_exits.append(
                            {"t": self.now(), "vid": vid, "code": p.returncode}
                        )
                        self.defect(
                            "validators_recover",
                            f"validator {vid} exited by itself with status "
                            f"{p.returncode} (see its log)",
                        )
                        self.note("validator exited", vid=vid, code=p.returncode)
                        self.start_validator(vid)
                if time.monotonic() - self.started > self.s.wall_limit():
                    self.defect(
                        "no_stall",
                        f"stalled: {head} of {self.s.rounds} rounds certified in "
                        f"{self.s.wall_limit():.0f} s",
                    )
                    return
                time.sleep(0.1)

    # ------------------------------------------------------------- checks
    def check(self) -> dict[str, Any]:
        """The invariants, on the live committee, then on the stopped one."""
        n = self.s.rounds
        for vid in range(N_VALIDATORS):
            if self.validators[vid].poll() is not None:
                self.start_validator(vid)
        converged = self.wait_for(
            lambda: all(self.height(v) == n for v in range(N_VALIDATORS)),
            RECOVERY_TIMEOUT_S,
            abortable=False,
        )
        heights = [self.height(v) for v in range(N_VALIDATORS)]
        # The last round's certificate reaches a validator that did not vote for it
        # a moment later (certificate repair): wait for every ledger to verify.
        problems: dict[int, str] = {}
        deadline = time.monotonic() + 30
        while True:
            problems = {}
            for vid in range(N_VALIDATORS):
                report = audit_ledger(self.ledger_dir(vid))
                if not report.ok:
                    problems[vid] = str(report.problem)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return {"converged": converged, "heights": heights, "live_audit": problems}

    def close(self) -> dict[int, int]:
        with self.lock:
            self.killed.update(range(N_VALIDATORS))
        stop_all(self.validators, timeout=15)
        return {vid: p.returncode for vid, p in self.validators.items()}

    def verify_cli(self) -> dict[int, dict[str, Any]]:
        """``pot ledger verify`` on every replica, pinned to the committee and N."""
        out = {}
        for vid in range(N_VALIDATORS):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pot_flower",
                    "ledger",
                    "verify",
                    str(self.ledger_dir(vid)),
                    "--committee",
                    str(self.path),
                    "--expect-height",
                    str(self.s.rounds),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = (done.stdout + done.stderr).strip().splitlines()
            out[vid] = {"exit": done.returncode, "line": lines[-1] if lines else ""}
        return out

    def ledgers(self) -> dict[int, list[tuple[int, bytes, bytes]]]:
        found = {}
        for vid in range(N_VALIDATORS):
            with Ledger(self.ledger_dir(vid)) as ledger:
                found[vid] = [(b.height, b.hash, b.body) for b in ledger.blocks()]
        return found

    # ------------------------------------------------------------- report
    def report(
        self,
        live: dict[str, Any],
        codes: dict[int, int],
        soak_s: float,
        wall_s: float,
    ) -> dict[str, Any]:
        n = self.s.rounds
        entries = self.entries()
        verify = self.verify_cli()
        ledgers = self.ledgers()
        reference = ledgers[0]
        heads = {
            vid: (blocks[-1][0], blocks[-1][1].hex()) if blocks else (-1, "")
            for vid, blocks in ledgers.items()
        }
        blocks = {h: parse_block(body) for h, _, body in reference}
        hashes = {h: digest.hex() for h, digest, _ in reference}

        submits: dict[int, list[dict[str, Any]]] = {}
        certified: dict[int, list[dict[str, Any]]] = {}
        for e in entries:
            if e["ev"] == "submit":
                submits.setdefault(int(e["h"]), []).append(e)
            elif e["ev"] == "certified":
                certified.setdefault(int(e["h"]), []).append(e)

        problems: dict[str, list[str]] = {k: [] for k in INVARIANTS}
        # Every round certified, exactly once, at its own height.
        if [h for h, _, _ in reference] != list(range(n + 1)):
            problems["every_round_certified_once"].append(
                f"ledger heights {[h for h, _, _ in reference][:5]}… are not 0..{n}"
            )
        for h in range(1, n + 1):
            block = blocks.get(h)
            if not isinstance(block, RoundBlock):
                problems["every_round_certified_once"].append(f"no round block {h}")
                continue
            if len(certified.get(h, [])) > 1:
                problems["every_round_certified_once"].append(
                    f"round {h} certified by {len(certified[h])} round calls"
                )
        claimed: dict[int, set[str]] = {}
        for e in entries:
            if e["ev"] == "certified":
                claimed.setdefault(int(e["h"]), set()).add(e["hash"])
            elif e["ev"] == "up" and e["head"] >= 0:
                claimed.setdefault(int(e["head"]), set()).add(e["hash"])
        for h, seen in sorted(claimed.items()):
            if seen != {hashes.get(h)}:
                problems["every_round_certified_once"].append(
                    f"height {h}: coordinators held {sorted(seen)}, ledger has "
                    f"{hashes.get(h)}"
                )
        top = -1
        for e in entries:  # a resumed coordinator never goes back
            if e["ev"] == "certified":
                top = max(top, int(e["h"]))
            elif e["ev"] == "up":
                if int(e["head"]) < top:
                    problems["resume_never_goes_back"].append(
                        f"incarnation {e['inc']} resumed at {e['head']} after {top} "
                        "was certified"
                    )
                top = max(top, int(e["head"]))
        # Nothing lost: a block holds exactly the miners of a batch submitted for its
        # round, all accepted, and what a coordinator was told is what it holds.
        from_earlier_attempt = 0
        for h in range(1, n + 1):
            block = blocks.get(h)
            if not isinstance(block, RoundBlock):
                continue
            nodes = sorted(r.node for r in block.submissions)
            accepted = sorted(r.node for r in block.submissions if r.reason is None)
            attempts = submits.get(h, [])
            match = [a for a in attempts if a["miners"] == nodes]
            if not match:
                problems["nothing_lost"].append(
                    f"round {h}: block holds miners {nodes}, no batch submitted "
                    f"for it had them ({[a['miners'] for a in attempts]})"
                )
            elif attempts and match[-1] is not attempts[-1]:
                from_earlier_attempt += 1
            if accepted != nodes:
                problems["nothing_lost"].append(
                    f"round {h}: accepted {accepted} of {nodes}"
                )
            for c in certified.get(h, []):
                if c["accepted"] != accepted:
                    problems["nothing_lost"].append(
                        f"round {h}: coordinator {c['inc']} was told {c['accepted']}"
                        f" were accepted, the block says {accepted}"
                    )
        if any(blocks_ != reference for blocks_ in ledgers.values()):
            problems["replicas_identical"].append(
                f"heads differ: {heads}"
                if len(set(heads.values())) > 1
                else "same heads, different blocks"
            )
        if not live["converged"]:
            problems["replicas_identical"].append(
                f"heights {live['heights']} did not all reach {n}"
            )
        for vid, result in verify.items():
            if result["exit"] != 0:
                problems["ledger_verify_passes"].append(
                    f"validator {vid}: {result['line']}"
                )
        for vid, problem in live["live_audit"].items():
            problems["ledger_verify_passes"].append(
                f"validator {vid} (live): {problem}"
            )
        for kind, text in self.defects:
            problems[kind].append(text)
        if any(code != 0 for code in codes.values()):
            problems["clean_shutdown"].append(f"exit statuses {codes}")
        counts = self.counts(entries)
        # The soak must have done what it was asked (each kind at least once).
        wanted = {
            "validator_kill_cycles": self.s.kills,
            "coordinator_kills": self.s.coordinator_kills,
            "messages_dropped": self.s.drop,
            "messages_delayed": self.s.delay,
        }
        for key, asked in wanted.items():
            if asked and not counts[key]:
                problems["faults_injected"].append(f"asked for {key}, none happened")
        invariants = {k: not v for k, v in problems.items()}

        # Uptime and latency: from a round's first submission to the first moment a
        # coordinator holds its certificate (a resumed one's included).
        first_submit = {h: min(e["t"] for e in es) for h, es in submits.items()}
        holds: dict[int, float] = {}
        for e in entries:
            if e["ev"] == "certified":
                holds.setdefault(int(e["h"]), e["t"])
            elif e["ev"] == "up":
                for h in range(1, int(e["head"]) + 1):
                    holds.setdefault(h, e["t"])
        latency = {
            h: holds[h] - first_submit[h]
            for h in range(1, n + 1)
            if h in holds and h in first_submit
        }
        committee_latency = [float(es[0]["latency"]) for es in certified.values()]
        deadline = self.s.deadline_s
        within = {
            str(s): round(sum(v <= s for v in latency.values()) / n, 4)
            for s in WITHIN_S
        }
        uptime = sum(v <= deadline for v in latency.values()) / n
        late = sorted(
            (
                {"round": h, "latency_s": round(v, 2)}
                for h, v in latency.items()
                if v > deadline
            ),
            key=lambda r: -float(r["latency_s"]),
        )

        return {
            "benchmark": "soak",
            "settings": asdict(self.s),
            "ok": all(invariants.values()),
            "invariants": invariants,
            "problems": {k: v for k, v in problems.items() if v},
            "uptime": {
                "definition": (
                    "share of the N rounds whose certificate a coordinator held "
                    "within deadline_s of the round's first submission (the time a "
                    "killed coordinator takes to be resumed counts against it)"
                ),
                "deadline_s": deadline,
                "within_deadline": round(uptime, 4),
                "certified_at_all": round(len(latency) / n, 4),
                "within_s": within,
                "paper_claimed": PAPER_UPTIME,
                "late_rounds": late[:20],
            },
            "latency_s": summary(list(latency.values())),
            "committee_latency_s": summary(committee_latency),
            "counts": counts,
            "rounds_from_an_earlier_attempt": from_earlier_attempt,
            "heads": {str(v): list(h) for v, h in heads.items()},
            "verify": {str(v): r for v, r in verify.items()},
            "exit_codes": {str(v): c for v, c in codes.items()},
            "coordinator_exits": self.coordinator_exits,
            "validator_exits": self.validator_exits,
            "soak_s": round(soak_s, 1),
            "wall_s": round(wall_s, 1),
            "rounds_per_minute": round(60 * n / soak_s, 1),
            "timeline": self.timeline,
        }

    def counts(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        faults: dict[str, int] = {}
        views: set[int] = set()
        transfers = started = rebuilds = 0
        for vid in range(N_VALIDATORS):
            for key, value in ft.read_stats(
                self.path.parent / f"validator-{vid}"
            ).items():
                faults[key] = faults.get(key, 0) + value
            text = self.log(vid)
            transfers += text.count(CAUGHT_UP)
            started += text.count(CATCHING_UP)
            rebuilds += text.count("step abandoned")
            for line in text.splitlines():
                if "entered view" in line:
                    with contextlib.suppress(ValueError, IndexError, KeyError):
                        views.add(int(json.loads(line)["msg"].rsplit(" ", 1)[1]))
        events = [e["event"] for e in self.timeline]
        starts = {e["inc"]: e["t"] for e in entries if e["ev"] == "start"}
        resumes = [
            e["t"] - starts[e["inc"]]
            for e in entries
            if e["ev"] == "up" and e["inc"] > 0 and e["inc"] in starts
        ]
        messages = faults.get("messages", 0)
        calls = faults.get("calls", 0)
        return {
            # A cycle: kill, down for some rounds, restart (maybe killed again in
            # its catch-up and restarted), recover. Cycles planned after the last
            # round are skipped.
            "validator_kill_cycles_planned": len(self.kill_plan),
            "validator_kill_cycles": events.count("validator killed"),
            "validator_kills": events.count("validator killed")
            + events.count("validator killed during catch-up"),
            "validator_kills_during_catch_up": sum(
                1
                for e in self.timeline
                if e["event"] == "validator killed during catch-up"
                and not e["finished"]
            ),
            "primary_kills": sum(
                1
                for e in self.timeline
                if e["event"] == "validator killed" and e["primary"]
            ),
            "validator_restarts": events.count("validator restarted"),
            "validator_recoveries": events.count("validator recovered"),
            "validator_recovery_s_max": max(
                (
                    e["took_s"]
                    for e in self.timeline
                    if e["event"] == "validator recovered"
                ),
                default=0.0,
            ),
            "state_transfers_started": started,
            "state_transfers_completed": transfers,
            "rebuilds": rebuilds,
            "view_changes": len(views - {0}),
            "coordinator_kills": events.count("coordinator killed")
            + events.count("coordinator killed while resuming"),
            "coordinator_kills_during_resume": sum(
                1
                for e in self.timeline
                if e["event"] == "coordinator killed while resuming"
                and not e["resumed"]
            ),
            "coordinator_resumes": sum(e["ev"] == "up" for e in entries) - 1,
            "coordinator_round_failures": sum(e["ev"] == "error" for e in entries),
            # From the resumed process's start (imports included) to holding the head.
            "coordinator_resume_s": summary(resumes),
            "coordinator_resume_committee_s": summary(
                [float(e["took"]) for e in entries if e["ev"] == "up" and e["inc"] > 0]
            ),
            "rounds_submitted_more_than_once": sum(
                1
                for h in {int(e["h"]) for e in entries if e["ev"] == "submit"}
                if sum(e["ev"] == "submit" and e["h"] == h for e in entries) > 1
            ),
            "messages": messages,
            "messages_dropped": faults.get("messages_dropped", 0),
            "messages_delayed": faults.get("messages_delayed", 0),
            "messages_affected_share": round(
                (faults.get("messages_dropped", 0) + faults.get("messages_delayed", 0))
                / messages,
                4,
            )
            if messages
            else 0.0,
            "peer_calls": calls,
            "peer_calls_failed": faults.get("calls_failed", 0),
            "peer_calls_delayed": faults.get("calls_delayed", 0),
        }


def targets(rounds: int) -> list[int]:
    """Rounds a kill may be planned at: from round 2 to 3 rounds before the end."""
    return list(range(2, max(3, rounds - 2)))


INVARIANTS = (
    "every_round_certified_once",
    "resume_never_goes_back",
    "nothing_lost",
    "replicas_identical",
    "ledger_verify_passes",
    "validators_recover",
    "no_stall",
    "clean_shutdown",
    "faults_injected",
)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.mean(ordered), 3),
    }


def one_line(r: dict[str, Any]) -> str:
    c, u, lat = r["counts"], r["uptime"], r["latency_s"]
    failed = [k for k, ok in r["invariants"].items() if not ok]
    return (
        f"soak seed {r['settings']['seed']}: {u['certified_at_all']:.1%} of "
        f"{r['settings']['rounds']} rounds certified, uptime {u['within_deadline']:.1%}"
        f" within {u['deadline_s']:g} s (paper claims {PAPER_UPTIME:.1%}); latency "
        f"p50 {lat.get('p50', 0):.2f} s p99 {lat.get('p99', 0):.2f} s max "
        f"{lat.get('max', 0):.2f} s; {c['validator_kills']} validator kills "
        f"({c['validator_kills_during_catch_up']} in catch-up, {c['primary_kills']} "
        f"primary), {c['state_transfers_completed']} state transfers, "
        f"{c['view_changes']} view changes, {c['coordinator_kills']} coordinator "
        f"kills/{c['coordinator_resumes']} resumes; {c['messages_dropped']} dropped + "
        f"{c['messages_delayed']} delayed of {c['messages']} messages "
        f"({c['messages_affected_share']:.1%}); {r['soak_s']:.0f} s; invariants "
        + ("OK" if not failed else "FAILED: " + ", ".join(failed))
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drop", type=float, default=0.05, help="share of messages dropped"
    )
    parser.add_argument("--delay", type=float, default=0.05, help="share delayed")
    parser.add_argument("--delay-max-ms", type=float, default=500.0)
    parser.add_argument(
        "--dropout", type=float, default=0.2, help="miners out per round"
    )
    parser.add_argument("--miners", type=int, default=10)
    parser.add_argument("--kills", type=int, default=10, help="validator kill cycles")
    parser.add_argument("--coordinator-kills", type=int, default=5)
    parser.add_argument(
        "--deadline", type=float, default=10.0, help="uptime deadline (s)"
    )
    parser.add_argument("--max-wall", type=float, default=0.0)
    parser.add_argument(
        "--tuning",
        action="append",
        default=[],
        metavar="KEY=INT",
        help="committee-file [committee] setting, e.g. status-interval-ms=250",
    )
    parser.add_argument("--keep", type=Path, help="keep the committee's files here")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/soak.json"
    )
    args = parser.parse_args()
    settings = Settings(
        rounds=args.rounds,
        seed=args.seed,
        drop=args.drop,
        delay=args.delay,
        delay_max_ms=args.delay_max_ms,
        dropout=args.dropout,
        miners=args.miners,
        kills=args.kills,
        coordinator_kills=args.coordinator_kills,
        deadline_s=args.deadline,
        max_wall_s=args.max_wall,
        tuning=tuple(
            (k, int(v)) for k, v in (item.split("=", 1) for item in args.tuning)
        ),
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = Soak(settings, args.keep).run()
    else:
        with tempfile.TemporaryDirectory(prefix="pot-soak-") as tmp:
            result = Soak(settings, Path(tmp)).run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(one_line(result))
    if not result["ok"]:
        print(json.dumps(result["problems"], indent=1), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
