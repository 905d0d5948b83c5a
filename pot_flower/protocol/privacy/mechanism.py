"""DP-FedAvg's aggregate in integers: clip, sum, discrete Gaussian noise, divide.

Each update is clipped to the clip norm ``C`` (exactly, toward zero), put on a
lattice of ``CLIP_LATTICE`` points per ``C`` and clipped there again, so every
miner moves the sum by at most ``CLIP_LATTICE`` lattice units in L2 whatever the
others sent; the sum gets noise from N_Z(0, sigma**2) per coordinate with sigma =
``noise_units`` and is divided by the fixed expected number of participants. Only
float weights are noised; integer buffers (counters) do not move under DP.

The noise seed is an HMAC of the ordered batch's submissions (as a set) under the
committee's noise key: every honest validator derives the same one, the batch is
fixed by consensus before anyone computes it, and nobody without the key can
recompute it, so neither miners nor the coordinator can subtract the noise from
the published model. See the README's privacy section for who holds the key and
what a key holder who also forms batches could still do.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from pot_flower.encoding import encode
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.fixedpoint import MAX_UNITS, IntArray
from pot_flower.protocol.privacy.adaptive import (
    ClipStep,
    noisy_count,
    unclipped_votes,
)
from pot_flower.protocol.privacy.config import CLIP_LATTICE, PrivacyConfig
from pot_flower.protocol.privacy.discrete_gaussian import sample
from pot_flower.protocol.robust.geometry import sq_norms
from pot_flower.protocol.robust.rules import clip_rows

NOISE_DOMAIN = b"pot-flower/dp-noise/v2"
BLIND_DOMAIN = b"pot-flower/dp-blind-commitment/v1"
NOISE_KEY_SIZE = 32


def noise_seed(
    key: bytes, run: int, round_: int, submissions: Sequence[SubmissionRef]
) -> bytes:
    """The round's noise seed: HMAC-SHA256 of the batch's submissions under ``key``.

    The submissions as a set (sorted by their encoding), and nothing else of the
    batch: reordering them, another certificate of the previous block or another
    figure within the privacy claim's tolerance would otherwise re-roll the noise
    with every verdict unchanged, letting a key holder who forms batches pick
    among as many noise vectors as it likes.
    """
    if len(key) != NOISE_KEY_SIZE:
        raise ValueError(f"the noise key must be {NOISE_KEY_SIZE} bytes")
    refs = sorted(encode(s.to_value()) for s in submissions)
    message = NOISE_DOMAIN + encode([run, round_, refs])
    return hmac.new(key, message, hashlib.sha256).digest()


def blind_commitment(key: bytes, commitment: bytes) -> bytes:
    """What a DP chain's block records for an update's hash commitment.

    The commitment is an unsalted SHA-256 of the quantized update: with the base
    model public, anyone could test a guessed update (a rerun of a miner's
    seeded training on guessed data) against it. Keyed, equal updates still
    record equal values (copies stay visible to the audit) and nobody without the
    committee's key can test a guess.
    """
    return hmac.new(key, BLIND_DOMAIN + commitment, hashlib.sha256).digest()


def to_lattice(
    rows: IntArray, clip_norm_units: int, sq: list[int] | None = None
) -> IntArray:
    """Updates clipped to ``C``, on the DP lattice, clipped to its norm again.

    ``round(x * CLIP_LATTICE / C)`` (half up) after the first clip keeps every
    element within ``CLIP_LATTICE + 1``; rounding may lift a norm just past the
    lattice's bound, which the second, exact clip takes back. ``sq`` holds the
    rows' squared norms if the caller has them.
    """
    clipped, _ = clip_rows(rows, clip_norm_units, sq)
    c = clip_norm_units
    lattice = (clipped * (2 * CLIP_LATTICE) + c) // (2 * c)
    bounded, _ = clip_rows(lattice, CLIP_LATTICE)
    return bounded


@lru_cache(maxsize=2)
def round_noise(seed: bytes, sigma: int, size: int) -> IntArray:
    """The round's noise vector (read-only; a pure function of its arguments).

    Cached so that validators sharing a process (the embedded committee) draw it
    once, as they score once: each would draw the same integers.
    """
    noise = sample(seed, sigma, size)
    noise.setflags(write=False)
    return noise


def private_mean(
    rows: IntArray,
    config: PrivacyConfig,
    seed: bytes,
    size: int,
    clip_norm_units: int | None = None,
) -> tuple[IntArray, ClipStep | None]:
    """The noised mean of ``rows`` (``n x size``, model units), in model units.

    ``(sum of lattice rows + noise) * C / (CLIP_LATTICE * m)``, rounded half up,
    within the fixed-point range; ``rows`` may be empty (the noise still lands).
    ``C`` is ``clip_norm_units`` (the round's, under adaptive clipping) or the
    chain's. With adaptive clipping also the round's :class:`ClipStep` (the
    noised count of unclipped updates), else ``None``.
    """
    c = config.clip_norm_units if clip_norm_units is None else clip_norm_units
    sq = sq_norms(rows)
    if rows.shape[0]:
        total = to_lattice(rows, c, sq).sum(axis=0)
    else:
        total = np.zeros(size, dtype=np.int64)
    noisy = total + round_noise(seed, config.noise_units, size)
    scale = CLIP_LATTICE * config.expected_participants
    mean = (noisy * (2 * c) + scale) // (2 * scale)
    out: IntArray = np.clip(mean, -MAX_UNITS, MAX_UNITS)
    if config.adaptive is None:
        return out, None
    count = noisy_count(seed, unclipped_votes(sq, c), config)
    return out, ClipStep(c, count)
