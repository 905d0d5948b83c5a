"""Reputation: pay follows a miner's standing over the rounds it was judged in.

A moving average kept in the chain state (integer ppm), moved only by what the
miner itself signed for the round (accepted, or a judged rejection), recorded in
every block and recomputed by the audit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pot_support import RoundBuilder, chain, trained

from pot_flower.encoding import decode, encode
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.model import encode_arrays
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import (
    PPM,
    contribution_weights,
    miner_shares,
    next_reputation,
    noise_floor_ppm,
    standings,
)
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.settlement import settle

ppm = st.integers(0, PPM)


@given(ppm, ppm, ppm)
def test_reputation_moves_toward_standing_and_stays_in_range(
    r: int, standing: int, rate: int
) -> None:
    after = next_reputation(r, standing, rate)
    assert 0 <= after <= PPM
    assert min(r, standing) <= after <= max(r, standing)
    assert next_reputation(r, standing, 0) == r
    assert next_reputation(r, standing, PPM) == standing


@given(st.lists(ppm, min_size=1, max_size=30))
def test_the_largest_weight_stands_at_one_and_zero_at_zero(qs: list[int]) -> None:
    weights = contribution_weights(qs)
    for w, s in zip(weights, standings(weights), strict=True):
        assert 0 <= s <= PPM
        assert (s == 0) == (w == 0)
        if w and w == max(weights):
            assert s == PPM


@dataclass(frozen=True)
class Record:
    """What settlement reads of a submission."""

    miner: bytes | None
    reason: Reason | None = None
    quality_ppm: int = 500_000
    score: int | None = None


PARAMS = chain().params
KEYS = [bytes([i]) * 32 for i in range(8)]


def rounds_of(history: list[list[Record]], params=PARAMS):  # type: ignore[no-untyped-def]
    reputation: dict[bytes, int] = {}
    settled = []
    for subs in history:
        s = settle(params, reputation, subs)
        reputation = s.reputation
        settled.append(s)
    return settled


def test_a_miner_that_looks_honest_once_earns_by_its_record_not_that_round() -> None:
    """Late in training an attacker's update sometimes looks honest for a round."""
    honest = [Record(k) for k in KEYS[:5]]
    history = [[*honest, Record(KEYS[5], quality_ppm=0)] for _ in range(5)]
    history.append([*honest, Record(KEYS[5])])  # the sixth round: it stands level
    last = rounds_of(history)[-1]
    r_honest, r_odd = last.reputations[0], last.reputations[5]
    expected_honest = 0
    for _ in range(6):
        expected_honest = next_reputation(expected_honest, PPM, 100_000)
    assert r_honest == expected_honest
    assert r_odd == 100_000  # one judged round at full standing, from nothing
    # Pay in proportion to reputation squared: under a tenth of an honest share.
    assert last.rewards[5] * 10 < last.rewards[0]
    expected = last.rewards[0] * r_odd**2 / r_honest**2
    assert abs(last.rewards[5] - expected) <= 2


def test_judged_rejections_lower_reputation_and_others_leave_it() -> None:
    first = [Record(k) for k in KEYS[:4]]
    start = rounds_of([first])[0].reputation
    for reason in (Reason.NOT_SELECTED, Reason.LOW_SCORE):
        s = settle(PARAMS, start, [*first[:3], Record(KEYS[3], reason, 0)])
        assert s.reputation[KEYS[3]] == next_reputation(start[KEYS[3]], 0, 100_000)
        assert s.rewards[3] == 0
    # A replay of its old submission, a relay's lost or swapped payload, a copy:
    # not its doing.
    for reason in (
        Reason.NON_FINITE,
        Reason.NORM_ABOVE_BOUND,
        Reason.WRONG_ROUND,
        Reason.WRONG_NONCE,
        Reason.WRONG_NODE,
        Reason.MALFORMED_UPDATE,
        Reason.COMMITMENT_MISMATCH,
        Reason.COPIED_UPDATE,
        Reason.NEAR_COPY,
        Reason.DUPLICATE_SUBMISSION,
    ):
        s = settle(PARAMS, start, [*first[:3], Record(KEYS[3], reason, 0)])
        assert s.reputation[KEYS[3]] == start[KEYS[3]]
        assert s.reputations[3] == 0


def test_a_miner_is_judged_once_per_round_by_its_accepted_submission() -> None:
    start = rounds_of([[Record(k) for k in KEYS[:4]]])[0].reputation
    subs = [
        Record(KEYS[0], Reason.NORM_ABOVE_BOUND, 0),  # its oversized first try
        *[Record(k) for k in KEYS[:4]],
    ]
    s = settle(PARAMS, start, subs)
    assert s.reputations[0] == 0  # not judged twice
    assert s.reputation[KEYS[0]] == s.reputations[1] == s.reputations[2]


def test_reputation_off_pays_by_the_round_alone() -> None:
    off = replace(PARAMS, robust=RobustConfig(reputation_rate_ppm=0))
    subs = [
        Record(k, quality_ppm=q) for k, q in zip(KEYS, (9, 5, 4, 3, 1), strict=False)
    ]
    s = settle(off, {}, [replace(r, quality_ppm=r.quality_ppm * 100_000) for r in subs])
    pool = off.emission - off.emission * off.validator_fee_ppm // PPM
    assert s.rewards == miner_shares(pool, [q * 100_000 for q in (9, 5, 4, 3, 1)])
    assert s.reputation == {} and s.reputations == [0] * 5


