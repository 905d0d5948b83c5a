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
bisect only when the batch fails, to name the miners whose opening is wrong.
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
from pot_flower.zk.signatures import SIGNATURE_SIZE

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
    it fails, bisection to name the failures (:func:`_failed`). A pure function
    of its inputs, which ``key`` (a digest of them: the commitments and payload
    digests) names: validators sharing a process (the embedded committee) check a
    round once, as they draw its noise once.
    """
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    failed: tuple[int, ...] = ()
    if commitments:
        failed = _failed(list(commitments), list(vectors), list(blindings))
    with _CACHE_LOCK:
        _CACHE[key] = failed
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return failed


SINGLE_BELOW = 5
"""Subsets this small are checked one commitment at a time: one commitment of
the model costs about a fifth of a batched check (measured)."""


def _failed(
    commitments: list[bytes], vectors: list[IntArray], blindings: list[int]
) -> tuple[int, ...]:
    """The failing positions: cheap per-item checks, one batch, then bisection.

    A blinding out of range or a commitment that is not a canonical G1 point
    fails alone, without a multi-scalar multiplication; a false opening among
    honest ones costs about ``2 log2(n)`` batched checks to find (not ``n``
    commitments), so one miner cannot make every validator recommit the round.
    """
    from pot_flower.zk.pedersen import (
        ORDER,
        CommitmentError,
        fast_backend,
        verify_openings,
    )

    fast = fast_backend()
    bad: set[int] = set()
    for i, (c, r) in enumerate(zip(commitments, blindings, strict=True)):
        try:
            fast.parse_point(c)
        except CommitmentError:
            bad.add(i)
        if not 0 <= r < ORDER:
            bad.add(i)

    def batch_ok(items: list[int]) -> bool:
        try:
            return verify_openings(
                [commitments[i] for i in items],
                [vectors[i] for i in items],
                [blindings[i] for i in items],
                fast,
            )
        except CommitmentError:
            return False

    def opens(i: int) -> bool:
        try:
            return fast.commit(vectors[i], blindings[i]) == commitments[i]
        except CommitmentError:
            return False

    def bisect(items: list[int], known_bad: bool) -> list[int]:
        if len(items) < SINGLE_BELOW:
            return [i for i in items if not opens(i)]
        if not known_bad and batch_ok(items):
            return []
        half = len(items) // 2
        left = bisect(items[:half], False)
        # The whole failed: if the left half is clean, the right one is not.
        return left + bisect(items[half:], not left)

    rest = [i for i in range(len(commitments)) if i not in bad]
    if rest and not batch_ok(rest):
        bad.update(bisect(rest, True))
    return tuple(sorted(bad))


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
class CopyMember:
    """A copy set aside: its record index and, for an exact copy, ``r - r_first``."""

    index: int
    delta: int | None


@dataclass(frozen=True)
class CopyGroup:
    """A copy group whose ``counted`` member entered the mean once for all."""

    counted: int
    members: tuple[CopyMember, ...]


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
    signatures : tuple[bytes, ...]
        Each counted miner's Ed25519 signature of its envelope, which the block's
        fields rebuild: the commitment and the claim are the miner's own.
    copies : tuple[CopyGroup, ...]
        The copy groups whose counted member entered the mean.

    ``sum(w_i C_i) == Commit(total, blinding)`` then proves the sum is the
    weighted sum of what those miners committed to, without any one update.

    """

    weights: tuple[tuple[int, int], ...]
    total: bytes
    blinding: int
    signatures: tuple[bytes, ...]
    copies: tuple[CopyGroup, ...] = ()

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
        if len(self.signatures) != len(self.weights) or any(
            not isinstance(s, bytes) or len(s) != SIGNATURE_SIZE
            for s in self.signatures
        ):
            raise ValueError("one 64-byte envelope signature per weight")
        seen: set[int] = set()
        for group in self.copies:
            indices = [group.counted, *(m.index for m in group.members)]
            if not group.members or any(
                type(i) is not int or i < 0 or i in seen for i in indices
            ):
                raise ValueError("copy groups are disjoint, with members")
            seen.update(indices)
            for m in group.members:
                if m.delta is not None and not (
                    type(m.delta) is int and 0 <= m.delta < 2**256
                ):
                    raise ValueError("a blinding difference is a 32-byte integer")

    @property
    def vector(self) -> IntArray:
        return np.frombuffer(self.total, dtype="<i8").astype(np.int64)

    @property
    def largest_index(self) -> int:
        indices = [i for i, _ in self.weights]
        for group in self.copies:
            indices += [group.counted, *(m.index for m in group.members)]
        return max(indices)

    def to_value(self) -> dict[str, Decoded]:
        return {
            "blinding": self.blinding.to_bytes(BLINDING_SIZE, "big"),
            "copies": [
                [
                    g.counted,
                    [
                        [
                            m.index,
                            b""
                            if m.delta is None
                            else m.delta.to_bytes(BLINDING_SIZE, "big"),
                        ]
                        for m in g.members
                    ],
                ]
                for g in self.copies
            ],
            "signatures": list(self.signatures),
            "total": self.total,
            "weights": [[i, w] for i, w in self.weights],
        }

    @classmethod
    def from_value(cls, value: object) -> LinearOpening:
        keys = {"blinding", "copies", "signatures", "total", "weights"}
        if not isinstance(value, dict) or set(value) != keys:
            raise ValueError(f"a linear opening is a dictionary of {sorted(keys)}")
        blinding, total, weights = value["blinding"], value["total"], value["weights"]
        signatures, copies = value["signatures"], value["copies"]
        if not isinstance(blinding, bytes) or len(blinding) != BLINDING_SIZE:
            raise ValueError("the opening's blinding is 32 bytes")
        if not isinstance(total, bytes):
            raise ValueError("the opening's total is bytes")
        if not isinstance(weights, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in weights
        ):
            raise ValueError("the opening's weights are [index, weight] pairs")
        if not isinstance(signatures, list):
            raise ValueError("the opening's signatures are a list")
        return cls(
            tuple((p[0], p[1]) for p in weights),
            total,
            int.from_bytes(blinding, "big"),
            tuple(signatures),
            _copies(copies),
        )


def _copies(value: object) -> tuple[CopyGroup, ...]:
    if not isinstance(value, list):
        raise ValueError("the opening's copies are a list")
    groups = []
    for group in value:
        if not (isinstance(group, list) and len(group) == 2):
            raise ValueError("a copy group is [counted, members]")
        counted, members = group
        if not isinstance(members, list):
            raise ValueError("a copy group's members are a list")
        parsed = []
        for m in members:
            if not (
                isinstance(m, list) and len(m) == 2 and isinstance(m[1], bytes)
            ) or len(m[1]) not in (0, BLINDING_SIZE):
                raise ValueError("a copy member is [index, delta or empty]")
            delta = int.from_bytes(m[1], "big") if m[1] else None
            parsed.append(CopyMember(m[0], delta))
        groups.append(CopyGroup(counted, tuple(parsed)))
    return tuple(groups)
