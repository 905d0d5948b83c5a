"""Commit-reveal rounds: miners seal their envelopes, the committee closes the set.

A round of a commit-reveal chain has two steps:

1. **Commit.** Each miner trains, signs its envelope as usual, and sends only a
   *seal* of it, ``SHA-256(domain || salt || envelope)`` with a fresh 32-byte salt
   (hiding: nobody can test a guessed update against it), signed with its key
   together with run, round and node (:class:`Seal`).
2. **Close.** The committee closes the round's seals (:class:`SealSet`): every
   honest validator signs the first set it is asked to close for a round and no
   other, so a quorum (2f + 1 of 3f + 1) can sign only one set per round, as two
   quorums share an honest validator. The set and the signatures are
   :class:`ClosedSeals`.
3. **Reveal.** Miners check the quorum's signatures and that their seal is in the
   set, then reveal envelope, salt and update. A reveal counts only if its node
   sealed, its envelope hashes (with the salt) to that seal and names the sealing
   miner (:func:`reveal_reason`); a seal never revealed is recorded as such.

Nobody can copy an update before the set closes, as nobody sees one; after it
closes, nobody can join. Copying a seal does not help: its reveal must name the
miner that signed the seal. So ``copied-update`` in such a round means miners
shared an update before committing: they colluded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pot_flower.encoding import Decoded, encode, signature_pairs
from pot_flower.protocol.params import MAX_SUBMISSIONS
from pot_flower.protocol.reasons import Reason
from pot_flower.zk.signatures import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    VerifyKey,
)

SALT_SIZE = 32
SEAL_SIZE = 32
SEAL_DOMAIN = b"pot/seal/v1"
"""What a miner signs: its seal for a run, round and node."""
SEAL_SET_DOMAIN = b"pot/seal-set/v1"
"""What a validator signs: the round's closed set of seals."""
_HASH_DOMAIN = b"pot-flower/seal/v1\x00"
MAX_SEALS = MAX_SUBMISSIONS // 2
"""Most seals closed in a round: each is opened or recorded, within one block."""


def seal_of(salt: bytes, envelope: bytes) -> bytes:
    """The seal of ``envelope`` under ``salt`` (hiding while the salt is secret)."""
    return hashlib.sha256(_HASH_DOMAIN + salt + envelope).digest()


def _seal_message(run: int, round_: int, node: int, seal: bytes) -> bytes:
    return encode([run, round_, node, seal])


@dataclass(frozen=True)
class Seal:
    """A miner's signed seal for one round.

    Parameters
    ----------
    node : int
        The Flower node that sent it (its envelope must name the same node).
    miner : bytes
        The miner's public key; a reveal must be this miner's envelope.
    seal : bytes
        :func:`seal_of` the miner's envelope.
    signature : bytes
        The miner's signature of ``[run, round, node, seal]``.

    """

    node: int
    miner: bytes
    seal: bytes
    signature: bytes

    @classmethod
    def signed(
        cls, key: SigningKey, *, run: int, round_: int, node: int, seal: bytes
    ) -> Seal:
        signature = key.sign(SEAL_DOMAIN, _seal_message(run, round_, node, seal))
        return cls(node, key.verify_key.raw, seal, signature)

    def verifies(self, run: int, round_: int) -> bool:
        """Whether the miner signed this seal for ``run``, ``round_`` and its node."""
        if len(self.miner) != PUBLIC_KEY_SIZE or len(self.seal) != SEAL_SIZE:
            return False
        message = _seal_message(run, round_, self.node, self.seal)
        return VerifyKey(self.miner).verify(SEAL_DOMAIN, message, self.signature)

    def to_value(self) -> list[Decoded]:
        return [self.node, self.miner, self.seal, self.signature]

    @classmethod
    def from_value(cls, value: Decoded) -> Seal:
        """``[node, miner, seal, signature]`` (``ValueError`` if not)."""
        if not (
            isinstance(value, list)
            and len(value) == 4
            and type(value[0]) is int
            and all(isinstance(v, bytes) for v in value[1:])
        ):
            raise ValueError("a seal is [node, miner, seal, signature]")
        node, miner, seal, signature = value
        return cls(node, miner, seal, signature)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SealSet:
    """The seals of one round that the committee closes, one per node, by node."""

    run: int
    round: int
    seals: tuple[Seal, ...]

    @classmethod
    def close(cls, run: int, round_: int, candidates: Iterable[Seal]) -> SealSet:
        """The canonical set: valid seals only, by node; a node sealing twice, none.

        A node sends one reply per message, so two seals for one node mean a
        coordinator forging or replaying; neither is kept.
        """
        by_node: dict[int, list[Seal]] = {}
        for seal in candidates:
            if seal.verifies(run, round_):
                by_node.setdefault(seal.node, []).append(seal)
        kept = [seals[0] for _, seals in sorted(by_node.items()) if len(seals) == 1]
        return cls(run, round_, tuple(kept[:MAX_SEALS]))

    def digest(self) -> bytes:
        """What the validators sign."""
        return hashlib.sha256(encode(self.to_value())).digest()

    def of_node(self, node: int) -> Seal | None:
        return next((s for s in self.seals if s.node == node), None)

    def problem(self) -> str | None:
        """Why this is not a set honest validators would close (or None)."""
        nodes = [s.node for s in self.seals]
        if nodes != sorted(set(nodes)):
            return "seals are not one per node, by node"
        if len(self.seals) > MAX_SEALS:
            return f"more than {MAX_SEALS} seals"
        for seal in self.seals:
            if not seal.verifies(self.run, self.round):
                return f"node {seal.node}'s seal is not its miner's"
        return None

    def to_value(self) -> list[Decoded]:
        return [self.run, self.round, [s.to_value() for s in self.seals]]

    @classmethod
    def from_value(cls, value: Decoded) -> SealSet:
        if not (
            isinstance(value, list)
            and len(value) == 3
            and type(value[0]) is int
            and type(value[1]) is int
            and isinstance(value[2], list)
            and len(value[2]) <= MAX_SEALS
        ):
            raise ValueError("a seal set is [run, round, [seal, ...]]")
        seals = tuple(Seal.from_value(s) for s in value[2])
        return cls(value[0], value[1], seals)


