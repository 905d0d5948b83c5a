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
        The discrete Gaussian's sigma in lattice units: the noise multiplier is
        ``noise_units / CLIP_LATTICE`` exactly.
    clip_norm_units : int
        The clip norm ``C`` in fixed-point units of the model (2**-20).
    sampling_ppm : int
        The probability with which the coordinator samples each node, in
        millionths (Poisson sampling).
    expected_participants : int
        The fixed divisor of the noisy sum: the expected number of participants.
    delta : int
        The delta of the reported epsilon, in units of 1e-12.
    target_epsilon_micro : int
        The budget in millionths of epsilon; 0 means none.

    """

    mode: DpMode = DpMode.OFF
    noise_units: int = CLIP_LATTICE
    clip_norm_units: int = SCALE
    sampling_ppm: int = PPM
    expected_participants: int = 1
    delta: int = 10**7
    target_epsilon_micro: int = 0

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
        return self.noise_units / CLIP_LATTICE

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
        if not isinstance(value, dict) or set(value) != keys:
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
) -> PrivacyConfig:
    """A :class:`PrivacyConfig` from user-facing values (floats rounded once)."""
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
    return PrivacyConfig(
        mode=DpMode(dp),
        noise_units=round(noise_multiplier * CLIP_LATTICE),
        clip_norm_units=math.floor(clip_norm * SCALE),
        sampling_ppm=round(sampling_rate * PPM),
        expected_participants=expected_participants,
        delta=round(delta * DELTA_SCALE),
        target_epsilon_micro=(
            0 if target_epsilon is None else math.floor(target_epsilon * PPM)
        ),
    )
