"""Proof-of-Training scoring with remote validators: 4 gRPC validator services.

Each validator scores with its own copy of the task owner's function, signs its
vector, and the coordinator orders the round with a quorum of vectors; execution
takes the per-update median, so one lying validator cannot move a verdict.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pot_support
import pytest

from pot_flower.audit import audit_ledger
from pot_flower.committee.base import CommitteeError
from pot_flower.committee.remote import RemoteCommittee
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.encoding import decode, encode
from pot_flower.ops.superlink import free_port
from pot_flower.protocol.batch import RoundBatch, SubmissionRef
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import Arrays
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.scores import ScoreVector
from pot_flower.protocol.submission import build_submission
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.transport.node import ValidatorNode
from pot_flower.validator.chains import Chains
from pot_flower.validator.payloads import PayloadStore
from pot_flower.validator.replica_store import RecordStore
from pot_flower.validator.scoring import Scorer
from pot_flower.zk.signatures import SigningKey

N = 4
KEYS = [SigningKey.from_seed(b"scoring-validator-%d" % i) for i in range(N)]
COORDINATOR = SigningKey.from_seed(b"scoring-coordinator")
SCORED = RobustConfig(scored=True)


def honest_score(base: Arrays, returned: Arrays) -> float:
    """Reward small updates (a stand-in for validation-loss improvement)."""
    size = sum(float(np.abs(returned[k] - base[k]).sum()) for k in base)
    return 1.0 - size / 10.0


def lying_score(base: Arrays, returned: Arrays) -> float:
    return -honest_score(base, returned) * 1000.0


@dataclass
class Counter:
    calls: int = 0

    def __call__(self, base: Arrays, returned: Arrays) -> float:
        self.calls += 1
        return honest_score(base, returned)


def start_validators(
    tmp_path: Path, scorers: list[Scorer | None]
) -> tuple[CommitteeConfig, dict[int, str], list[ValidatorNode]]:
    """N validator services on loopback, validator i scoring with ``scorers[i]``."""
    config = CommitteeConfig(
        replicas=tuple(k.verify_key for k in KEYS),
        clients={"coordinator": COORDINATOR.verify_key},
    )
    addresses = {i: f"127.0.0.1:{free_port()}" for i in range(N)}
    nodes = []
    for i in range(N):
        home = tmp_path / f"v{i}"
        service = Chains(
            home / "chains",
            tuple(k.verify_key.raw for k in KEYS),
            config.quorum,
            PayloadStore(home / "payloads"),
            scorer=scorers[i],
        )
        node = ValidatorNode(
            config,
            i,
            KEYS[i],
            service,
            addresses,
            store=RecordStore(home / "consensus.sqlite"),
            service=service,
        )
        node.start()
        nodes.append(node)
    return config, addresses, nodes


@pytest.fixture
def validators(
    tmp_path: Path,
) -> Iterator[tuple[CommitteeConfig, dict[int, str], list[Counter]]]:
    """Validators 0-2 score honestly (counting calls), validator 3 lies."""
    counters = [Counter() for _ in range(3)]
    functions = [*counters, lying_score]
    config, addresses, nodes = start_validators(
        tmp_path, [Scorer(functions[i]) for i in range(N)]
    )
    yield config, addresses, counters
    for node in nodes:
        node.stop(grace=0.1)


def committee_for(
    config: CommitteeConfig,
    addresses: dict[int, str],
    robust: RobustConfig = SCORED,
    timeout: float = 20.0,
) -> RemoteCommittee:
    return RemoteCommittee(
        config,
        addresses,
        "coordinator",
        COORDINATOR,
        run=9,
        model=pot_support.model(),
        norm_bound_units=max_norm_units(10.0),
        robust=robust,
        timeout=timeout,
    )


def round_of(
    committee: RemoteCommittee, scales: dict[int, float]
) -> tuple[list[SubmissionRef], dict[bytes, bytes]]:
    """One submission per miner, its update of the given size."""
    ticket = committee.ticket()
    base = committee.model
    refs, payloads = [], {}
    for i, scale in scales.items():
        sub = build_submission(
            pot_support.miner(i),
            run=9,
            round_=ticket.round,
            node=100 + i,
            nonce=ticket.nonce,
            received=base,
            returned=pot_support.trained(base, i + 10 * ticket.round, scale),
            num_examples=10,
        )
        digest = hashlib.sha256(sub.payload).digest()
        payloads[digest] = sub.payload
        refs.append(SubmissionRef(100 + i, sub.envelope_bytes, sub.signature, digest))
    return refs, payloads


def test_the_committee_scores_and_a_lying_validator_cannot_move_a_verdict(
    tmp_path: Path,
    validators: tuple[CommitteeConfig, dict[int, str], list[Counter]],
) -> None:
    config, addresses, counters = validators
    committee = committee_for(config, addresses)
    try:
        for _ in range(2):
            # Miner 3's update is far too large: scored below zero by the honest.
            refs, payloads = round_of(committee, {0: 0.001, 1: 0.002, 2: 0.001, 3: 0.1})
            certified = committee.certify_round(refs, payloads)
            by_node = {s.node: s for s in certified.body.submissions}
            assert by_node[103].reason is Reason.LOW_SCORE
            assert all(by_node[100 + i].accepted for i in range(3))
            assert all(by_node[100 + i].score > 0 for i in range(3))  # type: ignore[operator]
    finally:
        committee.close()
    # Every honest validator scored each update of each round once.
    assert all(c.calls >= 4 for c in counters)
    report = audit_ledger(tmp_path / "v0" / "chains" / "run-9")
    assert report.ok, report


def test_score_requests_are_answered_from_memory(
    validators: tuple[CommitteeConfig, dict[int, str], list[Counter]],
) -> None:
    config, addresses, counters = validators
    committee = committee_for(config, addresses)
    channel = open_channel(addresses[0])
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    try:
        refs, payloads = round_of(committee, {0: 0.001, 1: 0.002})
        committee._make_available(
            payloads, [r.payload for r in refs if r.payload], round_=1
        )
        batch = RoundBatch(9, 1, tuple(refs), committee._last)
        request = pot_pb2.ScoreRequest(run=9, batch=batch.to_bytes())
        first = stub.Score(request, timeout=10)
        calls = counters[0].calls
        # The same updates in another order, and again: no new scoring.
        shuffled = RoundBatch(9, 1, tuple(reversed(refs)), committee._last)
        again = pot_pb2.ScoreRequest(run=9, batch=shuffled.to_bytes())
        for _ in range(5):
            stub.Score(again, timeout=10)
        assert counters[0].calls == calls
        vector = ScoreVector.from_value(decode(first.vector))
        assert vector.verifies(
            KEYS[0].verify_key.raw,
            run=9,
            round_=1,
            digest=batch.scores_digest(),
            count=2,
        )
    finally:
        channel.close()
        committee.close()


@pytest.mark.parametrize(
    ("run", "batch", "code"),
    [
        (9, b"junk", grpc.StatusCode.FAILED_PRECONDITION),  # malformed batch
        (9, RoundBatch(8, 1, ()).to_bytes(), grpc.StatusCode.FAILED_PRECONDITION),
        (9, RoundBatch(9, 0, ()).to_bytes(), grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_bad_score_requests_get_a_clear_refusal(
    validators: tuple[CommitteeConfig, dict[int, str], list[Counter]],
    run: int,
    batch: bytes,
    code: grpc.StatusCode,
) -> None:
    config, addresses, _ = validators
    committee = committee_for(config, addresses)
    channel = open_channel(addresses[1])
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub.Score(pot_pb2.ScoreRequest(run=run, batch=batch), timeout=10)
        assert refused.value.code() == code
        assert refused.value.details()
        # A run nobody opened: not yet (the chain may be opening), no error.
        pending = stub.Score(pot_pb2.ScoreRequest(run=12345, batch=batch), timeout=10)
        assert not pending.vector and "no chain" in pending.pending
        # Behind: a batch for a later round waits for the validator to catch up.
        ahead = RoundBatch(9, 7, ()).to_bytes()
        later = stub.Score(pot_pb2.ScoreRequest(run=9, batch=ahead), timeout=10)
        assert not later.vector and "behind round 7" in later.pending
    finally:
        channel.close()
        committee.close()


def test_an_unscored_run_is_not_scored(
    validators: tuple[CommitteeConfig, dict[int, str], list[Counter]],
) -> None:
    config, addresses, _ = validators
    committee = committee_for(config, addresses, RobustConfig())
    channel = open_channel(addresses[0])
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    try:
        batch = RoundBatch(9, 1, ()).to_bytes()
        with pytest.raises(grpc.RpcError) as refused:
            stub.Score(pot_pb2.ScoreRequest(run=9, batch=batch), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not scored" in refused.value.details()
    finally:
        channel.close()
        committee.close()


def test_without_a_quorum_of_scorers_the_round_fails_with_the_reasons(
    tmp_path: Path,
) -> None:
    """Validators without a score function refuse; the coordinator says why."""
    config, addresses, nodes = start_validators(
        tmp_path, [Scorer(honest_score) if i == 0 else None for i in range(N)]
    )
    try:
        committee = committee_for(config, addresses, timeout=2.0)
        refs, payloads = round_of(committee, {0: 0.001})
        with pytest.raises(CommitteeError, match="no score function"):
            committee.certify_round(refs, payloads)
        committee.close()
    finally:
        for node in nodes:
            node.stop(grace=0.1)


# ------------------------------------------------ found in review: liveness
class _Deadline(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "deadline"


class _Stub:
    """A validator's Score RPC: answers, holds the call, or is behind once."""

    def __init__(self, rid: int, behaviour: str = "answer") -> None:
        self.rid, self.behaviour, self.calls = rid, behaviour, 0

    def Score(self, request: pot_pb2.ScoreRequest, timeout: float) -> object:
        self.calls += 1
        batch = RoundBatch.from_bytes(request.batch)
        if self.behaviour == "hold":
            time.sleep(timeout)  # a Byzantine validator holding the call
            raise _Deadline()
        if self.behaviour == "behind" and self.calls == 1:
            return pot_pb2.ScoreReply(pending="at height 0, behind round 1")
        vector = ScoreVector.signed(
            KEYS[self.rid],
            self.rid,
            run=batch.run,
            round_=batch.round,
            digest=batch.scores_digest(),
            scores=[1] * len(batch.submissions),
        )
        return pot_pb2.ScoreReply(vector=encode(vector.to_value()))


