"""The robust rules: pure functions of fixed-point updates (rows of an int64 matrix).

Every rule takes the rows in canonical order (by miner) and breaks ties by that
order, so its result depends on nothing but the rows and the round's seed.
References: Blanchard et al. 2017 (Krum, Multi-Krum), Yin et al. 2018 (median,
trimmed mean), Pillutla et al. 2022 (smoothed Weiszfeld), Karimireddy et al. 2021
(centered clipping) and 2022 (bucketing), Allouah et al. 2023 (nearest-neighbour
mixing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from pot_flower.protocol.fixedpoint import IntArray
from pot_flower.protocol.robust.geometry import (
    clip,
    gram_distances,
    lower_median,
    mean_rows,
    nearest,
    norm_floor,
    rounded_div,
    sketch_gram,
    sq_distances,
    sq_norm,
    sq_norms,
)

_SORTED_ELEMENTS = 1 << 22  # the coordinate-wise rules partition 32 MB at a time


def _columns(n: int) -> int:
    """Columns sorted at once for ``n`` rows: ``_SORTED_ELEMENTS`` elements.

    A sorted copy of all rows would be 300 MB at 1,000 miners of the quickstart.
    """
    return max(1, _SORTED_ELEMENTS // max(n, 1))


WEISZFELD_BITS = 20
"""Weiszfeld weights are ``floor(2**20 * nearest / distance)``: at most 2**20."""


# --- pre-aggregation -------------------------------------------------------------


def clip_rows(
    rows: IntArray, bound: int, sq: Sequence[int] | None = None
) -> tuple[IntArray, list[bool]]:
    """Every row clipped to L2 norm ``bound``; which rows were clipped.

    ``sq`` holds the rows' squared norms if the caller has them. The result is a
    new matrix, or ``rows`` itself when no row needs clipping (never modified).
    """
    if bound < 0 and rows.shape[0]:
        raise ValueError("bound must be non-negative")
    if sq is None:
        sq = sq_norms(rows)
    out = rows
    clipped = []
    for i, norm in enumerate(sq):
        was = norm > bound * bound
        if was:
            if out is rows:
                out = rows.copy()
            out[i], _ = clip(rows[i], bound, norm)
        clipped.append(was)
    return out, clipped


def clip_rows_in_place(
    rows: IntArray, bound: int, sq: Sequence[int] | None = None
) -> dict[int, IntArray]:
    """:func:`clip_rows` written into ``rows``; the clipped rows' originals, by row.

    Copies only the rows it scales (their originals, for the caller to restore).
    Every clip is computed before any row is written: if one raises, ``rows`` is
    as it was.
    """
    if bound < 0 and rows.shape[0]:
        raise ValueError("bound must be non-negative")
    if sq is None:
        sq = sq_norms(rows)
    limit = bound * bound
    scaled = {
        i: clip(rows[i], bound, norm)[0] for i, norm in enumerate(sq) if norm > limit
    }
    originals = {i: rows[i].copy() for i in scaled}
    for i, row in scaled.items():
        rows[i] = row
    return originals


def adaptive_bound(
    rows: IntArray, multiple_ppm: int, sq: Sequence[int] | None = None
) -> int:
    """``multiple * median norm`` in units (the lower median, floored).

    ``sq`` holds the rows' squared norms if the caller has them.
    """
    median = norm_floor(lower_median(list(sq) if sq is not None else sq_norms(rows)))
    return median * multiple_ppm // 1_000_000


def nnm(rows: IntArray, f: int) -> IntArray:
    """Nearest-neighbour mixing: row i becomes the mean of its n - f nearest rows."""
    n = rows.shape[0]
    if n == 1:
        return rows
    picks = nearest(sq_distances(rows), n - f)
    select = np.zeros((n, n), dtype=np.float64)
    np.put_along_axis(select, picks, 1.0, axis=1)
    # Exact: sums of at most 2**11 integers of magnitude <= 2**32 stay below 2**53.
    sums = (select @ rows.astype(np.float64)).astype(np.int64)
    return rounded_div(sums, n - f)


def permutation(n: int, seed: bytes) -> list[int]:
    """A uniform permutation of ``range(n)`` drawn from ``seed`` (Fisher-Yates).

    Draws are SHA-256 counter blocks, rejection-sampled, so the order depends on
    nothing but the seed (no library RNG whose algorithm could change).
    """
    order = list(range(n))
    counter = 0
    for i in range(n - 1, 0, -1):
        span = i + 1
        limit = (1 << 64) - (1 << 64) % span
        while True:
            block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
            counter += 1
            draw = int.from_bytes(block[:8], "big")
            if draw < limit:
                break
        j = draw % span
        order[i], order[j] = order[j], order[i]
    return order


def buckets(n: int, size: int, seed: bytes) -> list[list[int]]:
    """Rows shuffled by ``seed`` and cut into buckets of ``size`` (the last shorter)."""
    order = permutation(n, seed)
    return [sorted(order[i : i + size]) for i in range(0, n, size)]


def bucket_means(rows: IntArray, groups: Sequence[Sequence[int]]) -> IntArray:
    """Each bucket's mean."""
    return np.stack([mean_rows(rows[list(g)]) for g in groups])


