"""A chain's parameters: everything fixed at genesis (hashed into block 0)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pot_flower.encoding import Decoded
from pot_flower.protocol.certificate import (
    BlsKey,
    CertificateKind,
    Certifiers,
    check_bls_keys,
)
from pot_flower.protocol.commitments import CommitmentKind, linear_auditable
from pot_flower.protocol.fixedpoint import MAX_UNITS
from pot_flower.protocol.privacy.config import PrivacyConfig
from pot_flower.protocol.robust.config import Aggregator, RobustConfig

MAX_EXAMPLES = 1 << 20
"""Most examples one submission may claim (keeps the total weight below 2**31)."""
MAX_SUBMISSIONS = 2048
"""Most submissions in one round's batch."""


@dataclass(frozen=True)
class Params:
    """Everything fixed for a chain at genesis (hashed into block 0).

    Parameters
    ----------
    run : int
        Flower run id the chain belongs to.
    validators : tuple[bytes, ...]
        Committee public keys, by validator index.
    quorum : int
        Signatures a certificate needs (2f + 1).
    norm_bound_units : int
        Largest L2 norm of an update, in fixed-point units.
    registration : str
        ``"open"`` (a miner registers with its first valid submission) or
        ``"allow-list"`` (only ``allowed_miners``).
    allowed_miners : tuple[bytes, ...]
        Miner public keys admitted under ``"allow-list"``.
    emission : int
        Token units minted per round.
    validator_fee_ppm : int
        Share of the emission paid to the previous block's certifiers (millionths).
    robust : RobustConfig
        The robust stage: pre-aggregators, aggregator, tolerated Byzantine share.
    privacy : PrivacyConfig
        Central differential privacy (off by default); recorded in genesis only
        when on, so chains without it keep their genesis bytes.
    commitment : CommitmentKind
        How updates are bound to envelopes: ``hash`` (default) or ``pedersen``
        (:mod:`pot_flower.protocol.commitments`); recorded only when not hash.
    bls : tuple[BlsKey, ...]
        The validators' BLS keys, by index, each proven and endorsed (checked
        here): set, blocks carry aggregated BLS certificates
        (:mod:`pot_flower.protocol.certificate`); empty (the default), lists of
        Ed25519 signatures. Recorded only when set.
    commit_reveal : bool
        Rounds in two steps (:mod:`pot_flower.protocol.sealing`): miners seal,
        the committee closes the seals, miners reveal. Recorded only when on.

    """

    run: int
    validators: tuple[bytes, ...]
    quorum: int
    norm_bound_units: int
    registration: str = "open"
    allowed_miners: tuple[bytes, ...] = ()
    emission: int = 1_000_000
    validator_fee_ppm: int = 100_000
    robust: RobustConfig = field(default_factory=RobustConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    commitment: CommitmentKind = CommitmentKind.HASH
    bls: tuple[BlsKey, ...] = ()
    commit_reveal: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "commitment", CommitmentKind(self.commitment))
        if self.registration not in ("open", "allow-list"):
            raise ValueError("registration must be 'open' or 'allow-list'")
        if not 0 < self.norm_bound_units <= MAX_UNITS:
            raise ValueError("norm bound out of the fixed-point range")
        if not 0 <= self.validator_fee_ppm <= 1_000_000 or self.emission < 0:
            raise ValueError("emission and fee must be non-negative (fee <= 1e6 ppm)")
        if not 1 <= self.quorum <= len(self.validators):
            raise ValueError("quorum must be between 1 and the committee size")
        if self.privacy.on:
            check_private_robust(self.robust)
        if self.bls:
            check_bls_keys(self.validators, self.bls)

    @property
    def certifiers(self) -> Certifiers:
        """Who certifies this chain's blocks, and how."""
        if self.bls:
            keys = tuple(k.key for k in self.bls)
            return Certifiers(CertificateKind.BLS, keys, self.quorum)
        return Certifiers(CertificateKind.ED25519, self.validators, self.quorum)

    @property
    def linear_auditable(self) -> bool:
        """Whether blocks record the opening of the weighted sum of updates."""
        return linear_auditable(
            self.commitment,
            self.robust.aggregator == Aggregator.MEAN
            and not self.robust.pre_aggregators,
            self.privacy.on,
        )

    def to_value(self) -> dict[str, Decoded]:
        return {
            "allowed-miners": sorted(self.allowed_miners),  # type: ignore[dict-item]
            "emission": self.emission,
            "norm-bound-units": self.norm_bound_units,
            "quorum": self.quorum,
            "registration": self.registration,
            "robust": self.robust.to_value(),
            "run": self.run,
            "validator-fee-ppm": self.validator_fee_ppm,
            "validators": list(self.validators),
            **({"privacy": self.privacy.to_value()} if self.privacy.on else {}),
            **recorded_commitment_value(self.commitment),
            **({"bls": [k.to_value() for k in self.bls]} if self.bls else {}),
            **({"commit-reveal": True} if self.commit_reveal else {}),
        }

    @classmethod
    def from_value(cls, value: Decoded) -> Params:
        if not isinstance(value, dict):
            raise ValueError("params must be a dictionary")
        try:
            return cls(
                run=integer(value["run"]),
                validators=tuple(bytes_list(value["validators"])),
                quorum=integer(value["quorum"]),
                norm_bound_units=integer(value["norm-bound-units"]),
                registration=str(value["registration"]),
                allowed_miners=tuple(bytes_list(value["allowed-miners"])),
                emission=integer(value["emission"]),
                validator_fee_ppm=integer(value["validator-fee-ppm"]),
                robust=RobustConfig.from_value(value["robust"]),
                privacy=recorded_privacy(value),
                commitment=recorded_commitment(value),
                bls=recorded_bls(value),
                commit_reveal=recorded_commit_reveal(value),
            )
        except KeyError as exc:
            raise ValueError(f"params lack {exc}") from exc


