"""The embedded committee: n validators in this process (the default for ``flwr run``).

Real replicas over the in-memory PBFT transport, real signatures, one SQLite ledger
each; it implements :class:`~pot_flower.committee.base.Committee`.

The replicas live in one process with keys from one seed: one trust domain, a
stand-in for a committee, not a committee. So the pure round function runs once per
ordered batch and every replica takes its own copy of the outcome
(:class:`SharedExecution`), as the batch is scored once: executing the same bytes
four times in one process would buy no assurance and cost four times the CPU. The
remote committee (validators as processes) executes on every validator.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from pot_flower.committee.base import (
    COORDINATOR,
    CertifiedHead,
    CertifiedRound,
    CommitteeError,
)
from pot_flower.consensus.memory import MemoryDriver
from pot_flower.consensus.quorum import quorum
from pot_flower.protocol.batch import BatchError, RoundBatch, SubmissionRef
from pot_flower.protocol.block import (
    parse_round,
)
from pot_flower.protocol.certificate import (
    BlsKey,
    Certificate,
    CertificateKind,
)
from pot_flower.protocol.chain import ChainState, genesis
from pot_flower.protocol.commitments import CommitmentKind, update_arrays
from pot_flower.protocol.execution import RoundOutcome, execute_round
from pot_flower.protocol.model import Arrays, encode_arrays
from pot_flower.protocol.params import Params
from pot_flower.protocol.privacy.accountant import spent
from pot_flower.protocol.privacy.config import PrivacyConfig
from pot_flower.protocol.privacy.mechanism import NOISE_KEY_SIZE
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.scores import ScoreVector
from pot_flower.protocol.sealing import SEAL_SET_DOMAIN, ClosedSeals, Seal, SealSet
from pot_flower.validator.application import (
    PoTApplication,
    Signer,
    close_seals_request,
    parse_closed,
    parse_result,
)
from pot_flower.validator.ledger import Ledger
from pot_flower.validator.scoring import ScoreFn, score_batch
from pot_flower.zk.signatures import SigningKey


class EmbeddedCommittee(CertifiedHead):
    """n validators in this process (default for ``flwr run``).

    Parameters
    ----------
    directory : Path
        Ledgers go to ``directory/validator-<i>/``.
    run : int
        Flower run id.
    model : Arrays
        The initial global model (block 0 names its digest).
    validators : int (default: 4)
        Committee size n; tolerates f = (n - 1) // 3 faulty validators.
    norm_bound_units, registration, allowed_miners, emission, validator_fee_ppm, robust
        See :class:`~pot_flower.protocol.params.Params`.
    score_fn : Callable[[Arrays, Arrays], float] | None
        The task owner's score function (required when ``robust.scored``). The
        validators share this process and this machine, so the batch is scored
        once and every validator signs that vector.
    privacy : PrivacyConfig | None
        Central DP (see :class:`~pot_flower.protocol.params.Params`). The noise
        key is drawn fresh per chain and held in memory only: the validators live
        in the coordinator's process, so this protects the model's users, not
        against the coordinator (a remote committee does that).
    commitment : CommitmentKind
        How updates are bound (see :class:`~pot_flower.protocol.params.Params`).
    certificate : CertificateKind
        ``ed25519`` (lists of signatures) or ``bls`` (one aggregate per block).
    commit_reveal : bool
        Rounds in two steps: seals, then reveals (:mod:`~.protocol.sealing`).

    """

    def __init__(
        self,
        directory: Path,
        *,
        run: int,
        model: Arrays,
        validators: int = 4,
        norm_bound_units: int,
        registration: str = "open",
        allowed_miners: tuple[bytes, ...] = (),
        emission: int = 1_000_000,
        validator_fee_ppm: int = 100_000,
        robust: RobustConfig | None = None,
        score_fn: ScoreFn | None = None,
        privacy: PrivacyConfig | None = None,
        commitment: CommitmentKind = CommitmentKind.HASH,
        certificate: CertificateKind = CertificateKind.ED25519,
        commit_reveal: bool = False,
    ) -> None:
        self.directory = Path(directory)
        seed = os.urandom(32)  # fresh committee keys per chain
        keys = [
            SigningKey.from_seed(seed + b"/replica/%d" % i) for i in range(validators)
        ]
        bls = tuple(BlsKey.of(k) for k in keys) if certificate == "bls" else ()
        self._quorum = quorum(validators)
        self._params = Params(
            run=run,
            validators=tuple(k.verify_key.raw for k in keys),
            quorum=self._quorum,
            norm_bound_units=norm_bound_units,
            registration=registration,
            allowed_miners=allowed_miners,
            emission=emission,
            validator_fee_ppm=validator_fee_ppm,
            robust=robust or RobustConfig(),
            privacy=privacy or PrivacyConfig(),
            commitment=commitment,
            bls=bls,
            commit_reveal=commit_reveal,
        )
        noise_key = os.urandom(NOISE_KEY_SIZE)
        self.execution = SharedExecution()
        if self._params.robust.scored and score_fn is None:
            raise CommitteeError("a scored chain needs a score function")
        self._score_fn = score_fn
        self.payloads: dict[bytes, bytes] = {}
        body, state = genesis(self._params, model)
        self.validators: list[Signer] = []
        for i, key in enumerate(keys):
            ledger = Ledger(self.directory / f"validator-{i}")
            if ledger.head_height() >= 0:
                raise CommitteeError(f"{ledger.directory} already holds a chain")
            ledger.store_model(state.model_digest, encode_arrays(state.model))
            ledger.append(0, state.head, body)
            app = PoTApplication(
                _copy(state),
                self.payloads,
                ledger,
                noise_key=noise_key,
                executor=self.execution,
            )
            self.validators.append(Signer(i, key, app))
        apps = iter([v.app for v in self.validators])
        self._pbft = MemoryDriver(
            validators,
            clients=(COORDINATOR,),
            app_factory=lambda: next(apps),
            seed=seed,
        )
        self._last = self._certify(0, state.head)

    def _head(self) -> tuple[int, bytes, Arrays, bytes]:
        state = self.validators[0].app.state
        return state.height, state.head, state.model, state.model_digest

    def close_seals(self, seals: Sequence[Seal]) -> ClosedSeals:
        closing = SealSet.close(self._params.run, self.ticket().round, seals)
        self._pbft.submit(COORDINATOR, close_seals_request(closing))
        self._pbft.run()
        completed = self._pbft.completed[COORDINATOR]
        try:
            closed = parse_closed(completed[-1].result if completed else b"")
        except ValueError as exc:
            message = f"round {closing.round}: seals not closed: {exc}"
            raise CommitteeError(message) from exc
        digest = closed.digest()
        signatures = {
            v.index: signature
            for v in self.validators
            if (signature := v.sign_closed(closed.round)) is not None
            and v.key.verify_key.verify(SEAL_SET_DOMAIN, digest, signature)
        }
        if len(signatures) < self._quorum:
            raise CommitteeError(
                f"round {closed.round}: {len(signatures)} validators signed the "
                f"closed seals, quorum is {self._quorum}"
            )
        return ClosedSeals(closed, tuple(sorted(signatures.items())))

    def certify_round(
        self,
        submissions: list[SubmissionRef],
        payloads: Mapping[bytes, bytes],
        sealed: ClosedSeals | None = None,
    ) -> CertifiedRound:
        self.payloads.clear()
        self.payloads.update(payloads)
        height = self.ticket().round
        batch = RoundBatch(
            self._params.run, height, tuple(submissions), self._last, sealed=sealed
        )
        if self._params.robust.scored:
            batch = replace(batch, scores=self._scores(batch, payloads))
        if self._params.privacy.on:
            batch = replace(batch, privacy=spent(self._params.privacy, height))
        self._pbft.submit(COORDINATOR, batch.to_bytes())
        self._pbft.run()
        completed = self._pbft.completed[COORDINATOR]
        if not completed:
            raise CommitteeError(f"round {height}: the committee did not reply")
        try:
            got_height, digest = parse_result(completed[-1].result)
        except ValueError as exc:
            raise CommitteeError(f"round {height}: batch refused: {exc}") from exc
        if got_height != height:
            raise CommitteeError(f"round {height}: committee executed {got_height}")
        self._last = self._certify(height, digest)
        self.payloads.clear()
        source = next(v for v in self.validators if v.app.state.head == digest)
        block = parse_round(source.app.last_body or b"")
        return CertifiedRound(height, digest, block, self._last, source.app.state.model)

    def _scores(
        self, batch: RoundBatch, payloads: Mapping[bytes, bytes]
    ) -> tuple[ScoreVector, ...]:
        """Every validator's signed score vector of ``batch``."""
        assert self._score_fn is not None
        # A copy: the task owner's function must not be able to change the chain's.
        model = {k: v.copy() for k, v in self.validators[0].app.state.model.items()}
        kind = self._params.commitment
        arrays = {
            d: data
            for d, p in payloads.items()
            if (data := update_arrays(p, kind)) is not None
        }
        scores = score_batch(self._score_fn, model, batch.submissions, arrays)
        digest = batch.scores_digest()
        return tuple(
            ScoreVector.signed(
                v.key,
                v.index,
                run=batch.run,
                round_=batch.round,
                digest=digest,
                scores=scores,
            )
            for v in self.validators
        )

    def _certify(self, height: int, digest: bytes) -> Certificate:
        votes = {}
        for v in self.validators:
            vote = v.vote(height, digest)
            if vote is not None:
                votes[v.index] = vote
        if len(votes) < self._quorum:
            raise CommitteeError(
                f"block {height}: {len(votes)} votes, quorum is {self._quorum}"
            )
        certificate = self._params.certifiers.assemble(height, digest, votes)
        for v in self.validators:
            if v.app.state.head == digest:
                v.accept_certificate(certificate)
        return certificate

    def close(self) -> None:
        for v in self.validators:
            if v.app.ledger is not None:
                v.app.ledger.close()


