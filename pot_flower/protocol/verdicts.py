"""One submission's verdict: every check in a fixed order; the first failure decides."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.block import SubmissionRecord
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.commitments import (
    CommitmentKind,
    failed_openings,
    openings_key,
    split_opening,
)
from pot_flower.protocol.envelope import (
    Envelope,
    EnvelopeError,
    LocalDp,
    verify_envelope,
)
from pot_flower.protocol.fixedpoint import IntArray, norm_within
from pot_flower.protocol.model import ModelFormatError, decode_arrays
from pot_flower.protocol.params import MAX_EXAMPLES
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.sealing import SealSet, reveal_reason


@dataclass
class Verdict:
    """One submission's outcome while a round executes (its arrays, then its pay)."""

    node: int
    miner: bytes | None
    commitment: bytes | None
    examples: int
    reason: Reason | None = None
    quality_ppm: int = 0
    reward: int = 0
    clipped: bool = False
    score: int | None = None  # the committee's agreed score (scored chains)
    reputation_ppm: int = 0  # after this round, if judged (see block.JUDGED)
    local_dp: LocalDp | None = None  # the miner's own report, from its envelope
    flat: IntArray | None = field(default=None, repr=False)
    """The update's fixed-point units in flat order: its row of the round's matrix."""
    update_digest: bytes | None = None
    """SHA-256 of the update (the hash commitment's value): copies share it."""
    blinding: int | None = field(default=None, repr=False)
    """A Pedersen chain's blinding factor (the round's opening sums it)."""
    signature: bytes | None = field(default=None, repr=False)
    """The miner's signature of its envelope, once it verified."""
    copy_of: Verdict | None = field(default=None, repr=False)
    """The copy group's member that entered the mean (set aside copies only)."""
    salt: bytes | None = None
    """Commit-reveal: the salt of the seal this reveal opened (recorded)."""

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def record(self) -> SubmissionRecord:
        """The verdict as the block records it."""
        return SubmissionRecord(
            node=self.node,
            miner=self.miner,
            commitment=self.commitment,
            examples=self.examples,
            reason=self.reason,
            quality_ppm=self.quality_ppm,
            reward=self.reward,
            clipped=self.clipped,
            score=self.score,
            reputation_ppm=self.reputation_ppm,
            local_dp=self.local_dp,
            salt=self.salt,
        )


def check_signed(
    state: ChainState, sub: SubmissionRef, sealed: SealSet | None = None
) -> tuple[Verdict, Envelope | None]:
    """The checks before the update, in a fixed order; the first failure decides.

    A pure function of the state and the submission: the signature, then the
    envelope against the round's ticket, then (commit-reveal rounds, ``sealed``)
    against its node's seal. Returns the verdict and, if all of these passed, the
    envelope (the update is checked next, :func:`check_update`).
    """
    verdict = Verdict(sub.node, None, None, 0)
    envelope, verdict.reason = _signed_envelope(sub)
    if envelope is None:
        return verdict, None
    verdict.miner = envelope.miner
    verdict.signature = sub.signature
    verdict.commitment = envelope.commitment
    verdict.examples = envelope.num_examples
    verdict.local_dp = envelope.local_dp
    verdict.reason = _ticket_reason(state, envelope, sub.node)
    if verdict.reason is None and sealed is not None:
        assert sub.envelope is not None  # the envelope verified
        verdict.reason = reveal_reason(
            sealed, sub.node, envelope.miner, sub.envelope, sub.salt
        )
        verdict.salt = sub.salt if verdict.reason is None else None
    return verdict, envelope if verdict.reason is None else None


def _signed_envelope(sub: SubmissionRef) -> tuple[Envelope | None, Reason | None]:
    """The envelope if its signature verifies, else why not."""
    if not sub.envelope or not sub.signature:
        return None, Reason.MISSING_SIGNATURE
    try:
        envelope = verify_envelope(sub.envelope, sub.signature)
    except EnvelopeError:
        return None, Reason.MALFORMED_ENVELOPE
    if envelope is None:
        return None, Reason.BAD_SIGNATURE
    return envelope, None


