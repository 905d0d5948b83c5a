"""Omniscient colluding attacks: Byzantine updates computed from the honest ones.

The threat model of ByzFL and of the papers below: the f attackers see every honest
update of the round (a worst case; without commit-reveal a coordinator or a peer
who sees updates early comes close) and agree on what to send. Every attack maps
the honest updates ``(h, d)`` (float, returned minus received weights) to ``f``
Byzantine updates ``(f, d)``.

References: Baruch et al. 2019 (ALIE), Xie et al. 2020 (IPM), Shejwalkar and
Houmansadr 2021 (min-max, min-sum), Karimireddy et al. 2022 (Mimic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Updates = NDArray[np.float64]


@dataclass(frozen=True)
class Context:
    """What an attack may use besides the honest updates.

    Parameters
    ----------
    rng : numpy.random.Generator
        The attackers' randomness.
    norm_bound : float
        The committee's L2 bound on updates (attacks that want to pass stay below).

    """

    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    norm_bound: float = 100.0


AttackFn = Callable[[Updates, int, Context], Updates]


def _repeat(v: Updates, f: int) -> Updates:
    return np.repeat(v[None, :], f, axis=0)


def _norm(v: Updates) -> float:
    return float(np.linalg.norm(v))


def sign_flip(honest: Updates, f: int, ctx: Context) -> Updates:
    """The honest mean, reversed."""
    return _repeat(-honest.mean(axis=0), f)


def gaussian(honest: Updates, f: int, ctx: Context) -> Updates:
    """Independent Gaussian noise, scaled to 90 % of the norm bound (so it passes)."""
    noise = ctx.rng.standard_normal((f, honest.shape[1]))
    norms = np.linalg.norm(noise, axis=1, keepdims=True)
    out: Updates = noise / norms * (0.9 * ctx.norm_bound)
    return out


def alie(honest: Updates, f: int, ctx: Context) -> Updates:
    """A little is enough: ``mean - z * std`` per coordinate (Baruch et al. 2019)."""
    n = honest.shape[0] + f
    s = n // 2 + 1 - f
    z = NormalDist().inv_cdf((n - s) / n) if 0 < s < n else 1.0
    return _repeat(honest.mean(axis=0) - z * honest.std(axis=0), f)


def ipm(epsilon: float) -> AttackFn:
    """Inner-product manipulation: ``-epsilon * mean`` (Xie et al. 2020)."""

    def attack(honest: Updates, f: int, ctx: Context) -> Updates:
        return _repeat(-epsilon * honest.mean(axis=0), f)

    return attack


def _largest_gamma(fits: Callable[[float], bool], high: float = 100.0) -> float:
    """The largest gamma in [0, high] with ``fits(gamma)`` (bisection)."""
    if fits(high):
        return high
    low = 0.0
    for _ in range(40):
        mid = (low + high) / 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def _pairwise_sq(honest: Updates) -> Updates:
    sq = np.einsum("ij,ij->i", honest, honest)
    d2: Updates = sq[:, None] + sq[None, :] - 2 * honest @ honest.T
    return np.maximum(d2, 0.0)


def min_max(honest: Updates, f: int, ctx: Context) -> Updates:
    """``mean - gamma * std``, no farther from any honest update than they are apart."""
    mean, direction = honest.mean(axis=0), -honest.std(axis=0)
    limit = float(_pairwise_sq(honest).max())

    def fits(gamma: float) -> bool:
        v = mean + gamma * direction
        return float(((honest - v) ** 2).sum(axis=1).max()) <= limit

    return _repeat(mean + _largest_gamma(fits) * direction, f)


def min_sum(honest: Updates, f: int, ctx: Context) -> Updates:
    """``mean - gamma * std`` whose summed distances match the most remote honest."""
    mean, direction = honest.mean(axis=0), -honest.std(axis=0)
    limit = float(_pairwise_sq(honest).sum(axis=1).max())

    def fits(gamma: float) -> bool:
        v = mean + gamma * direction
        return float(((honest - v) ** 2).sum()) <= limit

    return _repeat(mean + _largest_gamma(fits) * direction, f)


def mimic(honest: Updates, f: int, ctx: Context) -> Updates:
    """Every attacker copies the honest update farthest from the mean."""
    far = int(np.argmax(((honest - honest.mean(axis=0)) ** 2).sum(axis=1)))
    return _repeat(honest[far], f)


def free_rider(honest: Updates, f: int, ctx: Context) -> Updates:
    """No training: the received model sent back unchanged."""
    return np.zeros((f, honest.shape[1]))


def copycat(honest: Updates, f: int, ctx: Context) -> Updates:
    """Attacker j resubmits honest update ``j mod h`` (a different victim each)."""
    out: Updates = honest[np.arange(f) % honest.shape[0]].copy()
    return out


def within_norm(honest: Updates, f: int, ctx: Context) -> Updates:
    """Colluders against the mean at 90 % of the norm bound (the most that passes)."""
    v = -honest.mean(axis=0)
    return _repeat(v / max(_norm(v), 1e-12) * (0.9 * ctx.norm_bound), f)


def diversified(attack: AttackFn, relative: float = 0.01) -> AttackFn:
    """``attack``, each copy with its own small noise so exact-copy checks miss it."""

    def wrapped(honest: Updates, f: int, ctx: Context) -> Updates:
        base = attack(honest, f, ctx)
        d = base.shape[1]
        scale = relative * np.linalg.norm(base, axis=1, keepdims=True) / np.sqrt(d)
        out: Updates = base + ctx.rng.standard_normal(base.shape) * scale
        return out

    return wrapped


@dataclass(frozen=True)
class Attack:
    """A named attack: its update rule and what else the attackers do.

    Parameters
    ----------
    name : str
        The suite's name for it.
    updates : AttackFn | None
        How the attackers' updates follow from the honest ones; ``None`` for
        attackers that train (on poisoned data, see ``flip_labels``).
    flip_labels : bool
        Attackers train honestly on labels ``9 - y`` (label flipping).
    claimed_examples : int | None
        What every attacker claims as ``num-examples`` (None: its true count).

    """

    name: str
    updates: AttackFn | None
    flip_labels: bool = False
    claimed_examples: int | None = None


MAX_CLAIM = 1 << 20

SUITE: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("sign-flip", sign_flip),
        Attack("gaussian", gaussian),
        Attack("alie", alie),
        Attack("ipm-0.1", ipm(0.1)),
        Attack("ipm-100", ipm(100.0)),
        Attack("min-max", min_max),
        Attack("min-sum", min_sum),
        Attack("mimic", mimic),
        Attack("label-flip", None, flip_labels=True),
        Attack("free-rider", free_rider),
        Attack("copycat", copycat),
        Attack("examples-inflation", sign_flip, claimed_examples=MAX_CLAIM),
        Attack("within-norm", within_norm),
        Attack("alie-diversified", diversified(alie)),
        Attack("min-max-diversified", diversified(min_max)),
        Attack("mimic-diversified", diversified(mimic)),
        Attack("copycat-diversified", diversified(copycat)),
        Attack("inflated-free-rider", free_rider, claimed_examples=MAX_CLAIM),
    )
}
"""Every attack of the suite, by name."""
