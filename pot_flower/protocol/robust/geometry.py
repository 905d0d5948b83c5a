"""Exact geometry over fixed-point updates: norms, distances, clipping, means.

Updates are int64 rows with ``|x| <= 2**32`` (differences of two bounded updates
included). Everything here is integer maths or float64 maths whose every partial
result is an integer below 2**53, which IEEE-754 computes exactly in any order, with
or without FMA, on any BLAS: so honest validators agree bit for bit.

Distances between updates use a *sketch*: the rows shifted right by a per-round
number of bits, so that a dot product of two sketched rows stays below 2**52 and a
BLAS Gram matrix of the sketch is exact. Selection rules (Krum, nearest neighbours)
rank updates by these exact sketch distances; the sums they select are taken at full
precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pot_flower.protocol.fixedpoint import FloatArray, IntArray, exact_dot

_WIDEST = 1 << 32  # |element| bound every function here relies on


def rounded_div(total: IntArray, count: int) -> IntArray:
    """``round(total / count)`` per element, halves rounded up (exact integers)."""
    if count <= 0:
        raise ValueError("count must be positive")
    return np.floor_divide(total + count // 2, count)


def mean_rows(rows: IntArray) -> IntArray:
    """The rows' equal-weight mean, rounded (exact: n * 2**32 < 2**63)."""
    return rounded_div(rows.sum(axis=0, dtype=np.int64), rows.shape[0])


def sq_norm(v: IntArray) -> int:
    """``sum(v**2)`` exactly (``|v| <= 2**32``)."""
    return exact_dot(v, v)


def sq_norms(rows: IntArray) -> list[int]:
    """Every row's :func:`sq_norm`, exactly, in one pass when int64 cannot overflow.

    With ``d * max|x|**2 < 2**63`` every partial sum of squares stays within int64,
    so a native integer reduction is exact; otherwise row by row, in limbs.
    """
    if rows.size == 0:
        return [0] * rows.shape[0]
    top = max(int(rows.max()), -int(rows.min()))
    if rows.shape[1] * top * top < 1 << 63:
        return [int(x) for x in np.einsum("ij,ij->i", rows, rows)]
    return [sq_norm(r) for r in rows]


def norm_floor(sq: int) -> int:
    """``floor(sqrt(sq))``: an exact L2 norm in whole units."""
    return math.isqrt(sq)


def lower_median(values: Sequence[int]) -> int:
    """The lower median (an actual sample: ``sorted(values)[(n - 1) // 2]``)."""
    if not values:
        raise ValueError("median of nothing")
    return sorted(values)[(len(values) - 1) // 2]


def clip(v: IntArray, bound: int, sq: int | None = None) -> tuple[IntArray, bool]:
    """``v`` scaled so its L2 norm is at most ``bound``, and whether it was scaled.

    The factor is ``c / 2**b`` with ``c = floor(2**b * bound / |v|)`` and ``b`` as
    many bits as int64 allows for this ``v`` (at least 30); it is applied toward
    zero element by element, so the result's norm never exceeds ``bound``.
    ``sq`` is ``sq_norm(v)`` if the caller has it.
    """
    if bound < 0:
        raise ValueError("bound must be non-negative")
    if sq is None:
        sq = sq_norm(v)
    if sq <= bound * bound:
        return v, False
    top = int(np.abs(v).max())
    if top > _WIDEST:
        raise ValueError("update elements exceed 2**32")
    bits = 62 - top.bit_length()  # c < 2**bits, so |v| * c < 2**62
    # floor(sqrt(floor(z))) == floor(sqrt(z)): c is exact.
    c = math.isqrt((bound * bound << (2 * bits)) // sq)
    scaled = (np.abs(v) * c) >> bits
    return np.where(v < 0, -scaled, scaled), True


def _sketch_shift(rows: IntArray) -> int:
    """The bits :func:`sketch` shifts ``rows`` right by."""
    d = int(rows.shape[1])
    k = (52 - d.bit_length()) // 2
    top = max(int(rows.max()), -int(rows.min())) if rows.size else 0
    if top > _WIDEST:
        raise ValueError("update elements exceed 2**32")
    return max(0, top.bit_length() - k)


def _sketched(rows: IntArray, shift: int) -> FloatArray:
    if shift:
        rows = (rows + (1 << (shift - 1))) >> shift
    return rows.astype(np.float64)


def sketch(rows: IntArray) -> FloatArray:
    """Rows shifted so that any two have an exact float64 dot product (< 2**52).

    With ``d`` columns every element must stay within ``2**k``,
    ``k = (52 - bitlen(d)) // 2``; the shift is the fewest bits that achieve it for
    this round's largest element (halves rounded up).
    """
    return _sketched(rows, _sketch_shift(rows))


_GRAM_COLUMNS = 1 << 12  # columns sketched at once by sketch_gram


def sketch_gram(rows: IntArray) -> IntArray:
    """The exact Gram matrix of the sketched rows (every partial sum < 2**52).

    Built over blocks of columns, so no sketched copy of all the rows is held:
    each block's products and their running sums are partial sums of the same
    exact dot products, integers below 2**52, so the result is the same as one
    product of the whole sketch, bit for bit.
    """
    n, d = rows.shape
    shift = _sketch_shift(rows)
    gram = np.zeros((n, n), dtype=np.float64)
    for start in range(0, d, _GRAM_COLUMNS):
        s = _sketched(rows[:, start : start + _GRAM_COLUMNS], shift)
        gram += s @ s.T
    out: IntArray = gram.astype(np.int64)
    return out


def gram_distances(gram: IntArray) -> IntArray:
    """Squared distances ``|a|**2 + |b|**2 - 2 a.b`` from a Gram matrix."""
    diag = np.diagonal(gram)
    out: IntArray = diag[:, None] + diag[None, :] - 2 * gram
    return out


def sq_distances(rows: IntArray) -> IntArray:
    """The ``(n, n)`` matrix of exact squared distances between sketched rows."""
    return gram_distances(sketch_gram(rows))


def nearest(distances: IntArray, count: int) -> IntArray:
    """Row i: the ``count`` rows nearest row i (itself first), ties by index."""
    ranked = distances.copy()
    np.fill_diagonal(ranked, -1)
    order: IntArray = np.argsort(ranked, axis=1, kind="stable")[:, :count]
    return order
