"""Round execution: every rejection reason; the round still commits with the good."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pot_support
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pot_support import VALIDATOR_KEYS, RoundBuilder, chain, miner, trained

from pot_flower.audit import audit_ledger
from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.encoding import decode
from pot_flower.protocol.batch import BatchError, RoundBatch, SubmissionRef
from pot_flower.protocol.envelope import Envelope
from pot_flower.protocol.execution import (
    check_all,
    execute_round,
    keep_rows,
    parse_batch,
    permute_rows,
    stack_and_free,
    update_matrix,
)
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import encode_arrays
from pot_flower.protocol.params import MAX_EXAMPLES
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import fee_pool
from pot_flower.protocol.robust import Aggregator, RobustConfig
from pot_flower.protocol.scores import ScoreVector
from pot_flower.protocol.submission import build_submission

MULTI_KRUM = RobustConfig(aggregator=Aggregator.MULTI_KRUM, byzantine_ppm=200_000)

HONEST = (1, 2, 3)


def run_with(bad: callable, **chain_params: object):  # type: ignore[valid-type]
    """Three honest miners plus whatever ``bad`` adds; returns the outcome."""
    builder = RoundBuilder(chain(**chain_params))
    for i in HONEST:
        builder.honest(i)
    bad(builder)
    batch = builder.batch()
    if builder.state.params.robust.scored:  # validators score node 1009 below zero
        batch = with_scores(batch, lambda node: -1 if node == 1009 else 100_000)
    outcome = execute_round(builder.state, batch, builder.payloads)
    body = decode(outcome.body)
    assert isinstance(body, dict)
    return outcome, body


def with_scores(batch_bytes: bytes, score_of: callable) -> bytes:  # type: ignore[valid-type]
    """The batch with a quorum of validators' signed score vectors."""
    batch = RoundBatch.from_bytes(batch_bytes)
    scores = [score_of(s.node) for s in batch.submissions]  # type: ignore[operator]
    vectors = tuple(
        ScoreVector.signed(
            VALIDATOR_KEYS[v],
            v,
            run=batch.run,
            round_=batch.round,
            digest=batch.scores_digest(),
            scores=scores,
        )
        for v in range(3)
    )
    return replace(batch, scores=vectors).to_bytes()


def verdict_of(outcome, node: int):  # type: ignore[no-untyped-def]
    matches = [v for v in outcome.verdicts if v.node == node]
    assert len(matches) >= 1
    return matches


def envelope_with(
    builder: RoundBuilder, i: int, **changes: object
) -> tuple[bytes, bytes, bytes]:
    """An honest submission whose envelope is re-signed with ``changes``."""
    sub = builder.sign(i, trained(builder.state.model, i))
    fields = sub.envelope.__dict__ | changes
    envelope = Envelope(**fields)
    return envelope.to_bytes(), envelope.sign(miner(i)), sub.payload


def bad_payload(builder: RoundBuilder, i: int, returned: dict) -> None:  # type: ignore[type-arg]
    """Miner i signs honestly, then the arrays are swapped for ``returned``."""
    sub = builder.sign(i, trained(builder.state.model, i))
    builder.add(sub, node=1000 + i, payload=encode_arrays(returned))


