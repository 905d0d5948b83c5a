"""Aggregation: the accepted updates' combination and the model it moves.

Pure integer maths over fixed-point units (see :mod:`~pot_flower.protocol.fixedpoint`),
so every validator computes identical bytes. The rules that combine updates live in
:mod:`pot_flower.protocol.robust`; here the aggregate moves the model.
"""

from __future__ import annotations

import numpy as np

from pot_flower.protocol.fixedpoint import MAX_UNITS, IntArray, apply_update
from pot_flower.protocol.layout import Layout
from pot_flower.protocol.model import Arrays

PPM = 1_000_000


def apply_aggregate(model: Arrays, layout: Layout, aggregate: IntArray) -> Arrays:
    """The model after adding the aggregate update (per array, in fixed point)."""
    per_array = layout.split(aggregate)
    return {name: apply_update(base, per_array[name]) for name, base in model.items()}


def momentum_step(
    aggregate: IntArray, previous: IntArray | None, beta_ppm: int, float_size: int
) -> IntArray:
    """The model's move: ``aggregate + floor(beta * previous)`` on float weights.

    Exact integer maths (``previous`` split at 1e6 so no product leaves int64),
    clamped to the fixed-point range so the move stays a valid update; integer
    arrays (counters) move by the aggregate alone. ``previous`` is the last move
    (None on the first round or without momentum).
    """
    if previous is None or beta_ppm == 0 or float_size == 0:
        return aggregate
    head = previous[:float_size]
    # floor(beta * p / 1e6) = beta * (p // 1e6) + floor(beta * (p % 1e6) / 1e6).
    carried = (head // PPM) * beta_ppm + ((head % PPM) * beta_ppm) // PPM
    out = aggregate.copy()
    out[:float_size] = np.clip(aggregate[:float_size] + carried, -MAX_UNITS, MAX_UNITS)
    return out


def within_bounds(
    move: IntArray, low: IntArray, high: IntArray, float_size: int
) -> IntArray:
    """``move`` held, per float weight, within ``[low, high]``.

    Server momentum extrapolates: it can carry a weight past every value the
    miners returned, and for statistics such as BatchNorm's running variance
    (which shrink round after round) past zero, where the model breaks (FedAvgM's
    known failure). The box (``RobustResult.low`` and ``high``: 0, the round's
    aggregate and every row the rule combined) holds the momentum-free move;
    momentum may move the model anywhere in it, never out of it. Integer arrays
    (counters) are left alone.
    """
    out = move.copy()
    out[:float_size] = np.clip(move[:float_size], low[:float_size], high[:float_size])
    return out


def as_float(aggregate: IntArray) -> tuple[np.ndarray, float]:
    """The aggregate as float64 integers and its squared norm (for scoring)."""
    flat = aggregate.astype(np.float64)
    return flat, float(np.dot(flat, flat))
