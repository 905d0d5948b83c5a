"""Flower message-based PoT strategy: a validator committee replaces the server."""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import partial
from logging import INFO, WARNING
from pathlib import Path
from typing import Any, TypeVar

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from pot_flower.committee.base import CertifiedRound, Committee
from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.encoding import encode
from pot_flower.keystore import MINER_NAMES
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.block import SubmissionRecord
from pot_flower.protocol.certificate import CertificateKind
from pot_flower.protocol.commitments import BLINDING_SIZE, CommitmentKind, with_opening
from pot_flower.protocol.fixedpoint import SCALE, max_norm_units
from pot_flower.protocol.model import (
    Arrays,
    ModelFormatError,
    encode_arrays,
)
from pot_flower.protocol.params import check_private_robust
from pot_flower.protocol.privacy.accountant import Spent, budget_rounds
from pot_flower.protocol.privacy.adaptive import ClipStep
from pot_flower.protocol.privacy.config import PrivacyConfig, privacy_settings
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.records import (
    CLIENT_KEYS,
    MINER_NAME_KEY,
    REFUSED,
    SUBMISSION_RECORD,
    TICKET_RECORD,
    SignedReply,
    TicketRecord,
    arrays_of,
    in_order,
    seal_from_record,
)
from pot_flower.protocol.robust import RobustConfig, robust_settings
from pot_flower.protocol.sealing import ClosedSeals
from pot_flower.validator.scoring import ScoreFn, load_score_fn

CommitteeFactory = Callable[[int, Arrays], Committee]
E = TypeVar("E", bound=Enum)


def flag(value: object) -> bool:
    """A run-config boolean: TOML's ``true``/``false``, or the same as a string."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


RUN_CONFIG_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "fraction-train": ("fraction_train", float),
    "fraction-evaluate": ("fraction_evaluate", float),
    "min-train-nodes": ("min_train_nodes", int),
    "min-evaluate-nodes": ("min_evaluate_nodes", int),
    "min-available-nodes": ("min_available_nodes", int),
    "pot-validators": ("validators", int),
    "pot-ledger-dir": ("ledger_dir", str),
    "pot-max-update-norm": ("max_update_norm", float),
    "pot-registration": ("registration", str),
    "pot-allowed-miners": ("allowed_miners", str),
    "pot-emission": ("emission", int),
    "pot-validator-fee-ppm": ("validator_fee_ppm", int),
    "pot-committee": ("committee_file", str),
    "pot-coordinator-key": ("coordinator_key", str),
    "pot-coordinator-id": ("coordinator_id", str),
    "pot-resume-run": ("resume_run", int),
    "pot-robust": ("robust", str),
    "pot-aggregator": ("aggregator", str),
    "pot-pre-aggregators": ("pre_aggregators", str),
    "pot-byzantine-fraction": ("byzantine_fraction", float),
    "pot-clip-norm": ("clip_norm", float),
    "pot-adaptive-clip-multiple": ("adaptive_clip_multiple", float),
    "pot-bucket-size": ("bucket_size", int),
    "pot-robust-iterations": ("robust_iterations", int),
    "pot-centered-clipping-radius": ("centered_clipping_radius", float),
    "pot-copy-tolerance": ("copy_tolerance", float),
    "pot-score-fn": ("score_fn", str),
    "pot-score-threshold": ("score_threshold", float),
    "pot-reputation-rate": ("reputation_rate", float),
    "pot-server-momentum": ("server_momentum", float),
    "pot-dp": ("dp", str),
    "pot-dp-noise-multiplier": ("dp_noise_multiplier", float),
    "pot-dp-clip-norm": ("dp_clip_norm", float),
    "pot-dp-delta": ("dp_delta", float),
    "pot-dp-target-epsilon": ("dp_target_epsilon", float),
    "pot-dp-adaptive-clipping": ("dp_adaptive_clipping", flag),
    "pot-dp-target-quantile": ("dp_target_quantile", float),
    "pot-dp-clip-learning-rate": ("dp_clip_learning_rate", float),
    "pot-dp-clipped-count-stddev": ("dp_clipped_count_stddev", float),
    "pot-commitment": ("commitment", str),
    "pot-certificate": ("certificate", str),
    "pot-commit-reveal": ("commit_reveal", flag),
}
"""``[tool.flwr.app.config]`` keys :meth:`PoTStrategy.from_run_config` reads."""


@dataclass
class RoundReport:
    """What one certified round did, for progress displays and the summary."""

    round: int
    block: bytes
    accepted: int
    rejected: int
    reasons: Counter[str]
    minted: int
    failures: int
    seconds: float
    committee_seconds: float
    submissions: tuple[SubmissionRecord, ...] = ()
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    privacy: Spent | None = None
    """Central DP: the privacy spent up to this round, as the block records it."""
    clipping: ClipStep | None = None
    """Adaptive DP clipping: the clip norm this round used, the noised count."""

    def verdicts(self) -> dict[int, Reason | None]:
        """Each node's verdict this round: ``None`` if accepted, else the reason."""
        return {s.node: s.reason for s in self.submissions}