def intersecting(n: int, quorum: int) -> bool:
    """Whether any two quorums of ``n`` validators share an honest one.

    They share ``2 * quorum - n``; with up to f = (n - 1) // 3 Byzantine, f + 1
    shared means one honest: then no two seal sets of a round are both closed.
    """
    return 1 <= quorum <= n and 2 * quorum - n >= (n - 1) // 3 + 1


def sign_seal_set(key: SigningKey, seals: SealSet) -> bytes:
    """A validator's signature closing ``seals`` (sign one set per round only)."""
    return key.sign(SEAL_SET_DOMAIN, seals.digest())


@dataclass(frozen=True)
class ClosedSeals:
    """A round's seal set and the validators' signatures that closed it."""

    seals: SealSet
    signatures: tuple[tuple[int, bytes], ...]

    def problem(self, validators: Sequence[bytes], quorum: int) -> str | None:
        """Why a quorum of ``validators`` did not close this set (or None).

        Also checks the set itself (:meth:`SealSet.problem`), as validators do.
        """
        return self.closed_by(validators, quorum) or self.seals.problem()

    def closed_by(self, validators: Sequence[bytes], quorum: int) -> str | None:
        """Why a quorum of ``validators`` did not sign this set closed (or None).

        What a miner checks before it reveals: the set's own seals are the
        committee's to check.
        """
        indices = [i for i, _ in self.signatures]
        if indices != sorted(set(indices)):
            return "closing signers must be distinct and sorted"
        if len(indices) < quorum:
            return f"{len(indices)} validators closed the seals, quorum is {quorum}"
        digest = self.seals.digest()
        for index, signature in self.signatures:
            if not 0 <= index < len(validators) or len(signature) != SIGNATURE_SIZE:
                return f"closing signer {index} is not in the committee"
            if not VerifyKey(validators[index]).verify(
                SEAL_SET_DOMAIN, digest, signature
            ):
                return f"validator {index} did not close these seals"
        return None

    def to_value(self) -> dict[str, Decoded]:
        return {
            "seals": self.seals.to_value(),
            "signatures": [[i, s] for i, s in self.signatures],
        }

    @classmethod
    def from_value(cls, value: Decoded) -> ClosedSeals:
        """The encoded set and signatures (``ValueError`` if malformed)."""
        if not isinstance(value, dict) or set(value) != {"seals", "signatures"}:
            raise ValueError("closed seals are {seals, signatures}")
        pairs = signature_pairs(value["signatures"])
        if pairs is None:
            raise ValueError("a closing signature is [index, signature]")
        return cls(SealSet.from_value(value["seals"]), tuple(pairs))


def reveal_reason(
    closed: SealSet, node: int, miner: bytes, envelope: bytes, salt: bytes | None
) -> Reason | None:
    """Why a verified envelope from ``node`` is not the reveal of its seal (or None)."""
    seal = closed.of_node(node)
    if seal is None:
        return Reason.NOT_SEALED
    if (
        salt is None
        or len(salt) != SALT_SIZE
        or seal.miner != miner
        or seal_of(salt, envelope) != seal.seal
    ):
        return Reason.SEAL_MISMATCH
    return None
