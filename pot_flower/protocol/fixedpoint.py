"""Fixed-point updates and exact integer arithmetic over them.

Updates leave floating point once, on the miner, by a rounding every IEEE-754 machine
does identically; from there on validators only add, multiply and divide integers, so
they agree bit for bit regardless of CPU, BLAS or summation order.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FRAC_BITS = 20
"""Binary digits after the point: one unit is 2**-20 (about 9.5e-7)."""

SCALE = 1 << FRAC_BITS
MAX_UNITS = (1 << 31) - 1
"""Largest |update element| in units; keeps every product below 2**62."""

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def scale_of(dtype: np.dtype[np.generic]) -> int:
    """Units per 1.0 for ``dtype`` (integer buffers step by whole units)."""
    return SCALE if dtype.kind == "f" else 1


def max_norm_units(bound: float) -> int:
    """A float L2 bound in units (floor), checked to stay within :data:`MAX_UNITS`."""
    if not (bound > 0 and math.isfinite(bound)):
        raise ValueError(f"norm bound must be positive and finite, got {bound!r}")
    units = math.floor(bound * SCALE)
    if units > MAX_UNITS:
        raise ValueError(
            f"norm bound {bound} exceeds the fixed-point range "
            f"({MAX_UNITS / SCALE:.0f}); lower it"
        )
    return units


def quantize_difference(
    returned: NDArray[np.generic], received: NDArray[np.generic], limit: int
) -> FloatArray | None:
    """``round((returned - received) * scale)``, or None past ``limit`` units.

    The subtraction happens in float64 (exact for float32 inputs) and rounding is
    half-to-even, so miner and validators get the same integers from the same bytes.
    The result holds integers as float64 (exact below 2**53): cheap to check with
    BLAS, converted to int64 where exact sums are needed. Callers check finiteness.
    """
    if received.dtype.kind == "f":
        diff: FloatArray = np.subtract(returned, received, dtype=np.float64)
        diff *= scale_of(received.dtype)
        if diff.size and max(float(diff.max()), -float(diff.min())) > limit:
            return None
        np.rint(diff, out=diff)
        return diff
    a = returned.astype(np.int64)
    b = received.astype(np.int64)
    # Integer buffers: compare before subtracting so nothing can wrap around.
    if a.size and (int(np.max(np.abs(a))) > limit or int(np.max(np.abs(b))) > limit):
        return None
    diff_int = a - b
    if diff_int.size and int(np.max(np.abs(diff_int))) > limit:
        return None
    return diff_int.astype(np.float64)


def apply_update(base: NDArray[np.generic], units: IntArray) -> NDArray[np.generic]:
    """``base + units / scale`` in ``base``'s dtype (float64 then one rounding)."""
    # np.asarray: arithmetic on 0-d arrays yields numpy scalars, not arrays.
    if base.dtype.kind == "f":
        out = base.astype(np.float64) + units.astype(np.float64) / scale_of(base.dtype)
        return np.asarray(out.astype(base.dtype))
    return np.asarray((base.astype(np.int64) + units).astype(base.dtype))


def _limbs(a: IntArray) -> tuple[IntArray, IntArray]:
    # a = hi * 2**16 + lo with |hi| <= 2**15 and 0 <= lo < 2**16 for |a| <= 2**31.
    return a >> 16, a & 0xFFFF


_CHUNK = 1 << 28  # products of limbs are < 2**32: 2**28 of them sum below 2**60


_INT64_SAFE = 1 << 63


def exact_dot(a: IntArray, b: IntArray) -> int:
    """The exact integer dot product of two int64 vectors with |elements| <= 2**31.

    When ``size * max|a| * max|b| < 2**63`` no product and no partial sum can
    leave int64, so one native integer dot is exact; otherwise 16-bit limbs.
    """
    if a.size and b.size:
        top_a = max(int(a.max()), -int(a.min()))
        top_b = max(int(b.max()), -int(b.min()))
        if a.size * top_a * top_b < _INT64_SAFE:
            return int(np.dot(a, b))
    total = 0
    for start in range(0, max(a.size, 1), _CHUNK):
        ah, al = _limbs(a[start : start + _CHUNK])
        bh, bl = _limbs(b[start : start + _CHUNK])
        hh = int(np.dot(ah, bh))
        mixed = int(np.dot(ah, bl)) + int(np.dot(al, bh))
        ll = int(np.dot(al, bl))
        total += (hh << 32) + (mixed << 16) + ll
    return total


def dot_error_bound(n: int) -> float:
    """Relative bound on a float64 dot product of n exact terms, any order, FMA or not.

    ``|fl(a.b) - a.b| <= gamma_n * |a|.|b|`` with ``gamma_n ~ n * 2**-53`` (Higham,
    Accuracy and Stability, 3.1); doubled, plus slack for the final conversions.
    """
    return (n + 8) * 2.0**-51


def filtered_dot(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """``(approx, err)`` with ``|approx - a.b| <= err`` on every IEEE machine.

    ``a`` and ``b`` hold integers (|x| <= 2**31) as float64, so BLAS does the work;
    a decision taken only when ``approx`` is farther than ``err`` from its threshold
    is the same everywhere, and callers fall back to exact integers otherwise.
    """
    approx = float(np.dot(a, b))
    if a is b:
        magnitude = approx
    else:
        magnitude = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return approx, dot_error_bound(a.size) * magnitude * 1.01 + 1.0


def exact_float_dot(a: FloatArray, b: FloatArray) -> int:
    """``a.b`` exactly, for integer-valued float64 vectors."""
    return exact_dot(a.astype(np.int64), b.astype(np.int64))


def norm_within(flat: FloatArray, bound: int) -> bool:
    """Whether ``sum(flat**2) <= bound**2``, exactly (float filter, exact fallback)."""
    approx, err = filtered_dot(flat, flat)
    limit = float(bound) * float(bound)
    slack = limit * 2.0**-50
    if approx + err < limit - slack:
        return True
    if approx - err > limit + slack:
        return False
    return exact_float_dot(flat, flat) <= bound * bound