class PoTStrategy(Strategy):
    """Proof-of-Training strategy: every round is checked and certified by a committee.

    Each sampled node gets its own train message carrying the round's ticket (nonce
    and base-model digest). Replies, signed by :func:`pot_flower.clients.pot_mod`,
    go to the committee as one batch; every validator verifies every submission,
    aggregates in fixed point, pays rewards and appends a block to its ledger; the
    strategy returns the model a quorum certified.

    Parameters
    ----------
    fraction_train : float (default: 1.0)
        Fraction of nodes sampled for training (at least ``min_train_nodes``).
    fraction_evaluate : float (default: 1.0)
        Fraction of nodes sampled for federated evaluation; 0 disables it.
    min_train_nodes : int (default: 2)
        Minimum number of nodes sampled for training.
    min_evaluate_nodes : int (default: 2)
        Minimum number of nodes sampled for evaluation.
    min_available_nodes : int (default: 2)
        Wait until this many nodes are connected.
    validators : int (default: 4)
        Size of the embedded committee (tolerates ``(n - 1) // 3`` faulty).
    ledger_dir : str | Path | None (default: None)
        Where validators keep their ledgers; default ``~/.pot/runs/run-<id>``.
    max_update_norm : float (default: 100.0)
        Largest accepted L2 norm of an update (returned minus received weights).
    registration : str (default: "open")
        ``"open"``: miners register with their first valid submission;
        ``"allow-list"``: only the keys in ``allowed_miners``.
    allowed_miners : Iterable[bytes | str] | str | Path | None (default: None)
        Miner public keys (raw or hex), or a file with one hex key per line.
    emission : int (default: 1_000_000)
        Token units minted per round.
    validator_fee_ppm : int (default: 100_000)
        Millionths of the emission paid to the previous block's certifiers.
    robust : str (default: "default")
        Preset of the robust stage: ``"off"`` (plain mean), ``"default"`` (mean of
        adaptively clipped updates) or ``"recommended"`` (NNM + trimmed mean at a
        Byzantine fraction of 0.3); the settings below override what it sets.
    aggregator : str | None (default: None, the preset's)
        ``mean``, ``median``, ``trimmed-mean``, ``krum``, ``multi-krum``,
        ``geometric-median`` or ``centered-clipping``.
    pre_aggregators : str | Sequence[str] | None (default: None, the preset's)
        Steps before the aggregator, in order: ``clip``, ``adaptive-clip``,
        ``nnm``, ``bucketing`` (a comma list or a sequence).
    byzantine_fraction : float | None (default: None, the preset's)
        Share of each round's updates the rules assume Byzantine, in [0, 0.5).
    clip_norm : float | None (default: None)
        L2 bound of ``clip``.
    adaptive_clip_multiple : float | None (default: None, 2.0)
        ``adaptive-clip`` bound as a multiple of the round's median norm.
    bucket_size : int | None (default: None, 2)
        Updates per bucket of ``bucketing``.
    robust_iterations : int | None (default: None, 8)
        Steps of ``geometric-median`` and ``centered-clipping``.
    centered_clipping_radius : float | None (default: None, the median distance)
        Radius of ``centered-clipping``.
    copy_tolerance : float | None (default: None, 0.1)
        Updates within this relative L2 distance of another are near copies; 0
        keeps only exact copies.
    score_fn : Callable[[Arrays, Arrays], float] | str | None (default: None)
        Proof-of-Training scoring: ``score_fn(base_model, returned_model)`` run by
        every validator on its own validation data (or ``"module:function"``).
        The committee's median score excludes updates below ``score_threshold``
        (``low-score``) and sets rewards. With a committee file, the validators
        load the file's ``[scoring] score-fn`` on their own hosts; this must then
        be that name (or unset).
    score_threshold : float (default: 0.0)
        Agreed scores below it exclude the update.
    reputation_rate : float | None (default: None, 0.1)
        How fast a miner's reputation follows its standing per judged round;
        rewards scale with reputation squared. 0 pays by each round alone.
    server_momentum : float | None (default: None, the preset's)
        The model moves by the committee's aggregate plus this share of the
        previous move (FedAvgM's server momentum, in exact integer arithmetic,
        kept in the chain state); in [0, 0.99]. ``default`` and ``recommended``
        set 0.4, ``off`` 0.
    dp : str (default: "off")
        ``central``: the committee runs DP-FedAvg (clip, sum, discrete Gaussian
        noise, divide by the expected participants) and records the privacy
        spent in every block. Training nodes are then Poisson-sampled with
        probability ``fraction_train`` (secret coins, no minimum), and the robust
        stage is the plain mean (with ``default``'s server momentum): the rules
        that DP's sensitivity bound survives.
    dp_noise_multiplier : float (default: 1.0)
        The noise's sigma over the clip norm, in (0, 8] (rounded to 1/2048).
    dp_clip_norm : float (default: 1.0)
        Every update is clipped to this L2 norm before it is summed.
    dp_delta : float (default: 1e-5)
        The delta of the epsilon the ledger records.
    dp_target_epsilon : float | None (default: None)
        The budget: the run stops before a round would spend more (against a
        reader of the ledger; see the README's privacy section).
    dp_adaptive_clipping : bool (default: False)
        Adaptive clipping (Andrew et al., NeurIPS 2021): ``dp_clip_norm`` is the
        first round's clip norm; each round the committee noises the count of
        updates within it and moves it geometrically toward
        ``dp_target_quantile`` of the update norms. ``dp_noise_multiplier`` is
        then the whole round's (model and count), as in Flower's
        ``DifferentialPrivacyServerSideAdaptiveClipping``.
    dp_target_quantile : float (default: 0.5)
        The share of updates the clip norm should leave unclipped.
    dp_clip_learning_rate : float (default: 0.2)
        The geometric update's learning rate, in (0, 10].
    dp_clipped_count_stddev : float | None (default: None)
        The count noise's standard deviation; default: the expected number of
        participants / 20 (Andrew et al.'s and Flower's default).
    commitment : str (default: "hash")
        How each update is bound to its signed envelope: ``hash`` (SHA-256) or
        ``pedersen`` (a Pedersen vector commitment over BLS12-381 G1: hiding, and
        additively homomorphic). The miner's ``pot_mod``
        follows the chain's choice, sent with each round's ticket.
    certificate : str (default: "ed25519")
        How the committee certifies blocks: ``ed25519`` (every voter's signature,
        64 bytes each) or ``bls`` (one 96-byte BLS aggregate and a signer bitmap,
        checked with one pairing whatever the committee's size; a remote
        committee's file must list its validators' BLS keys, as ``pot committee
        init`` writes them).
    commit_reveal : bool (default: False)
        Rounds in two steps (:mod:`pot_flower.protocol.sealing`): miners first
        send only a signed seal of their envelope, the committee closes the
        round's seals, and only then do miners reveal their updates, so nobody
        can copy an update in time to get its miner rejected. ``pot_mod``
        handles both steps; ClientApps are unchanged.
    committee : Callable[[int, Arrays], Committee] | None (default: None)
        Builds the committee from (run id, initial model); default: embedded.
    committee_file : str | Path | None (default: None)
        A committee file (``pot committee up`` writes one): use those remote
        validators over gRPC instead of the embedded committee.
    coordinator_key : str | Path | None (default: None)
        This coordinator's key file; default ``coordinator.key`` beside the
        committee file.
    coordinator_id : str (default: "coordinator")
        The coordinator's id in the committee file.
    resume_run : int | None (default: None)
        Continue the chain of this earlier Flower run (remote committee): start
        from its last certified round and model, run the remaining rounds.
    on_round : Callable[[RoundReport], None] | None (default: None)
        Called after every certified round (progress displays).
    arrayrecord_key : str (default: "arrays")
        Key of the ArrayRecord in train/evaluate messages.
    configrecord_key : str (default: "config")
        Key of the ConfigRecord in train/evaluate messages.

    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        *,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 2,
        min_available_nodes: int = 2,
        validators: int = 4,
        ledger_dir: str | Path | None = None,
        max_update_norm: float = 100.0,
        registration: str = "open",
        allowed_miners: Iterable[bytes | str] | str | Path | None = None,
        emission: int = 1_000_000,
        validator_fee_ppm: int = 100_000,
        robust: str = "default",
        aggregator: str | None = None,
        pre_aggregators: str | Sequence[str] | None = None,
        byzantine_fraction: float | None = None,
        clip_norm: float | None = None,
        adaptive_clip_multiple: float | None = None,
        bucket_size: int | None = None,
        robust_iterations: int | None = None,
        centered_clipping_radius: float | None = None,
        copy_tolerance: float | None = None,
        score_fn: ScoreFn | str | None = None,
        score_threshold: float = 0.0,
        reputation_rate: float | None = None,
        server_momentum: float | None = None,
        dp: str = "off",
        dp_noise_multiplier: float = 1.0,
        dp_clip_norm: float = 1.0,
        dp_delta: float = 1e-5,
        dp_target_epsilon: float | None = None,
        dp_adaptive_clipping: bool = False,
        dp_target_quantile: float = 0.5,
        dp_clip_learning_rate: float = 0.2,
        dp_clipped_count_stddev: float | None = None,
        commitment: str = "hash",
        certificate: str = "ed25519",
        commit_reveal: bool = False,
        committee: CommitteeFactory | None = None,
        committee_file: str | Path | None = None,
        coordinator_key: str | Path | None = None,
        coordinator_id: str = "coordinator",
        resume_run: int | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
        arrayrecord_key: str = "arrays",
        configrecord_key: str = "config",
    ) -> None:
        self.fraction_train = fraction_train
        self.fraction_evaluate = fraction_evaluate
        self.min_train_nodes = min_train_nodes
        self.min_evaluate_nodes = min_evaluate_nodes
        self.min_available_nodes = min_available_nodes
        self.validators = validators
        self.ledger_dir = None if ledger_dir is None else Path(ledger_dir)
        self.commitment = _choice(CommitmentKind, "pot-commitment", commitment)
        self.certificate = _choice(CertificateKind, "pot-certificate", certificate)
        self.commit_reveal = commit_reveal
        self._grid: Grid | None = None  # the reveal step sends from aggregate_train
        self._timeout = 3600.0
        self._set_chain_rules(
            max_update_norm, registration, allowed_miners, emission, validator_fee_ppm
        )
        self.robust = robust_settings(
            preset=robust,
            aggregator=aggregator,
            pre_aggregators=(
                pre_aggregators
                if pre_aggregators is None or isinstance(pre_aggregators, str)
                else ",".join(pre_aggregators)
            ),
            byzantine_fraction=byzantine_fraction,
            clip_norm_units=None if clip_norm is None else max_norm_units(clip_norm),
            adaptive_clip_multiple=adaptive_clip_multiple,
            bucket_size=bucket_size,
            iterations=robust_iterations,
            radius_units=(
                None
                if not centered_clipping_radius
                else max_norm_units(centered_clipping_radius)
            ),
            copy_tolerance=copy_tolerance,
            scored=score_fn is not None and score_fn != "",
            score_threshold=score_threshold,
            reputation_rate=reputation_rate,
            server_momentum=server_momentum,
        )
        self._score_fn_name = score_fn if isinstance(score_fn, str) else None
        if committee_file not in (None, "") and callable(score_fn):
            raise ValueError(
                "remote validators run the committee file's [scoring] score-fn; "
                "give its 'module:function' name, not a function object"
            )
        self.score_fn: ScoreFn | None = (
            None  # remote: each validator loads it on its own host
            if committee_file not in (None, "")
            else load_score_fn(score_fn)
            if isinstance(score_fn, str) and score_fn
            else score_fn or None
        )
        self._dp = partial(
            privacy_settings,
            dp=dp,
            noise_multiplier=dp_noise_multiplier,
            clip_norm=dp_clip_norm,
            delta=dp_delta,
            target_epsilon=dp_target_epsilon or None,
            adaptive_clipping=dp_adaptive_clipping,
            target_quantile=dp_target_quantile,
            clip_learning_rate=dp_clip_learning_rate,
            clipped_count_stddev=dp_clipped_count_stddev,
        )
        # Checked now; expected participants are fixed at start, from the nodes
        # (a placeholder here, large enough for adaptive clipping's default count
        # noise: too few nodes for it are refused at start).
        self.privacy = self._dp(
            sampling_rate=fraction_train or 1, expected_participants=1 << 20
        )
        if self.privacy.on:
            if not 0 < fraction_train <= 1:
                raise ValueError("central DP samples with fraction_train in (0, 1]")
            if robust == "default" and pre_aggregators is None:
                # DP composes with the mean only; keep default's momentum.
                self.robust = replace(self.robust, pre_aggregators=())
            if copy_tolerance is None:
                self.robust = replace(self.robust, copy_tolerance_ppm=0)
            check_private_robust(self.robust)
        else:
            self.robust.check(min_train_nodes)
        self._set_committee(
            committee, committee_file, coordinator_key, coordinator_id, resume_run
        )
        self._offset = 0
        self.on_round = on_round
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key
        self.committee: Committee | None = None
        self._keys: list[str] = []
        self.history: list[RoundReport] = []
        self._round_started = 0.0
        self._failures = 0

    def _set_chain_rules(
        self,
        max_update_norm: float,
        registration: str,
        allowed_miners: Iterable[bytes | str] | str | Path | None,
        emission: int,
        validator_fee_ppm: int,
    ) -> None:
        """What genesis fixes for the chain: update bound, registration, rewards."""
        self.max_update_norm = max_update_norm
        self.norm_bound_units = max_norm_units(max_update_norm)
        if registration not in ("open", "allow-list"):
            raise ValueError("registration must be 'open' or 'allow-list'")
        self.registration = registration
        self.allowed_miners = _load_miners(allowed_miners)
        if registration == "allow-list" and not self.allowed_miners:
            raise ValueError("registration 'allow-list' needs allowed_miners")
        self.emission = emission
        self.validator_fee_ppm = validator_fee_ppm

    def _set_committee(
        self,
        factory: CommitteeFactory | None,
        committee_file: str | Path | None,
        coordinator_key: str | Path | None,
        coordinator_id: str,
        resume_run: int | None,
    ) -> None:
        """Which committee certifies: a factory, a remote one, or an embedded one."""
        self._committee_factory = factory
        self.committee_file = (
            None if committee_file in (None, "") else Path(committee_file)
        )
        self.coordinator_key = (
            None if coordinator_key in (None, "") else Path(coordinator_key)
        )
        self.coordinator_id = coordinator_id
        self.resume_run = resume_run or None
        if self.resume_run and self.committee_file is None and factory is None:
            raise ValueError(
                "resuming needs a remote committee (pot-committee): the embedded "
                "committee's keys live only as long as its run"
            )

    @classmethod
    def from_run_config(
        cls, run_config: Mapping[str, Any], **overrides: Any
    ) -> PoTStrategy:
        """Settings from ``[tool.flwr.app.config]`` kebab-case keys (see README)."""
        # A mistyped PoT key would silently keep its default: refuse it.
        keys = RUN_CONFIG_KEYS
        valid = sorted([*(k for k in keys if k.startswith("pot-")), *CLIENT_KEYS])
        unknown = sorted(
            k for k in run_config if k.startswith("pot-") and k not in valid
        )
        if unknown:
            raise ValueError(
                f"unknown PoT run-config key(s) {', '.join(unknown)}; "
                f"valid: {', '.join(valid)}"
            )
        naming = run_config.get(MINER_NAME_KEY) or "node-id"
        if naming not in MINER_NAMES:  # the miners would fail every round
            raise ValueError(
                f"{MINER_NAME_KEY} must be one of {', '.join(MINER_NAMES)}, "
                f"got {naming!r}"
            )
        kwargs: dict[str, Any] = {}
        for key, (name, kind) in keys.items():
            value = run_config.get(key)
            if value is not None and value != "":
                kwargs[name] = kind(value)
        kwargs.update(overrides)
        return cls(**kwargs)

    # ----------------------------------------------------------------- start
    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Open the committee's chain on ``initial_arrays``, then run Flower's loop.

        Parameters
        ----------
        grid : Grid
            Flower's grid of connected nodes.
        initial_arrays : ArrayRecord
            The initial global model; genesis records its digest.
        num_rounds : int (default: 3)
            Rounds to run (a resumed chain continues from its certified round).
        timeout : float (default: 3600)
            Seconds to wait for the replies of a round.
        train_config, evaluate_config : ConfigRecord | None
            Passed to every node with its train and evaluate messages.
        evaluate_fn : Callable | None
            Central evaluation of each round's certified model.

        Returns
        -------
        Result
            Flower's result; the model is the last one a quorum certified.

        """
        run_id = self.resume_run or grid.run.run_id
        model = arrays_of(initial_arrays)
        if self.privacy.on:
            try:
                self.privacy = self._privacy_for(grid)
            except ValueError:
                # A resumed chain runs its genesis's settings, fixed from the
                # nodes connected when it opened (_check_chain_privacy decides).
                if self.resume_run is None:
                    raise
        factory = self._committee_factory or (
            self._remote if self.committee_file is not None else self._embedded
        )
        self.committee = factory(run_id, model)
        self._check_chain_privacy(self.committee.params.privacy)
        self._keys = list(model)
        self._offset = self.committee.ticket().round - 1
        if self._offset:
            # Flower counts this run's rounds from 1; the chain goes on from its
            # last certified round, with its certified model.
            log(
                INFO,
                "Resuming the chain of run %d after certified round %d",
                run_id,
                self._offset,
            )
            initial_arrays = ArrayRecord(
                {k: Array(v) for k, v in self.committee.model.items()}
            )
            num_rounds = max(0, num_rounds - self._offset)
        num_rounds = self._within_budget(num_rounds)
        wrapped = None
        if evaluate_fn is not None:
            user_fn = evaluate_fn

            def wrapped(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
                metrics = user_fn(server_round, arrays)
                if metrics is not None and server_round >= 1 and self.history:
                    self.history[-1].evaluation = dict(metrics)
                if server_round >= 1 and self.history and self.on_round is not None:
                    self.on_round(self.history[-1])
                return metrics

        self._timeout = timeout
        try:
            return super().start(
                grid,
                initial_arrays,
                num_rounds,
                timeout,
                train_config,
                evaluate_config,
                wrapped,
            )
        finally:
            self.committee.close()

    def _embedded(self, run_id: int, model: Arrays) -> Committee:
        directory = self.ledger_dir or Path.home() / ".pot" / "runs" / f"run-{run_id}"
        return EmbeddedCommittee(
            directory,
            run=run_id,
            model=model,
            validators=self.validators,
            norm_bound_units=self.norm_bound_units,
            registration=self.registration,
            allowed_miners=self.allowed_miners,
            emission=self.emission,
            validator_fee_ppm=self.validator_fee_ppm,
            robust=self.robust,
            score_fn=self.score_fn,
            privacy=self.privacy,
            commitment=self.commitment,
            certificate=self.certificate,
            commit_reveal=self.commit_reveal,
        )

    def _privacy_for(self, grid: Grid) -> PrivacyConfig:
        """The chain's DP parameters: the divisor fixed from the nodes at start."""
        nodes = self._wait_for_nodes(grid, self.min_available_nodes)
        expected = max(1, round(self.fraction_train * len(nodes)))
        log(
            INFO,
            "Central DP: %d nodes connected, each sampled with probability %g: "
            "the noised sum is divided by %d",
            len(nodes),
            self.fraction_train,
            expected,
        )
        return self._dp(
            sampling_rate=self.fraction_train, expected_participants=expected
        )

    def _check_chain_privacy(self, chain: PrivacyConfig) -> None:
        """A resumed chain runs the DP mechanism its genesis fixed, or none runs.

        Sampling, noise and budget are the strategy's to apply; a chain opened
        with other ones would record a privacy spent it did not run.
        """
        if not chain.on and not self.privacy.on:
            return
        # The chain's divisor, fixed at its start (adaptive clipping's default
        # count noise follows from it).
        try:
            mine = self._dp(
                sampling_rate=self.fraction_train,
                expected_participants=chain.expected_participants,
            )
        except ValueError:
            mine = self.privacy
        if chain == mine:
            self.privacy = chain
            return
        if self.committee is not None:
            self.committee.close()
        raise ValueError(
            f"this chain's genesis fixes privacy {chain.to_value()}, the run's "
            f"settings ask for {mine.to_value()}: resume with the chain's pot-dp-* "
            "keys and fraction-train"
        )

    def _within_budget(self, num_rounds: int) -> int:
        """``num_rounds``, or fewer where the privacy budget runs out first."""
        if not self.privacy.on or not self.privacy.target_epsilon_micro:
            return num_rounds
        last = budget_rounds(self.privacy, self._offset + num_rounds)
        allowed = max(0, last - self._offset)
        if allowed < num_rounds:
            log(
                WARNING,
                "Privacy budget: epsilon %.6f (delta %g) allows %d rounds; the run "
                "stops after round %d of %d",
                self.privacy.target_epsilon_micro / 1e6,
                self.privacy.delta_value,
                last,
                self._offset + allowed,
                self._offset + num_rounds,
            )
        return allowed

    def _remote(self, run_id: int, model: Arrays) -> Committee:
        from pot_flower.committee.remote import RemoteCommittee
        from pot_flower.ops.committee_file import load_committee, read_key

        assert self.committee_file is not None
        committee = load_committee(self.committee_file)
        wanted = self._score_fn_name or None
        if wanted is not None and wanted != committee.score_fn:
            raise ValueError(
                f"pot-score-fn is {wanted!r} but the validators of "
                f"{self.committee_file} score with {committee.score_fn!r} "
                "([scoring] score-fn of the committee file)"
            )
        # The committee file decides: its validators score every run, or none.
        self.robust = replace(self.robust, scored=committee.score_fn is not None)
        if self.privacy.on and committee.noise_key_digest is None:
            raise ValueError(
                f"central DP needs the committee's noise key on every validator, "
                f"and {self.committee_file} names none ([privacy] noise-key-sha256; "
                "pot committee init writes one)"
            )
        if self.certificate == CertificateKind.BLS and not committee.bls:
            raise ValueError(
                f"pot-certificate = 'bls' needs every validator's BLS key in "
                f"{self.committee_file} (pot committee init writes them)"
            )
        key_path = self.coordinator_key or committee.directory / "coordinator.key"
        return RemoteCommittee(
            committee.config,
            committee.addresses,
            self.coordinator_id,
            read_key(key_path),
            run=run_id,
            model=model,
            norm_bound_units=self.norm_bound_units,
            registration=self.registration,
            allowed_miners=self.allowed_miners,
            emission=self.emission,
            validator_fee_ppm=self.validator_fee_ppm,
            robust=self.robust,
            channel_credentials=committee.channel_credentials(self.coordinator_id),
            resume=self.resume_run is not None,
            privacy=self.privacy,
            commitment=self.commitment,
            bls=committee.bls if self.certificate == CertificateKind.BLS else (),
            commit_reveal=self.commit_reveal,
        )

    def summary(self) -> None:
        """Log the strategy's settings (Flower calls this once, at start)."""
        log(INFO, "\t├──> Sampling:")
        log(
            INFO,
            "\t│\t├──Fraction: train (%.2f) | evaluate (%5.2f)",
            self.fraction_train,
            self.fraction_evaluate,
        )
        log(
            INFO,
            "\t│\t├──Minimum nodes: train (%d) | evaluate (%d)",
            self.min_train_nodes,
            self.min_evaluate_nodes,
        )
        log(INFO, "\t│\t└──Minimum available nodes: %d", self.min_available_nodes)
        log(INFO, "\t└──> Proof of Training:")
        if self.committee_file is not None:
            where = f"remote validators of {self.committee_file}"
        elif self._committee_factory is not None:
            where = "custom"
        else:
            where = f"embedded, {self.validators} validators"
        log(INFO, "\t\t├──Committee: %s", where)
        log(INFO, "\t\t├──Max update norm: %s", self.max_update_norm)
        log(INFO, "\t\t├──Registration: %s", self.registration)
        log(INFO, "\t\t├──Update commitments: %s", self.commitment.value)
        log(INFO, "\t\t├──Block certificates: %s", self.certificate.value)
        log(INFO, "\t\t├──Commit-reveal rounds: %s", self.commit_reveal)
        log(INFO, "\t\t├──Robust stage: %s", describe(self.robust))
        if self.privacy.on:
            log(
                INFO,
                "\t\t├──Central DP: noise multiplier %g, clip norm %g%s, delta %g%s",
                self.privacy.effective_noise_multiplier,
                self.privacy.clip_norm_units / SCALE,
                _adaptive_note(self.privacy),
                self.privacy.delta_value,
                f", target epsilon {self.privacy.target_epsilon_micro / 1e6:g}"
                if self.privacy.target_epsilon_micro
                else "",
            )
        if self.robust.scored:
            log(
                INFO,
                "\t\t├──Scoring: %s (threshold %.6f)",
                self._score_fn_name or getattr(self.score_fn, "__name__", "score_fn"),
                self.robust.score_threshold / 1e6,
            )
        log(
            INFO,
            "\t\t└──Rewards: %d units/round, validator fee %d ppm, reputation %.2f",
            self.emission,
            self.validator_fee_ppm,
            self.robust.reputation_rate_ppm / 1e6,
        )

    # ----------------------------------------------------------------- train
    def _committee(self) -> Committee:
        if self.committee is None:
            raise RuntimeError("PoTStrategy.start() opens the committee first")
        return self.committee

    def _wait_for_nodes(self, grid: Grid, count: int) -> list[int]:
        nodes = sorted(grid.get_node_ids())
        while len(nodes) < count:
            log(
                INFO,
                "Waiting for nodes to connect: %d connected (minimum required: %d).",
                len(nodes),
                count,
            )
            time.sleep(1)
            nodes = sorted(grid.get_node_ids())
        return nodes

    def _sample(
        self, grid: Grid, fraction: float, minimum: int, seed: bytes
    ) -> list[int]:
        nodes = sorted(grid.get_node_ids())
        wanted = max(int(len(nodes) * fraction), minimum)
        nodes = self._wait_for_nodes(grid, max(self.min_available_nodes, wanted))
        # Seeded from the certified chain: the coordinator cannot pick its favourites.
        return random.Random(seed).sample(nodes, wanted)

    def _poisson_sample(self, grid: Grid) -> list[int]:
        """Each node independently with probability ``fraction_train`` (DP).

        Secret coins, not the chain's seed: amplification by sampling holds only
        against whoever cannot tell who was sampled.
        """
        nodes = self._wait_for_nodes(grid, self.min_available_nodes)
        coins = secrets.SystemRandom()
        return [n for n in nodes if coins.random() < self.fraction_train]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One train message per sampled node, each carrying the round's ticket.

        Parameters
        ----------
        server_round : int
            Flower's round (the chain's round is this plus a resumed offset).
        arrays : ArrayRecord
            The certified global model.
        config : ConfigRecord
            Sent to every node, with ``server-round`` added.
        grid : Grid
            Flower's grid; nodes are sampled from it, seeded by the last block.

        Returns
        -------
        Iterable[Message]
            The train messages (none when ``fraction_train`` is 0).

        """
        if self.fraction_train == 0.0:
            return []
        committee = self._committee()
        ticket = committee.ticket()
        if ticket.round != server_round + self._offset:
            raise RuntimeError(
                f"Flower round {server_round} (+{self._offset} resumed) but the "
                f"chain expects {ticket.round}"
            )
        if self.privacy.on:
            nodes = self._poisson_sample(grid)
        else:
            nodes = self._sample(
                grid, self.fraction_train, self.min_train_nodes, ticket.previous_block
            )
            # A sample too small for the robust rules' f would weaken them silently.
            self.robust.check(len(nodes))
        self._grid = grid
        pot = ConfigRecord(self._ticket_record(committee).to_value())
        train_config = ConfigRecord(dict(config))
        train_config["server-round"] = server_round
        log(
            INFO,
            "configure_train: sampled %s nodes (out of %s)",
            len(nodes),
            len(list(grid.get_node_ids())),
        )
        self._round_started = time.perf_counter()
        return [
            Message(
                RecordDict(
                    {
                        self.arrayrecord_key: arrays,
                        self.configrecord_key: train_config,
                        TICKET_RECORD: pot,
                    }
                ),
                dst_node_id=node,
                message_type=MessageType.TRAIN,
            )
            for node in nodes
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Hand every reply to the committee; return the model a quorum certified.

        Parameters
        ----------
        server_round : int
            Flower's round.
        replies : Iterable[Message]
            The train replies, errors included (each gets a verdict or a failure).
            Each reply's arrays are dropped once its payload is built, so a round
            holds every update once.

        Returns
        -------
        tuple[ArrayRecord | None, MetricRecord | None]
            The certified model and the round's metrics (``pot-accepted``,
            ``pot-rejected``, ``pot-minted`` and the accepted nodes' weighted
            training metrics).

        """
        submissions: list[SubmissionRef] = []
        payloads: dict[bytes, bytes] = {}
        failures = 0
        metrics_of: dict[int, RecordDict] = {}
        params = self._committee().params
        sealed: ClosedSeals | None = None
        if params.commit_reveal:
            replies, sealed, failures = self._reveal(list(replies))
        for reply in replies:
            if reply.has_error():
                failures += 1
                log(
                    WARNING,
                    "train reply from node %s failed: %s",
                    reply.metadata.src_node_id,
                    reply.error.reason,
                )
                continue
            node = reply.metadata.src_node_id
            ref, payload = _submission(
                node, reply.content, self._keys, params.commitment, sealed is not None
            )
            if payload is not None and ref.payload is not None:
                payloads[ref.payload] = payload
            submissions.append(ref)
            _release_arrays(reply.content)
            metrics_of[node] = reply.content
        started = time.perf_counter()
        certified = self._committee().certify_round(submissions, payloads, sealed)
        report = self._report(certified, failures, time.perf_counter() - started)
        self.history.append(report)
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(report.reasons.items()))
        privacy = certified.body.privacy
        log(
            INFO,
            "PoT round %d: block %s certified by %d validators: %d accepted, "
            "%d rejected%s; %d units minted%s",
            server_round,
            certified.block.hex()[:16],
            len(certified.certificate.signatures),
            report.accepted,
            report.rejected,
            f" ({reasons})" if reasons else "",
            report.minted,
            _privacy_note(privacy, certified.body.clipping),
        )
        model = ArrayRecord({k: Array(v) for k, v in certified.model.items()})
        metrics = MetricRecord(
            {
                "pot-accepted": report.accepted,
                "pot-rejected": report.rejected,
                "pot-minted": report.minted,
            }
        )
        accepted_nodes = {s.node for s in certified.body.accepted}
        records = [
            r for n, r in metrics_of.items() if n in accepted_nodes and _weighted(r)
        ]
        if records:
            for key, value in aggregate_metricrecords(records, "num-examples").items():
                metrics[key] = value
        return model, metrics

    def _ticket_record(self, committee: Committee) -> TicketRecord:
        """The next round's ticket; on commit-reveal chains, with the committee."""
        ticket, params = committee.ticket(), committee.params
        return TicketRecord(
            params.run,
            ticket.round,
            ticket.nonce,
            ticket.base_digest,
            params.commitment,
            params.validators if params.commit_reveal else (),
            params.quorum if params.commit_reveal else 0,
        )

    def _reveal(self, replies: list[Message]) -> tuple[list[Message], ClosedSeals, int]:
        """Close the commit step's seals, then ask the sealing nodes to reveal.

        Returns the reveals (replies with an envelope), the closed seals, and how
        many replies of either step failed or revealed nothing: their seals are
        recorded ``not-revealed``.
        """
        committee = self._committee()
        seals = []
        for reply in replies:
            if reply.has_error():
                continue
            found = seal_from_record(
                reply.metadata.src_node_id,
                reply.content.config_records.get(SUBMISSION_RECORD),
            )
            if found is not None:
                seals.append(found)
        closed = committee.close_seals(seals)
        reveal = encode(closed.to_value())
        ticket = replace(self._ticket_record(committee), reveal=reveal)
        messages = [
            Message(
                RecordDict({TICKET_RECORD: ConfigRecord(ticket.to_value())}),
                dst_node_id=seal.node,
                message_type=MessageType.TRAIN,
            )
            for seal in closed.seals.seals
        ]
        assert self._grid is not None  # set by configure_train
        answers = (
            list(self._grid.send_and_receive(messages, timeout=self._timeout))
            if messages
            else []
        )
        revealed = []
        for answer in answers:
            if answer.has_error():
                continue
            record = answer.content.config_records.get(SUBMISSION_RECORD)
            if SignedReply.from_value(record).envelope is not None:
                revealed.append(answer)
                continue
            why = None if record is None else record.get(REFUSED)
            node = answer.metadata.src_node_id
            log(WARNING, "node %s revealed nothing: %s", node, why or "no envelope")
        log(
            INFO,
            "commit-reveal: %d of %d replies sealed, %d revealed",
            len(closed.seals.seals),
            len(replies),
            len(revealed),
        )
        return revealed, closed, len(replies) - len(revealed)

    def _report(
        self, certified: CertifiedRound, failures: int, committee_seconds: float
    ) -> RoundReport:
        subs = certified.body.submissions
        reasons = Counter(str(s.reason) for s in subs if s.reason is not None)
        accepted = len(certified.body.accepted)
        return RoundReport(
            round=certified.height,
            block=certified.block,
            accepted=accepted,
            rejected=len(subs) - accepted,
            reasons=reasons,
            minted=certified.body.minted,
            submissions=subs,
            failures=failures,
            seconds=time.perf_counter() - self._round_started,
            committee_seconds=committee_seconds,
            privacy=certified.body.privacy,
            clipping=certified.body.clipping,
        )

    # -------------------------------------------------------------- evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One evaluate message per sampled node with the certified model.

        Parameters
        ----------
        server_round : int
            Flower's round.
        arrays : ArrayRecord
            The certified global model.
        config : ConfigRecord
            Sent to every node, with ``server-round`` added.
        grid : Grid
            Flower's grid of connected nodes.

        Returns
        -------
        Iterable[Message]
            The evaluate messages (none when ``fraction_evaluate`` is 0).

        """
        if self.fraction_evaluate == 0.0:
            return []
        seed = hashlib.sha256(b"evaluate" + self._committee().ticket().previous_block)
        nodes = self._sample(
            grid, self.fraction_evaluate, self.min_evaluate_nodes, seed.digest()
        )
        evaluate_config = ConfigRecord(dict(config))
        evaluate_config["server-round"] = server_round
        return [
            Message(
                RecordDict(
                    {
                        self.arrayrecord_key: arrays,
                        self.configrecord_key: evaluate_config,
                    }
                ),
                dst_node_id=node,
                message_type=MessageType.EVALUATE,
            )
            for node in nodes
        ]

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Examples-weighted mean of the nodes' evaluation metrics.

        Parameters
        ----------
        server_round : int
            Flower's round.
        replies : Iterable[Message]
            The evaluate replies; errors and replies without a weight are skipped.

        Returns
        -------
        MetricRecord | None
            The aggregated metrics, or None if no reply carried any.

        """
        records = [
            r.content for r in replies if not r.has_error() and _weighted(r.content)
        ]
        if not records:
            return None
        return aggregate_metricrecords(records, "num-examples")


