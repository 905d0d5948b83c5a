"""Round execution: the deterministic function every validator applies to a batch.

Input: the chain state (params, head, global model, registry) and one round's batch
of submissions with their payloads. Output: a block (verdict and reason for every
submission, rewards) and the next global model. Only integers after the miner's
rounding, canonical order by miner id, canonical encoding before hashing: honest
validators produce identical bytes on any machine. Nothing in a submission can make
this raise; a malformed *batch* (the coordinator's fault) yields a batch error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property

import numpy as np

from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.protocol.block import (
    GENESIS_PREVIOUS,
    Certificate,
    CertificateError,
    block_hash,
)
from pot_flower.protocol.envelope import (
    EnvelopeError,
    round_nonce,
    verify_envelope,
)
from pot_flower.protocol.fixedpoint import (
    MAX_UNITS,
    FloatArray,
    IntArray,
    apply_update,
    norm_within,
    weighted_mean,
)
from pot_flower.protocol.layout import Layout
from pot_flower.protocol.model import (
    Arrays,
    ModelFormatError,
    canonical,
    decode_arrays,
    encode_arrays,
    model_digest,
)
from pot_flower.protocol.rewards import fee_pool, largest_remainder, quality_ppm

MAX_EXAMPLES = 1 << 20
"""Most examples one submission may claim (keeps the total weight below 2**31)."""
MAX_SUBMISSIONS = 2048
"""Most submissions in one round's batch."""


class Reason(StrEnum):
    """Stable reason codes for rejected submissions (they are stored in the ledger)."""

    MISSING_SIGNATURE = "missing-signature"
    MALFORMED_ENVELOPE = "malformed-envelope"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_MINER = "unknown-miner"
    WRONG_RUN = "wrong-run"
    WRONG_ROUND = "wrong-round"
    WRONG_NONCE = "wrong-nonce"
    WRONG_NODE = "wrong-node"
    BASE_DIGEST_MISMATCH = "base-digest-mismatch"
    BAD_NUM_EXAMPLES = "bad-num-examples"
    MALFORMED_UPDATE = "malformed-update"
    WRONG_KEYS = "wrong-keys"
    WRONG_SHAPE = "wrong-shape"
    WRONG_DTYPE = "wrong-dtype"
    NON_FINITE = "non-finite"
    NORM_ABOVE_BOUND = "norm-above-bound"
    COMMITMENT_MISMATCH = "commitment-mismatch"
    DUPLICATE_SUBMISSION = "duplicate-submission"
    COPIED_UPDATE = "copied-update"


REASON_TEXT = {
    Reason.MISSING_SIGNATURE: "no signed PoT envelope in the reply",
    Reason.MALFORMED_ENVELOPE: "the envelope is not a canonical PoT envelope",
    Reason.BAD_SIGNATURE: "the signature does not verify under the miner's key",
    Reason.UNKNOWN_MINER: "the miner is not registered with the committee",
    Reason.WRONG_RUN: "the envelope names another run",
    Reason.WRONG_ROUND: "the envelope names another round (stale or replayed)",
    Reason.WRONG_NONCE: "the envelope carries another round's nonce",
    Reason.WRONG_NODE: "the envelope names another node than the one that sent it",
    Reason.BASE_DIGEST_MISMATCH: "the update was not trained from the global model",
    Reason.BAD_NUM_EXAMPLES: f"num-examples outside 1..{MAX_EXAMPLES}",
    Reason.MALFORMED_UPDATE: "the returned arrays are missing or undecodable",
    Reason.WRONG_KEYS: "the returned arrays have other names than the model's",
    Reason.WRONG_SHAPE: "an array's shape differs from the model's",
    Reason.WRONG_DTYPE: "an array's dtype differs from the model's",
    Reason.NON_FINITE: "the update contains NaN or infinity",
    Reason.NORM_ABOVE_BOUND: "the update's L2 norm exceeds the bound",
    Reason.COMMITMENT_MISMATCH: "the arrays do not match the signed commitment",
    Reason.DUPLICATE_SUBMISSION: "the miner already submitted in this round",
    Reason.COPIED_UPDATE: "the same update was submitted by another miner",
}

