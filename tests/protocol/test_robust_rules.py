"""The robust rules match plain reference implementations, exactly where they can."""

from __future__ import annotations

import math
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pot_flower.protocol.robust import RobustConfig, geometry, robust_aggregate, rules
from pot_flower.protocol.robust.config import PRESETS, PreAggregator
from pot_flower.protocol.robust.geometry import clip, sketch, sq_distances

SMALL = 1 << 20  # elements this small need no sketch shift at these widths


def matrices(max_n: int = 9, max_d: int = 12, bound: int = SMALL) -> st.SearchStrategy:
    return st.integers(1, max_n).flatmap(
        lambda n: st.integers(1, max_d).flatmap(
            lambda d: st.lists(
                st.lists(st.integers(-bound, bound), min_size=d, max_size=d),
                min_size=n,
                max_size=n,
            )
        )
    )


def as_rows(values: list[list[int]]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def ref_sq_dist(a: list[int], b: list[int]) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def ref_round(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


@given(matrices(bound=1 << 31), st.integers(0, 1 << 31))
def test_clip_bounds_the_norm_and_keeps_direction(values, bound):
    for row in as_rows(values):
        out, was = clip(row, bound)
        assert sum(int(x) ** 2 for x in out) <= bound * bound
        assert was == (sum(int(x) ** 2 for x in row) > bound * bound)
        assert np.all(np.abs(out) <= np.abs(row))
        assert np.all(out * row >= 0)
        if was:  # within one unit of the real-valued scaling
            scale = bound / math.sqrt(sum(int(x) ** 2 for x in row))
            assert np.all(np.abs(out - row * scale) <= 1.0 + np.abs(row) * 2.0**-29)


@given(matrices())
def test_distances_are_exact_without_a_shift(values):
    rows = as_rows(values)
    got = sq_distances(rows)
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            assert got[i, j] == ref_sq_dist(a, b)


@given(matrices(bound=1 << 32))
def test_sketched_distances_are_exact_for_the_shifted_rows(values):
    rows = as_rows(values)
    s = sketch(rows)
    got = sq_distances(rows)
    shifted = [[int(x) for x in r] for r in s]
    for i in range(len(values)):
        for j in range(len(values)):
            assert got[i, j] == ref_sq_dist(shifted[i], shifted[j])


@given(matrices(bound=1 << 32))
def test_sq_norms_are_exact_on_both_paths(values):
    # Small rows take the native int64 reduction, large ones the limbs.
    got = geometry.sq_norms(as_rows(values))
    assert got == [sum(x * x for x in r) for r in values]


@given(matrices(max_d=40, bound=1 << 32))
def test_the_gram_over_column_blocks_is_the_whole_sketch_product(values):
    rows = as_rows(values)
    s = [[int(x) for x in r] for r in sketch(rows)]
    expected = [[sum(x * y for x, y in zip(a, b, strict=True)) for b in s] for a in s]
    with mock.patch.object(geometry, "_GRAM_COLUMNS", 3):
        assert geometry.sketch_gram(rows).tolist() == expected
    assert geometry.sketch_gram(rows).tolist() == expected


@given(matrices(bound=1 << 31), st.integers(0, 1 << 33))
def test_clip_rows_clips_each_row_and_copies_only_when_needed(values, bound):
    rows = as_rows(values)
    before = rows.copy()
    out, flags = rules.clip_rows(rows, bound)
    for i, row in enumerate(before):
        want, was = clip(row, bound)
        assert flags[i] == was
        assert np.array_equal(out[i], want)
    assert np.array_equal(rows, before)  # the input is never modified
    assert (out is rows) == (not any(flags))


@given(matrices(bound=1 << 31), st.integers(0, 1 << 33))
def test_clipping_in_place_writes_what_clip_rows_returns_and_keeps_the_originals(
    values, bound
):
    rows = as_rows(values)
    before = rows.copy()
    want, flags = rules.clip_rows(before, bound)
    originals = rules.clip_rows_in_place(rows, bound)
    assert np.array_equal(rows, want)
    assert sorted(originals) == [i for i, was in enumerate(flags) if was]
    for i, row in originals.items():
        assert np.array_equal(row, before[i])


@given(matrices(max_n=12), st.sampled_from(sorted(PRESETS)), st.binary(max_size=4))
def test_the_robust_stage_leaves_its_rows_as_it_found_them(values, preset, seed):
    rows = as_rows(values)
    before = rows.copy()
    robust_aggregate(PRESETS[preset], rows, [1] * len(rows), seed=seed, bounds=True)
    assert np.array_equal(rows, before)


def test_a_clip_that_fails_leaves_the_rows_as_they_were():
    rows = np.array([[3_000, 4_000], [1 << 33, 0]], dtype=np.int64)
    before = rows.copy()
    with pytest.raises(ValueError, match="2\\*\\*32"):
        rules.clip_rows_in_place(rows, 5)
    assert np.array_equal(rows, before)


def test_a_clipped_single_row_mean_is_not_undone_by_the_restore():
    rows = np.array([[30_000, -40_000]], dtype=np.int64)
    config = RobustConfig(pre_aggregators=(PreAggregator.CLIP,), clip_norm_units=5)
    clipped, _ = clip(rows[0], 5)
    result = robust_aggregate(config, rows, [1], seed=b"")
    assert result.aggregate.tolist() == clipped.tolist() == [2, -3]  # toward zero
    assert rows.tolist() == [[30_000, -40_000]]


def test_the_sketch_keeps_every_dot_product_below_2_53_at_a_million_columns():
    rows = np.full((2, 1 << 20), (1 << 31) - 1, dtype=np.int64)
    rows[1] = -rows[1]
    s = sketch(rows)
    assert float(np.abs(s).max()) ** 2 * rows.shape[1] < 2.0**53


@given(matrices())
def test_median_is_the_middle_value_per_coordinate(values):
    got = rules.median(as_rows(values))
    n = len(values)
    for c in range(len(values[0])):
        column = sorted(r[c] for r in values)
        assert got[c] == (column[(n - 1) // 2] + column[n // 2]) // 2


@given(matrices(bound=50).filter(lambda v: len(v) >= 2))
def test_leave_one_out_medians_are_the_medians_of_the_others(values):
    rows = as_rows(values)
    stats = rules.leave_one_out_stats(rows)
    assert stats.shape[0] <= 3
    for i in range(len(values)):
        others = np.delete(rows, i, axis=0)
        got = rules.leave_one_out_median(stats, len(values), rows[i])
        assert np.array_equal(got, rules.median(others))


@given(matrices(bound=50), st.integers(0, 4))
def test_order_statistics_leave_the_rows_where_they_are(values, f):
    # Rows are an update each: reordering them in a column (a single-column
    # model's transposed block is contiguous) would pay miners for others' work.
    rows = as_rows(values)
    before = rows.copy()
    rules.median(rows)
    if len(values) >= 2:
        rules.leave_one_out_stats(rows)
    if len(values) > 2 * f:
        rules.trimmed_mean(rows, f)
    assert np.array_equal(rows, before)


def test_a_leave_one_out_median_needs_two_rows():
    with pytest.raises(ValueError, match="two updates"):
        rules.leave_one_out_stats(as_rows([[1, 2]]))


@given(matrices(), st.integers(0, 4))
def test_trimmed_mean_drops_f_from_each_side(values, f):
    n = len(values)
    if n <= 2 * f:
        with pytest.raises(ValueError):
            rules.trimmed_mean(as_rows(values), f)
        return
    got = rules.trimmed_mean(as_rows(values), f)
    for c in range(len(values[0])):
        kept = sorted(r[c] for r in values)[f : n - f]
        assert got[c] == ref_round(Fraction(sum(kept), len(kept)))


@given(matrices(), st.data())
def test_multi_krum_picks_the_lowest_scores(values, data):
    n = len(values)
    f = data.draw(st.integers(0, max(0, (n - 3) // 2)))
    select = data.draw(st.integers(1, n))
    k = min(max(n - f - 2, 1), n - 1)
    scores = []
    for i, a in enumerate(values):
        others = sorted(ref_sq_dist(a, b) for j, b in enumerate(values) if j != i)
        scores.append(sum(others[:k]))
    expected = sorted(sorted(range(n), key=lambda i: (scores[i], i))[:select])
    assert rules.multi_krum(as_rows(values), f, select) == expected


@given(matrices(), st.data())
def test_nnm_averages_each_rows_nearest_neighbours(values, data):
    n = len(values)
    f = data.draw(st.integers(0, max(0, (n - 1) // 2)))
    got = rules.nnm(as_rows(values), f)
    for i, a in enumerate(values):
        ranked = sorted(range(n), key=lambda j: (j != i, ref_sq_dist(a, values[j]), j))[
            : n - f
        ]
        for c in range(len(a)):
            expected = ref_round(Fraction(sum(values[j][c] for j in ranked), n - f))
            assert got[i, c] == expected


@given(matrices(), st.lists(st.integers(1, 1 << 20), min_size=9, max_size=9))
def test_weighted_mean_is_the_rounded_exact_mean(values, weights):
    w = weights[: len(values)]
    got = rules.mean(as_rows(values), w)
    for c in range(len(values[0])):
        exact = Fraction(sum(r[c] * x for r, x in zip(values, w, strict=True)), sum(w))
        assert got[c] == ref_round(exact)


@given(matrices(), st.integers(0, 1 << 22), st.integers(1, 4))
def test_centered_clipping_matches_its_definition(values, radius, iterations):
    rows = as_rows(values)
    d = len(values[0])
    center = [0] * d
    v = list(center)
    if radius == 0:
        dists = sorted(ref_sq_dist(r, v) for r in values)
        radius = math.isqrt(dists[(len(values) - 1) // 2])
    for _ in range(iterations):
        total = [0] * d
        for r in values:
            delta = [x - y for x, y in zip(r, v, strict=True)]
            sq = sum(x * x for x in delta)
            if sq > radius * radius:
                bits = 62 - max(abs(x) for x in delta).bit_length()
                c = math.isqrt((radius * radius << (2 * bits)) // sq)
                delta = [int(math.copysign((abs(x) * c) >> bits, x)) for x in delta]
            total = [t + x for t, x in zip(total, delta, strict=True)]
        v = [
            x + ref_round(Fraction(t, len(values)))
            for x, t in zip(v, total, strict=True)
        ]
    got = rules.centered_clipping(rows, np.zeros(d, dtype=np.int64), radius, iterations)
    assert [int(x) for x in got] == v


def weiszfeld_float(rows: np.ndarray, iterations: int) -> np.ndarray:
    z = rules.median(rows).astype(np.float64)
    x = rows.astype(np.float64)
    for _ in range(iterations):
        d = np.maximum(np.linalg.norm(x - z, axis=1), 1.0)
        w = 1.0 / d
        z = (w[:, None] * x).sum(axis=0) / w.sum()
    return z


@settings(max_examples=60)
@given(matrices(bound=1 << 24), st.integers(1, 8))
def test_geometric_median_tracks_float_weiszfeld(values, iterations):
    rows = as_rows(values)
    got = rules.geometric_median(rows, iterations).astype(np.float64)
    reference = weiszfeld_float(rows, iterations)
    spread = float(np.abs(rows).max()) + 1.0
    # Integer weights lose up to 2**-20 relative; rounding adds a unit per step.
    assert np.all(np.abs(got - reference) <= spread * 2.0**-14 + iterations + 1)


def test_geometric_median_ignores_a_minority_far_away():
    rng = np.random.default_rng(7)
    honest = rng.integers(-1000, 1000, size=(7, 50))
    attackers = np.full((3, 50), 1 << 30)
    got = rules.geometric_median(np.vstack([honest, attackers]), 16)
    assert np.abs(got - np.median(honest, axis=0)).max() < 2000


@given(st.integers(1, 40), st.binary(min_size=1, max_size=32))
def test_permutations_are_permutations_fixed_by_the_seed(n, seed):
    order = rules.permutation(n, seed)
    assert sorted(order) == list(range(n))
    assert rules.permutation(n, seed) == order


def test_permutations_are_uniform_enough():
    counts = np.zeros((4, 4))
    for s in range(4000):
        for position, item in enumerate(rules.permutation(4, s.to_bytes(4, "big"))):
            counts[position, item] += 1
    assert np.all(np.abs(counts - 1000) < 150)


@given(st.integers(1, 40), st.integers(2, 8), st.binary(min_size=1, max_size=8))
def test_buckets_partition_the_rows(n, size, seed):
    groups = rules.buckets(n, size, seed)
    assert sorted(i for g in groups for i in g) == list(range(n))
    assert all(len(g) == size for g in groups[:-1])


@given(matrices(max_n=8, max_d=6, bound=50), st.integers(0, 1_000_000))
def test_copy_groups_are_the_components_of_the_copy_relation(values, tolerance):
    rows = as_rows(values)
    commitments = [bytes(str(r), "ascii") for r in values]  # equal rows, equal keys
    n = len(values)

    def copies(i: int, j: int) -> bool:
        if values[i] == values[j]:
            return True
        d2 = ref_sq_dist(values[i], values[j])
        m2 = min(
            ref_sq_dist(values[i], [0] * len(values[i])),
            ref_sq_dist(values[j], [0] * len(values[j])),
        )
        return tolerance > 0 and d2 * 10**12 <= tolerance**2 * m2

    component = list(range(n))
    for _ in range(n):
        for i in range(n):
            for j in range(n):
                if copies(i, j):
                    component[i] = component[j] = min(component[i], component[j])
    expected = {}
    for i in range(n):
        expected.setdefault(component[i], []).append(i)
    want = sorted(g for g in expected.values() if len(g) > 1)
    assert sorted(rules.copy_groups(rows, commitments, tolerance)) == want