def _weighted(content: RecordDict) -> bool:
    metrics = list(content.metric_records.values())
    weight = metrics[0].get("num-examples") if len(metrics) == 1 else None
    return isinstance(weight, (int, float)) and weight > 0


def _submission(
    node: int,
    content: RecordDict,
    keys: list[str],
    kind: CommitmentKind,
    revealed: bool = False,
) -> tuple[SubmissionRef, bytes | None]:
    """The committee's view of one reply; anything malformed stays for a verdict.

    On a Pedersen chain the payload carries the miner's blinding factor after the
    arrays (a reply without a well-formed one is left for the committee to
    reject as malformed). A reveal (``revealed``) carries its seal's salt; any
    other reply's salt is dropped (it would void a batch without seals).
    """
    signed = SignedReply.from_value(content.config_records.get(SUBMISSION_RECORD))
    payload: bytes | None = None
    records = list(content.array_records.values())
    if len(records) == 1:
        try:
            payload = encode_arrays(in_order(arrays_of(records[0]), keys))
        except (ValueError, TypeError, ModelFormatError):
            payload = None
    blinding = signed.blinding
    if (
        payload is not None
        and kind == CommitmentKind.PEDERSEN
        and blinding is not None
        and len(blinding) == BLINDING_SIZE
    ):
        payload = with_opening(payload, int.from_bytes(blinding, "big"))
    return (
        SubmissionRef(
            node,
            signed.envelope,
            signed.signature,
            None if payload is None else hashlib.sha256(payload).digest(),
            signed.salt if revealed and signed.salt else None,
        ),
        payload,
    )