ACCEPTED = "accepted"
REJECTED = "rejected"


# ------------------------------------------------------------------ parameters
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

    """

    run: int
    validators: tuple[bytes, ...]
    quorum: int
    norm_bound_units: int
    registration: str = "open"
    allowed_miners: tuple[bytes, ...] = ()
    emission: int = 1_000_000
    validator_fee_ppm: int = 100_000

    def __post_init__(self) -> None:
        if self.registration not in ("open", "allow-list"):
            raise ValueError("registration must be 'open' or 'allow-list'")
        if not 0 < self.norm_bound_units <= MAX_UNITS:
            raise ValueError("norm bound out of the fixed-point range")
        if not 0 <= self.validator_fee_ppm <= 1_000_000 or self.emission < 0:
            raise ValueError("emission and fee must be non-negative (fee <= 1e6 ppm)")
        if not 1 <= self.quorum <= len(self.validators):
            raise ValueError("quorum must be between 1 and the committee size")

    def to_value(self) -> dict[str, Decoded]:
        return {
            "allowed-miners": sorted(self.allowed_miners),  # type: ignore[dict-item]
            "emission": self.emission,
            "norm-bound-units": self.norm_bound_units,
            "quorum": self.quorum,
            "registration": self.registration,
            "run": self.run,
            "validator-fee-ppm": self.validator_fee_ppm,
            "validators": list(self.validators),
        }

    @classmethod
    def from_value(cls, value: Decoded) -> Params:
        if not isinstance(value, dict):
            raise ValueError("params must be a dictionary")
        try:
            return cls(
                run=_int(value["run"]),
                validators=tuple(_bytes_list(value["validators"])),
                quorum=_int(value["quorum"]),
                norm_bound_units=_int(value["norm-bound-units"]),
                registration=str(value["registration"]),
                allowed_miners=tuple(_bytes_list(value["allowed-miners"])),
                emission=_int(value["emission"]),
                validator_fee_ppm=_int(value["validator-fee-ppm"]),
            )
        except KeyError as exc:
            raise ValueError(f"params lack {exc}") from exc


def _int(value: Decoded) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("expected an integer")
    return value


def _bytes_list(value: Decoded) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise ValueError("expected a list of byte strings")
    return value  # type: ignore[return-value]


# ----------------------------------------------------------------------- state
@dataclass
class ChainState:
    """What a validator knows after executing block ``height``."""

    params: Params
    height: int
    head: bytes
    model: Arrays
    model_digest: bytes
    miners: set[bytes] = field(default_factory=set)

    @cached_property
    def layout(self) -> Layout:
        """The model's layout (computed once per state, used for every check)."""
        return Layout(self.model)

    def nonce(self) -> bytes:
        """The nonce of the next round."""
        return round_nonce(self.params.run, self.height + 1, self.head)

    def to_bytes(self) -> bytes:
        return encode(
            {
                "head": self.head,
                "height": self.height,
                "miners": sorted(self.miners),
                "model": encode_arrays(self.model),
                "params": self.params.to_value(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ChainState:
        try:
            value = decode(data)
            if not isinstance(value, dict):
                raise ValueError("state must be a dictionary")
            model_bytes = value["model"]
            head = value["head"]
            if not isinstance(model_bytes, bytes) or not isinstance(head, bytes):
                raise ValueError("model and head must be bytes")
            model = decode_arrays(model_bytes)
            return cls(
                params=Params.from_value(value["params"]),
                height=_int(value["height"]),
                head=head,
                model={k: v.copy() for k, v in model.items()},
                model_digest=hashlib.sha256(model_bytes).digest(),
                miners=set(_bytes_list(value["miners"])),
            )
        except (DecodeError, ModelFormatError, KeyError) as exc:
            raise ValueError(f"bad chain state: {exc}") from exc


def genesis(params: Params, model: Arrays) -> tuple[bytes, ChainState]:
    """Block 0's body and the state after it."""
    model = {k: canonical(v) for k, v in model.items()}
    digest = model_digest(model)
    body = encode(
        {
            "height": 0,
            "kind": "genesis",
            "layout": [[k, v.dtype.str, list(v.shape)] for k, v in model.items()],
            "model": digest,
            "params": params.to_value(),
            "previous": GENESIS_PREVIOUS,
            "version": 1,
        }
    )
    registered = (
        set(params.allowed_miners) if params.registration == "allow-list" else set()
    )
    state = ChainState(params, 0, block_hash(body), model, digest, registered)
    return body, state


# ----------------------------------------------------------------------- batch
@dataclass(frozen=True)
class SubmissionRef:
    """One reply as the coordinator relays it: the signed envelope and its arrays.

    ``payload`` is the SHA-256 of the canonical bytes of the returned arrays; the
    arrays themselves travel outside the consensus messages.
    """

    node: int
    envelope: bytes | None
    signature: bytes | None
    payload: bytes | None

    def to_value(self) -> list[Decoded]:
        return [self.node, self.envelope, self.signature, self.payload]


@dataclass(frozen=True)
class RoundBatch:
    """The request PBFT orders once per round."""

    run: int
    round: int
    submissions: tuple[SubmissionRef, ...]
    previous_certificate: Certificate | None = None

    def to_bytes(self) -> bytes:
        return encode(
            {
                "kind": "round",
                "previous-certificate": (
                    None
                    if self.previous_certificate is None
                    else decode(self.previous_certificate.to_bytes())
                ),
                "round": self.round,
                "run": self.run,
                "submissions": [s.to_value() for s in self.submissions],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundBatch:
        try:
            value = decode(data)
        except DecodeError as exc:
            raise ValueError(f"batch is not canonical: {exc}") from exc
        if not (
            isinstance(value, dict)
            and set(value)
            == {"kind", "previous-certificate", "round", "run", "submissions"}
            and value["kind"] == "round"
            and isinstance(value["submissions"], list)
        ):
            raise ValueError("not a round batch")
        subs = []
        for item in value["submissions"]:
            if not (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], int)
                and all(x is None or isinstance(x, bytes) for x in item[1:])
            ):
                raise ValueError(
                    "submission must be [node, envelope, signature, payload]"
                )
            subs.append(SubmissionRef(item[0], item[1], item[2], item[3]))  # type: ignore[arg-type]
        cert_value = value["previous-certificate"]
        cert = None if cert_value is None else Certificate.from_value(cert_value)
        return cls(_int(value["run"]), _int(value["round"]), tuple(subs), cert)


class BatchError(ValueError):
    """A batch that cannot be executed at this state (no block is produced)."""


# ------------------------------------------------------------------- execution
@dataclass
class Verdict:
    """One submission's outcome as recorded in the block."""

    node: int
    miner: bytes | None
    commitment: bytes | None
    examples: int
    reason: Reason | None = None
    quality_ppm: int = 0
    reward: int = 0
    units: IntArray | None = field(default=None, repr=False)  # flat order
    flat: FloatArray | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def to_value(self) -> dict[str, Decoded]:
        return {
            "commitment": self.commitment,
            "examples": self.examples,
            "miner": self.miner,
            "node": self.node,
            "quality-ppm": self.quality_ppm,
            "reason": "" if self.reason is None else self.reason.value,
            "reward": self.reward,
            "verdict": ACCEPTED if self.reason is None else REJECTED,
        }


@dataclass(frozen=True)
class RoundOutcome:
    """The block a round produced and the state after it."""

    body: bytes
    hash: bytes
    state: ChainState
    verdicts: tuple[Verdict, ...]
    previous_certificate: Certificate | None  # the batch's, if it verified


def check_submission(
    state: ChainState, sub: SubmissionRef, payloads: Mapping[bytes, bytes]
) -> Verdict:
    """Every per-submission check, in a fixed order; the first failure decides.

    A pure function of the state and the submission.
    """
    verdict = Verdict(sub.node, None, None, 0)
    if not sub.envelope or not sub.signature:
        verdict.reason = Reason.MISSING_SIGNATURE
        return verdict
    try:
        envelope = verify_envelope(sub.envelope, sub.signature)
    except EnvelopeError:
        verdict.reason = Reason.MALFORMED_ENVELOPE
        return verdict
    if envelope is None:
        verdict.reason = Reason.BAD_SIGNATURE
        return verdict
    verdict.miner = envelope.miner
    verdict.commitment = envelope.commitment
    verdict.examples = envelope.num_examples
    params = state.params
    checks = (
        (
            params.registration == "allow-list" and envelope.miner not in state.miners,
            Reason.UNKNOWN_MINER,
        ),
        (envelope.run != params.run, Reason.WRONG_RUN),
        (envelope.round != state.height + 1, Reason.WRONG_ROUND),
        (envelope.nonce != state.nonce(), Reason.WRONG_NONCE),
        (envelope.node != sub.node, Reason.WRONG_NODE),
        (envelope.base_digest != state.model_digest, Reason.BASE_DIGEST_MISMATCH),
        (not 1 <= envelope.num_examples <= MAX_EXAMPLES, Reason.BAD_NUM_EXAMPLES),
    )
    for failed, reason in checks:
        if failed:
            verdict.reason = reason
            return verdict
    payload = payloads.get(sub.payload) if sub.payload is not None else None
    if payload is None or hashlib.sha256(payload).digest() != sub.payload:
        verdict.reason = Reason.MALFORMED_UPDATE
        return verdict
    layout = state.layout
    arrays = layout.parse(payload)
    if arrays is None:
        verdict.reason = _layout_reason(state, payload)
        return verdict
    status, flat = layout.quantize(arrays, params.norm_bound_units)
    if status == "non-finite":
        verdict.reason = Reason.NON_FINITE
        return verdict
    if flat is None or not norm_within(flat, params.norm_bound_units):
        verdict.reason = Reason.NORM_ABOVE_BOUND
        return verdict
    units = flat.astype(np.int64)
    if layout.commitment(units.astype(np.int32)) != envelope.commitment:
        verdict.reason = Reason.COMMITMENT_MISMATCH
        return verdict
    verdict.units = units
    verdict.flat = flat
    return verdict


def _layout_reason(state: ChainState, payload: bytes) -> Reason:
    """Why a payload does not have the model's exact canonical layout."""
    try:
        returned = decode_arrays(payload)
    except ModelFormatError:
        return Reason.MALFORMED_UPDATE
    if list(returned) != list(state.model):
        return Reason.WRONG_KEYS
    for name, base in state.model.items():
        if returned[name].shape != base.shape:
            return Reason.WRONG_SHAPE
        if returned[name].dtype != base.dtype:
            return Reason.WRONG_DTYPE
    return Reason.MALFORMED_UPDATE  # same layout, yet not the canonical bytes


def _sort_key(v: Verdict, sub: SubmissionRef) -> tuple[bytes, int, bytes, bytes]:
    return (v.miner or b"", sub.node, sub.envelope or b"", sub.signature or b"")


def execute_round(
    state: ChainState,
    batch_bytes: bytes,
    payloads: Mapping[bytes, bytes],
) -> RoundOutcome:
    """Execute one round's batch; raise :class:`BatchError` if it is not executable.

    ``payloads`` maps payload digests to canonical array bytes; each is re-hashed
    before use, so a wrong or missing payload only rejects its own submission.
    """
    try:
        batch = RoundBatch.from_bytes(batch_bytes)
    except (ValueError, CertificateError) as exc:
        raise BatchError(f"malformed batch: {exc}") from exc
    params = state.params
    if batch.run != params.run:
        raise BatchError(f"batch for run {batch.run}, chain is run {params.run}")
    if batch.round != state.height + 1:
        raise BatchError(f"batch for round {batch.round}, next is {state.height + 1}")
    if len(batch.submissions) > MAX_SUBMISSIONS:
        raise BatchError(f"more than {MAX_SUBMISSIONS} submissions")

    checked = [
        (check_submission(state, sub, payloads), sub) for sub in batch.submissions
    ]
    checked.sort(key=lambda pair: _sort_key(*pair))
    verdicts = [v for v, _ in checked]

    # Registration, then one submission per miner (first in canonical order).
    registered: list[bytes] = []
    seen: set[bytes] = set()
    for v in verdicts:
        if v.miner is None or v.reason in (
            Reason.UNKNOWN_MINER,
            Reason.WRONG_RUN,
            Reason.WRONG_ROUND,
            Reason.WRONG_NONCE,
        ):
            continue
        if (
            params.registration == "open"
            and v.miner not in state.miners
            and v.miner not in registered
        ):
            registered.append(v.miner)
        if v.accepted:
            if v.miner in seen:
                v.reason, v.units, v.flat = Reason.DUPLICATE_SUBMISSION, None, None
            seen.add(v.miner)
    # Identical updates from different miners: nobody can tell who copied whom.
    by_commitment: dict[bytes, int] = {}
    for v in verdicts:
        if v.accepted and v.commitment is not None:
            by_commitment[v.commitment] = by_commitment.get(v.commitment, 0) + 1
    for v in verdicts:
        if v.accepted and v.commitment is not None and by_commitment[v.commitment] > 1:
            v.reason, v.units, v.flat = Reason.COPIED_UPDATE, None, None

    accepted = [v for v in verdicts if v.accepted]
    new_model = state.model
    new_digest = state.model_digest
    if accepted:
        aggregate = weighted_mean(
            [v.units for v in accepted if v.units is not None],
            [v.examples for v in accepted],
        )
        aggregate_flat = aggregate.astype(np.float64)
        aggregate_sq = float(np.dot(aggregate_flat, aggregate_flat))
        for v in accepted:
            assert v.flat is not None
            v.quality_ppm = quality_ppm(v.flat, aggregate_flat, aggregate_sq)
        per_array = state.layout.split(aggregate)
        new_model = {
            name: apply_update(base, per_array[name])
            for name, base in state.model.items()
        }
        new_digest = model_digest(new_model)

    # Rewards.
    fee = fee_pool(params.emission, params.validator_fee_ppm)
    signers: list[int] = []
    certificate = batch.previous_certificate
    if certificate is not None:
        try:
            if certificate.height != state.height or certificate.block != state.head:
                raise CertificateError("certifies another block")
            certificate.verify(params.validators, params.quorum)
            signers = certificate.signers
        except CertificateError:
            certificate = None
    fee_shares = largest_remainder(fee, [1] * len(signers)) if signers else []
    scores = [v.examples * v.quality_ppm for v in accepted]
    miner_shares = largest_remainder(params.emission - fee, scores)
    for v, share in zip(accepted, miner_shares, strict=True):
        v.reward = share
    minted = sum(miner_shares) + sum(fee_shares)

    body = encode(
        {
            "base": state.model_digest,
            "height": state.height + 1,
            "kind": "round",
            "minted": minted,
            "model": new_digest,
            "nonce": state.nonce(),
            "previous": state.head,
            "registrations": registered,
            "run": params.run,
            "submissions": [v.to_value() for v in verdicts],
            "validator-fees": [
                [i, share] for i, share in zip(signers, fee_shares, strict=True)
            ],
        }
    )
    digest = block_hash(body)
    for v in verdicts:
        v.units = v.flat = None  # free the arrays; the block has what matters
    next_state = replace(
        state,
        height=state.height + 1,
        head=digest,
        model=new_model,
        model_digest=new_digest,
        miners=state.miners | set(registered),
    )
    return RoundOutcome(body, digest, next_state, tuple(verdicts), certificate)
