"""Rewards v2: contribution weights follow quality, floor and saturate at the median."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pot_flower.protocol.rewards import PPM, contribution_weights, miner_shares

qualities = st.lists(st.integers(0, PPM), min_size=1, max_size=40)


@given(qualities)
def test_weights_floor_at_a_tenth_and_saturate_at_half_the_median(
    qs: list[int],
) -> None:
    median = sorted(qs)[(len(qs) - 1) // 2]
    for q, w in zip(qs, contribution_weights(qs), strict=True):
        if q * 10 < median:
            assert w == 0
        elif median >= 2:
            assert w == min(q, median // 2)


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


def test_a_minority_at_a_third_of_the_median_earns_two_thirds_of_a_share() -> None:
    qs = [300_000] * 13 + [100_000]
    weights = contribution_weights(qs)
    assert weights[0] == 150_000 and weights[-1] == 100_000


def test_noise_near_zero_quality_earns_nothing() -> None:
    assert contribution_weights([400_000] * 14 + [5_000] * 6)[-6:] == [0] * 6
