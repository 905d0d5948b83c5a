"""The miner's side: turn a training result into a signed submission."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from pot_flower.protocol.commitments import (
    CommitmentKind,
    new_blinding,
    pedersen_commitment,
    with_opening,
)
from pot_flower.protocol.envelope import Envelope, LocalDp, update_commitment
from pot_flower.protocol.fixedpoint import MAX_UNITS, IntArray, quantize_difference
from pot_flower.protocol.model import canonical, encode_arrays, model_digest
from pot_flower.zk.signatures import SigningKey


class SubmissionError(ValueError):
    """The training result cannot be committed to (e.g. NaN, wrong layout)."""


@dataclass(frozen=True)
class Submission:
    """What travels from miner to committee for one round."""

    envelope: Envelope
    envelope_bytes: bytes
    signature: bytes
    returned: Mapping[str, NDArray[np.generic]] = field(repr=False)
    """The returned arrays (canonical dtypes), as committed to."""
    blinding: int | None = field(default=None, repr=False)
    """The Pedersen commitment's blinding factor (Pedersen chains); it travels
    to the validators with the arrays (:func:`~.commitments.with_opening`)."""

    @cached_property
    def payload(self) -> bytes:
        """Canonical bytes of the returned arrays, encoded when first asked for.

        ``pot_mod`` never asks: the arrays travel in Flower's own record.
        """
        return encode_arrays(self.returned)

    @property
    def validator_payload(self) -> bytes:
        """What validators receive: the arrays, and the opening if Pedersen."""
        if self.blinding is None:
            return self.payload
        return with_opening(self.payload, self.blinding)


def quantize_update(
    returned: Mapping[str, NDArray[np.generic]],
    received: Mapping[str, NDArray[np.generic]],
) -> dict[str, IntArray]:
    """The fixed-point update ``returned - received``, as validators will compute it."""
    if list(returned) != list(received):
        raise SubmissionError("returned arrays have other names than the received ones")
    units: dict[str, IntArray] = {}
    for name, base in received.items():
        array = returned[name]
        if array.shape != base.shape or array.dtype != base.dtype:
            raise SubmissionError(f"{name}: shape or dtype changed during training")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise SubmissionError(f"{name}: non-finite values")
        q = quantize_difference(array, base, MAX_UNITS)
        if q is None:
            raise SubmissionError(f"{name}: update beyond the fixed-point range")
        units[name] = q.astype(np.int64)
    return units


def _envelope(
    key: SigningKey,
    received: Mapping[str, NDArray[np.generic]],
    commitment: bytes,
    *,
    run: int,
    round_: int,
    node: int,
    nonce: bytes,
    num_examples: int,
    local_dp: LocalDp | None,
) -> Envelope:
    return Envelope(
        run=run,
        round=round_,
        node=node,
        miner=key.verify_key.raw,
        base_digest=model_digest(received),
        nonce=nonce,
        commitment=commitment,
        num_examples=num_examples,
        local_dp=local_dp,
    )


def build_submission(
    key: SigningKey,
    *,
    run: int,
    round_: int,
    node: int,
    nonce: bytes,
    received: Mapping[str, NDArray[np.generic]],
    returned: Mapping[str, NDArray[np.generic]],
    num_examples: int,
    local_dp: LocalDp | None = None,
    commitment: CommitmentKind = CommitmentKind.HASH,
) -> Submission:
    """Quantize, commit and sign one round's update (``commitment``: the chain's)."""
    received = {k: canonical(v) for k, v in received.items()}
    returned = {k: canonical(v) for k, v in returned.items()}
    units = quantize_update(returned, received)
    blinding = None
    if commitment == CommitmentKind.PEDERSEN:
        blinding = new_blinding()
        flat = np.concatenate([u.ravel() for u in units.values()])
        committed = pedersen_commitment(flat, blinding)
    else:
        committed = update_commitment(units)
    envelope = _envelope(
        key,
        received,
        committed,
        run=run,
        round_=round_,
        node=node,
        nonce=nonce,
        num_examples=num_examples,
        local_dp=local_dp,
    )
    return Submission(
        envelope,
        envelope.to_bytes(),
        envelope.sign(key),
        returned,
        blinding,
    )


def sign_without_update(
    key: SigningKey,
    *,
    run: int,
    round_: int,
    node: int,
    nonce: bytes,
    received: Mapping[str, NDArray[np.generic]],
    num_examples: int,
    local_dp: LocalDp | None = None,
) -> tuple[bytes, bytes]:
    """``(envelope, signature)`` for a result that cannot be committed to.

    The commitment is all zeros; validators then record the reason the update
    fails (non-finite, wrong shape...) instead of a missing submission.
    """
    base = {k: canonical(v) for k, v in received.items()}
    envelope = _envelope(
        key,
        base,
        bytes(32),
        run=run,
        round_=round_,
        node=node,
        nonce=nonce,
        num_examples=num_examples,
        local_dp=local_dp,
    )
    return envelope.to_bytes(), envelope.sign(key)
