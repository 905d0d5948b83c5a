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
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from pot_flower.encoding import Decoded
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


def update_arrays(payload: bytes, kind: CommitmentKind) -> bytes | None:
    """The arrays' bytes of a payload (without a Pedersen chain's opening)."""
    if kind != CommitmentKind.PEDERSEN:
        return payload
    opening = split_opening(payload)
    return None if opening is None else opening[0]


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


# -------------------------------------------------------------- the opening
def linear_auditable(kind: CommitmentKind, linear_mean: bool, private: bool) -> bool:
    """Whether a chain's blocks record a :class:`LinearOpening`.

    Pedersen updates combined by the plain weighted mean (no pre-aggregator)
    without central DP: there the next model is a function of ``sum(w_i m_i)``
    alone, which the commitments open to; rules that clip, select or sort
    updates, and DP noise, are not linear in the committed updates.
    """
    return kind == CommitmentKind.PEDERSEN and linear_mean and not private


@dataclass(frozen=True)
class LinearOpening:
    """What a block records so that anyone can open the weighted sum of updates.

    Parameters
    ----------
    weights : tuple[tuple[int, int], ...]
        ``(record index, weight)`` of every update that entered the mean, in
        record order; the weights are the capped claimed examples.
    total : bytes
        ``sum(w_i m_i)`` over those updates, int64 little-endian in flat order.
    blinding : int
        ``sum(w_i r_i) mod q``: the sum's blinding factor.

    ``sum(w_i C_i) == Commit(total, blinding)`` then proves the sum is the
    weighted sum of what those miners committed to, without any one update.

    """

    weights: tuple[tuple[int, int], ...]
    total: bytes
    blinding: int

    def __post_init__(self) -> None:
        last = -1
        for pair in self.weights:
            index, weight = pair
            if not (type(index) is int and type(weight) is int):
                raise ValueError("weights are [index, weight] integer pairs")
            if index <= last or weight < 1:
                raise ValueError("weights must be positive, by ascending index")
            last = index
        if not self.weights or len(self.total) % 8:
            raise ValueError("an opening needs weights and an int64 total")
        if type(self.blinding) is not int or not 0 <= self.blinding < 2**256:
            raise ValueError("the blinding factor must be a 32-byte integer")

    @property
    def vector(self) -> IntArray:
        return np.frombuffer(self.total, dtype="<i8").astype(np.int64)

    def to_value(self) -> dict[str, Decoded]:
        return {
            "blinding": self.blinding.to_bytes(BLINDING_SIZE, "big"),
            "total": self.total,
            "weights": [[i, w] for i, w in self.weights],
        }

    @classmethod
    def from_value(cls, value: object) -> LinearOpening:
        keys = {"blinding", "total", "weights"}
        if not isinstance(value, dict) or set(value) != keys:
            raise ValueError(f"a linear opening is a dictionary of {sorted(keys)}")
        blinding, total, weights = value["blinding"], value["total"], value["weights"]
        if not isinstance(blinding, bytes) or len(blinding) != BLINDING_SIZE:
            raise ValueError("the opening's blinding is 32 bytes")
        if not isinstance(total, bytes):
            raise ValueError("the opening's total is bytes")
        if not isinstance(weights, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in weights
        ):
            raise ValueError("the opening's weights are [index, weight] pairs")
        return cls(
            tuple((p[0], p[1]) for p in weights),
            total,
            int.from_bytes(blinding, "big"),
        )
