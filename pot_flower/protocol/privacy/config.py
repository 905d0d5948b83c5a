"""Central differential privacy: the parameters genesis fixes for a chain."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from pot_flower.encoding import Decoded
from pot_flower.protocol.fixedpoint import MAX_UNITS, SCALE
from pot_flower.protocol.privacy.discrete_gaussian import MAX_SIGMA

PPM = 1_000_000
CLIP_LATTICE = 2048
"""Lattice units per clip norm: updates are clipped to ``CLIP_LATTICE`` units of
``C / CLIP_LATTICE`` before the noise is added (resolution C / 2048, far below the
noise's sigma * C)."""
DELTA_SCALE = 10**12
"""delta is recorded in units of 1e-12."""
MAX_SIGMA_MULTIPLIER = MAX_SIGMA / CLIP_LATTICE
"""Largest noise multiplier (8): sigma in lattice units stays within the sampler's
int64 range."""
MAX_COUNT_NOISE_UNITS = 1 << 40
"""Largest sigma of the clipped count's noise, in units of 1/``CLIP_LATTICE`` vote."""


@dataclass(frozen=True)
class AdaptiveClipping:
    """Adaptive clipping (Andrew et al., NeurIPS 2021) as the committee runs it.

    Each round every validator counts, exactly, the updates within the round's
    clip norm, noises the centred count (each update adds +1/2 or -1/2 vote, an
    all-zero one nothing, so replacing one miner's update by zeros moves it by at
    most 1/2) with the discrete Gaussian and moves the clip norm
    geometrically toward the ``target_quantile`` of the update norms:
    ``C <- C * exp(-lr * (noisy unclipped fraction - target))``.

    Parameters
    ----------
    target_quantile_ppm : int
        The share of updates the clip norm should leave unclipped, in millionths.
    learning_rate_ppm : int
        The geometric update's learning rate, in millionths (at most 10).
    count_noise_units : int
        The count noise's sigma in units of 1/``CLIP_LATTICE`` of a vote on the
        doubled count (each update adds +-``CLIP_LATTICE``): twice the paper's
        sigma_b, so the count's noise multiplier is ``count_noise_units /
        CLIP_LATTICE``.

    """

    target_quantile_ppm: int = PPM // 2
    learning_rate_ppm: int = PPM // 5
    count_noise_units: int = CLIP_LATTICE

    def __post_init__(self) -> None:
        if not 0 <= self.target_quantile_ppm <= PPM:
            raise ValueError("target quantile must be in [0, 1]")
        if not 0 < self.learning_rate_ppm <= 10 * PPM:
            raise ValueError("clip learning rate must be in (0, 10]")
        if not 1 <= self.count_noise_units <= MAX_COUNT_NOISE_UNITS:
            raise ValueError("clipped count noise out of range")

    @property
    def count_noise_multiplier(self) -> float:
        """The count's sigma over its sensitivity (1/2 vote): 2 sigma_b."""
        return self.count_noise_units / CLIP_LATTICE

    def to_value(self) -> dict[str, Decoded]:
        return {
            "count-noise-units": self.count_noise_units,
            "learning-rate-ppm": self.learning_rate_ppm,
            "target-quantile-ppm": self.target_quantile_ppm,
        }

    @classmethod
    def from_value(cls, value: Decoded) -> AdaptiveClipping:
        keys = {"count-noise-units", "learning-rate-ppm", "target-quantile-ppm"}
        if not isinstance(value, dict) or set(value) != keys:
            raise ValueError(
                f"adaptive clipping must be a dictionary of {sorted(keys)}"
            )
        for key in keys:
            item = value[key]
            if not isinstance(item, int) or isinstance(item, bool):
                raise ValueError(f"adaptive clipping {key} must be an integer")
        return cls(
            target_quantile_ppm=value["target-quantile-ppm"],  # type: ignore[arg-type]
            learning_rate_ppm=value["learning-rate-ppm"],  # type: ignore[arg-type]
            count_noise_units=value["count-noise-units"],  # type: ignore[arg-type]
        )


class DpMode(StrEnum):
    """``pot-dp``."""

    OFF = "off"
    CENTRAL = "central"


@dataclass(frozen=True)
class PrivacyConfig:
    """Central DP-FedAvg as the committee executes it (McMahan et al., ICLR 2018).

    Parameters
    ----------
    mode : DpMode
        ``off`` or ``central``.
    noise_units : int
        The discrete Gaussian's sigma in lattice units: the noise multiplier of
        the model's noise is ``noise_units / CLIP_LATTICE`` exactly.
    clip_norm_units : int
        The clip norm ``C`` in fixed-point units of the model (2**-20); with
        adaptive clipping, the first round's.
    sampling_ppm : int
        The probability with which the coordinator samples each node, in
        millionths (Poisson sampling).
    expected_participants : int
        The fixed divisor of the noisy sum: the expected number of participants.
    delta : int
        The delta of the reported epsilon, in units of 1e-12.
    target_epsilon_micro : int
        The budget in millionths of epsilon; 0 means none.
    adaptive : AdaptiveClipping | None
        Adaptive clipping; ``None`` keeps the clip norm fixed.

    """

    mode: DpMode = DpMode.OFF
    noise_units: int = CLIP_LATTICE
    clip_norm_units: int = SCALE
    sampling_ppm: int = PPM
    expected_participants: int = 1
    delta: int = 10**7
    target_epsilon_micro: int = 0
    adaptive: AdaptiveClipping | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", DpMode(self.mode))
        if not 1 <= self.noise_units <= MAX_SIGMA:
            low, high = 1 / CLIP_LATTICE, MAX_SIGMA_MULTIPLIER
            raise ValueError(f"noise multiplier must be in [{low}, {high:g}]")
        if not 1 <= self.clip_norm_units <= MAX_UNITS:
            raise ValueError("clip norm out of the fixed-point range")
        if not 1 <= self.sampling_ppm <= PPM:
            raise ValueError("sampling rate must be in (0, 1]")
        if not 1 <= self.expected_participants <= 1 << 20:
            raise ValueError("expected participants must be in [1, 2**20]")
        if not 1 <= self.delta < DELTA_SCALE:
            raise ValueError("delta must be in [1e-12, 1)")
        if self.target_epsilon_micro < 0:
            raise ValueError("target epsilon must be non-negative")

    @property
    def on(self) -> bool:
        return self.mode == DpMode.CENTRAL

    @property
    def noise_multiplier(self) -> float:
        """The model noise's sigma over the clip norm."""
        return self.noise_units / CLIP_LATTICE

    @property
    def effective_noise_multiplier(self) -> float:
        """The noise multiplier of the whole round's release, as accounted.

        With adaptive clipping a round releases the noised sum (sensitivity C,
        sigma z_v C) and the noised centred count (sensitivity 1/2, sigma
        z_c / 2) of the same participants: scaled coordinate-wise, one Gaussian
        mechanism with unit noise and sensitivity sqrt(z_v**-2 + z_c**-2), whose
        RDP (sampled or not) is the Gaussian's at z = (z_v**-2 + z_c**-2)**-1/2
        (Andrew et al. 2021, Sec. 3.1). Without it, the model noise's.
        """
        if self.adaptive is None:
            return self.noise_multiplier
        z_v, z_c = self.noise_multiplier, self.adaptive.count_noise_multiplier
        return float((z_v**-2 + z_c**-2) ** -0.5)

    @property
    def sampling_rate(self) -> float:
        return self.sampling_ppm / PPM

    @property
    def delta_value(self) -> float:
        return self.delta / DELTA_SCALE

    def to_value(self) -> dict[str, Decoded]:
        return {
            "clip-norm-units": self.clip_norm_units,
            "delta-e12": self.delta,
            "expected-participants": self.expected_participants,
            "mode": self.mode.value,
            "noise-units": self.noise_units,
            "sampling-ppm": self.sampling_ppm,
            "target-epsilon-micro": self.target_epsilon_micro,
            **(
                {"adaptive-clipping": self.adaptive.to_value()}
                if self.adaptive is not None
                else {}
            ),
        }

    @classmethod
    def from_value(cls, value: Decoded) -> PrivacyConfig:
        keys = {
            "clip-norm-units",
            "delta-e12",
            "expected-participants",
            "mode",
            "noise-units",
            "sampling-ppm",
            "target-epsilon-micro",
        }
        adaptive = isinstance(value, dict) and "adaptive-clipping" in value
        if not isinstance(value, dict) or set(value) - {"adaptive-clipping"} != keys:
            raise ValueError(f"privacy must be a dictionary of {sorted(keys)}")
        ints = keys - {"mode"}
        for key in ints:
            item = value[key]
            if not isinstance(item, int) or isinstance(item, bool):
                raise ValueError(f"privacy {key} must be an integer")
        mode = value["mode"]
        if not isinstance(mode, str) or mode not in {m.value for m in DpMode}:
            raise ValueError("privacy mode must be 'off' or 'central'")
        return cls(
            mode=DpMode(mode),
            noise_units=value["noise-units"],  # type: ignore[arg-type]
            clip_norm_units=value["clip-norm-units"],  # type: ignore[arg-type]
            sampling_ppm=value["sampling-ppm"],  # type: ignore[arg-type]
            expected_participants=value["expected-participants"],  # type: ignore[arg-type]
            delta=value["delta-e12"],  # type: ignore[arg-type]
            target_epsilon_micro=value["target-epsilon-micro"],  # type: ignore[arg-type]
            adaptive=(
                AdaptiveClipping.from_value(value["adaptive-clipping"])
                if adaptive
                else None
            ),
        )


def privacy_settings(
    *,
    dp: str = "off",
    noise_multiplier: float = 1.0,
    clip_norm: float = 1.0,
    sampling_rate: float = 1.0,
    expected_participants: int = 1,
    delta: float = 1e-5,
    target_epsilon: float | None = None,
    adaptive_clipping: bool = False,
    target_quantile: float = 0.5,
    clip_learning_rate: float = 0.2,
    clipped_count_stddev: float | None = None,
) -> PrivacyConfig:
    """A :class:`PrivacyConfig` from user-facing values (floats rounded once).

    With ``adaptive_clipping``, ``noise_multiplier`` is the whole round's (as
    Flower's adaptive DP wrappers and Andrew et al. take it): the count gets
    ``clipped_count_stddev`` (default ``expected_participants / 20``) and the
    model's noise the rest, ``(z**-2 - (2 stddev)**-2)**-1/2``, both rounded up so
    that the recorded mechanism is never noised less than asked.
    """
    for name, v in (
        ("noise multiplier", noise_multiplier),
        ("clip norm", clip_norm),
        ("sampling rate", sampling_rate),
        ("delta", delta),
    ):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be positive and finite, got {v!r}")
    if target_epsilon is not None and not (
        math.isfinite(target_epsilon) and target_epsilon > 0
    ):
        raise ValueError(f"target epsilon must be positive, got {target_epsilon!r}")
    noise_units = round(noise_multiplier * CLIP_LATTICE)
    adaptive = None
    if adaptive_clipping:
        adaptive, noise_units = _adaptive(
            noise_multiplier,
            expected_participants,
            target_quantile,
            clip_learning_rate,
            clipped_count_stddev,
        )
    return PrivacyConfig(
        mode=DpMode(dp),
        noise_units=noise_units,
        clip_norm_units=math.floor(clip_norm * SCALE),
        sampling_ppm=round(sampling_rate * PPM),
        expected_participants=expected_participants,
        delta=round(delta * DELTA_SCALE),
        target_epsilon_micro=(
            0 if target_epsilon is None else math.floor(target_epsilon * PPM)
        ),
        adaptive=adaptive,
    )


def _adaptive(
    noise_multiplier: float,
    expected_participants: int,
    target_quantile: float,
    learning_rate: float,
    stddev: float | None,
) -> tuple[AdaptiveClipping, int]:
    """Adaptive clipping's settings and the model noise's sigma in lattice units."""
    for name, v in (("target quantile", target_quantile), ("clip lr", learning_rate)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if stddev is None:
        stddev = expected_participants / 20
    if not (math.isfinite(stddev) and stddev > 0):
        raise ValueError(f"clipped count stddev must be positive, got {stddev!r}")
    count_multiplier = 2 * stddev
    if noise_multiplier >= count_multiplier:
        raise ValueError(
            f"adaptive clipping: the clipped count's stddev {stddev:g} (default: "
            f"expected participants {expected_participants} / 20) leaves no noise "
            f"for the model at noise multiplier {noise_multiplier:g}; it must be "
            f"above {noise_multiplier / 2:g}: raise pot-dp-clipped-count-stddev "
            "or sample more nodes"
        )
    model_multiplier = (noise_multiplier**-2 - count_multiplier**-2) ** -0.5
    if model_multiplier > MAX_SIGMA_MULTIPLIER:
        raise ValueError(
            f"adaptive clipping: with the clipped count's stddev {stddev:g} the "
            f"model's share of noise multiplier {noise_multiplier:g} would be "
            f"{model_multiplier:.4g}, above {MAX_SIGMA_MULTIPLIER:g}: raise "
            "pot-dp-clipped-count-stddev"
        )
    adaptive = AdaptiveClipping(
        target_quantile_ppm=round(target_quantile * PPM),
        learning_rate_ppm=round(learning_rate * PPM),
        count_noise_units=math.ceil(count_multiplier * CLIP_LATTICE),
    )
    return adaptive, math.ceil(model_multiplier * CLIP_LATTICE)