def test_the_chain_keeps_reputation_and_a_replay_cannot_lower_it() -> None:
    builder = RoundBuilder(chain())
    subs = {i: builder.honest(i) for i in range(4)}
    one = execute_round(builder.state, builder.batch(), builder.payloads)
    assert set(one.state.reputation) == {v.miner for v in one.verdicts}
    assert all(v.reputation_ppm == one.state.reputation[v.miner] for v in one.verdicts)

    again = RoundBuilder(one.state)
    for i in range(3):
        again.honest(i)
    again.add(subs[3], node=1003)  # miner 3's round-1 submission, replayed
    two = execute_round(again.state, again.batch(), again.payloads)
    replayed = next(v for v in two.verdicts if v.node == 1003)
    assert replayed.reason is Reason.WRONG_ROUND and replayed.reputation_ppm == 0
    miner3 = replayed.miner
    assert miner3 is not None
    assert two.state.reputation[miner3] == one.state.reputation[miner3]
    assert ChainState.from_bytes(two.state.to_bytes()).reputation == (
        two.state.reputation
    )


@pytest.mark.parametrize(
    "entries",
    [
        [[b"\x01" * 32, 5]],  # not a registered miner
        "not a list",
        [[b"M" * 32]],
        [[b"M" * 32, 0]],  # a miner at 0 is absent
        [[b"M" * 32, PPM + 1]],
        [[b"M" * 32, True]],
        [[b"N" * 32, 5], [b"M" * 32, 5]],  # unsorted
        [[b"M" * 32, 5], [b"M" * 32, 5]],  # repeated
    ],
)
def test_a_state_with_bad_reputations_is_refused(entries: object) -> None:
    state = replace(chain(), miners={b"M" * 32, b"N" * 32})
    data = replace(state, reputation={}).to_bytes()
    value = decode(data)
    assert isinstance(value, dict)
    value["reputation"] = entries  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"reputation|bad chain state"):
        ChainState.from_bytes(encode(value))


@pytest.mark.parametrize("swap", ["non-finite", "norm-above-bound"])
def test_a_relay_swapping_arrays_under_a_genuine_signature_cannot_lower_it(
    swap: str,
) -> None:
    """Found in review: the arrays are checked before the commitment is."""
    state = chain()
    for _ in range(3):
        b = RoundBuilder(state)
        for i in range(4):
            b.honest(i)
        state = execute_round(b.state, b.batch(), b.payloads).state
    b = RoundBuilder(state)
    for i in range(3):
        b.honest(i)
    victim = b.sign(3, trained(state.model, 3))
    if swap == "non-finite":
        bad = {k: v.copy() for k, v in trained(state.model, 3).items()}
        bad["fc.bias"][0] = np.nan
    else:
        bad = trained(state.model, 3, scale=100.0)
    b.add(victim, node=1003, payload=encode_arrays(bad))
    out = execute_round(b.state, b.batch(), b.payloads)
    v = next(v for v in out.verdicts if v.node == 1003)
    assert v.reason is not None and v.reason.value == swap
    assert v.miner is not None
    assert out.state.reputation[v.miner] == state.reputation[v.miner]


@given(st.integers(1, 10**9))
def test_the_noise_floor_is_four_sigmas_of_a_random_direction(d: int) -> None:
    q = noise_floor_ppm(d)
    assert q * q * d >= (4 * PPM) ** 2 > (q - 1) * (q - 1) * d


def test_under_the_mean_colluders_are_scored_against_the_median_not_their_mean() -> (
    None
):
    """Three of ten push another direction: a third of the mean, none of the median."""
    state = chain(robust=RobustConfig())  # the plain mean
    builder = RoundBuilder(state)
    rng = np.random.default_rng(5)

    def update(layer: str, step: float) -> dict[str, np.ndarray]:
        out = {}
        for name, v in state.model.items():
            if v.dtype.kind != "f":
                out[name] = v
                continue
            noise = rng.normal(0, 0.003, v.shape).astype(v.dtype)
            out[name] = (v + noise + (step if name == layer else 0)).astype(v.dtype)
        return out

    for i in range(7):
        builder.add(builder.sign(i, update("fc.weight", 0.01)), node=1000 + i)
    for i in range(7, 10):
        builder.add(builder.sign(i, update("conv.weight", 0.02)), node=1000 + i)
    out = execute_round(builder.state, builder.batch(), builder.payloads)
    pay = {v.node - 1000: v.reward for v in out.verdicts}
    assert all(v.accepted for v in out.verdicts)
    assert all(pay[i] > 0 for i in range(7))
    assert all(pay[i] == 0 for i in range(7, 10))


def test_under_the_mean_independent_noise_is_not_scored_against_itself() -> None:
    """Three of ten send noise larger than the honest updates: they earn nothing.

    Each noise vector drags the median of all towards itself in every coordinate;
    against the median of the others its cosine is chance (~1/sqrt(d)).
    """
    state = chain(robust=RobustConfig())
    builder = RoundBuilder(state)
    rng = np.random.default_rng(7)

    def update(step: float, noise: float) -> dict[str, np.ndarray]:
        return {
            name: (v + step + rng.normal(0, noise, v.shape)).astype(v.dtype)
            if v.dtype.kind == "f"
            else v
            for name, v in state.model.items()
        }

    for i in range(7):
        builder.add(builder.sign(i, update(0.006, 0.01)), node=1000 + i)
    for i in range(7, 10):
        builder.add(builder.sign(i, update(0.0, 0.08)), node=1000 + i)
    out = execute_round(builder.state, builder.batch(), builder.payloads)
    by_node = {v.node - 1000: v for v in out.verdicts}
    assert all(v.accepted for v in out.verdicts)
    assert all(by_node[i].reward > 0 for i in range(7))
    assert all(by_node[i].quality_ppm == 0 for i in range(7, 10))
