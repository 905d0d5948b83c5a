"""Agreed scores: signed by validators, a quorum's median, within the honest range."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pot_support import VALIDATOR_KEYS, RoundBuilder, chain

from pot_flower.protocol.batch import BatchError, RoundBatch
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.scores import (
    LIMIT,
    ScoreError,
    ScoreVector,
    agreed_scores,
    to_micro,
)

KEYS = [k.verify_key.raw for k in VALIDATOR_KEYS]  # n = 4, quorum 3
DIGEST = b"d" * 32


def vector(i: int, scores: list[int | None], digest: bytes = DIGEST) -> ScoreVector:
    return ScoreVector.signed(
        VALIDATOR_KEYS[i], i, run=1, round_=2, digest=digest, scores=scores
    )


def agree(vectors: list[ScoreVector], count: int) -> list[int | None]:
    return agreed_scores(vectors, KEYS, 3, run=1, round_=2, digest=DIGEST, count=count)


scores = st.integers(-(10**9), 10**9)


@given(
    st.lists(st.lists(scores, min_size=3, max_size=3), min_size=3, max_size=3),
    st.lists(scores, min_size=3, max_size=3),
    st.integers(0, 3),
)
def test_one_byzantine_vector_cannot_leave_the_honest_range(honest, byzantine, liar):
    vectors = {
        i: h for i, h in zip([j for j in range(4) if j != liar], honest, strict=True)
    }
    vectors[liar] = byzantine
    got = agree([vector(i, vectors[i]) for i in sorted(vectors)], 3)
    for k in range(3):
        column = [h[k] for h in honest]
        assert min(column) <= got[k] <= max(column)


def test_fewer_than_a_quorum_of_valid_vectors_is_refused() -> None:
    good = [vector(0, [1]), vector(1, [2])]
    with pytest.raises(ScoreError):
        agree(good, 1)
    forged = ScoreVector(2, (3,), bytes(64))
    with pytest.raises(ScoreError):
        agree([*good, forged], 1)
    other_batch = vector(2, [3], digest=b"e" * 32)
    with pytest.raises(ScoreError):
        agree([*good, other_batch], 1)
    with pytest.raises(ScoreError):  # repeated validator
        agree([vector(0, [1]), vector(0, [1]), vector(1, [2])], 1)


def test_a_submission_most_validators_cannot_score_has_no_score() -> None:
    vectors = [vector(0, [None, 5]), vector(1, [None, 6]), vector(2, [4, 7])]
    assert agree(vectors, 2) == [None, 6]


def test_float_scores_become_bounded_integers() -> None:
    assert to_micro(0.1234564) == 123456
    assert to_micro(float("nan")) is None and to_micro(None) is None
    assert to_micro(float("inf")) == LIMIT and to_micro(-1e300) == -LIMIT


def scored_round(scores_of: dict[int, int], **config: object):  # type: ignore[no-untyped-def]
    state = chain(robust=RobustConfig(scored=True, **config))  # type: ignore[arg-type]
    builder = RoundBuilder(state)
    for i in scores_of:
        builder.honest(i)
    batch = RoundBatch.from_bytes(builder.batch())
    by_node = [scores_of[s.node - 1000] for s in batch.submissions]
    digest = batch.scores_digest()
    vectors = tuple(
        ScoreVector.signed(
            VALIDATOR_KEYS[v],
            v,
            run=batch.run,
            round_=batch.round,
            digest=digest,
            scores=by_node,
        )
        for v in range(3)
    )
    return state, replace(batch, scores=vectors), builder.payloads


def test_low_scores_are_excluded_and_scores_set_rewards() -> None:
    state, batch, payloads = scored_round({1: 400_000, 2: 100_000, 3: -5, 4: 300_000})
    outcome = execute_round(state, batch.to_bytes(), payloads)
    by_node = {v.node: v for v in outcome.verdicts}
    assert by_node[1003].reason is Reason.LOW_SCORE and by_node[1003].reward == 0
    assert by_node[1003].score == -5
    paid = [by_node[n].reward for n in (1001, 1002, 1004)]
    # Median 300k: weights saturate at 150k, so 400k and 300k earn alike, 100k less.
    assert abs(paid[0] - paid[2]) <= 1 and paid[1] < paid[0]


def test_a_scored_chain_refuses_a_batch_without_scores() -> None:
    state, batch, payloads = scored_round({1: 1, 2: 2, 3: 3})
    with pytest.raises(BatchError, match="score vectors"):
        execute_round(
            state, replace(batch, scores=batch.scores[:2]).to_bytes(), payloads
        )
