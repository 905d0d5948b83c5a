"""Ed25519 signatures (through ``cryptography``) with domain separation.

Every signed byte string is prefixed with a domain tag, so a signature made for one
purpose (a PBFT vote, say) can never be replayed as another (a miner's envelope).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def _tagged(domain: bytes, message: bytes) -> bytes:
    return b"pot-flower/" + domain + b"\x00" + message


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PUBLIC_KEY_SIZE:
            raise ValueError(f"Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes")
        # Parse once so a bad key fails here, not at the first verify.
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.raw))

    def verify(self, domain: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is valid for ``message`` under ``domain``."""
        if len(signature) != SIGNATURE_SIZE:
            return False
        key: Ed25519PublicKey = self._key  # type: ignore[attr-defined]
        try:
            key.verify(signature, _tagged(domain, message))
        except InvalidSignature:
            return False
        return True

    def fingerprint(self) -> str:
        """Short hex id for logs and tables."""
        return hashlib.sha256(self.raw).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verify_key = VerifyKey(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """Create a fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Derive a key deterministically (tests and simulations only)."""
        return cls(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()))

    @classmethod
    def from_bytes(cls, raw: bytes) -> SigningKey:
        """Load a 32-byte raw private key."""
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def to_bytes(self) -> bytes:
        """The 32-byte raw private key."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, domain: bytes, message: bytes) -> bytes:
        """Sign ``message`` under ``domain``."""
        return self._key.sign(_tagged(domain, message))
