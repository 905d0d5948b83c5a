"""The Flower records PoT adds to messages, and their codecs (no flwr import).

Both sides import this module: the strategy writes a ticket into each train
message and reads the signed reply; ``pot_mod`` on the miner reads the ticket and
writes the reply. A record is read as a plain mapping, so anything a stranger puts
there decodes to ``None`` rather than raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pot_flower.protocol import npy
from pot_flower.protocol.commitments import CommitmentKind
from pot_flower.protocol.model import Arrays, canonical
from pot_flower.protocol.sealing import Seal

NUMPY_STYPE = "numpy.ndarray"
"""Flower's serialization type of ``.npy`` arrays (``flwr...constant.SType.NUMPY``)."""
TICKET_RECORD = "pot.ticket"
"""ConfigRecord of a train message: the round's ticket."""
SUBMISSION_RECORD = "pot"
"""ConfigRecord of a train reply: the signed envelope."""
REFUSED = "refused"
"""A reply's ``"pot"`` record key saying why the miner sealed or revealed nothing."""
KEYSTORE_KEY = "pot-keystore"
"""Run-config key naming the miners' keystore directory."""
MINER_NAME_KEY = "pot-miner-name"
"""Run-config key: how a node's key is named ("node-id" or "partition-id")."""
FINGERPRINT_KEY = "pot-committee-fingerprint"
"""Node- or run-config key: the committee a commit-reveal miner reveals to."""
DEMO_ATTACK_KEY = "pot-demo-attack"
"""Run-config key: the attack the demo's Byzantine nodes run (client side)."""
DEMO_BYZANTINE_KEY = "pot-demo-byzantine"
"""Run-config key: how many nodes (the lowest partition ids) run the demo attack."""
CLIENT_KEYS = (
    KEYSTORE_KEY,
    MINER_NAME_KEY,
    DEMO_ATTACK_KEY,
    DEMO_BYZANTINE_KEY,
    FINGERPRINT_KEY,
)
"""``pot-*`` run-config keys the client side reads (the strategy accepts them)."""

ConfigValue = (
    int
    | float
    | str
    | bytes
    | bool
    | list[int]
    | list[float]
    | list[str]
    | list[bytes]
    | list[bool]
)
"""What a Flower ConfigRecord may hold."""


@dataclass(frozen=True)
class TicketRecord:
    """What a miner signs against: run, round, nonce and the base model's digest."""

    run: int
    round: int
    nonce: bytes
    base_digest: bytes
    commitment: CommitmentKind = CommitmentKind.HASH
    """How the chain binds updates (absent from the record when ``hash``)."""
    committee: tuple[bytes, ...] = ()
    """Commit-reveal chains: the validators' keys, which close the seals."""
    quorum: int = 0
    """Commit-reveal chains: how many of them must close the seals."""
    reveal: bytes | None = None
    """The reveal step of a commit-reveal round: the encoded closed seals."""

    @property
    def commit_reveal(self) -> bool:
        return bool(self.committee)

    def to_value(self) -> dict[str, ConfigValue]:
        value: dict[str, ConfigValue] = {
            "run": self.run,
            "round": self.round,
            "nonce": self.nonce,
            "base-digest": self.base_digest,
        }
        if self.commitment != CommitmentKind.HASH:
            value["commitment"] = self.commitment.value
        if self.committee:
            value["committee"] = list(self.committee)
            value["quorum"] = self.quorum
        if self.reveal is not None:
            value["reveal"] = self.reveal
        return value

    @classmethod
    def from_value(cls, value: Mapping[str, object]) -> TicketRecord | None:
        """The ticket in a ConfigRecord, or ``None`` if it is not one."""
        run, round_, nonce = value.get("run"), value.get("round"), value.get("nonce")
        base = value.get("base-digest")  # informative: miners sign what they got
        kind = value.get("commitment", CommitmentKind.HASH.value)
        committee = value.get("committee", [])
        quorum, reveal = value.get("quorum", 0), value.get("reveal")
        if not (
            isinstance(run, int)
            and isinstance(round_, int)
            and isinstance(nonce, bytes)
            and isinstance(kind, str)
            and kind in {k.value for k in CommitmentKind}
            and isinstance(committee, list)
            and all(isinstance(k, bytes) for k in committee)
            and type(quorum) is int
            and (reveal is None or isinstance(reveal, bytes))
        ):
            return None
        return cls(
            run,
            round_,
            nonce,
            base if isinstance(base, bytes) else b"",
            CommitmentKind(kind),
            tuple(committee),
            quorum,
            reveal,
        )


