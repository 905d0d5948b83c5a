"""Block hashes and their committee certificates.

A block is a canonical dictionary (its *body*); its hash is SHA-256 over the body
bytes and its ``previous`` field holds the hash before it, so the ledger is a hash
chain from the genesis block. A block is certified when a quorum of the committee's
validators signed its hash; the certificate lives beside the block, not inside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pot_flower.encoding import (
    Decoded,
    DecodeError,
    decode,
    encode,
    signature_pairs,
)
from pot_flower.zk.signatures import SigningKey, VerifyKey

BLOCK_DOMAIN = b"pot/block/v1"
GENESIS_PREVIOUS = b"\x00" * 32


def block_hash(body: bytes) -> bytes:
    """The hash that chains blocks and that validators sign."""
    return hashlib.sha256(body).digest()


def sign_block(key: SigningKey, height: int, digest: bytes) -> bytes:
    """A validator's vote for block ``height`` with hash ``digest``."""
    return key.sign(BLOCK_DOMAIN, encode([height, digest]))


class CertificateError(ValueError):
    """A certificate that does not certify what it claims."""


@dataclass(frozen=True)
class Certificate:
    """Signatures of a quorum of validators over one block hash.

    Parameters
    ----------
    height : int
        The block's height (its round; 0 for genesis).
    block : bytes
        The block hash.
    signatures : tuple[tuple[int, bytes], ...]
        ``(validator index, Ed25519 signature)``, sorted by index.

    """

    height: int
    block: bytes
    signatures: tuple[tuple[int, bytes], ...]

    @property
    def signers(self) -> list[int]:
        return [i for i, _ in self.signatures]

    def to_bytes(self) -> bytes:
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

    def verify(self, validators: Sequence[bytes], quorum: int) -> None:
        """Raise :class:`CertificateError` unless a quorum validly signed the block."""
        indices = [i for i, _ in self.signatures]
        if indices != sorted(set(indices)):
            raise CertificateError("signers must be distinct and sorted")
        if len(indices) < quorum:
            raise CertificateError(f"{len(indices)} signatures, quorum is {quorum}")
        message = encode([self.height, self.block])
        for index, signature in self.signatures:
            if not 0 <= index < len(validators):
                raise CertificateError(f"signer {index} is not in the committee")
            if not VerifyKey(validators[index]).verify(
                BLOCK_DOMAIN, message, signature
            ):
                raise CertificateError(f"signature of validator {index} is invalid")


def assemble_certificate(
    height: int, digest: bytes, votes: dict[int, bytes], quorum: int
) -> Certificate:
    """The certificate from every vote (at least ``quorum``), by validator index.

    Every validator that executed and voted signs it, so the next block pays each
    of them, not only the first quorum.
    """
    if len(votes) < quorum:
        raise CertificateError(f"{len(votes)} votes, quorum is {quorum}")
    return Certificate(height, digest, tuple(sorted(votes.items())))
