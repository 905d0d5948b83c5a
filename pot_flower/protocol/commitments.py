"""How a chain binds each update to its signed envelope: the commitment kinds.

- ``hash`` (the default): SHA-256 of the fixed-point update (names, shapes,
  values as int32; :func:`~pot_flower.protocol.envelope.update_commitment`).
  Binding, not hiding: whoever holds the base model can test a guessed update.
- ``pedersen``: a Pedersen vector commitment over BLS12-381 G1 to the update's
  fixed-point units in flat order (:mod:`pot_flower.zk.pedersen`), 48 bytes.
  Binding and hiding, and additively homomorphic, which is what lets an outsider
  check a weighted sum of committed updates without seeing them.

Under ``pedersen`` the miner's blinding factor travels to the validators with the
update, never in the envelope or the ledger: the payload a validator receives is
the canonical arrays followed by the blinding factor, 32 big-endian bytes
(:func:`with_opening`, :func:`split_opening`). Validators check every opening of a
round in one batched multi-scalar multiplication (:func:`failed_openings`), and
one by one only when the batch fails, to name the miners whose opening is wrong.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from pot_flower.protocol.fixedpoint import IntArray

BLINDING_SIZE = 32
HASH_COMMITMENT_SIZE = 32
PEDERSEN_COMMITMENT_SIZE = 48


class CommitmentKind(StrEnum):
    """``pot-commitment``."""

    HASH = "hash"
    PEDERSEN = "pedersen"

    @property
    def size(self) -> int:
        """The commitment's length in an envelope and a block."""
        if self == CommitmentKind.PEDERSEN:
            return PEDERSEN_COMMITMENT_SIZE
        return HASH_COMMITMENT_SIZE


def new_blinding() -> int:
    """A uniform blinding factor from the OS's randomness."""
    from pot_flower.zk.pedersen import ORDER

    return secrets.randbelow(ORDER)


def pedersen_commitment(units: IntArray, blinding: int) -> bytes:
    """``Commit(units, blinding)`` (the fast backend; the reference is identical)."""
    from pot_flower.zk.pedersen import fast_backend

    return fast_backend().commit(np.asarray(units, dtype=np.int64), blinding)


def with_opening(arrays: bytes, blinding: int) -> bytes:
    """A Pedersen chain's payload: the arrays' canonical bytes, then the blinding."""
    return arrays + blinding.to_bytes(BLINDING_SIZE, "big")


def split_opening(payload: bytes) -> tuple[bytes, int] | None:
    """``(arrays, blinding)`` of a Pedersen chain's payload (``None`` if too short).

    Whether the blinding is a scalar, and the arrays a model, is checked by the
    caller (a bad one rejects the submission with a reason).
    """
    if len(payload) <= BLINDING_SIZE:
        return None
    return payload[:-BLINDING_SIZE], int.from_bytes(payload[-BLINDING_SIZE:], "big")


_CACHE: OrderedDict[bytes, tuple[int, ...]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def failed_openings(
    commitments: Sequence[bytes],
    vectors: Sequence[IntArray],
    blindings: Sequence[int],
    key: bytes,
) -> tuple[int, ...]:
    """The positions whose commitment does not open to its vector and blinding.

    One batched check (:func:`~pot_flower.zk.pedersen.verify_openings`); only if
    it fails, each opening alone. A pure function of its inputs, which ``key``
    (a digest of them: the commitments and payload digests) names: validators
    sharing a process (the embedded committee) check a round once, as they draw
    its noise once.
    """
    from pot_flower.zk.pedersen import CommitmentError, fast_backend, verify_openings

    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    failed: tuple[int, ...] = ()
    if commitments:
        fast = fast_backend()
        try:
            batch_ok = verify_openings(commitments, vectors, blindings, fast)
        except CommitmentError:
            batch_ok = False
        if not batch_ok:
            failed = tuple(
                i
                for i, (c, v, r) in enumerate(
                    zip(commitments, vectors, blindings, strict=True)
                )
                if not _opens(fast, c, v, r)
            )
    with _CACHE_LOCK:
        _CACHE[key] = failed
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return failed


def _opens(fast: object, commitment: bytes, vector: IntArray, blinding: int) -> bool:
    from pot_flower.zk.pedersen import CommitmentError, FastBackend

    assert isinstance(fast, FastBackend)
    try:
        return fast.commit(vector, blinding) == commitment
    except CommitmentError:
        return False


def openings_key(
    base: bytes, commitments: Sequence[bytes], payloads: Sequence[bytes]
) -> bytes:
    """The cache key of a round's openings.

    The base model's digest (updates are payloads minus it), the commitments and
    the payload digests.
    """
    h = hashlib.sha256(b"pot-flower/openings/v1" + base)
    for c, p in zip(commitments, payloads, strict=True):
        h.update(len(c).to_bytes(2, "big") + c + p)
    return h.digest()