@dataclass(frozen=True)
class SignedReply:
    """The envelope and signature a miner adds to its train reply."""

    envelope: bytes | None
    signature: bytes | None
    blinding: bytes | None = None
    """A Pedersen commitment's blinding factor (32 bytes), for the validators."""
    salt: bytes | None = None
    """The revealed salt of the envelope's seal (commit-reveal rounds)."""

    def to_value(self) -> dict[str, ConfigValue]:
        value = {
            "envelope": self.envelope,
            "signature": self.signature,
            "blinding": self.blinding,
            "salt": self.salt,
        }
        return {k: v for k, v in value.items() if v is not None}

    @classmethod
    def from_value(cls, value: Mapping[str, object] | None) -> SignedReply:
        """What a reply's record holds (``None`` for each part that is not bytes)."""
        if value is None:
            return cls(None, None)
        envelope, signature = value.get("envelope"), value.get("signature")
        blinding, salt = value.get("blinding"), value.get("salt")
        return cls(
            envelope if isinstance(envelope, bytes) else None,
            signature if isinstance(signature, bytes) else None,
            blinding if isinstance(blinding, bytes) else None,
            salt if isinstance(salt, bytes) else None,
        )


def seal_record(seal: Seal) -> dict[str, ConfigValue]:
    """A commit reply's ``"pot"`` record: the miner's signed seal, no envelope."""
    return {"miner": seal.miner, "seal": seal.seal, "seal-signature": seal.signature}


def seal_from_record(node: int, value: Mapping[str, object] | None) -> Seal | None:
    """The seal a commit reply from ``node`` carries, or None if it has none."""
    if value is None:
        return None
    miner, seal = value.get("miner"), value.get("seal")
    signature = value.get("seal-signature")
    if not all(isinstance(v, bytes) for v in (miner, seal, signature)):
        return None
    return Seal(node, miner, seal, signature)  # type: ignore[arg-type]


class _HasNumpy(Protocol):
    def numpy(self) -> np.ndarray: ...


class ArrayItems(Protocol):
    """What :func:`arrays_of` needs of Flower's ``ArrayRecord``."""

    def items(self) -> Iterable[tuple[str, _HasNumpy]]: ...


def arrays_of(record: ArrayItems) -> Arrays:
    """An ArrayRecord as canonical numpy arrays, in the record's key order."""
    return {name: canonical(_numpy(array)) for name, array in record.items()}


def _numpy(array: _HasNumpy) -> np.ndarray:
    """``array.numpy()``, without re-parsing a header seen before (:mod:`.npy`)."""
    data = getattr(array, "data", None)
    if getattr(array, "stype", None) == NUMPY_STYPE and isinstance(data, bytes):
        loaded = npy.load(data)
        if loaded is not None:
            return loaded
    return array.numpy()


def in_order(arrays: Arrays, keys: list[str]) -> Arrays:
    """``arrays`` in the model's key order when they hold exactly its keys.

    Key order carries no meaning in a reply; fixing it here (miner and coordinator
    alike) keeps a reordered but complete reply from being rejected as wrong-keys.
    """
    if set(arrays) == set(keys) and len(arrays) == len(keys):
        return {k: arrays[k] for k in keys}
    return arrays