def _release_arrays(content: RecordDict) -> None:
    """Drop a reply's arrays once its payload holds them: each update held once.

    Flower's loop holds every reply until the round is aggregated; at 1,000 miners
    of the quickstart CNN their arrays and the payloads are 150 MB each.
    """
    for name in list(content.array_records):
        del content[name]


def _load_miners(value: Iterable[bytes | str] | str | Path | None) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Path)):
        lines = Path(value).read_text().splitlines()
        items: list[bytes | str] = [
            line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()
        ]
    else:
        items = list(value)
    keys = []
    for item in items:
        raw = bytes.fromhex(item) if isinstance(item, str) else item
        if len(raw) != 32:
            raise ValueError(f"miner key must be 32 bytes, got {len(raw)}")
        keys.append(raw)
    return tuple(sorted(set(keys)))


def _privacy_note(privacy: Spent | None, clipping: ClipStep | None) -> str:
    """The privacy part of a round's log line ("" without DP)."""
    if privacy is None:
        return ""
    clip = (
        f", clip norm {clipping.clip_norm_units / SCALE:.4g}"
        if clipping is not None
        else ""
    )
    return (
        f"; epsilon {privacy.epsilon:.4f} (sampled {privacy.epsilon_sampled:.4f})"
        + clip
    )


