"""One submission's verdict: every check in a fixed order; the first failure decides."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.block import SubmissionRecord
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.envelope import EnvelopeError, verify_envelope
from pot_flower.protocol.fixedpoint import FloatArray, IntArray, norm_within
from pot_flower.protocol.model import ModelFormatError, decode_arrays
from pot_flower.protocol.params import MAX_EXAMPLES
from pot_flower.protocol.reasons import Reason


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
    units: IntArray | None = field(default=None, repr=False)  # flat order
    flat: FloatArray | None = field(default=None, repr=False)

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
        )


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
