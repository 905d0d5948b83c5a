"""Server momentum: the model moves by the aggregate plus beta times the last move."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pot_support import RoundBuilder, chain

from pot_flower.protocol.aggregation import momentum_step, within_bounds
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import MAX_UNITS
from pot_flower.protocol.robust import PRESETS, RobustConfig, robust_settings
from pot_flower.protocol.robust.pipeline import robust_aggregate

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
    st.sampled_from(sorted(PRESETS)),
)
def test_the_move_is_held_within_what_the_rule_combined(
    rows, move, floats, preset
) -> None:
    r = np.array(rows, dtype=np.int64)
    m = np.array(move, dtype=np.int64)
    result = robust_aggregate(PRESETS[preset], r, [1] * len(r), seed=b"s", bounds=True)
    assert result.low is not None and result.high is not None
    # The box holds 0 and the rule's own result: it never changes a move
    # without momentum.
    assert (result.low <= np.minimum(result.aggregate, 0)).all()
    assert (result.high >= np.maximum(result.aggregate, 0)).all()
    held = within_bounds(result.aggregate, result.low, result.high, floats)
    assert np.array_equal(held, result.aggregate)
    got = within_bounds(m, result.low, result.high, floats)
    for i in range(4):
        want = min(max(m[i], result.low[i]), result.high[i]) if i < floats else m[i]
        assert got[i] == want


def test_a_clipped_outlier_does_not_widen_the_box() -> None:
    """The box is what the mean combined: the attacker's row after clipping."""
    unit = 1 << 20
    rows = np.array([[-unit, 0]] * 4 + [[-50 * unit, 0]], dtype=np.int64)
    result = robust_aggregate(
        PRESETS["default"], rows, [1] * 5, seed=b"s", previous=None, bounds=True
    )
    assert result.clipped == (4,)
    assert result.low is not None
    assert -3 * unit < result.low[0] < -unit  # clipped to twice the median norm
    far = np.array([-10 * unit, 0], dtype=np.int64)
    assert within_bounds(far, result.low, result.high, 2)[0] == result.low[0]


def test_chains_from_before_the_box_replay_without_it() -> None:
    """Their genesis has no ``momentum-box`` field: parsed, the box is off, and the
    value encodes back to the same bytes; new chains carry ``momentum-box: true``."""
    new = RobustConfig(momentum_ppm=400_000)
    assert new.to_value()["momentum-box"] is True
    old_value = {k: v for k, v in new.to_value().items() if k != "momentum-box"}
    old = RobustConfig.from_value(old_value)
    assert old.momentum_box is False and old.to_value() == old_value
    assert RobustConfig.from_value(new.to_value()) == new
    for bad in (False, 1, "yes"):
        with pytest.raises(ValueError, match="momentum-box"):
            RobustConfig.from_value({**new.to_value(), "momentum-box": bad})


def test_an_old_chain_keeps_momentum_unboxed() -> None:
    state = _honest_round(
        chain(robust=RobustConfig(momentum_ppm=400_000, momentum_box=False))
    )
    after = _lazy_round(state)  # momentum alone moves the model, as it used to
    assert after.aggregate is not None and after.aggregate.any()
    assert after.model_digest != state.model_digest


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