def recorded_privacy(value: dict[str, Decoded]) -> PrivacyConfig:
    """``value["privacy"]``, recorded only when on (one encoding per setting)."""
    if "privacy" not in value:
        return PrivacyConfig()
    config = PrivacyConfig.from_value(value["privacy"])
    if not config.on:
        raise ValueError("privacy is recorded only when it is on")
    return config


def recorded_commitment_value(kind: CommitmentKind) -> dict[str, Decoded]:
    """``{"commitment": kind}`` unless it is the default (one encoding per kind)."""
    return {} if kind == CommitmentKind.HASH else {"commitment": kind.value}


def recorded_commitment(value: dict[str, Decoded]) -> CommitmentKind:
    """``value["commitment"]``, recorded only when not the default ``hash``."""
    if "commitment" not in value:
        return CommitmentKind.HASH
    kind = value["commitment"]
    if kind not in {k.value for k in CommitmentKind} or kind == "hash":
        raise ValueError("commitment must be 'pedersen' when recorded")
    return CommitmentKind(kind)


def recorded_commit_reveal(value: dict[str, Decoded]) -> bool:
    """``value["commit-reveal"]``, recorded only when on (``true``)."""
    if "commit-reveal" not in value:
        return False
    if value["commit-reveal"] is not True:
        raise ValueError("commit-reveal is recorded only when true")
    return True


def recorded_bls(value: dict[str, Decoded]) -> tuple[BlsKey, ...]:
    """``value["bls"]``, recorded only when set (one encoding per chain)."""
    if "bls" not in value:
        return ()
    keys = value["bls"]
    if not isinstance(keys, list) or not keys:
        raise ValueError("bls is a non-empty list, recorded only when set")
    return tuple(BlsKey.from_value(k) for k in keys)


def check_private_robust(robust: RobustConfig) -> None:
    """Refuse robust settings that would void central DP's sensitivity bound.

    DP-FedAvg's guarantee needs each miner to move the noised sum by at most the
    clip norm, whatever the others sent, and the ledger to publish nothing else
    computed from single updates. The mean of clipped updates does; rules that
    choose, mix or weigh updates by their content (median, trimmed mean, Krum,
    NNM, adaptive clipping, near-copy detection, scores) do not, and scores and
    qualities in the ledger would publish a function of each update. Server
    momentum acts on the noised aggregate only: post-processing, allowed.
    """
    problems = []
    if robust.aggregator != Aggregator.MEAN:
        problems.append(f"aggregator {robust.aggregator.value!r}")
    if robust.pre_aggregators:
        names = ", ".join(p.value for p in robust.pre_aggregators)
        problems.append(f"pre-aggregators {names}")
    if robust.copy_tolerance_ppm:
        problems.append("near-copy detection (copy tolerance above 0)")
    if robust.scored:
        problems.append("scores")
    if problems:
        raise ValueError(
            "central DP composes with the plain mean only (clip, sum, noise); "
            f"not with {'; '.join(problems)}: see the README's privacy section"
        )


def integer(value: Decoded) -> int:
    """``value`` if it is an integer (not a bool); ``ValueError`` if not."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("expected an integer")
    return value


def bytes_list(value: Decoded) -> list[bytes]:
    """``value`` if it is a list of byte strings; ``ValueError`` if not."""
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise ValueError("expected a list of byte strings")
    return value  # type: ignore[return-value]
