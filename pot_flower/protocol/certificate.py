"""Block hashes and their committee certificates.

A block is a canonical dictionary (its *body*); its hash is SHA-256 over the body
bytes and its ``previous`` field holds the hash before it, so the ledger is a hash
chain from the genesis block. A block is certified when a quorum of the committee's
validators signed its hash; the certificate lives beside the block, not inside it.

Two kinds, fixed per chain at genesis (:class:`CertificateKind`):

- ``ed25519`` (the default): the list of every voter's Ed25519 signature, 64 bytes
  and one verification per signer.
- ``bls``: one 96-byte BLS aggregate (the proof-of-possession ciphersuite) and a
  bitmap of its signers, checked with one FastAggregateVerify whatever the
  committee's size. Each validator's BLS key is derived from its Ed25519 key (one
  key file); genesis records the keys with their proofs of possession (no rogue
  key can forge an aggregate) and their Ed25519 endorsements (a verifier who pins
  the Ed25519 keys has pinned the BLS keys too), checked when the committee is
  formed (:class:`BlsKey`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from pot_flower.encoding import (
    Decoded,
    DecodeError,
    decode,
    encode,
    signature_pairs,
)
from pot_flower.zk.bls import PUBLIC_KEY_SIZE as BLS_KEY_SIZE
from pot_flower.zk.bls import (
    SIGNATURE_SIZE as BLS_SIGNATURE_SIZE,
)
from pot_flower.zk.bls import (
    BlsError,
    bitmap_signers,
    derive_secret_key,
    fast_bls,
    signer_bitmap,
)
from pot_flower.zk.signatures import SIGNATURE_SIZE, SigningKey, VerifyKey, tagged

BLOCK_DOMAIN = b"pot/block/v1"
GENESIS_PREVIOUS = b"\x00" * 32
BLS_KEY_INFO = b"pot-flower/block-certificate/bls/v1"
MAX_BITMAP_BYTES = 128
"""Longest signer bitmap parsed (1,024 validators): a stranger's cannot be huge."""
"""KeyGen's ``key_info``: a validator's BLS key is its Ed25519 seed's, for this use."""


class CertificateKind(StrEnum):
    """How a chain's blocks are certified (fixed at genesis)."""

    ED25519 = "ed25519"
    BLS = "bls"


def block_hash(body: bytes) -> bytes:
    """The hash that chains blocks and that validators sign."""
    return hashlib.sha256(body).digest()


def block_message(height: int, digest: bytes) -> bytes:
    """What a vote for block ``height`` with hash ``digest`` signs (both kinds)."""
    return encode([height, digest])


BLS_KEY_DOMAIN = b"pot/bls-key/v1"
"""What a validator's Ed25519 key signs to endorse its BLS key."""


@lru_cache(maxsize=64)
def _bls_secret(seed: bytes) -> int:
    return derive_secret_key(seed, BLS_KEY_INFO)


@dataclass(frozen=True)
class BlsKey:
    """A validator's BLS public key, as genesis and committee files record it.

    Parameters
    ----------
    key : bytes
        The 48-byte public key (G1).
    proof : bytes
        Its proof of possession (PopProve): no rogue key enters an aggregate.
    endorsement : bytes
        The validator's Ed25519 signature of ``key``: whoever trusts the Ed25519
        keys (a pinned committee) knows the BLS keys are the validators' own.

    """

    key: bytes
    proof: bytes
    endorsement: bytes

    @classmethod
    def of(cls, signing_key: SigningKey) -> BlsKey:
        """The BLS key ``signing_key``'s holder derives, proven and endorsed."""
        secret = _bls_secret(signing_key.to_bytes())
        bls = fast_bls()
        key = bls.public_key(secret)
        return cls(key, bls.pop_prove(secret), signing_key.sign(BLS_KEY_DOMAIN, key))

    def problem(self, validator: bytes) -> str | None:
        """Why this is not a usable BLS key of Ed25519 key ``validator`` (or None)."""
        if not VerifyKey(validator).verify(BLS_KEY_DOMAIN, self.key, self.endorsement):
            return "is not endorsed by the validator's Ed25519 key"
        if not possession_proven(self.key, self.proof):
            return "has no valid proof of possession (a rogue key is refused)"
        return None

    def to_value(self) -> list[Decoded]:
        return [self.key, self.proof, self.endorsement]

    @classmethod
    def from_value(cls, value: Decoded) -> BlsKey:
        """``[key, proof, endorsement]`` of their sizes (``ValueError`` if not)."""
        sizes = (BLS_KEY_SIZE, BLS_SIGNATURE_SIZE, SIGNATURE_SIZE)
        if not (
            isinstance(value, list)
            and len(value) == 3
            and all(
                isinstance(v, bytes) and len(v) == n
                for v, n in zip(value, sizes, strict=True)
            )
        ):
            raise ValueError("a BLS key is [key (48 B), proof (96 B), endorsement]")
        return cls(*value)  # type: ignore[arg-type]


