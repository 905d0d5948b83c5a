"""Privacy spent, from Google's dp-accounting (its RDP accountant): no hand-made ε.

Two figures per chain, because the ledger itself is public and names every round's
participants (they are paid):

- ``epsilon``: against anyone, a reader of the ledger included. Participation is
  known, so no amplification by sampling is claimed: the Gaussian mechanism
  composed over every DP round so far (sampling probability 1).
- ``epsilon_sampled``: against someone who sees the released models but not who
  took part (the model's users, when the ledger stays with the committee): the
  Poisson-subsampled Gaussian at the chain's sampling rate.

Both are rounded *up* to millionths. Accountants work in floats; the committee
agrees on each round's figure through the batch it orders (the coordinator's
claim, checked by every validator within :data:`TOLERANCE_MICRO`), so machines that
round a last digit differently cannot split it.

The discrete Gaussian at sigma >= 1 lattice unit has the continuous Gaussian's
concentrated-DP bound up to a term below exp(-2 pi**2 sigma**2 / 2) (Canonne,
Kamath, Steinke 2020, Thm. 15): at the sigmas used here (>= 2048 units for a noise
multiplier of 1) the accountant's figure for the continuous mechanism is the
discrete one's to far more digits than are recorded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pot_flower.encoding import Decoded
from pot_flower.protocol.privacy.config import PrivacyConfig

PPM = 1_000_000
TOLERANCE_MICRO = 1_000
"""How far (1e-3 epsilon) a claim may exceed a validator's own figure."""
SLACK_MICRO = 1
"""How far a claim may fall short of it: one rounding of the last digit."""


@dataclass(frozen=True)
class Spent:
    """Privacy spent after some DP rounds, in millionths of epsilon (rounded up).

    The batch carries the coordinator's claim and the block records it, both as
    ``[rounds, epsilon-micro, epsilon-sampled-micro]``.
    """

    rounds: int
    epsilon_micro: int
    epsilon_sampled_micro: int

    def __post_init__(self) -> None:
        for v in (self.rounds, self.epsilon_micro, self.epsilon_sampled_micro):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 2**62:
                raise ValueError("privacy spent must be integers in [0, 2**62]")

    def to_value(self) -> list[Decoded]:
        return [self.rounds, self.epsilon_micro, self.epsilon_sampled_micro]

    @classmethod
    def from_value(cls, value: Decoded) -> Spent:
        if not isinstance(value, list) or len(value) != 3:
            raise ValueError("privacy spent must be [rounds, epsilon, sampled]")
        rounds, eps, sampled = value
        return cls(rounds, eps, sampled)  # type: ignore[arg-type]

    @property
    def epsilon(self) -> float:
        return self.epsilon_micro / PPM

    @property
    def epsilon_sampled(self) -> float:
        return self.epsilon_sampled_micro / PPM


def spent(config: PrivacyConfig, rounds: int) -> Spent:
    """What ``rounds`` DP rounds of ``config`` spend (0 rounds spend 0)."""
    if rounds < 0:
        raise ValueError("rounds must be non-negative")
    if rounds == 0:
        return Spent(0, 0, 0)
    sigma = config.effective_noise_multiplier
    q, delta = config.sampling_rate, config.delta_value
    return Spent(
        rounds,
        _micro_up(_epsilon(sigma, 1.0, rounds, delta)),
        _micro_up(_epsilon(sigma, q, rounds, delta)),
    )


@lru_cache(maxsize=4096)
def _epsilon(sigma: float, q: float, rounds: int, delta: float) -> float:
    """dp-accounting's RDP epsilon of ``rounds`` identical releases.

    Composition adds RDP curves (the accountant composes ``count`` releases as
    ``count`` times one), so one round's curve is computed once per mechanism and
    scaled: the same figure as composing ``rounds`` releases (tested), at the cost
    of the epsilon conversion alone.
    """
    from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

    orders, one_round = _one_round(sigma, q)
    epsilon, _ = compute_epsilon(orders, rounds * one_round, delta)
    return float(epsilon)


@lru_cache(maxsize=64)
def _one_round(sigma: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """The RDP curve of one release, at dp-accounting's default orders."""
    import dp_accounting
    from dp_accounting import rdp

    event = dp_accounting.GaussianDpEvent(sigma)
    if q < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant = rdp.RdpAccountant()
    # Orders whose series do not converge are dropped by the accountant with one
    # absl warning each; once per mechanism here, not once per round.
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        accountant.compose(event)
    finally:
        absl.setLevel(level)
    return np.array(accountant._orders), np.array(accountant._rdp)


def _micro_up(epsilon: float) -> int:
    if not math.isfinite(epsilon):
        return 2**62
    return min(2**62, math.ceil(epsilon * PPM))


def budget_rounds(config: PrivacyConfig, limit: int) -> int:
    """How many rounds (at most ``limit``) the budget allows; ``limit`` if none.

    The budget bounds ``epsilon`` (the figure against a ledger reader).
    """
    if not config.target_epsilon_micro:
        return limit
    low, high = 0, limit  # spent(low) fits; find the largest that does
    if spent(config, high).epsilon_micro <= config.target_epsilon_micro:
        return high
    while high - low > 1:
        mid = (low + high) // 2
        if spent(config, mid).epsilon_micro <= config.target_epsilon_micro:
            low = mid
        else:
            high = mid
    return low


def within_tolerance(claimed: Spent, own: Spent) -> bool:
    """Whether this validator accepts a claimed figure: never below its own.

    A claim may exceed the validator's own figure by :data:`TOLERANCE_MICRO`
    (overstating privacy spent is safe) and fall short of it by one millionth
    only (the last digit of a float rounded up on another machine).
    """
    pairs = (
        (claimed.epsilon_micro, own.epsilon_micro),
        (claimed.epsilon_sampled_micro, own.epsilon_sampled_micro),
    )
    return claimed.rounds == own.rounds and all(
        own_value - SLACK_MICRO <= value <= own_value + TOLERANCE_MICRO
        for value, own_value in pairs
    )
