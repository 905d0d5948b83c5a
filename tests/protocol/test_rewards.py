"""Rewards v2: weights follow quality, floor at a tenth of the median, cap at it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pot_flower.protocol.rewards import PPM, contribution_weights, miner_shares

qualities = st.lists(st.integers(0, PPM), min_size=1, max_size=40)


@given(qualities)
def test_weights_floor_at_a_tenth_and_saturate_at_the_median(
    qs: list[int],
) -> None:
    median = sorted(qs)[(len(qs) - 1) // 2]
    for q, w in zip(qs, contribution_weights(qs), strict=True):
        if q * 10 < median:
            assert w == 0
        else:  # a median of 0 (most updates useless) caps nothing
            assert w == (min(q, median) if median else q)


@given(qualities, st.integers(0, 10**9))
def test_shares_pay_exactly_the_pool_and_follow_weights(
    qs: list[int], pool: int
) -> None:
    shares = miner_shares(pool, qs)
    weights = contribution_weights(qs)
    assert sum(shares) == (pool if sum(weights) else 0)
    for share, weight in zip(shares, weights, strict=True):
        if weight == 0:
            assert share == 0
    equal = [s for s, w in zip(shares, weights, strict=True) if w == max(weights)]
    assert max(equal, default=0) - min(equal, default=0) <= 1


def test_a_miner_at_a_third_of_the_median_earns_a_third_of_a_share() -> None:
    qs = [300_000] * 13 + [100_000, 600_000]
    weights = contribution_weights(qs)
    assert weights[0] == weights[-1] == 300_000 and weights[-2] == 100_000


def test_noise_near_zero_quality_earns_nothing() -> None:
    assert contribution_weights([400_000] * 14 + [5_000] * 6)[-6:] == [0] * 6
