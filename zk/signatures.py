"""Ed25519 signatures (libsodium, through PyNaCl) with domain separation.

Every signed byte string is prefixed with a domain tag, so a signature made for one
purpose (a PBFT vote, say) can never be replayed as another (a miner's envelope).
libsodium verifies in about half the time OpenSSL takes here (45 vs 94 µs), and a
committee spends most of its CPU verifying votes. Keys are RFC 8032 seeds, so key
files and signatures are the same whichever library made them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey as _NaclSigningKey
from nacl.signing import VerifyKey as _NaclVerifyKey

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
        object.__setattr__(self, "_key", _NaclVerifyKey(self.raw))

    def verify(self, domain: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is valid for ``message`` under ``domain``."""
        if len(signature) != SIGNATURE_SIZE:
            return False
        key: _NaclVerifyKey = self._key  # type: ignore[attr-defined]
        try:
            key.verify(_tagged(domain, message), signature)
        except (BadSignatureError, CryptoError):  # CryptoError: a malformed key
            return False
        return True

    def fingerprint(self) -> str:
        """Short hex id for logs and tables."""
        return hashlib.sha256(self.raw).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key (its 32-byte RFC 8032 seed)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("Ed25519 private key must be 32 bytes")
        self._key = _NaclSigningKey(seed)
        self.verify_key = VerifyKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        """Create a fresh random key."""
        return cls(os.urandom(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Derive a key deterministically (tests and simulations only)."""
        return cls(hashlib.sha256(seed).digest())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SigningKey:
        """Load a 32-byte raw private key."""
        return cls(raw)

    def to_bytes(self) -> bytes:
        """The 32-byte raw private key."""
        return bytes(self._key)

    def sign(self, domain: bytes, message: bytes) -> bytes:
        """Sign ``message`` under ``domain``."""
        return self._key.sign(_tagged(domain, message)).signature
