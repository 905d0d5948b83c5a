"""The miner's signed envelope: what a submission claims, bound to one round.

The envelope is small and canonical; the update itself travels as arrays beside it
and is bound to the envelope by ``commitment`` (a SHA-256 hash commitment to the
fixed-point update, not a hiding one). Miners sign the envelope with Ed25519.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.zk.signatures import PUBLIC_KEY_SIZE, SigningKey, VerifyKey

ENVELOPE_DOMAIN = b"pot/envelope/v1"
COMMITMENT_DOMAIN = b"pot/update-commitment/v1"
NONCE_DOMAIN = b"pot/nonce/v1"


class EnvelopeError(ValueError):
    """Bytes that are not a well-formed envelope."""


MAX_LOCAL_EPSILON_MICRO = 10**12
"""Largest self-reported local epsilon (1e6), in millionths."""
LOCAL_DELTA_SCALE = 10**12


@dataclass(frozen=True)
class LocalDp:
    """A miner's own report of the local DP it trained with (self-reported).

    Epsilon in millionths (rounded up) and delta in units of 1e-12, as the
    miner's accountant (Opacus's, with :class:`pot_flower.clients.DpSgd`) gave
    them; signed with the envelope, recorded in the block, checked by nobody: the
    committee cannot see how a miner trained.
    """

    epsilon_micro: int
    delta_e12: int

    def __post_init__(self) -> None:
        for v in (self.epsilon_micro, self.delta_e12):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError("local DP figures must be integers")
        if not 0 < self.epsilon_micro <= MAX_LOCAL_EPSILON_MICRO:
            raise ValueError("local epsilon must be in (0, 1e6]")
        if not 0 < self.delta_e12 < LOCAL_DELTA_SCALE:
            raise ValueError("local delta must be in (0, 1)")

    @classmethod
    def of(cls, epsilon: float, delta: float) -> LocalDp:
        """From an accountant's floats (epsilon rounded up to millionths)."""
        if not (math.isfinite(epsilon) and math.isfinite(delta)):
            raise ValueError("local DP figures must be finite")
        return cls(math.ceil(epsilon * 1e6), round(delta * LOCAL_DELTA_SCALE))

    @property
    def epsilon(self) -> float:
        return self.epsilon_micro / 1e6

    @property
    def delta(self) -> float:
        return self.delta_e12 / LOCAL_DELTA_SCALE

    def to_value(self) -> list[Decoded]:
        return [self.epsilon_micro, self.delta_e12]

    @classmethod
    def from_value(cls, value: Decoded) -> LocalDp:
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("local-dp must be [epsilon-micro, delta-e12]")
        return cls(value[0], value[1])  # type: ignore[arg-type]


@dataclass(frozen=True)
class Envelope:
    """What a miner signs for one round.

    Parameters
    ----------
    run : int
        Flower run id.
    round : int
        Server round the update answers.
    node : int
        Flower node id of the miner's SuperNode.
    miner : bytes
        The miner's Ed25519 public key (32 bytes): its identity.
    base_digest : bytes
        Digest of the global model the miner trained from.
    nonce : bytes
        The round's nonce, as received.
    commitment : bytes
        :func:`update_commitment` of the fixed-point update (32 bytes) or, on a
        Pedersen chain, its Pedersen commitment (48 bytes; see
        :mod:`pot_flower.protocol.commitments`).
    num_examples : int
        Training examples the miner claims it used (the aggregation weight).
    local_dp : LocalDp | None
        The local DP the miner reports it trained with (``local-dp``, present
        only when reported).

    """

    run: int
    round: int
    node: int
    miner: bytes
    base_digest: bytes
    nonce: bytes
    commitment: bytes
    num_examples: int
    local_dp: LocalDp | None = None

    def to_bytes(self) -> bytes:
        return encode(
            {
                **(
                    {"local-dp": self.local_dp.to_value()}
                    if self.local_dp is not None
                    else {}
                ),
                "base-digest": self.base_digest,
                "commitment": self.commitment,
                "miner": self.miner,
                "node": self.node,
                "nonce": self.nonce,
                "num-examples": self.num_examples,
                "round": self.round,
                "run": self.run,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        try:
            value = decode(data)
        except DecodeError as exc:
            raise EnvelopeError(f"not canonical: {exc}") from exc
        fields = {
            "base-digest": bytes,
            "commitment": bytes,
            "miner": bytes,
            "node": int,
            "nonce": bytes,
            "num-examples": int,
            "round": int,
            "run": int,
        }
        if not isinstance(value, dict) or set(value) - {"local-dp"} != set(fields):
            raise EnvelopeError("envelope must have exactly the fields " + str(fields))
        local_dp = None
        if "local-dp" in value:
            try:
                local_dp = LocalDp.from_value(value["local-dp"])
            except ValueError as exc:
                raise EnvelopeError(str(exc)) from exc
        for name, kind in fields.items():
            item = value[name]
            if not isinstance(item, kind) or isinstance(item, bool):
                raise EnvelopeError(f"{name} must be {kind.__name__}")
        if len(value["base-digest"]) != 32:  # type: ignore[arg-type]
            raise EnvelopeError("base-digest must be 32 bytes")
        if len(value["commitment"]) not in (32, 48):  # type: ignore[arg-type]
            raise EnvelopeError("commitment must be a hash (32 bytes) or a point (48)")
        if len(value["miner"]) != PUBLIC_KEY_SIZE:  # type: ignore[arg-type]
            raise EnvelopeError("miner must be a 32-byte public key")
        return cls(
            run=value["run"],  # type: ignore[arg-type]
            round=value["round"],  # type: ignore[arg-type]
            node=value["node"],  # type: ignore[arg-type]
            miner=value["miner"],  # type: ignore[arg-type]
            base_digest=value["base-digest"],  # type: ignore[arg-type]
            nonce=value["nonce"],  # type: ignore[arg-type]
            commitment=value["commitment"],  # type: ignore[arg-type]
            num_examples=value["num-examples"],  # type: ignore[arg-type]
            local_dp=local_dp,
        )

    def sign(self, key: SigningKey) -> bytes:
        """The miner's signature over the canonical envelope."""
        if key.verify_key.raw != self.miner:
            raise ValueError("signing key does not match the envelope's miner")
        return key.sign(ENVELOPE_DOMAIN, self.to_bytes())


def verify_envelope(envelope_bytes: bytes, signature: bytes) -> Envelope | None:
    """The envelope if ``signature`` is its miner's valid signature, else None."""
    envelope = Envelope.from_bytes(envelope_bytes)
    try:
        key = VerifyKey(envelope.miner)
    except ValueError:
        return None
    if not key.verify(ENVELOPE_DOMAIN, envelope_bytes, signature):
        return None
    return envelope


def update_commitment(units: Mapping[str, NDArray[np.int64]]) -> bytes:
    """Hash commitment to a fixed-point update (names, shapes, values as int32).

    Every element fits 32 bits (|units| <= 2**31 - 1, see :mod:`fixedpoint`).
    """
    h = hashlib.sha256(COMMITMENT_DOMAIN)
    for name, array in units.items():
        a = np.asarray(array, dtype="<i4", order="C")
        h.update(encode([name, list(a.shape), a.nbytes]))
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.digest()


def round_nonce(run: int, round_: int, previous_block: bytes) -> bytes:
    """Round ``round_``'s nonce: fresh per round and bound to the certified chain."""
    return hashlib.sha256(
        NONCE_DOMAIN + encode([run, round_, previous_block])
    ).digest()[:16]
