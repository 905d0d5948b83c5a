"""Quorum and watermark arithmetic (property tests)."""

from hypothesis import given
from hypothesis import strategies as st

from pot_flower.consensus.quorum import (
    in_window,
    is_checkpoint,
    max_faulty,
    primary,
    quorum,
    weak_quorum,
)

sizes = st.integers(min_value=1, max_value=400)


@given(sizes)
def test_two_quorums_share_an_honest_replica(n: int) -> None:
    f, q = max_faulty(n), quorum(n)
    # |Q1 ∩ Q2| >= 2q - n must exceed the f replicas that may lie.
    assert 2 * q - n >= f + 1


@given(sizes)
def test_a_quorum_survives_f_silent_replicas(n: int) -> None:
    assert quorum(n) <= n - max_faulty(n)


@given(sizes)
def test_fault_bound_is_the_largest_with_n_at_least_3f_plus_1(n: int) -> None:
    f = max_faulty(n)
    assert n >= 3 * f + 1
    assert n < 3 * (f + 1) + 1


@given(st.integers(min_value=0, max_value=100))
def test_n_equal_3f_plus_1_gives_the_classic_quorums(f: int) -> None:
    n = 3 * f + 1
    assert quorum(n) == 2 * f + 1
    assert weak_quorum(n) == f + 1


@given(st.integers(min_value=0, max_value=10**6), sizes)
def test_primary_rotates_round_robin(view: int, n: int) -> None:
    assert primary(view, n) == view % n
    assert primary(view + n, n) == primary(view, n)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 1000))
def test_watermarks_admit_exactly_low_plus_1_to_low_plus_window(
    seq: int, low: int, window: int
) -> None:
    assert in_window(seq, low, window) == (low + 1 <= seq <= low + window)


@given(st.integers(0, 10**6), st.integers(1, 1000))
def test_checkpoints_fall_on_multiples_of_the_interval(seq: int, interval: int) -> None:
    assert is_checkpoint(seq, interval) == (seq > 0 and seq % interval == 0)
