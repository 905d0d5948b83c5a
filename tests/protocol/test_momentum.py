"""Server momentum: the model moves by the aggregate plus beta times the last move."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pot_support import RoundBuilder, chain

from pot_flower.protocol.aggregation import momentum_step, within_updates
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import MAX_UNITS
from pot_flower.protocol.robust import RobustConfig, robust_settings

units = st.integers(-MAX_UNITS, MAX_UNITS)


@given(
    st.lists(st.tuples(units, units), min_size=1, max_size=30),
    st.integers(0, 990_000),
    st.data(),
)
def test_the_move_is_the_aggregate_plus_the_floored_share_of_the_last(
    pairs, beta, data
) -> None:
    aggregate = np.array([a for a, _ in pairs], dtype=np.int64)
    previous = np.array([p for _, p in pairs], dtype=np.int64)
    floats = data.draw(st.integers(0, len(pairs)))
    got = momentum_step(aggregate, previous, beta, floats)
    for i, (a, p) in enumerate(pairs):
        want = a + (beta * p) // 1_000_000 if i < floats else a
        assert got[i] == max(-MAX_UNITS, min(MAX_UNITS, want))


def test_without_a_previous_move_or_momentum_the_move_is_the_aggregate() -> None:
    a = np.arange(5, dtype=np.int64)
    assert momentum_step(a, None, 400_000, 5) is a
    assert momentum_step(a, a * 7, 0, 5) is a


def _lazy_round(state: ChainState) -> ChainState:
    """Every miner sends the model back unchanged: the aggregate is 0."""
    b = RoundBuilder(state)
    for i in range(5):
        b.add(b.sign(i, state.model), node=1000 + i)
    return execute_round(state, b.batch(), b.payloads).state


def _honest_round(state: ChainState) -> ChainState:
    b = RoundBuilder(state)
    for i in range(5):
        b.honest(i)
    return execute_round(state, b.batch(), b.payloads).state


def test_momentum_never_carries_the_model_past_what_the_miners_returned() -> None:
    """Every miner sends the model back unchanged: momentum would move it on its
    own, out of the range of every update; held within it, the model stays."""
    state = _honest_round(chain(robust=RobustConfig(momentum_ppm=400_000)))
    first = state.aggregate
    assert first is not None and first.any()
    after = _lazy_round(state)
    assert after.aggregate is not None and not after.aggregate.any()
    assert after.model_digest == state.model_digest


def test_a_shrinking_statistic_stays_positive_under_momentum() -> None:
    """BatchNorm's running variance shrinks round after round; FedAvgM's move
    (aggregate + 0.4 x last) overshoots it below zero, the box does not."""
    state = chain(robust=RobustConfig(momentum_ppm=400_000))
    name = next(iter(state.model))
    for round_ in range(6):
        b = RoundBuilder(state)
        current = state.model[name]
        for i in range(5):
            returned = dict(state.model)
            # Each miner's statistic drops to about a third: always positive.
            returned[name] = np.abs(current) * np.float32(0.3 + 0.02 * i)
            b.add(b.sign(i, returned), node=1000 + i)
        state = execute_round(state, b.batch(), b.payloads).state
        if round_ > 0:  # from a positive model on
            assert (state.model[name] > 0).all(), round_
    # Unbounded, the move (-2/3 now, 0.4 x -2/3 of three times as much before)
    # would have taken it below zero.
    assert state.aggregate is not None


@given(
    st.lists(st.lists(units, min_size=4, max_size=4), min_size=1, max_size=6),
    st.lists(units, min_size=4, max_size=4),
    st.integers(0, 4),
)
def test_the_move_is_held_between_zero_and_the_updates_extremes(
    rows, move, floats
) -> None:
    r = np.array(rows, dtype=np.int64)
    m = np.array(move, dtype=np.int64)
    got = within_updates(m, r, floats)
    low, high = np.minimum(r.min(0), 0), np.maximum(r.max(0), 0)
    for i in range(4):
        if i < floats:
            assert got[i] == min(max(m[i], low[i]), high[i])
        else:
            assert got[i] == m[i]  # counters: untouched
    # The mean of the updates is already inside: the box never changes it.
    mean = r.sum(0) // len(r)
    assert np.array_equal(within_updates(mean, r, floats), mean)


def test_without_momentum_a_round_without_updates_keeps_the_model() -> None:
    state = _honest_round(chain(robust=RobustConfig()))
    assert state.aggregate is None
    assert _lazy_round(state).model_digest == state.model_digest


def test_the_last_move_survives_state_transfer() -> None:
    state = _honest_round(chain(robust=RobustConfig(momentum_ppm=400_000)))
    again = ChainState.from_bytes(state.to_bytes())
    assert _lazy_round(again).model_digest == _lazy_round(state).model_digest


def test_momentum_is_a_setting_with_bounds() -> None:
    assert robust_settings(preset="off", server_momentum=0.25).momentum_ppm == 250_000
    assert robust_settings(preset="recommended").momentum_ppm == 400_000
    assert robust_settings(preset="off").momentum_ppm == 0
    for bad in (-0.1, 0.995, 1.0):
        try:
            robust_settings(server_momentum=bad)
        except ValueError as exc:
            assert "server momentum" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
    config = RobustConfig(momentum_ppm=123_456)
    assert RobustConfig.from_value(config.to_value()) == config
