"""Deterministic discrete-event simulation of a PBFT committee under faults.

One seed fixes everything: the committee's tuning, the fault plan, every delay,
drop and duplicate, and every Byzantine choice. Signatures are real Ed25519 and
messages cross the simulated network as canonical bytes, so the replicas run
exactly the code they run in production.
"""

from __future__ import annotations

import heapq
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pot_flower.consensus.application import HashChainApp
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.durable import DurableState, apply_writes
from pot_flower.consensus.effects import (
    Broadcast,
    CancelTimer,
    Completed,
    Dropped,
    Executed,
    Persist,
    Send,
    SendToClient,
    SetTimer,
    StateRestored,
    ViewInstalled,
)
from pot_flower.consensus.quorum import max_faulty
from pot_flower.consensus.replica import Replica
from pot_flower.consensus.requester import Requester
from pot_flower.sim.byzantine import ByzantineReplica, RawSend
from pot_flower.sim.checker import (
    ReplicaTrace,
    RequestId,
    Verdict,
    check_liveness,
    check_safety,
)
from pot_flower.sim.faults import FAULT_KINDS, FaultPlan, draw_fault_plan
from pot_flower.zk.signatures import SigningKey

ReplicaFactory = Callable[..., Replica]
Node = int | str  # replica index or client id


@dataclass
class RunResult:
    """Outcome of one simulated run."""

    seed: int
    n: int
    faulty: int
    byzantine: dict[int, str]
    crashes: int
    verdict: Verdict
    requests_committed: int
    view_changes: int
    latencies_wall_ms: list[float] = field(default_factory=list)
    latencies_sim_ms: list[int] = field(default_factory=list)
    messages: int = 0
    sim_time_ms: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> count