def _choice(kind: type[E], key: str, value: str) -> E:
    """Config ``key``'s value as a member of ``kind``, checked at construction."""
    try:
        return kind(value)
    except ValueError:
        names = " or ".join(repr(k.value) for k in kind)
        raise ValueError(f"{key} must be {names}, got {value!r}") from None


def _adaptive_note(privacy: PrivacyConfig) -> str:
    """How the clip norm adapts, for the summary ("" if it is fixed)."""
    adaptive = privacy.adaptive
    if adaptive is None:
        return ""
    return (
        f" (initial; adaptive toward quantile {adaptive.target_quantile_ppm / 1e6:g}"
        f" at rate {adaptive.learning_rate_ppm / 1e6:g}; model noise "
        f"{privacy.noise_multiplier:g}, count noise "
        f"{adaptive.count_noise_multiplier / 2:g} per vote)"
    )


def describe(config: RobustConfig) -> str:
    """One line naming the robust stage (for the run's summary)."""
    steps = [p.value for p in config.pre_aggregators] + [config.aggregator.value]
    fraction = config.byzantine_ppm / 1e6
    momentum = config.momentum_ppm / 1e6
    extra = f", server momentum {momentum:g}" if momentum else ""
    return f"{' -> '.join(steps)} (Byzantine fraction {fraction:g}{extra})"
