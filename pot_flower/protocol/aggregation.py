"""Aggregation: the accepted updates' combination and the model it moves.

Pure integer maths over fixed-point units (see :mod:`~pot_flower.protocol.fixedpoint`),
so every validator computes identical bytes. The rules that combine updates live in
:mod:`pot_flower.protocol.robust`; here the aggregate moves the model.
"""

from __future__ import annotations

import numpy as np

from pot_flower.protocol.fixedpoint import IntArray, apply_update
from pot_flower.protocol.layout import Layout
from pot_flower.protocol.model import Arrays


def apply_aggregate(model: Arrays, layout: Layout, aggregate: IntArray) -> Arrays:
    """The model after adding the aggregate update (per array, in fixed point)."""
    per_array = layout.split(aggregate)
    return {name: apply_update(base, per_array[name]) for name, base in model.items()}


def as_float(aggregate: IntArray) -> tuple[np.ndarray, float]:
    """The aggregate as float64 integers and its squared norm (for scoring)."""
    flat = aggregate.astype(np.float64)
    return flat, float(np.dot(flat, flat))