class Simulation:
    """One run: n replicas, a few closed-loop clients, a seeded fault plan.

    Parameters
    ----------
    n : int
        Committee size.
    seed : int
        Fixes every random choice of the run.
    faults : frozenset[str] (default: every kind)
        Fault kinds to inject, from ``FAULT_KINDS``.
    faulty : int | None (default: f)
        Replicas that are Byzantine or crash; at most f for the guarantees.
    clients : int (default: 2)
        Closed-loop clients, each with one outstanding request at a time.
    requests_per_client : int (default: 4)
        Requests each client submits.
    liveness_bound_ms : int (default: 60000)
        Simulated time after GST by which every request must have executed at
        every honest replica.
    replica_factory : callable (default: Replica)
        Builds a replica; tests pass deliberately broken variants.

    """

    def __init__(
        self,
        n: int,
        seed: int,
        *,
        faults: frozenset[str] = frozenset(FAULT_KINDS),
        faulty: int | None = None,
        clients: int = 2,
        requests_per_client: int = 4,
        liveness_bound_ms: int = 60_000,
        replica_factory: ReplicaFactory = Replica,
        relay_votes: bool = False,
    ) -> None:
        self.n = n
        self.seed = seed
        self.rng = random.Random(seed)
        f = max_faulty(n)
        self.faulty = f if faulty is None else faulty
        if not 0 <= self.faulty <= n:
            raise ValueError("faulty must be between 0 and n")
        self.replica_keys = [
            SigningKey.from_seed(b"sim-replica-%d-%d" % (seed, i)) for i in range(n)
        ]
        client_ids = [f"client-{i}" for i in range(clients)]
        client_keys = {
            c: SigningKey.from_seed(f"sim-{seed}-{c}".encode()) for c in client_ids
        }
        interval = self.rng.choice([2, 4])
        self.config = CommitteeConfig(
            replicas=tuple(k.verify_key for k in self.replica_keys),
            clients={c: k.verify_key for c, k in client_keys.items()},
            checkpoint_interval=interval,
            window=interval * self.rng.choice([2, 4]),
            max_batch=self.rng.choice([1, 2, 4]),
            max_in_flight=self.rng.choice([1, 2, 4]),
            request_timeout_ms=500,
            view_change_timeout_ms=500,
            status_interval_ms=150,
            max_backoff=3,
            relay_votes=relay_votes,
        )
        self.plan: FaultPlan = draw_fault_plan(self.rng, n, self.faulty, faults)
        self.replica_factory = replica_factory
        self.liveness_bound_ms = liveness_bound_ms
        self.requests_per_client = requests_per_client

        self.now = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._counter = 0
        self._timer_gen: dict[tuple[Node, str], int] = {}
        self.replicas: dict[int, Replica | ByzantineReplica] = {}
        self.down: set[int] = set()
        self.disk: dict[int, dict[str, bytes]] = {}  # each replica's record store
        self.traces = {
            r: ReplicaTrace() for r in range(n) if r not in self.plan.byzantine
        }
        self.clients = {
            c: Requester(c, client_keys[c], self.config, retransmit_ms=400)
            for c in client_ids
        }
        self._client_done: dict[str, int] = dict.fromkeys(client_ids, 0)
        self._submitted_at: dict[RequestId, tuple[int, float]] = {}
        self.submitted: list[RequestId] = []
        self.accepted: dict[RequestId, bytes] = {}
        self.request_seq: dict[RequestId, int] = {}
        self.max_view = 0
        self.messages = 0
        self.latencies_wall_ms: list[float] = []
        self.latencies_sim_ms: list[int] = []
        self.dropped: Counter[str] = Counter()

    # ------------------------------------------------------------- plumbing
    def _schedule(self, at: int, kind: str, payload: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (at, self._counter, kind, payload))

    def _build_replica(self, rid: int, durable: DurableState | None) -> None:
        key = self.replica_keys[rid]
        replica = self.replica_factory(self.config, rid, key, HashChainApp(), durable)
        behaviour = self.plan.byzantine.get(rid)
        if behaviour is None:
            self.replicas[rid] = replica
        else:
            rng = random.Random(self.seed * 7919 + rid)
            self.replicas[rid] = ByzantineReplica(
                replica,
                behaviour,
                key,
                rng,
                victims=self.plan.victims,
                allies=frozenset(self.plan.byzantine),
            )

    def _transmit(self, src: Node, dst: Node, data: bytes) -> None:
        plan = self.plan
        self.messages += 1
        if plan.partitioned(src, dst, self.now):
            return
        if self.rng.random() < plan.drop_rate:
            return
        copies = 2 if self.rng.random() < plan.duplicate_rate else 1
        for _ in range(copies):
            bound = (
                plan.max_delay_ms if self.now < plan.gst_ms else plan.stable_delay_ms
            )
            self._schedule(
                self.now + self.rng.randint(1, bound), "deliver", (dst, data)
            )

    def _apply(self, node: Node, effects: list[Any]) -> None:
        """Carry out effects in order (Persist before the sends after it)."""
        for effect in effects:
            if isinstance(effect, Send):
                self._transmit(node, effect.to, effect.message.to_bytes())
            elif isinstance(effect, Broadcast):
                data = effect.message.to_bytes()
                for rid in range(self.n):
                    if rid != node:
                        self._transmit(node, rid, data)
            elif isinstance(effect, RawSend):
                self._transmit(node, effect.to, effect.data)
            elif isinstance(effect, SendToClient):
                self._transmit(node, effect.client, effect.message.to_bytes())
            elif isinstance(effect, Persist):
                assert isinstance(node, int)
                apply_writes(self.disk.setdefault(node, {}), effect.writes)
            elif isinstance(effect, SetTimer):
                gen = self._timer_gen.get((node, effect.name), 0) + 1
                self._timer_gen[(node, effect.name)] = gen
                self._schedule(
                    self.now + effect.delay_ms, "timer", (node, effect.name, gen)
                )
            elif isinstance(effect, CancelTimer):
                key = (node, effect.name)
                self._timer_gen[key] = self._timer_gen.get(key, 0) + 1
            elif isinstance(effect, Executed):
                self._observe_execution(node, effect)
            elif isinstance(effect, StateRestored):
                trace = self.traces.get(node)  # type: ignore[arg-type]
                if trace is not None:
                    trace.last_executed = max(trace.last_executed, effect.seq)
                    trace.checkpoints[effect.seq] = effect.state_digest
            elif isinstance(effect, ViewInstalled):
                if node not in self.plan.byzantine:
                    self.max_view = max(self.max_view, effect.view)
            elif isinstance(effect, Completed):
                self._on_completed(node, effect)
            elif isinstance(effect, Dropped) and node not in self.plan.byzantine:
                self.dropped[effect.reason.value] += 1

    def _observe_execution(self, node: Node, effect: Executed) -> None:
        trace = self.traces.get(node)  # type: ignore[arg-type]
        if trace is None:
            return  # Byzantine replicas' claims are not evidence
        trace.executed[effect.seq] = effect.digest
        trace.last_executed = max(trace.last_executed, effect.seq)
        if effect.state_digest is not None:
            trace.checkpoints[effect.seq] = effect.state_digest
        for request, result in zip(effect.requests, effect.results, strict=True):
            if result is not None:
                rid = (request.client, request.timestamp)
                trace.results[rid] = result
                self.request_seq.setdefault(rid, effect.seq)

    def _on_completed(self, node: Node, effect: Completed) -> None:
        assert isinstance(node, str)
        rid = (node, effect.timestamp)
        self.accepted[rid] = effect.result
        sim_start, wall_start = self._submitted_at[rid]
        self.latencies_sim_ms.append(self.now - sim_start)
        self.latencies_wall_ms.append((time.perf_counter() - wall_start) * 1000)
        self._client_done[node] += 1
        if self._client_done[node] < self.requests_per_client:
            self._schedule(self.now + self.rng.randint(0, 50), "submit", node)

    def _submit(self, client_id: str) -> None:
        client = self.clients[client_id]
        operation = b"op-%d" % self.rng.getrandbits(32)
        effects = client.submit(operation)
        assert client.outstanding is not None
        rid = (client_id, client.outstanding.timestamp)
        self.submitted.append(rid)
        self._submitted_at[rid] = (self.now, time.perf_counter())
        self._apply(client_id, effects)

    def _finished(self) -> bool:
        if len(self.accepted) < len(self.clients) * self.requests_per_client:
            return False
        target = max(self.request_seq.values(), default=0)
        return all(t.last_executed >= target for t in self.traces.values())

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        """Run to completion or to the liveness deadline, then check."""
        for rid in range(self.n):
            self._build_replica(rid, None)
            self._apply(rid, self.replicas[rid].start())
        for crash in self.plan.crashes:
            self._schedule(crash.at_ms, "crash", crash.replica)
            self._schedule(crash.restart_ms, "restart", crash.replica)
        for client_id in self.clients:
            self._schedule(
                self.rng.randint(0, self.plan.gst_ms // 2), "submit", client_id
            )
        deadline = self.plan.gst_ms + self.liveness_bound_ms
        while self._queue and not self._finished():
            at, _, kind, payload = heapq.heappop(self._queue)
            if at > deadline:
                break
            self.now = at
            self._step(kind, payload)
        verdict = Verdict(
            safety=check_safety(self.traces, self.accepted),
            liveness=check_liveness(
                self.traces, self.submitted, self.accepted, self.request_seq
            )
            if len(self.submitted) == len(self.clients) * self.requests_per_client
            else ["clients could not submit every request"],
        )
        committed = sum(
            1
            for rid in self.accepted
            if rid in self.request_seq
            and all(
                t.last_executed >= self.request_seq[rid] for t in self.traces.values()
            )
        )
        return RunResult(
            seed=self.seed,
            n=self.n,
            faulty=self.faulty,
            byzantine=dict(self.plan.byzantine),
            crashes=len(self.plan.crashes),
            verdict=verdict,
            requests_committed=committed,
            view_changes=self.max_view,
            latencies_wall_ms=self.latencies_wall_ms,
            latencies_sim_ms=self.latencies_sim_ms,
            messages=self.messages,
            sim_time_ms=self.now,
            dropped=self.dropped,
        )

    def _step(self, kind: str, payload: Any) -> None:
        if kind == "deliver":
            dst, data = payload
            if isinstance(dst, str):
                self._apply(dst, self.clients[dst].receive(data))
            elif dst not in self.down:
                self._apply(dst, self.replicas[dst].receive(data))
        elif kind == "timer":
            node, name, gen = payload
            if self._timer_gen.get((node, name)) != gen:
                return
            if isinstance(node, str):
                self._apply(node, self.clients[node].on_timer(name))
            elif node not in self.down:
                self._apply(node, self.replicas[node].on_timer(name))
        elif kind == "submit":
            self._submit(payload)
        elif kind == "crash":
            self.down.add(payload)
            for key in [k for k in self._timer_gen if k[0] == payload]:
                self._timer_gen[key] += 1
        elif kind == "restart":
            self.down.discard(payload)
            stored = self.disk.get(payload)
            # Recovery works from the bytes on "disk" only.
            durable = None if stored is None else DurableState.from_records(stored)
            self._build_replica(payload, durable)
            self._apply(payload, self.replicas[payload].start())


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 when empty."""
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])
