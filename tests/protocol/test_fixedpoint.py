"""Fixed-point arithmetic: the float filters decide exactly what integers decide."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pot_flower.protocol.fixedpoint import (
    MAX_UNITS,
    SCALE,
    apply_update,
    exact_dot,
    norm_within,
    quantize_difference,
)
from pot_flower.protocol.rewards import PPM, largest_remainder, quality_ppm
from pot_flower.protocol.robust import rules

units = st.integers(-MAX_UNITS, MAX_UNITS)
vectors = st.lists(units, min_size=1, max_size=40)


@given(vectors, vectors)
def test_exact_dot_matches_python_integers(a: list[int], b: list[int]) -> None:
    n = min(len(a), len(b))
    expected = sum(x * y for x, y in zip(a[:n], b[:n], strict=True))
    assert exact_dot(np.array(a[:n], np.int64), np.array(b[:n], np.int64)) == expected


@given(vectors, st.integers(1, MAX_UNITS))
def test_norm_check_is_exact(v: list[int], bound: int) -> None:
    flat = np.array(v, dtype=np.float64)
    assert norm_within(flat, bound) == (sum(x * x for x in v) <= bound * bound)


@given(st.lists(st.integers(-(10**6), 10**6), min_size=3, max_size=30))
def test_norm_check_at_the_boundary(v: list[int]) -> None:
    squares = sum(x * x for x in v)
    root = math.isqrt(squares)
    flat = np.array(v, dtype=np.float64)
    assert norm_within(flat, root + 1)
    if root * root == squares:
        assert norm_within(flat, root)
    if root >= 1 and root * root != squares:
        assert not norm_within(flat, root)


def exact_quality(u: list[int], a: list[int]) -> int:
    dot = sum(x * y for x, y in zip(u, a, strict=True))
    uu, aa = sum(x * x for x in u), sum(x * x for x in a)
    if dot <= 0 or uu == 0 or aa == 0:
        return 0
    return min(PPM, math.isqrt((PPM * dot) ** 2 // (uu * aa)))


@settings(max_examples=300)
@given(st.lists(st.tuples(units, units), min_size=1, max_size=30))
def test_quality_filter_equals_exact_definition(pairs: list[tuple[int, int]]) -> None:
    u = [p[0] for p in pairs]
    a = [p[1] for p in pairs]
    fa = np.array(a, np.float64)
    got = quality_ppm(np.array(u, np.float64), fa, float(np.dot(fa, fa)))
    assert got == exact_quality(u, a)


def test_quality_of_parallel_vectors_is_one() -> None:
    v = np.arange(1, 100, dtype=np.float64)
    assert quality_ppm(v, 3 * v, float(np.dot(3 * v, 3 * v))) == PPM


@given(
    st.lists(
        st.tuples(st.lists(units, min_size=3, max_size=3), st.integers(1, 2**20)),
        min_size=1,
        max_size=20,
    ).filter(lambda xs: sum(w for _, w in xs) <= MAX_UNITS)
)
def test_the_weighted_mean_rounds_half_up_exactly(
    items: list[tuple[list[int], int]],
) -> None:
    updates = [np.array(u, np.int64) for u, _ in items]
    weights = [w for _, w in items]
    got = rules.mean(np.stack(updates), weights)
    total = sum(weights)
    for j in range(3):
        exact = Fraction(sum(u[j] * w for u, w in items), total)
        assert got[j] == math.floor(exact + Fraction(1, 2))


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
def test_largest_remainder_pays_exactly_the_pool(pool: int, weights: list[int]) -> None:
    shares = largest_remainder(pool, weights)
    if sum(weights) == 0:
        assert shares == [0] * len(weights)
        return
    assert sum(shares) == pool
    for share, w in zip(shares, weights, strict=True):
        ideal = Fraction(pool * w, sum(weights))
        assert ideal - 1 < share < ideal + 1


@given(
    st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=20),
    st.lists(st.floats(-1, 1, width=32), min_size=20, max_size=20),
)
def test_quantize_then_apply_recovers_the_update(
    base: list[float], delta: list[float]
) -> None:
    b = np.array(base, np.float32)
    r = (b + np.array(delta[: len(base)], np.float32)).astype(np.float32)
    q = quantize_difference(r, b, MAX_UNITS)
    assert q is not None and np.all(q == np.rint(q))
    back = apply_update(b, q.astype(np.int64))
    # Within half a fixed-point unit (plus float32 rounding) of what was returned.
    assert np.all(
        np.abs(back.astype(np.float64) - r) <= 0.5 / SCALE + np.abs(r) * 2**-23
    )


def test_quantize_refuses_values_past_the_limit() -> None:
    b = np.zeros(3, np.float32)
    assert quantize_difference(b + 1, b, SCALE - 1) is None
    assert quantize_difference(b + 1, b, SCALE) is not None
    ints = np.array([1, 2], np.int64)
    assert quantize_difference(ints + 10, ints, 5) is None