def crafted(reason: Reason):  # type: ignore[no-untyped-def]
    i = 9

    def missing_signature(b: RoundBuilder) -> None:
        b.add(b.sign(i, trained(b.state.model, i)), node=1009, signature=b"")

    def malformed_envelope(b: RoundBuilder) -> None:
        b.add(b.sign(i, trained(b.state.model, i)), node=1009, envelope=b"i1e")

    def bad_signature(b: RoundBuilder) -> None:
        sub = b.sign(i, trained(b.state.model, i))
        b.add(sub, node=1009, signature=bytes(64))

    def with_envelope(**changes: object):  # type: ignore[no-untyped-def]
        def craft(b: RoundBuilder) -> None:
            env, sig, payload = envelope_with(b, i, **changes)
            b.add(None, node=1009, envelope=env, signature=sig, payload=payload)

        return craft

    def unknown_miner(b: RoundBuilder) -> None:
        b.add(b.sign(i, trained(b.state.model, i)), node=1009)

    def wrong_node(b: RoundBuilder) -> None:
        b.add(b.sign(i, trained(b.state.model, i)), node=4444)

    def malformed_update(b: RoundBuilder) -> None:
        b.add(b.sign(i, trained(b.state.model, i)), node=1009, payload=b"garbage")

    def wrong_keys(b: RoundBuilder) -> None:
        returned = trained(b.state.model, i)
        returned["extra"] = np.zeros(3, np.float32)
        bad_payload(b, i, returned)

    def wrong_shape(b: RoundBuilder) -> None:
        returned = trained(b.state.model, i)
        returned["fc.bias"] = np.zeros(11, np.float32)
        bad_payload(b, i, returned)

    def wrong_dtype(b: RoundBuilder) -> None:
        returned = trained(b.state.model, i)
        returned["fc.bias"] = returned["fc.bias"].astype(np.float64)
        bad_payload(b, i, returned)

    def non_finite(b: RoundBuilder) -> None:
        returned = trained(b.state.model, i)
        returned["fc.weight"] = returned["fc.weight"].copy()
        returned["fc.weight"][3, 4] = np.nan
        bad_payload(b, i, returned)

    def norm_above_bound(b: RoundBuilder) -> None:
        # Every element small, the norm large: the L2 check, not the element check.
        b.add(b.sign(i, trained(b.state.model, i, scale=2.0)), node=1009)

    def commitment_mismatch(b: RoundBuilder) -> None:
        returned = trained(b.state.model, 42)
        bad_payload(b, i, returned)

    def duplicate(b: RoundBuilder) -> None:
        b.honest(2, node=1002)  # miner 2 again, same node, another update
        b.add(b.sign(2, trained(b.state.model, 77)), node=1002)

    def copied(b: RoundBuilder) -> None:
        # Miner 9 copies miner 1's returned weights exactly (its own envelope).
        b.add(b.sign(i, trained(b.state.model, 1)), node=1009)

    def near_copy(b: RoundBuilder) -> None:
        # Miner 9 sends miner 1's update with 1 % noise: both are rejected.
        base = trained(b.state.model, 1)
        noisy = {
            k: (v + trained(b.state.model, 50, scale=1e-4)[k] - b.state.model[k])
            if v.dtype.kind == "f"
            else v
            for k, v in base.items()
        }
        b.add(b.sign(i, noisy), node=1009)

    def low_score(b: RoundBuilder) -> None:
        b.add(b.sign(i, trained(b.state.model, i)), node=1009)

    def not_selected(b: RoundBuilder) -> None:
        # Five updates tolerate one Byzantine: Multi-Krum drops the far one.
        b.honest(4)
        b.add(b.sign(i, trained(b.state.model, i, scale=0.05)), node=1009)

    table = {
        Reason.MISSING_SIGNATURE: missing_signature,
        Reason.MALFORMED_ENVELOPE: malformed_envelope,
        Reason.BAD_SIGNATURE: bad_signature,
        Reason.UNKNOWN_MINER: unknown_miner,
        Reason.WRONG_RUN: with_envelope(run=1),
        Reason.WRONG_ROUND: with_envelope(round=5),
        Reason.WRONG_NONCE: with_envelope(nonce=b"\x00" * 16),
        Reason.WRONG_NODE: wrong_node,
        Reason.BASE_DIGEST_MISMATCH: with_envelope(base_digest=b"\x01" * 32),
        Reason.BAD_NUM_EXAMPLES: with_envelope(num_examples=MAX_EXAMPLES + 1),
        Reason.MALFORMED_UPDATE: malformed_update,
        Reason.WRONG_KEYS: wrong_keys,
        Reason.WRONG_SHAPE: wrong_shape,
        Reason.WRONG_DTYPE: wrong_dtype,
        Reason.NON_FINITE: non_finite,
        Reason.NORM_ABOVE_BOUND: norm_above_bound,
        Reason.COMMITMENT_MISMATCH: commitment_mismatch,
        Reason.DUPLICATE_SUBMISSION: duplicate,
        Reason.COPIED_UPDATE: copied,
        Reason.NEAR_COPY: near_copy,
        Reason.LOW_SCORE: low_score,
        Reason.NOT_SELECTED: not_selected,
    }
    return table[reason]


# Commit-reveal's reasons need a sealed round: tests/protocol/test_commit_reveal.py.
SEALING = {Reason.NOT_SEALED, Reason.SEAL_MISMATCH, Reason.NOT_REVEALED}


@pytest.mark.parametrize(
    "reason", [r for r in Reason if r not in SEALING], ids=lambda r: r.value
)
def test_every_rejection_reason_has_a_crafted_submission(reason: Reason) -> None:
    params: dict[str, object] = {}
    if reason is Reason.UNKNOWN_MINER:
        params = {
            "registration": "allow-list",
            "allowed_miners": tuple(miner(i).verify_key.raw for i in HONEST),
        }
    if reason is Reason.NOT_SELECTED:
        params = {"robust": MULTI_KRUM}
    if reason is Reason.LOW_SCORE:
        params = {"robust": RobustConfig(scored=True)}
    outcome, body = run_with(crafted(reason), **params)
    rejected = [v for v in outcome.verdicts if not v.accepted]
    assert {v.reason for v in rejected} == {reason}
    # The round commits with the good ones (copies reject both sides of the copy).
    good = {v.node for v in outcome.verdicts if v.accepted}
    expected = set(1000 + i for i in HONEST)
    if reason in (Reason.COPIED_UPDATE, Reason.NEAR_COPY):
        expected -= {1001}
    if reason is Reason.NOT_SELECTED:
        expected |= {1004}
    if reason is Reason.DUPLICATE_SUBMISSION:
        assert len([v for v in outcome.verdicts if v.node == 1002 and v.accepted]) == 1
    assert good == expected
    assert outcome.state.height == 1
    assert outcome.state.model_digest != chain().model_digest
    # Rejected submissions are in the block with their reason, and earn nothing.
    subs = body["submissions"]
    assert sum(s["reason"] == reason.value for s in subs) == len(rejected)
    assert all(s["reward"] == 0 for s in subs if s["verdict"] == "rejected")