def copy_groups(
    rows: IntArray, commitments: Sequence[bytes], tolerance_ppm: int
) -> list[list[int]]:
    """Groups (two or more rows, ascending) of identical or nearly identical updates.

    Rows i and j are copies if they commit to the same update, or if
    ``|x_i - x_j| <= tolerance * min(|x_i|, |x_j|)``, decided exactly on the sketch
    (squared, in integers); groups are the connected components. Colluders that add
    a little noise to one vector, and copycats that perturb a victim's update, fall
    inside; honest updates trained on different data lie far apart.
    """
    n = rows.shape[0]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[bytes, int] = {}
    for i, c in enumerate(commitments):
        join(first.setdefault(c, i), i)
    for i, j in _near_pairs(rows, tolerance_ppm):
        join(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _near_pairs(rows: IntArray, tolerance_ppm: int) -> list[tuple[int, int]]:
    n = rows.shape[0]
    if tolerance_ppm == 0 or n < 2:
        return []
    gram = sketch_gram(rows)
    sq = np.diagonal(gram)
    distances = gram_distances(gram)
    smaller = np.minimum(sq[:, None], sq[None, :])
    # Float screens the pairs; integers decide the ones near the threshold.
    lhs = distances.astype(np.float64) * 1e12
    rhs = smaller.astype(np.float64) * float(tolerance_ppm) ** 2
    close = np.triu(lhs <= rhs * (1 + 1e-9), k=1)
    pairs = []
    for i, j in zip(*np.nonzero(close), strict=True):
        d2, m2 = int(distances[i, j]), int(smaller[i, j])
        if d2 * 10**12 <= tolerance_ppm * tolerance_ppm * m2:
            pairs.append((int(i), int(j)))
    return pairs


# --- aggregators -----------------------------------------------------------------


def mean(rows: IntArray, weights: Sequence[int] | None = None) -> IntArray:
    """The (weighted) mean, rounded; weights sum to at most 2**31."""
    if weights is None:
        return mean_rows(rows)
    total = sum(weights)
    if total <= 0 or total >= 1 << 31:
        raise ValueError("weights must sum to a positive number below 2**31")
    acc = np.zeros(rows.shape[1], dtype=np.int64)
    for row, w in zip(rows, weights, strict=True):
        acc += row * w  # |row| * total < 2**63
    return rounded_div(acc, total)


def _by_columns(rows: IntArray, ranks: Sequence[int], pick: object) -> IntArray:
    """``pick`` of each block of columns with ``ranks`` in their sorted places.

    ``np.partition`` puts every listed rank where a sort would, in linear time,
    with the smaller values before it and the larger after: a pick that reads
    those ranks, or sums what lies between two of them, gets what a sort gives.
    """
    out = np.empty(rows.shape[1], dtype=np.int64)
    step = _columns(rows.shape[0])
    for start in range(0, rows.shape[1], step):
        block = _column_major(rows[:, start : start + step])
        block.partition(list(ranks), axis=1)
        out[start : start + step] = pick(block.T)  # type: ignore[operator]
    return out


def _column_major(block: IntArray) -> IntArray:
    """``block`` transposed into a contiguous copy: a column per row.

    Partitioning contiguous rows is several times faster than partitioning
    strided columns in place (numpy copies each one out and back). Always a
    copy: the caller's rows are partitioned in place, and a transposed view of a
    single column is already contiguous (``ascontiguousarray`` would return it).
    """
    return block.T.copy(order="C")


def median(rows: IntArray) -> IntArray:
    """The coordinate-wise median (for even n, the two middles' mean, floored)."""
    n = rows.shape[0]
    middle = [(n - 1) // 2, n // 2]
    return _by_columns(rows, middle, lambda s: (s[middle[0]] + s[middle[1]]) >> 1)


def leave_one_out_stats(rows: IntArray) -> IntArray:
    """The order statistics every leave-one-out median is made of.

    Rows ``k, k + 1, k + 2`` of the column-sorted updates, ``k = (n - 2) // 2``
    (fewer where ``n`` is small): removing one value from a sorted column shifts
    each later rank down by one, so the median of the other ``n - 1`` values is
    built from these alone (see :func:`leave_one_out_median`). ``3 x d``, not
    ``n x d``: at 1,000 miners the memory stays that of one sort.
    """
    n = rows.shape[0]
    if n < 2:
        raise ValueError("a leave-one-out median needs two updates")
    k = (n - 2) // 2
    top = min(k + 3, n)
    return _sorted_rows(rows, k, top)


def leave_one_out_median(stats: IntArray, n: int, row: IntArray) -> IntArray:
    """The coordinate-wise median of the ``n`` updates without ``row``.

    ``stats`` is :func:`leave_one_out_stats` of all ``n``; equal to
    :func:`median` of the other ``n - 1`` rows, exactly. Which copy of a repeated
    value is removed does not change the rest, so rank ``j`` of the rest is rank
    ``j`` of all where that value is below ``row``'s and rank ``j + 1`` otherwise.
    """
    m = n - 1
    k = (n - 2) // 2

    def rank(j: int) -> IntArray:
        at, after = stats[j - k], stats[j - k + 1]
        picked: IntArray = np.where(at < row, at, after)
        return picked

    low, high = (m - 1) // 2, m // 2
    if low == high:  # an odd count left: one middle
        return rank(low)
    return (rank(low) + rank(high)) >> 1


def _sorted_rows(rows: IntArray, low: int, high: int) -> IntArray:
    """Rows ``low:high`` of ``rows`` sorted column by column."""
    out = np.empty((high - low, rows.shape[1]), dtype=np.int64)
    step = _columns(rows.shape[0])
    more = high - low - 1  # ranks wanted after ``low``
    for start in range(0, rows.shape[1], step):
        block = _column_major(rows[:, start : start + step])
        block.partition(low, axis=1)
        out[0, start : start + step] = block[:, low]
        if more:
            # The next ranks are the smallest of what lies above ``low``: one
            # selection there, then a sort of a few, beats selecting each rank.
            above = block[:, low + 1 :]
            above.partition(more - 1, axis=1)
            out[1:, start : start + step] = np.sort(above[:, :more], axis=1).T
    return out


def trimmed_mean(rows: IntArray, f: int) -> IntArray:
    """The coordinate-wise mean after dropping the f lowest and f highest values."""
    n = rows.shape[0]
    if n <= 2 * f:
        raise ValueError("trimmed mean needs n > 2f")
    return _by_columns(
        rows, [f, n - f - 1], lambda s: rounded_div(s[f : n - f].sum(axis=0), n - 2 * f)
    )


def krum_scores(distances: IntArray, f: int) -> list[int]:
    """Each row's Krum score: the sum of its n - f - 2 smallest distances."""
    n = distances.shape[0]
    k = min(max(n - f - 2, 1), n - 1)
    if n == 1:
        return [0]
    others = np.where(np.eye(n, dtype=bool), np.iinfo(np.int64).max, distances)
    # Sums of at most 2**11 distances below 2**55: held as Python integers.
    return [int(sum(int(x) for x in row[:k])) for row in np.sort(others, axis=1)]


def multi_krum(rows: IntArray, f: int, select: int) -> list[int]:
    """The ``select`` rows with the lowest Krum scores (ties by index), in order."""
    scores = krum_scores(sq_distances(rows), f)
    ranked = sorted(range(rows.shape[0]), key=lambda i: (scores[i], i))
    return sorted(ranked[:select])


def geometric_median(rows: IntArray, iterations: int) -> IntArray:
    """Smoothed Weiszfeld from the coordinate-wise median, in integer arithmetic.

    Each step weights row i by ``floor(2**20 * d_min / d_i)``, where ``d_i`` is its
    exact distance to the estimate in whole units (at least 1, the smoothing), so
    weights are integers in [0, 2**20] and the weighted sum stays within int64.
    """
    z = median(rows)
    for _ in range(iterations):
        distances = [max(norm_floor(sq_norm(r - z)), 1) for r in rows]
        nearest_distance = min(distances)
        weights = [(nearest_distance << WEISZFELD_BITS) // d for d in distances]
        z = mean(rows, weights) if sum(weights) < 1 << 31 else _big_mean(rows, weights)
    return z


def _big_mean(rows: IntArray, weights: Sequence[int]) -> IntArray:
    # Weights scaled down so they sum below 2**31 (needed past 2**11 rows only).
    total = sum(weights)
    scaled = [w * ((1 << 31) - 1) // total for w in weights]
    return mean(rows, scaled if sum(scaled) > 0 else None)


def centered_clipping(
    rows: IntArray, center: IntArray, radius: int, iterations: int
) -> IntArray:
    """``v <- v + mean_i clip(x_i - v, radius)``, ``iterations`` times from ``center``.

    ``radius`` 0 takes the round's median distance to ``center``.
    """
    v = center.astype(np.int64)
    if radius == 0:
        radius = norm_floor(lower_median([sq_norm(r - v) for r in rows]))
    for _ in range(iterations):
        deltas, _ = clip_rows(rows - v, radius)
        v = v + mean_rows(deltas)
    return v
