"""The robust stage: pre-aggregators in order, then the aggregator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pot_flower.protocol.fixedpoint import IntArray
from pot_flower.protocol.robust import rules
from pot_flower.protocol.robust.config import Aggregator, PreAggregator, RobustConfig
from pot_flower.protocol.robust.geometry import sq_norms


@dataclass(frozen=True)
class RobustResult:
    """What the robust stage made of a round's updates.

    Parameters
    ----------
    aggregate : IntArray
        The update that moves the model, in fixed-point units.
    excluded : tuple[int, ...]
        Updates (by position) a selecting aggregator dropped.
    clipped : tuple[int, ...]
        Updates (by position) a clipping step scaled down.
    tolerated : int
        The number of Byzantine updates the round's rules were set for.
    low, high : IntArray | None
        With ``bounds``: per coordinate, the least and greatest of 0, the
        aggregate and every row the aggregator combined (after clipping, mixing
        and bucketing; selected rows only), the box server momentum stays in.

    """

    aggregate: IntArray
    excluded: tuple[int, ...]
    clipped: tuple[int, ...]
    tolerated: int
    low: IntArray | None = None
    high: IntArray | None = None


def robust_aggregate(
    config: RobustConfig,
    rows: IntArray,
    weights: Sequence[int] | None,
    *,
    seed: bytes,
    previous: IntArray | None = None,
    bounds: bool = False,
) -> RobustResult:
    """Apply ``config`` to ``rows`` (one per accepted update, canonical order).

    ``weights`` weigh the plain mean (ignored once bucketing mixes the rows);
    ``seed`` shuffles the buckets (the round's nonce); ``previous`` is the last
    round's aggregate, the centre of centered clipping (zeros if None);
    ``bounds`` asks for the box of what was combined (``low``, ``high``).
    """
    # Clipping writes the clipped rows into ``rows`` and puts the originals back
    # before returning: a copy of every row for the few a clip scales would be
    # 300 MB at 1,000 miners of the quickstart CNN.
    saved: list[tuple[IntArray, dict[int, IntArray]]] = []
    try:
        return _run(config, rows, weights, seed, previous, bounds, saved)
    finally:
        for matrix, originals in reversed(saved):
            for i, row in originals.items():
                matrix[i] = row


def _run(
    config: RobustConfig,
    rows: IntArray,
    weights: Sequence[int] | None,
    seed: bytes,
    previous: IntArray | None,
    bounds: bool,
    saved: list[tuple[IntArray, dict[int, IntArray]]],
) -> RobustResult:
    n = rows.shape[0]
    f = config.tolerated(n)
    clipped: set[int] = set()
    groups: list[list[int]] | None = None
    for step in config.pre_aggregators:
        if step in (PreAggregator.CLIP, PreAggregator.ADAPTIVE_CLIP):
            sq = sq_norms(rows)  # once, for the bound and the clipping
            bound = (
                config.clip_norm_units
                if step == PreAggregator.CLIP
                else rules.adaptive_bound(rows, config.adaptive_clip_ppm, sq)
            )
            originals = rules.clip_rows_in_place(rows, bound, sq)
            saved.append((rows, originals))
            if groups is None:
                clipped |= set(originals)
        elif step == PreAggregator.NNM:
            rows = rules.nnm(rows, f)
        else:
            groups = rules.buckets(rows.shape[0], config.bucket_size, seed)
            rows = rules.bucket_means(rows, groups)
            f = min(f, config.limit(len(groups)))
    aggregate, kept = _aggregate(config, rows, None if groups else weights, f, previous)
    if np.may_share_memory(aggregate, rows):
        aggregate = aggregate.copy()  # e.g. the mean of one row: rows are restored
    excluded = (
        tuple(sorted(set(range(n)) - set(kept)))
        if kept is not None and groups is None
        else ()
    )
    low = high = None
    if bounds:
        combined = rows if kept is None else rows[kept]
        low = np.minimum(np.minimum(combined.min(axis=0), aggregate), 0)
        high = np.maximum(np.maximum(combined.max(axis=0), aggregate), 0)
    return RobustResult(aggregate, excluded, tuple(sorted(clipped)), f, low, high)


def _aggregate(
    config: RobustConfig,
    rows: IntArray,
    weights: Sequence[int] | None,
    f: int,
    previous: IntArray | None,
) -> tuple[IntArray, list[int] | None]:
    n = rows.shape[0]
    match config.aggregator:
        case Aggregator.MEAN:
            return rules.mean(rows, weights), None
        case Aggregator.MEDIAN:
            return rules.median(rows), None
        case Aggregator.TRIMMED_MEAN:
            return rules.trimmed_mean(rows, f), None
        case Aggregator.GEOMETRIC_MEDIAN:
            return rules.geometric_median(rows, config.iterations), None
        case Aggregator.CENTERED_CLIPPING:
            center = previous if previous is not None else np.zeros_like(rows[0])
            return rules.centered_clipping(
                rows, center, config.radius_units, config.iterations
            ), None
        case Aggregator.KRUM | Aggregator.MULTI_KRUM:
            select = 1 if config.aggregator == Aggregator.KRUM else n - f
            kept = rules.multi_krum(rows, f, select)
            return rules.mean(rows[kept]), kept
