"""The embedded committee executes each ordered batch once for all its replicas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pot_support import RoundBuilder, chain, miner, model, run_committee, trained

from pot_flower.audit import audit_ledger
from pot_flower.committee.embedded import EmbeddedCommittee, SharedExecution
from pot_flower.protocol.batch import BatchError, SubmissionRef
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.submission import build_submission
from pot_flower.validator.ledger import Ledger


def test_one_execution_per_round_and_every_ledger_identical(tmp_path: Path) -> None:
    committee = run_committee(tmp_path, rounds=3)
    assert committee.execution.executions == 3
    heads = {v.app.state.head for v in committee.validators}
    assert len(heads) == 1
    hashes = set()
    for i in range(4):
        ledger = Ledger(tmp_path / f"validator-{i}")
        hashes.add(tuple(ledger.block_hash(h) for h in range(4)))
        assert audit_ledger(ledger.directory).ok
        ledger.close()
    assert len(hashes) == 1


def test_replicas_get_their_own_state_not_a_shared_one() -> None:
    state = chain()
    builder = RoundBuilder(state)
    for i in range(3):
        builder.honest(i)
    shared = SharedExecution()
    batch = builder.batch()
    a = shared(state, batch, builder.payloads, None)
    b = shared(state, batch, builder.payloads, None)
    assert shared.executions == 1
    assert a.hash == b.hash == execute_round(state, batch, builder.payloads).hash
    assert a.state is not b.state
    for name in a.state.model:
        assert a.state.model[name] is not b.state.model[name]
    assert a.state.miners == b.state.miners and a.state.miners is not b.state.miners
    a.state.miners.add(b"x" * 32)
    assert b"x" * 32 not in b.state.miners


def test_a_different_batch_or_state_executes_again() -> None:
    state = chain()
    builder = RoundBuilder(state)
    builder.honest(0)
    shared = SharedExecution()
    first = shared(state, builder.batch(), builder.payloads, None)
    builder.honest(1)
    shared(state, builder.batch(), builder.payloads, None)
    assert shared.executions == 2
    after = RoundBuilder(first.state)
    after.honest(0)
    shared(first.state, after.batch(), after.payloads, None)
    assert shared.executions == 3


def test_an_unexecutable_batch_fails_the_same_way_for_every_replica() -> None:
    state = chain()
    shared = SharedExecution()
    for _ in range(2):
        with pytest.raises(BatchError, match="malformed"):
            shared(state, b"not a batch", {}, None)
    assert shared.executions == 1


def test_a_failing_execution_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    state = chain()
    builder = RoundBuilder(state)
    builder.honest(0)
    shared = SharedExecution()
    calls = []

    def broken(*args: object) -> None:
        calls.append(1)
        raise MemoryError

    monkeypatch.setattr("pot_flower.committee.embedded.execute_round", broken)
    for _ in range(2):
        with pytest.raises(MemoryError):
            shared(state, builder.batch(), builder.payloads, None)
    assert len(calls) == 2


def test_a_single_submission_round_runs_once(tmp_path: Path) -> None:
    committee = EmbeddedCommittee(
        tmp_path, run=5, model=model(), norm_bound_units=max_norm_units(10.0)
    )
    ticket = committee.ticket()
    sub = build_submission(
        miner(0),
        run=5,
        round_=ticket.round,
        node=1,
        nonce=ticket.nonce,
        received=model(),
        returned=trained(model(), 0),
        num_examples=10,
    )
    digest = hashlib.sha256(sub.payload).digest()
    ref = SubmissionRef(1, sub.envelope_bytes, sub.signature, digest)
    out = committee.certify_round([ref], {digest: sub.payload})
    assert [s.node for s in out.body.accepted] == [1]
    assert committee.execution.executions == 1
    committee.close()