def check_bls_keys(validators: Sequence[bytes], keys: Sequence[BlsKey]) -> None:
    """Refuse BLS keys that are missing, repeated, unendorsed or unproven.

    An aggregate is checked against the sum of its signers' keys: one key without
    a valid proof (a rogue key ``x*P - sum(others)``) would forge every
    certificate, and one not endorsed by its validator would be someone else's.
    """
    if len(keys) != len(validators):
        raise ValueError(f"{len(keys)} BLS keys for {len(validators)} validators")
    if len({k.key for k in keys}) != len(keys):
        raise ValueError("BLS keys are repeated")
    for index, (validator, key) in enumerate(zip(validators, keys, strict=True)):
        problem = key.problem(validator)
        if problem is not None:
            raise ValueError(f"validator {index}'s BLS key {problem}")


@lru_cache(maxsize=4096)
def possession_proven(public_key: bytes, proof: bytes) -> bool:
    """PopVerify: whether ``proof`` shows its maker holds ``public_key``'s secret."""
    return fast_bls().pop_verify(public_key, proof)


def sign_block(
    key: SigningKey,
    height: int,
    digest: bytes,
    kind: CertificateKind = CertificateKind.ED25519,
) -> bytes:
    """A validator's vote for block ``height`` with hash ``digest``."""
    if kind == CertificateKind.BLS:
        return _bls_vote(key.to_bytes(), height, digest)
    return key.sign(BLOCK_DOMAIN, block_message(height, digest))


@lru_cache(maxsize=256)
def _bls_vote(seed: bytes, height: int, digest: bytes) -> bytes:
    """A BLS vote, remembered: ~2 ms each, and peers ask for a block's again."""
    message = tagged(BLOCK_DOMAIN, block_message(height, digest))
    return fast_bls().sign(_bls_secret(seed), message)


class CertificateError(ValueError):
    """A certificate that does not certify what it claims."""


@dataclass(frozen=True)
class Certifiers:
    """Who certifies a chain's blocks: its kind, keys by validator index, quorum.

    ``keys`` are Ed25519 public keys for ``ed25519`` chains and BLS public keys
    (their proofs of possession already checked, by
    :class:`~pot_flower.protocol.params.Params`) for ``bls`` chains.
    """

    kind: CertificateKind
    keys: tuple[bytes, ...]
    quorum: int

    def vote_valid(self, index: int, height: int, digest: bytes, vote: bytes) -> bool:
        """Whether ``vote`` is validator ``index``'s signature of the block."""
        if not 0 <= index < len(self.keys):
            return False
        message = block_message(height, digest)
        if self.kind == CertificateKind.BLS:
            return fast_bls().verify(
                self.keys[index], tagged(BLOCK_DOMAIN, message), vote
            )
        return VerifyKey(self.keys[index]).verify(BLOCK_DOMAIN, message, vote)

    def assemble(
        self, height: int, digest: bytes, votes: Mapping[int, bytes]
    ) -> Certificate:
        """The certificate from every vote (at least a quorum), by validator index.

        Every validator that executed and voted signs it, so the next block pays
        each of them, not only the first quorum. BLS votes are aggregated: check
        each with :meth:`vote_valid` first, one bad vote spoils the aggregate.
        """
        if len(votes) < self.quorum:
            raise CertificateError(f"{len(votes)} votes, quorum is {self.quorum}")
        ordered = tuple(sorted(votes.items()))
        if self.kind == CertificateKind.ED25519:
            return Certificate(height, digest, ordered)
        try:
            aggregate = fast_bls().aggregate([vote for _, vote in ordered])
            bitmap = signer_bitmap([i for i, _ in ordered], len(self.keys))
        except BlsError as exc:
            raise CertificateError(f"votes cannot be aggregated: {exc}") from exc
        return Certificate(height, digest, (), aggregate, bitmap)


