"""What a validator daemon executes: every PoT chain it serves, one per Flower run.

Two operations reach it through PBFT: ``open-chain`` (genesis of a run's chain from
an initial model and parameters; the committee's keys come from the validator's own
configuration) and ``round`` (a round batch for an open chain, see
:mod:`pot_flower.protocol.execution`). Both name payloads that arrive out of band,
by digest, so both must come wrapped in an ``available`` request carrying a quorum
of availability receipts (:mod:`pot_flower.validator.availability`). A validator
that lacks a payload then waits and fetches it from its peers (at least f + 1 honest
validators hold it): all honest validators execute the same bytes, and none ever
decides anything from a payload's absence. Without valid receipts, every honest
validator refuses the request with the same error.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pot_flower.encoding import (
    Decoded,
    DecodeError,
    decode,
    encode,
    signature_pairs,
)
from pot_flower.patience import Unavailable, wait_for
from pot_flower.protocol.batch import RoundBatch
from pot_flower.protocol.certificate import BlsKey, CertificateKind
from pot_flower.protocol.chain import ChainState, genesis
from pot_flower.protocol.commitments import CommitmentKind, update_arrays
from pot_flower.protocol.model import ModelFormatError, decode_arrays, encode_arrays
from pot_flower.protocol.params import (
    MAX_SUBMISSIONS,
    Params,
    recorded_commit_reveal,
    recorded_commitment,
    recorded_commitment_value,
    recorded_privacy,
)
from pot_flower.protocol.privacy.config import PrivacyConfig
from pot_flower.protocol.robust import RobustConfig
from pot_flower.validator.application import CLOSE_SEALS, PoTApplication
from pot_flower.validator.availability import (
    Receipt,
    canonical_digests,
    receipts_problem,
)
from pot_flower.validator.catchup import BlockSource
from pot_flower.validator.ledger import Ledger
from pot_flower.validator.payloads import PayloadStore, Retention
from pot_flower.validator.scoring import Scorer

Fetch = Callable[[bytes], bytes | None]
log = logging.getLogger("pot.validator")
#: Whose quota payloads fetched from peers count against.
FETCHED = "peers"


def available_request(inner: bytes, receipts: list[Receipt]) -> bytes:
    """Wrap an ``open-chain`` or ``round`` request with its availability receipts."""
    return encode(
        {
            "kind": "available",
            "receipts": [[vid, sig] for vid, sig in sorted(receipts)],
            "request": inner,
        }
    )


@dataclass(frozen=True)
class OpenChain:
    """The request that opens run ``run``'s chain on ``model`` (a payload digest)."""

    run: int
    model: bytes
    norm_bound_units: int
    registration: str = "open"
    allowed_miners: tuple[bytes, ...] = ()
    emission: int = 1_000_000
    validator_fee_ppm: int = 100_000
    robust: RobustConfig = field(default_factory=RobustConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    commitment: CommitmentKind = CommitmentKind.HASH
    certificate: CertificateKind = CertificateKind.ED25519
    commit_reveal: bool = False

    def to_bytes(self) -> bytes:
        return encode(
            {
                **({"commit-reveal": True} if self.commit_reveal else {}),
                **({"privacy": self.privacy.to_value()} if self.privacy.on else {}),
                **recorded_commitment_value(self.commitment),
                **recorded_certificate_value(self.certificate),
                "robust": self.robust.to_value(),
                "allowed-miners": list(self.allowed_miners),
                "emission": self.emission,
                "kind": "open-chain",
                "model": self.model,
                "norm-bound-units": self.norm_bound_units,
                "registration": self.registration,
                "run": self.run,
                "validator-fee-ppm": self.validator_fee_ppm,
            }
        )

    @classmethod
    def from_value(cls, value: dict[str, Decoded]) -> OpenChain:
        miners = value.get("allowed-miners")
        fields = (value.get("run"), value.get("model"), value.get("norm-bound-units"))
        if not (
            isinstance(fields[0], int)
            and isinstance(fields[1], bytes)
            and isinstance(fields[2], int)
            and isinstance(value.get("registration"), str)
            and isinstance(value.get("emission"), int)
            and isinstance(value.get("validator-fee-ppm"), int)
            and isinstance(miners, list)
            and all(isinstance(m, bytes) for m in miners)
        ):
            raise ValueError("malformed open-chain request")
        robust = RobustConfig.from_value(value.get("robust"))
        privacy = recorded_privacy(value)
        commitment = recorded_commitment(value)
        certificate = recorded_certificate(value)
        commit_reveal = recorded_commit_reveal(value)
        return cls(
            fields[0],
            fields[1],
            fields[2],
            str(value["registration"]),
            tuple(m for m in miners if isinstance(m, bytes)),
            int(value["emission"]),  # type: ignore[arg-type]
            int(value["validator-fee-ppm"]),  # type: ignore[arg-type]
            robust,
            privacy,
            commitment,
            certificate,
            commit_reveal,
        )


def recorded_certificate_value(kind: CertificateKind) -> dict[str, Decoded]:
    """``{"certificate": kind}`` unless the default (one encoding per request)."""
    return {} if kind == CertificateKind.ED25519 else {"certificate": kind.value}


def recorded_certificate(value: dict[str, Decoded]) -> CertificateKind:
    """``value["certificate"]``, recorded only when not the default ``ed25519``."""
    if "certificate" not in value:
        return CertificateKind.ED25519
    if value["certificate"] != CertificateKind.BLS.value:
        raise ValueError("certificate must be 'bls' when recorded")
    return CertificateKind.BLS


def _error(reason: str) -> bytes:
    return encode({"error": reason})


def _decode_request(operation: bytes) -> dict[str, Decoded] | bytes:
    """The request as a dictionary, or the error result to answer with."""
    try:
        value = decode(operation)
    except DecodeError as exc:
        return _error(f"undecodable request: {exc}")
    if not isinstance(value, dict):
        return _error("request must be a dictionary")
    return value


def named_payloads(operation: bytes) -> list[bytes]:
    """The payload digests an ``available`` request names ([] if it names none)."""
    value = _decode_request(operation)
    inner = value.get("request") if isinstance(value, dict) else None
    if not isinstance(value, dict) or value.get("kind") != "available":
        return []
    if not isinstance(inner, bytes):
        return []
    request = _decode_request(inner)
    if not isinstance(request, dict):
        return []
    try:
        if request.get("kind") == "open-chain":
            return [OpenChain.from_value(request).model]
        batch = RoundBatch.from_bytes(inner)
    except ValueError:
        return []
    return canonical_digests(s.payload for s in batch.submissions if s.payload)


class ScoringRefused(ValueError):
    """A score request this validator will never answer (a caller's error)."""


class ScoringPending(Exception):
    """A score request this validator cannot answer yet (ask again)."""


class Chains:
    """The replicated application of a validator daemon (many chains).

    Parameters
    ----------
    directory : Path
        ``directory/run-<id>/`` holds each chain's ledger.
    validators : tuple[bytes, ...]
        The committee's public keys (from the committee file), by index.
    quorum : int
        Signatures a certificate needs.
    payloads : PayloadStore
        This validator's payload store.
    fetch : Callable[[bytes], bytes | None] | None
        Asks peers for a payload this validator lacks (one attempt).
    stopping : Callable[[], bool] | None
        Whether the validator is shutting down (ends a wait for peers).
    retention : Retention | None
        Quotas and collection of payloads (None: keep everything).
    blocks : BlockSource | None
        Peers' ledger blocks, for catching up after state transfer.
    patience_s : float (default: 30)
        How long a step waits for peers before it gives up (to be retried).
    scorer : Scorer | None
        The task owner's score function, named by the committee file (scored
        chains); None if the committee scores nothing.
    noise_key : bytes | None
        The committee's secret noise key (chains with central DP need it).
    bls : tuple[BlsKey, ...]
        Each validator's BLS key (committee file), for chains certified by BLS;
        empty if the committee file lists none.

    """

    def __init__(
        self,
        directory: Path,
        validators: tuple[bytes, ...],
        quorum: int,
        payloads: PayloadStore,
        fetch: Fetch | None = None,
        stopping: Callable[[], bool] | None = None,
        *,
        retention: Retention | None = None,
        blocks: BlockSource | None = None,
        patience_s: float = 30.0,
        scorer: Scorer | None = None,
        noise_key: bytes | None = None,
        bls: tuple[BlsKey, ...] = (),
    ) -> None:
        self.directory = Path(directory)
        self.bls = bls
        self.scorer = scorer
        self.noise_key = noise_key
        self.validators = validators
        self.quorum = quorum
        self.payloads = payloads
        self.fetch = fetch
        self.stopping = stopping or (lambda: False)
        self.retention = retention
        self.blocks = blocks
        self.patience_s = patience_s
        self.chains: dict[int, PoTApplication] = {}

    # ------------------------------------------------------------ payloads
    def _await_payloads(self, digests: list[bytes]) -> None:
        """Return once every payload is here; fetch the missing ones from peers.

        Receipts prove f + 1 honest validators hold them, so this ends unless the
        validator is cut off or so far behind that its peers collected them; it
        never decides from an absence. After its patience it raises
        :class:`Unavailable`: the step is abandoned and retried (or overtaken by
        state transfer).
        """
        if self.fetch is None:
            if any(d not in self.payloads for d in digests):
                raise RuntimeError("payloads missing and no peers to fetch them from")
            return
        fetch = self.fetch

        def attempt() -> bool | None:
            for digest in [d for d in digests if d not in self.payloads]:
                data = fetch(digest)
                if data is not None and hashlib.sha256(data).digest() == digest:
                    self.payloads.put(data)
                    if self.retention is not None:
                        self.retention.stored(FETCHED, digest, len(data))
            return True if all(d in self.payloads for d in digests) else None

        wait_for(
            attempt,
            what=f"{len(digests)} payload(s)",
            stopping=self.stopping,
            patience_s=self.patience_s,
        )

    # ------------------------------------------------------------- scoring
    def score(
        self, run: int, batch_bytes: bytes
    ) -> tuple[RoundBatch, list[int | None]]:
        """Scores, by this validator, of a batch for ``run``'s next round.

        Raises :class:`ScoringRefused` if it cannot score it at all, and
        :class:`ScoringPending` if not yet (behind that round, payloads missing).
        Scores are taken against the chain's head model, the round's base.
        """
        if self.scorer is None:
            raise ScoringRefused("this committee has no score function")
        chain = self.chains.get(run)
        if chain is None:
            raise ScoringPending(f"no chain for run {run} (yet)")
        state = chain.state  # replaced, never mutated, by the replica's thread
        if not state.params.robust.scored:
            raise ScoringRefused(f"run {run} is not scored")
        try:
            batch = RoundBatch.from_bytes(batch_bytes)
        except ValueError as exc:
            raise ScoringRefused(f"malformed batch: {exc}") from exc
        if batch.run != run or batch.scores:
            raise ScoringRefused("the batch must be for this run, without scores")
        if batch.round <= state.height:
            raise ScoringRefused(f"round {batch.round} is executed already")
        if batch.round > state.height + 1:
            raise ScoringPending(
                f"at height {state.height}, behind round {batch.round}"
            )
        named = canonical_digests(s.payload for s in batch.submissions if s.payload)
        too_many = len(batch.submissions) > MAX_SUBMISSIONS
        if too_many or any(len(d) != 32 for d in named):
            raise ScoringRefused("too many submissions or a malformed payload digest")
        missing = [d for d in named if d not in self.payloads]
        if missing:
            raise ScoringPending(f"{len(missing)} payload(s) missing")

        def read(digest: bytes) -> bytes | None:
            try:
                payload = self.payloads[digest]
            except KeyError:  # collected meanwhile: that update cannot be scored
                return None
            return update_arrays(payload, state.params.commitment)

        scores = self.scorer.scores(
            state.model, state.model_digest, batch.submissions, read
        )
        return batch, scores

    def collect(self, below: int) -> int:
        """Delete payloads consumed at or below sequence number ``below``."""
        return 0 if self.retention is None else self.retention.collect(below)

    # ----------------------------------------------------------- execution
    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        value = _decode_request(operation)
        if isinstance(value, bytes):
            return value
        kind = value.get("kind")
        if kind == "ping":  # a probe through consensus: ordered, executed, echoed
            return encode({"ping": value.get("digest", b"")})
        if kind == "available":
            return self._execute_available(client, timestamp, value, seq)
        if kind == CLOSE_SEALS:  # no payloads: ordered as it is
            run = value.get("run")
            chain = self.chains.get(run) if isinstance(run, int) else None
            if chain is None:
                return _error(f"no chain for run {run!r}")
            return chain.execute(client, timestamp, operation, seq)
        if kind in ("open-chain", "round"):
            return _error(f"{kind} requests name payloads: wrap them in 'available'")
        return _error(f"unknown request kind {kind!r}")

    def _execute_available(
        self, client: str, timestamp: int, value: dict[str, Decoded], seq: int
    ) -> bytes:
        inner, receipts = value.get("request"), value.get("receipts")
        if not isinstance(inner, bytes) or not isinstance(receipts, list):
            return _error("available: needs request bytes and a receipt list")
        parsed = signature_pairs(receipts)
        if parsed is None:
            return _error("available: a receipt must be [validator, signature]")
        request = _decode_request(inner)
        if isinstance(request, bytes):
            return request
        kind = request.get("kind")
        digests: list[bytes]
        if kind == "open-chain":
            try:
                opening = OpenChain.from_value(request)
            except ValueError as exc:
                return _error(str(exc))
            digests = [opening.model]
        elif kind == "round":
            run = request.get("run")
            chain = self.chains.get(run) if isinstance(run, int) else None
            if chain is None:
                return _error(f"no chain for run {run!r}")
            try:
                batch = RoundBatch.from_bytes(inner)
            except ValueError as exc:
                return _error(f"malformed batch: {exc}")
            digests = [s.payload for s in batch.submissions if s.payload]
        else:
            return _error(f"available: cannot wrap a {kind!r} request")
        digests = canonical_digests(digests)
        problem = receipts_problem(parsed, digests, self.validators, self.quorum)
        if problem is not None:
            return _error(f"payload availability: {problem}")
        self._await_payloads(digests)
        if kind == "open-chain":
            result = self._open(opening)
        else:
            assert chain is not None  # looked up above
            result = chain.execute(client, timestamp, inner, seq)
            log.info(
                "run %d: round %d executed at seq %d (%d submissions)",
                chain.state.params.run,
                chain.state.height,
                seq,
                len(digests),
            )
        if self.retention is not None:
            self.retention.consumed(digests, seq)
        return result

    def _open(self, request: OpenChain) -> bytes:
        if request.certificate == CertificateKind.BLS and not self.bls:
            return _error(
                "BLS certificates need every validator's BLS key in the committee "
                "file (pot committee init writes them)"
            )
        bls = self.bls if request.certificate == CertificateKind.BLS else ()
        try:
            params = Params(
                run=request.run,
                validators=self.validators,
                quorum=self.quorum,
                norm_bound_units=request.norm_bound_units,
                registration=request.registration,
                allowed_miners=request.allowed_miners,
                emission=request.emission,
                validator_fee_ppm=request.validator_fee_ppm,
                robust=request.robust,
                privacy=request.privacy,
                commitment=request.commitment,
                bls=bls,
                commit_reveal=request.commit_reveal,
            )
        except ValueError as exc:
            return _error(str(exc))
        if params.privacy.on and self.noise_key is None:
            # Not refused: opening is replicated, the key is this host's alone.
            log.warning(
                "run %d uses central DP but this validator holds no noise key "
                "(committee file [privacy]): it cannot execute its rounds",
                request.run,
            )
        try:
            model = decode_arrays(self.payloads[request.model])
        except ModelFormatError as exc:
            return _error(f"initial model: {exc}")
        if not model:
            return _error("initial model: no arrays")
        body, state = genesis(params, {k: v.copy() for k, v in model.items()})
        existing = self.chains.get(request.run)
        if existing is not None:
            return _error(f"run {request.run} already has a chain")
        ledger = Ledger(self.directory / f"run-{request.run}")
        if ledger.head_height() < 0:
            ledger.store_model(state.model_digest, encode_arrays(state.model))
            ledger.append(0, state.head, body)
        elif ledger.block_hash(0) != state.head:
            return _error(f"run {request.run}: the ledger holds another chain")
        self.chains[request.run] = self._chain(state, ledger)
        return encode({"block": state.head, "height": 0})

    def _chain(self, state: ChainState, ledger: Ledger) -> PoTApplication:
        return PoTApplication(
            state,
            self.payloads,
            ledger,
            blocks=self.blocks,
            stopping=self.stopping,
            patience_s=self.patience_s,
            noise_key=self.noise_key,
        )

    # --------------------------------------------------------------- state
    def snapshot(self) -> bytes:
        return encode(
            {str(run): app.snapshot() for run, app in sorted(self.chains.items())}
        )

    def restore(self, snapshot: bytes) -> None:
        """Adopt every chain of a certified snapshot; ledgers catch up first.

        ValueError (the replica drops the snapshot and asks again later) if it is
        malformed or peers did not serve the blocks in time; nothing changes then,
        but blocks already appended stay (they are verified).
        """
        value = decode(snapshot)
        if not isinstance(value, dict):
            raise ValueError("bad service snapshot")
        chains: dict[int, PoTApplication] = {}
        for run_text, state_bytes in value.items():
            if not isinstance(state_bytes, bytes) or not run_text.isdigit():
                raise ValueError("bad chain snapshot")
            run = int(run_text)
            state = ChainState.from_bytes(state_bytes)
            if state.params.run != run:
                raise ValueError(f"snapshot of run {run} holds run {state.params.run}")
            old = self.chains.get(run)
            ledger = old.ledger if old is not None else None
            chains[run] = self._chain(
                state, ledger or Ledger(self.directory / f"run-{run}")
            )
        for run, chain in chains.items():
            try:
                chain.catch_up(chain.state)
            except Unavailable as exc:
                raise ValueError(f"run {run}: ledger catch-up: {exc}") from exc
            old = self.chains.get(run)
            if old is not None and old.early_certificate is not None:
                chain.offer_certificate(old.early_certificate)
        self.chains = chains