def _ticket_reason(state: ChainState, envelope: Envelope, node: int) -> Reason | None:
    """Whether the signed envelope is for this chain, round, node and model."""
    params = state.params
    checks = (
        (
            params.registration == "allow-list" and envelope.miner not in state.miners,
            Reason.UNKNOWN_MINER,
        ),
        (envelope.run != params.run, Reason.WRONG_RUN),
        (envelope.round != state.height + 1, Reason.WRONG_ROUND),
        (envelope.nonce != state.nonce(), Reason.WRONG_NONCE),
        (envelope.node != node, Reason.WRONG_NODE),
        (envelope.base_digest != state.model_digest, Reason.BASE_DIGEST_MISMATCH),
        (not 1 <= envelope.num_examples <= MAX_EXAMPLES, Reason.BAD_NUM_EXAMPLES),
    )
    return next((reason for failed, reason in checks if failed), None)


def check_update(
    state: ChainState,
    envelope: Envelope,
    sub: SubmissionRef,
    payloads: Mapping[bytes, bytes],
    verdict: Verdict,
    row: IntArray | None,
) -> Reason | None:
    """The last check: the update against the model's layout, bound and commitment.

    An update that passes is written to ``row`` (int64, the layout's size;
    ``None`` where its payload is missing), which becomes the verdict's ``flat``:
    the round holds each update once, in one matrix.
    """
    payload = payloads.get(sub.payload) if sub.payload is not None else None
    if (
        payload is None
        or row is None
        or hashlib.sha256(payload).digest() != sub.payload
    ):
        return Reason.MALFORMED_UPDATE
    blinding = None
    if state.params.commitment == CommitmentKind.PEDERSEN:
        opening = split_opening(payload)
        if opening is None:
            return Reason.MALFORMED_UPDATE
        payload, blinding = opening
    layout = state.layout
    arrays = layout.parse(payload)
    if arrays is None:
        return _layout_reason(state, payload)
    status, flat = layout.quantize(arrays, state.params.norm_bound_units)
    if status == "non-finite":
        return Reason.NON_FINITE
    if flat is None or not norm_within(flat, state.params.norm_bound_units):
        return Reason.NORM_ABOVE_BOUND
    # Exact: every element is an integer with |x| <= norm bound <= 2**31 - 1.
    digest = layout.commitment(flat.astype(np.int32))
    if blinding is None:
        if digest != envelope.commitment:
            return Reason.COMMITMENT_MISMATCH
    elif len(envelope.commitment) != CommitmentKind.PEDERSEN.size:
        return Reason.COMMITMENT_MISMATCH
    row[:] = flat  # exact: integers below 2**31
    verdict.flat, verdict.update_digest, verdict.blinding = row, digest, blinding
    return None


def check_openings(
    state: ChainState, checked: Sequence[tuple[Verdict, SubmissionRef]]
) -> None:
    """On a Pedersen chain, reject the updates whose commitment does not open.

    Every other check has passed for the pending ones; their openings are checked
    together (:func:`~pot_flower.protocol.commitments.failed_openings`), and a
    wrong one becomes ``commitment-mismatch`` like a wrong hash.
    """
    pending = [(v, s) for v, s in checked if v.accepted and v.blinding is not None]
    if not pending:
        return
    commitments = [v.commitment or b"" for v, _ in pending]
    key = openings_key(
        state.model_digest, commitments, [s.payload or b"" for _, s in pending]
    )
    vectors = [v.flat for v, _ in pending if v.flat is not None]
    assert len(vectors) == len(pending)  # every pending update passed its checks
    blindings = [v.blinding or 0 for v, _ in pending]
    for i in failed_openings(commitments, vectors, blindings, key):
        v = pending[i][0]
        v.reason, v.flat, v.blinding = Reason.COMMITMENT_MISMATCH, None, None


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