def test_rewards_sum_to_emission_and_claimed_examples_buy_nothing() -> None:
    outcome, body = run_with(lambda b: b.honest(4, examples=MAX_EXAMPLES))
    params = chain().params
    miners = [v.reward for v in outcome.verdicts if v.accepted]
    assert sum(miners) == params.emission - fee_pool(
        params.emission, params.validator_fee_ppm
    )
    assert body["minted"] == sum(miners)  # no previous certificate: no validator fee
    # Past twice the round's median claim (100), a claim buys neither weight nor pay.
    at_median, _ = run_with(lambda b: b.honest(4, examples=200))
    assert outcome.state.model_digest == at_median.state.model_digest
    assert [v.reward for v in outcome.verdicts] == [
        v.reward for v in at_median.verdicts
    ]


def test_lazy_miner_returning_the_base_model_earns_nothing() -> None:
    def lazy(b: RoundBuilder) -> None:
        b.add(b.sign(5, dict(b.state.model)), node=1005)

    outcome, _ = run_with(lazy)
    v = next(v for v in outcome.verdicts if v.node == 1005)
    assert v.accepted and v.quality_ppm == 0 and v.reward == 0


def test_round_without_any_valid_submission_keeps_the_model() -> None:
    builder = RoundBuilder(chain())
    builder.add(None, node=1, envelope=b"x", signature=b"y", payload=b"z")
    outcome = execute_round(builder.state, builder.batch(), builder.payloads)
    assert outcome.state.model_digest == builder.state.model_digest
    assert outcome.state.height == 1
    assert decode(outcome.body)["minted"] == 0  # type: ignore[index]


@pytest.mark.parametrize(
    "overrides, message",
    [({"run": 5}, "run"), ({"round": 3}, "round")],
)
def test_batch_for_another_run_or_round_is_refused(
    overrides: dict, message: str
) -> None:  # type: ignore[type-arg]
    builder = RoundBuilder(chain())
    builder.honest(1)
    with pytest.raises(BatchError, match=message):
        execute_round(builder.state, builder.batch(**overrides), builder.payloads)


@pytest.mark.parametrize("data", [b"", b"garbage", b"d4:kindu5:rounde", b"le"])
def test_malformed_batches_are_refused_not_crashed(data: bytes) -> None:
    with pytest.raises(BatchError):
        execute_round(chain(), data, {})


def test_execution_is_deterministic_and_order_independent() -> None:
    builder = RoundBuilder(chain())
    for i in range(6):
        builder.honest(i)
    first = execute_round(builder.state, builder.batch(), builder.payloads)
    builder.refs.reverse()
    second = execute_round(builder.state, builder.batch(), builder.payloads)
    assert first.hash == second.hash
    assert first.body == second.body


def test_a_copied_update_counts_once_and_earns_nothing() -> None:
    copied, _ = run_with(
        lambda b: b.add(b.sign(9, trained(b.state.model, 1)), node=1009)
    )
    alone, _ = run_with(lambda b: None)
    assert copied.state.model_digest == alone.state.model_digest
    copies = [v for v in copied.verdicts if v.node in (1001, 1009)]
    assert all(v.reason is Reason.COPIED_UPDATE and v.reward == 0 for v in copies)


def test_a_round_of_copies_only_still_moves_the_model_and_verifies(
    tmp_path: Path,
) -> None:
    base = pot_support.model()
    committee = EmbeddedCommittee(
        tmp_path, run=5, model=base, norm_bound_units=max_norm_units(10.0)
    )
    ticket = committee.ticket()
    refs, payloads = [], {}
    for i, node in enumerate((100, 101)):  # miner 1 copies miner 0's update
        sub = build_submission(
            miner(i),
            run=5,
            round_=ticket.round,
            node=node,
            nonce=ticket.nonce,
            received=base,
            returned=trained(base, 0),
            num_examples=10,
        )
        digest = hashlib.sha256(sub.payload).digest()
        payloads[digest] = sub.payload
        refs.append(SubmissionRef(node, sub.envelope_bytes, sub.signature, digest))
    certified = committee.certify_round(refs, payloads)
    committee.close()
    assert certified.body.accepted == ()
    assert certified.body.model != certified.body.base  # the copy counted once
    report = audit_ledger(tmp_path / "validator-0")
    assert report.ok, report.problem