class SharedExecution:
    """Each ordered batch executed once for all the replicas of one process.

    Keyed by the state it runs on (height and head: the state is a function of
    the chain) and the batch's bytes; each caller gets its own copy of the state
    after it, so replicas still share no mutable state. A batch that cannot be
    executed raises the same :class:`BatchError` for every caller.
    """

    def __init__(self) -> None:
        self._key: tuple[int, bytes, bytes] | None = None
        self._outcome: RoundOutcome | BatchError | None = None
        self.executions = 0
        """How many times the round function ran (tests read it)."""

    def __call__(
        self,
        state: ChainState,
        batch: bytes,
        payloads: Mapping[bytes, bytes],
        noise_key: bytes | None,
    ) -> RoundOutcome:
        key = (state.height, state.head, hashlib.sha256(batch).digest())
        if key != self._key or self._outcome is None:
            self._key, self._outcome = key, None  # nothing stale if it fails
            self.executions += 1
            try:
                self._outcome = execute_round(state, batch, payloads, noise_key)
            except BatchError as exc:
                self._outcome = exc
        outcome = self._outcome
        if isinstance(outcome, BatchError):
            raise BatchError(str(outcome))
        return replace(outcome, state=_copy(outcome.state))


def _copy(state: ChainState) -> ChainState:
    """An independent copy for one validator (validators share nothing)."""
    return replace(
        state,
        model={k: v.copy() for k, v in state.model.items()},
        miners=set(state.miners),
        aggregate=None if state.aggregate is None else state.aggregate.copy(),
        reputation=dict(state.reputation),
    )
