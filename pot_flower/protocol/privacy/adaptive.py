"""Adaptive clipping in integers: the noised count of unclipped updates, the next C.

Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with
Adaptive Clipping" (NeurIPS 2021), Algorithm 1 with the geometric update, as the
committee runs it: every validator counts, exactly, the updates whose norm is
within the round's clip norm ``C`` (each adds ``+CLIP_LATTICE``, each clipped one
``-CLIP_LATTICE``: the paper's centred bits ``b - 1/2``, doubled, on the lattice),
adds discrete Gaussian noise from the round's secret seed (its own stream), and
moves ``C`` by ``exp(-lr * (b - target))`` where ``b`` is the noised fraction of
the expected participants left unclipped, held to [0, 1]. The exponential is taken
in :mod:`decimal`, whose ``exp`` is correctly rounded at a fixed precision, so
every validator and every auditor computes the same next ``C`` from the recorded
count.

The round's block records the clip norm it used and the noised count
(:class:`ClipStep`): both are outputs of the accounted mechanism, and with them
anyone can recompute the whole clip-norm trajectory from genesis.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction

from pot_flower.encoding import Decoded
from pot_flower.protocol.fixedpoint import MAX_UNITS
from pot_flower.protocol.privacy.config import CLIP_LATTICE, PPM, PrivacyConfig
from pot_flower.protocol.privacy.discrete_gaussian import WordStream, sample_one

COUNT_DOMAIN = b"pot-flower/dp-clipped-count/v1"
_PRECISION = 50
"""Decimal digits of the geometric update (correctly rounded at this precision)."""


@dataclass(frozen=True)
class ClipStep:
    """What a round of adaptive clipping records.

    The clip norm it used (model units) and the noised doubled count of
    unclipped updates (lattice units of a vote).
    """

    clip_norm_units: int
    noisy_count: int

    def __post_init__(self) -> None:
        for v in (self.clip_norm_units, self.noisy_count):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError("a clip step holds integers")
        if not 1 <= self.clip_norm_units <= MAX_UNITS:
            raise ValueError("clip norm out of the fixed-point range")
        if abs(self.noisy_count) > 2**62:
            raise ValueError("noisy count out of range")

    def to_value(self) -> list[Decoded]:
        return [self.clip_norm_units, self.noisy_count]

    @classmethod
    def from_value(cls, value: Decoded) -> ClipStep:
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("a clip step must be [clip-norm-units, noisy-count]")
        clip, count = value
        return cls(clip, count)  # type: ignore[arg-type]


def count_seed(seed: bytes) -> bytes:
    """The count noise's own stream, derived from the round's secret noise seed."""
    return hashlib.sha256(COUNT_DOMAIN + seed).digest()


def unclipped_votes(sq_norms: list[int], clip_norm_units: int) -> int:
    """``CLIP_LATTICE`` for each update within ``C``, minus it for each clipped.

    An all-zero update casts no vote: under zero-out neighbours (one miner's
    update replaced by zeros, the unit the accountant is given) a miner's whole
    contribution, to the sum and to the count, must then vanish, so replacing any
    update moves the count by at most ``CLIP_LATTICE``. (Counted as unclipped,
    the zero update would move it by twice that.)
    """
    bound = clip_norm_units * clip_norm_units
    return CLIP_LATTICE * sum(
        0 if sq == 0 else 1 if sq <= bound else -1 for sq in sq_norms
    )


def noisy_count(seed: bytes, votes: int, config: PrivacyConfig) -> int:
    """The votes plus N_Z(0, count_noise_units**2), drawn from the round's seed."""
    assert config.adaptive is not None
    sigma = config.adaptive.count_noise_units
    return votes + sample_one(WordStream(count_seed(seed)), Fraction(sigma * sigma))


def _context() -> Context:
    """Every setting spelled out: nothing inherited from the process's default."""
    return Context(
        prec=_PRECISION,
        rounding=ROUND_HALF_EVEN,
        Emin=-999_999,
        Emax=999_999,
        capitals=1,
        clamp=0,
        flags=[],
        traps=[InvalidOperation, DivisionByZero, Overflow],
    )


def next_clip_norm(
    step: ClipStep, config: PrivacyConfig, ceiling: int = MAX_UNITS
) -> int:
    """The next round's clip norm: ``C * exp(-lr * (b - target))`` in whole units.

    ``b = (count + m L) / (2 m L)`` with ``m`` the expected participants and ``L``
    = ``CLIP_LATTICE``: the noised share of unclipped updates among the expected
    ones, held to [0, 1] (post-processing; it bounds one round's move to a factor
    of ``exp(lr)``). Rounded away from ``C`` (up when it grows, down when it
    shrinks), so that a small ``C`` can always grow again; within
    [1, ``ceiling``] units: the chain's norm bound, past which every update is
    rejected anyway, so that miners who steer the count (huge updates, all
    clipped) cannot grow the noise sigma * C beyond it.
    """
    adaptive = config.adaptive
    if adaptive is None:
        raise ValueError("a fixed clip norm has no next step")
    half = config.expected_participants * CLIP_LATTICE
    with localcontext(_context()) as ctx:
        share = Decimal(step.noisy_count + half) / Decimal(2 * half)
        share = min(max(share, Decimal(0)), Decimal(1))
        target = Decimal(adaptive.target_quantile_ppm) / PPM
        rate = Decimal(adaptive.learning_rate_ppm) / PPM
        factor = (-rate * (share - target)).exp()
        moved = (Decimal(step.clip_norm_units) * factor).to_integral_value(
            rounding=ROUND_CEILING if factor > 1 else ROUND_FLOOR, context=ctx
        )
    return min(max(int(moved), 1), ceiling, MAX_UNITS)