@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(st.just(n), st.permutations(range(n)), st.integers(0, n))
    )
)
def test_rows_are_put_in_order_in_place_as_a_view(
    case: tuple[int, list[int], int],
) -> None:
    n, shuffled, k = case
    matrix = np.arange(n * 3, dtype=np.int64).reshape(n, 3).copy()
    before, order = matrix.copy(), list(shuffled[:k])
    rows = permute_rows(matrix, order)
    assert np.array_equal(rows, before[order]) and rows.base is matrix
    keep = sorted(set(shuffled[: k // 2]) & set(range(k)))
    kept = keep_rows(rows, keep)
    assert np.array_equal(kept, before[order][keep]) and kept.base is matrix


def test_a_round_holds_each_update_in_one_matrix_in_canonical_order() -> None:
    state = chain()
    b = RoundBuilder(state)
    for i in range(6):
        b.honest(i)
    verdicts = check_all(state, parse_batch(state, b.batch()), b.payloads)
    bases = {id(v.flat.base) for v in verdicts if v.flat is not None}
    assert len(bases) == 1  # no update has a copy of its own
    expected = [v.flat.copy() for v in verdicts if v.flat is not None]
    rows = stack_and_free(verdicts)
    assert all(v.flat is None for v in verdicts)
    assert np.array_equal(rows, np.stack(expected)) and id(rows.base) in bases


def test_submissions_nobody_signed_reserve_no_rows_for_their_updates() -> None:
    # A coordinator pointing 2,000 forged submissions at one real payload: the
    # round reserves rows only for signed ones, not 2,000 x the model.
    state = chain()
    b = RoundBuilder(state)
    honest = b.honest(0)
    for k in range(2000):
        b.add(honest, node=5000 + k, signature=bytes(64))
    verdicts = check_all(state, parse_batch(state, b.batch()), b.payloads)
    assert [v.reason for v in verdicts].count(Reason.BAD_SIGNATURE) == 2000
    (held,) = [v.flat for v in verdicts if v.flat is not None]
    # One row, in a matrix of at most two (a reused one may have a spare row).
    assert held.base.shape[0] <= 2 and held.base.shape[1] == state.layout.size


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_the_next_round_reuses_the_matrix_once_nothing_holds_it() -> None:
    first = update_matrix(4, 3)
    address = _address(first)
    del first
    again = update_matrix(3, 3)  # fits, and nothing else holds it: no fresh pages
    assert _address(again) == address and again.shape == (3, 3)
    other = update_matrix(3, 3)  # ``again`` is in use: never handed out twice
    assert not np.may_share_memory(other, again)
    rows = iter(other)
    row = next(rows)
    del other, rows
    assert not np.may_share_memory(update_matrix(3, 3), row)  # a row view holds it
    assert update_matrix(1, 3).base.shape == (1, 3)  # twice too large: not kept
    kept = _address(update_matrix(1, 3))
    assert update_matrix(0, 3).shape == (0, 3)  # a round without updates...
    assert _address(update_matrix(1, 3)) == kept  # ...leaves the kept one kept


def test_rounds_executed_at_once_on_threads_never_share_a_matrix() -> None:
    state = chain()
    rounds = []
    for size in (3, 4, 5, 6):
        b = RoundBuilder(state)
        for i in range(size):
            b.honest(10 * size + i)
        rounds.append((b.batch(), b.payloads))
    alone = [execute_round(state, *r).hash for r in rounds]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda r: execute_round(state, *r).hash, rounds * 5))
    assert together == alone * 5


def test_a_reused_matrix_leaves_nothing_of_the_last_round_in_the_next() -> None:
    state = chain()
    b = RoundBuilder(state)
    for i in range(4):
        b.honest(i)
    kept: list[np.ndarray] = []  # this test's own pool: earlier tests keep theirs
    with mock.patch("pot_flower.protocol.execution._spare", kept):
        execute_round(state, b.batch(), b.payloads)  # fills 4 rows that are kept
    small = RoundBuilder(state)
    small.honest(7)
    bad_payload(small, 8, trained(state.model, 8))  # its row is never written
    with mock.patch("pot_flower.protocol.execution._spare", kept):
        reused = execute_round(state, small.batch(), small.payloads)
    assert kept[0].shape == (4, state.layout.size)  # the last round's, stale rows
    with mock.patch("pot_flower.protocol.execution._spare", []):
        fresh = execute_round(state, small.batch(), small.payloads)
    assert reused.hash == fresh.hash