def _gatherer(stubs: dict[int, _Stub], timeout: float) -> RemoteCommittee:
    remote = RemoteCommittee.__new__(RemoteCommittee)  # no chain: just the RPCs
    remote.config = CommitteeConfig(
        replicas=tuple(k.verify_key for k in KEYS),
        clients={"coordinator": COORDINATOR.verify_key},
    )
    remote.timeout = timeout
    remote._stubs = stubs  # type: ignore[assignment]
    remote._pool = futures.ThreadPoolExecutor(8)
    return remote


@pytest.mark.parametrize("lagging", [False, True])
def test_a_validator_holding_the_call_delays_no_scored_round(lagging: bool) -> None:
    stubs = {i: _Stub(i) for i in range(3)} | {3: _Stub(3, "hold")}
    if lagging:
        stubs[2] = _Stub(2, "behind")  # an honest validator one round behind
    remote = _gatherer(stubs, timeout=5.0)
    started = time.monotonic()
    vectors = remote._gather_scores(
        RoundBatch(5, 1, (SubmissionRef(1, None, None, None),))
    )
    assert [v.validator for v in vectors] == [0, 1, 2]
    assert time.monotonic() - started < 2.0
    remote._pool.shutdown(wait=False, cancel_futures=True)


def test_cut_off_score_calls_do_not_pile_up_behind_the_scorer(tmp_path: Path) -> None:
    """A slow score function: calls cut off by their deadline keep the slot taken."""
    inside = [0, 0]  # now, peak
    lock = threading.Lock()

    def slow(base: Arrays, returned: Arrays) -> float:
        with lock:
            inside[0] += 1
            inside[1] = max(inside)
        time.sleep(1.0)
        with lock:
            inside[0] -= 1
        return 0.5

    config, addresses, nodes = start_validators(
        tmp_path, [Scorer(slow if i == 0 else honest_score) for i in range(N)]
    )
    committee = committee_for(config, addresses)
    channel = open_channel(addresses[0])
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    try:
        refs, payloads = round_of(committee, {0: 0.001, 1: 0.002, 2: 0.003})
        committee._make_available(
            payloads, [r.payload for r in refs if r.payload], round_=1
        )
        batch = RoundBatch(9, 1, tuple(refs), committee._last)
        request = pot_pb2.ScoreRequest(run=9, batch=batch.to_bytes())
        codes = []
        for _ in range(8):
            with pytest.raises(grpc.RpcError) as cut:
                stub.Score(request, timeout=0.3)
            codes.append(cut.value.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        started = time.monotonic()
        digest = refs[0].payload
        assert digest is not None
        stub.Holds(pot_pb2.HoldsRequest(digests=[digest]), timeout=10)
        assert time.monotonic() - started < 1.0  # other work is not starved
        time.sleep(3.5)  # the batch in progress ends; it was scored once at a time
        assert inside[1] == 1
        assert stub.Score(request, timeout=10).vector  # and remembered
    finally:
        channel.close()
        committee.close()
        for node in nodes:
            node.stop(grace=0.1)