@dataclass(frozen=True)
class Certificate:
    """A quorum of validators' signatures over one block hash.

    Parameters
    ----------
    height : int
        The block's height (its round; 0 for genesis).
    block : bytes
        The block hash.
    signatures : tuple[tuple[int, bytes], ...]
        ``(validator index, Ed25519 signature)``, sorted by index; empty for BLS.
    aggregate : bytes | None
        The BLS aggregate of the signers' votes (``bls`` chains), else None.
    bitmap : bytes
        The BLS signers, bit ``i % 8`` of byte ``i // 8`` for validator ``i``.

    """

    height: int
    block: bytes
    signatures: tuple[tuple[int, bytes], ...]
    aggregate: bytes | None = None
    bitmap: bytes = b""

    @property
    def kind(self) -> CertificateKind:
        if self.aggregate is None:
            return CertificateKind.ED25519
        return CertificateKind.BLS

    @property
    def signers(self) -> list[int]:
        if self.aggregate is not None:  # bits past the committee fail verify()
            return bitmap_signers(self.bitmap, 8 * len(self.bitmap))
        return [i for i, _ in self.signatures]

    def to_bytes(self) -> bytes:
        if self.aggregate is not None:
            return encode(
                {
                    "aggregate": self.aggregate,
                    "block": self.block,
                    "height": self.height,
                    "signers": self.bitmap,
                }
            )
        return encode(
            {
                "block": self.block,
                "height": self.height,
                "signatures": [[i, s] for i, s in self.signatures],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Certificate:
        try:
            value = decode(data)
        except DecodeError as exc:
            raise CertificateError(f"not canonical: {exc}") from exc
        return cls.from_value(value)

    @classmethod
    def from_value(cls, value: Decoded) -> Certificate:
        if isinstance(value, dict) and "aggregate" in value:
            return cls._bls_from_value(value)
        if not (
            isinstance(value, dict)
            and set(value) == {"block", "height", "signatures"}
            and isinstance(value["block"], bytes)
            and isinstance(value["height"], int)
            and isinstance(value["signatures"], list)
        ):
            raise CertificateError("certificate must be {block, height, signatures}")
        signatures = signature_pairs(value["signatures"])
        if signatures is None:
            raise CertificateError("signature entry must be [index, signature]")
        return cls(value["height"], value["block"], tuple(signatures))

    @classmethod
    def _bls_from_value(cls, value: dict[str, Decoded]) -> Certificate:
        if not (
            set(value) == {"aggregate", "block", "height", "signers"}
            and isinstance(value["aggregate"], bytes)
            and len(value["aggregate"]) == BLS_SIGNATURE_SIZE
            and isinstance(value["block"], bytes)
            and type(value["height"]) is int
            and isinstance(value["signers"], bytes)
            and len(value["signers"]) <= MAX_BITMAP_BYTES
        ):
            raise CertificateError(
                "a BLS certificate must be {aggregate (96 bytes), block, height, "
                f"signers (a bitmap of at most {MAX_BITMAP_BYTES} bytes)}}"
            )
        return cls(
            value["height"], value["block"], (), value["aggregate"], value["signers"]
        )

    def verify(self, certifiers: Certifiers) -> None:
        """Raise :class:`CertificateError` unless a quorum validly signed the block."""
        if self.kind != certifiers.kind:
            raise CertificateError(
                f"a {self.kind.value} certificate on a chain certified by "
                f"{certifiers.kind.value}"
            )
        if self.aggregate is not None:
            self._verify_aggregate(self.aggregate, certifiers)
            return
        indices = [i for i, _ in self.signatures]
        if indices != sorted(set(indices)):
            raise CertificateError("signers must be distinct and sorted")
        if len(indices) < certifiers.quorum:
            raise CertificateError(
                f"{len(indices)} signatures, quorum is {certifiers.quorum}"
            )
        for index, signature in self.signatures:
            if not 0 <= index < len(certifiers.keys):
                raise CertificateError(f"signer {index} is not in the committee")
            if not certifiers.vote_valid(index, self.height, self.block, signature):
                raise CertificateError(f"signature of validator {index} is invalid")

    def _verify_aggregate(self, aggregate: bytes, certifiers: Certifiers) -> None:
        try:
            signers = bitmap_signers(self.bitmap, len(certifiers.keys))
        except BlsError as exc:
            raise CertificateError(f"signer bitmap: {exc}") from exc
        if len(signers) < certifiers.quorum:
            raise CertificateError(
                f"{len(signers)} signers, quorum is {certifiers.quorum}"
            )
        message = tagged(BLOCK_DOMAIN, block_message(self.height, self.block))
        keys = [certifiers.keys[i] for i in signers]
        if not fast_bls().fast_aggregate_verify(keys, message, aggregate):
            raise CertificateError("the BLS aggregate does not verify for its signers")
