"""Pedersen chains: updates bound by Pedersen commitments, openings checked in batch."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import replace

import numpy as np
import pytest
from pot_support import RoundBuilder, chain, trained

pytest.importorskip("py_arkworks_bls12381")

from pot_flower.audit.content import check_duplicates
from pot_flower.audit.report import BadBlock, Failure
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.commitments import (
    CommitmentKind,
    with_opening,
)
from pot_flower.protocol.execution import RoundOutcome, execute_round
from pot_flower.protocol.params import Params
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.submission import Submission
from pot_flower.zk.pedersen import ORDER

PEDERSEN = CommitmentKind.PEDERSEN


def pedersen_chain() -> ChainState:
    return chain(commitment=PEDERSEN)


def sign(b: RoundBuilder, i: int, **kwargs: object) -> Submission:
    return b.sign(i, trained(b.state.model, i), commitment=PEDERSEN, **kwargs)


def add(b: RoundBuilder, sub: Submission, i: int, payload: bytes | None = None) -> None:
    b.add(
        sub,
        node=1000 + i,
        payload=sub.validator_payload if payload is None else payload,
    )


def execute(b: RoundBuilder) -> tuple[RoundOutcome, RoundBlock]:
    outcome = execute_round(b.state, b.batch(), b.payloads)
    block = parse_block(outcome.body)
    assert isinstance(block, RoundBlock)
    return outcome, block


def reasons(block: RoundBlock) -> dict[int, Reason | None]:
    return {s.node - 1000: s.reason for s in block.submissions}


def test_genesis_records_the_kind_and_reads_it_back() -> None:
    state = pedersen_chain()
    assert state.params.commitment == PEDERSEN
    assert state.params.to_value()["commitment"] == "pedersen"
    assert Params.from_value(state.params.to_value()) == state.params
    assert "commitment" not in chain().params.to_value()  # hash: genesis unchanged
    bad = dict(state.params.to_value())
    bad["commitment"] = "hash"  # the default is never recorded
    with pytest.raises(ValueError):
        Params.from_value(bad)


def test_honest_pedersen_submissions_are_accepted_and_recorded() -> None:
    b = RoundBuilder(pedersen_chain())
    subs = [sign(b, i) for i in range(5)]
    for i, sub in enumerate(subs):
        add(b, sub, i)
    outcome, block = execute(b)
    assert all(r is None for r in reasons(block).values())
    recorded = {s.commitment for s in block.submissions}
    assert recorded == {s.envelope.commitment for s in subs}
    assert all(len(c) == 48 for c in recorded)  # type: ignore[arg-type]
    # The blinding factors are in no block and no verdict.
    assert all(
        s.blinding.to_bytes(32, "big") not in outcome.body
        for s in subs  # type: ignore[union-attr]
    )


@pytest.mark.parametrize("fault", ["blinding", "out-of-range", "update", "no-opening"])
def test_a_wrong_opening_rejects_that_update_only(fault: str) -> None:
    b = RoundBuilder(pedersen_chain())
    subs = [sign(b, i) for i in range(4)]
    bad = subs[2]
    assert bad.blinding is not None
    for i, sub in enumerate(subs):
        payload = None
        if i == 2:
            if fault == "blinding":
                payload = with_opening(bad.payload, (bad.blinding + 1) % ORDER)
            elif fault == "out-of-range":
                payload = with_opening(bad.payload, bad.blinding + ORDER)
            elif fault == "update":
                other = sign(b, 9)  # another update, this miner's commitment
                payload = with_opening(other.payload, bad.blinding)
            else:
                payload = bad.payload  # the arrays without the blinding factor
        add(b, sub, i, payload)
    _, block = execute(b)
    want = (
        Reason.MALFORMED_UPDATE if fault == "no-opening" else Reason.COMMITMENT_MISMATCH
    )
    assert reasons(block) == {0: None, 1: None, 2: want, 3: None}


def test_a_hash_commitment_on_a_pedersen_chain_does_not_open() -> None:
    b = RoundBuilder(pedersen_chain())
    hashed = b.sign(0, trained(b.state.model, 0))  # 32-byte hash commitment
    b.add(hashed, node=1000, payload=with_opening(hashed.payload, 5))
    add(b, sign(b, 1), 1)
    _, block = execute(b)
    assert reasons(block) == {0: Reason.COMMITMENT_MISMATCH, 1: None}


def test_a_copy_under_another_blinding_is_still_a_copy() -> None:
    """The copycat re-commits the victim's update with its own blinding factor:
    the commitments differ, the updates do not, and neither is paid."""
    b = RoundBuilder(pedersen_chain())
    victim = sign(b, 0)
    copycat = b.sign(1, trained(b.state.model, 0), commitment=PEDERSEN)
    assert victim.envelope.commitment != copycat.envelope.commitment
    add(b, victim, 0)
    add(b, copycat, 1)
    add(b, sign(b, 2), 2)
    _, block = execute(b)
    assert reasons(block) == {0: Reason.COPIED_UPDATE, 1: Reason.COPIED_UPDATE, 2: None}
    check_duplicates(block.submissions, PEDERSEN)  # the audit's view agrees


def test_the_audit_wants_the_chain_s_commitment_size() -> None:
    b = RoundBuilder(pedersen_chain())
    add(b, sign(b, 0), 0)
    _, block = execute(b)
    short = replace(block.submissions[0], commitment=bytes(32))
    with pytest.raises(BadBlock) as caught:
        check_duplicates([short], PEDERSEN)
    assert caught.value.failure == Failure.BAD_CONTENT
    with pytest.raises(BadBlock):
        check_duplicates(block.submissions, CommitmentKind.HASH)


def _execute(args: tuple[bytes, bytes, dict[bytes, bytes]]) -> tuple[bytes, bytes]:
    state_bytes, batch, payloads = args
    outcome = execute_round(ChainState.from_bytes(state_bytes), batch, payloads)
    return outcome.hash, outcome.state.model_digest


def test_pedersen_rounds_are_identical_across_processes() -> None:
    b = RoundBuilder(pedersen_chain())
    subs = [sign(b, i) for i in range(5)]
    for i, sub in enumerate(subs):
        add(b, sub, i, with_opening(sub.payload, 7) if i == 3 else None)
    args = (b.state.to_bytes(), b.batch(), b.payloads)
    here = _execute(args)
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_execute, [args, args])
    assert results == [here, here]
    _, block = execute(b)
    assert reasons(block)[3] == Reason.COMMITMENT_MISMATCH


def test_openings_are_checked_in_one_batch_when_they_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pot_flower.zk import pedersen

    calls = {"commit": 0}
    original = pedersen.FastBackend.commit

    def counting(
        self: pedersen.FastBackend, values: np.ndarray, blinding: int
    ) -> bytes:
        calls["commit"] += 1
        return original(self, values, blinding)

    b = RoundBuilder(pedersen_chain())
    subs = [sign(b, i) for i in range(6)]
    for i, sub in enumerate(subs):
        add(b, sub, i)
    monkeypatch.setattr(pedersen.FastBackend, "commit", counting)
    _, block = execute(b)
    assert all(r is None for r in reasons(block).values())
    assert calls["commit"] == 0  # no per-update commitment recomputed


@pytest.mark.parametrize("bad", [0, 31, 63])
def test_one_false_opening_is_found_by_bisection_not_by_recommitting_all(
    monkeypatch: pytest.MonkeyPatch, bad: int
) -> None:
    """One miner must not make every validator recommit the whole round."""
    from pot_flower.protocol import commitments
    from pot_flower.zk import pedersen

    rng = np.random.default_rng(bad)
    vectors = [rng.integers(-(2**20), 2**20, 64) for _ in range(64)]
    blindings = [int(x) + 1 for x in rng.integers(1, 2**62, 64)]
    fast = pedersen.fast_backend()
    cs = [fast.commit(v, r) for v, r in zip(vectors, blindings, strict=True)]
    blindings[bad] += 1
    calls = {"commit": 0}
    original = pedersen.FastBackend.commit

    def counting(self: pedersen.FastBackend, values: np.ndarray, r: int) -> bytes:
        calls["commit"] += 1
        return original(self, values, r)

    monkeypatch.setattr(pedersen.FastBackend, "commit", counting)
    key = bytes([bad]) * 32
    assert commitments.failed_openings(cs, vectors, blindings, key) == (bad,)
    # At most the two smallest subsets alone, not 64 commitments.
    assert calls["commit"] <= 2 * (commitments.SINGLE_BELOW - 1)


def test_a_blinding_out_of_range_fails_without_a_multiplication(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pot_flower.protocol import commitments
    from pot_flower.zk import pedersen

    vectors = [np.arange(8, dtype=np.int64) * k for k in range(6)]
    fast = pedersen.fast_backend()
    cs = [fast.commit(v, 3) for v in vectors]
    blindings = [3] * 6
    blindings[2] = ORDER + 3
    cs[4] = b"\xc0" * 48  # an infinity flag with stray bits: not canonical
    monkeypatch.setattr(
        pedersen.FastBackend,
        "commit",
        lambda *a: pytest.fail("recommitted an update"),
    )
    assert commitments.failed_openings(cs, vectors, blindings, b"k" * 32) == (2, 4)


def test_a_ticket_with_a_malformed_kind_is_not_a_ticket() -> None:
    from pot_flower.protocol.records import TicketRecord

    value = {"run": 1, "round": 1, "nonce": b"n", "commitment": ["pedersen"]}
    assert TicketRecord.from_value(value) is None
    value["commitment"] = "sha3"
    assert TicketRecord.from_value(value) is None
