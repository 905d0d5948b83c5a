"""BLS signatures, proof-of-possession ciphersuite, for aggregated certificates.

``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (draft-irtf-cfrg-bls-signature):
public keys in G1 (48 bytes), signatures in G2 (96 bytes). Many validators
signing one block hash aggregate into one 96-byte signature, checked with
FastAggregateVerify against the sum of their keys: one pairing check whatever the
committee's size. Summing keys is only safe when every key comes with a proof of
possession (PopVerify) checked when the committee is formed; otherwise a rogue
key ``pk' = x*P - sum(others)`` forges the whole committee's signature.

Secret keys are exchanged as 32 big-endian bytes; :func:`derive_secret_key` is
the draft's KeyGen (HKDF, py-ecc's, for both backends: arkworks' own differs). Two
backends give byte-identical keys, signatures and aggregates
(tested): :class:`ReferenceBls` (py-ecc's ``G2ProofOfPossession``, pure Python,
~0.2 s a signature) and :class:`FastBls` (py-arkworks-bls12381, ~1 ms), which
performs the draft's KeyValidate and subgroup checks itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

SECRET_KEY_SIZE = 32
PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
SIGNATURE_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"


class BlsError(ValueError):
    """A malformed key or signature, or an operation that cannot be done."""


def derive_secret_key(ikm: bytes, info: bytes) -> int:
    """The draft's KeyGen: a secret key from >= 32 bytes of keying material.

    ``info`` separates keys derived from one seed for different purposes.
    """
    if len(ikm) < 32:
        raise BlsError("KeyGen needs at least 32 bytes of keying material")
    from py_ecc.bls import G2ProofOfPossession

    return int(G2ProofOfPossession.KeyGen(ikm, info))


def secret_key(data: bytes) -> int:
    """A secret key from its 32 big-endian bytes (in [1, q))."""
    if len(data) != SECRET_KEY_SIZE:
        raise BlsError(f"a BLS secret key is {SECRET_KEY_SIZE} bytes")
    value = int.from_bytes(data, "big")
    if not 0 < value < ORDER:
        raise BlsError("a BLS secret key must lie in [1, q)")
    return value


class Bls(Protocol):
    """The ciphersuite's operations (bytes in, bytes or bool out)."""

    name: str

    def public_key(self, sk: int) -> bytes: ...

    def sign(self, sk: int, message: bytes) -> bytes: ...

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> bool: ...

    def pop_prove(self, sk: int) -> bytes: ...

    def pop_verify(self, pk: bytes, proof: bytes) -> bool: ...

    def aggregate(self, signatures: Sequence[bytes]) -> bytes: ...

    def fast_aggregate_verify(
        self, pks: Sequence[bytes], message: bytes, signature: bytes
    ) -> bool: ...


class ReferenceBls:
    """py-ecc's ``G2ProofOfPossession``: the reference."""

    name = "py-ecc"

    def __init__(self) -> None:
        from py_ecc.bls import G2ProofOfPossession

        self._pop: Any = G2ProofOfPossession  # typed for eth2 NewTypes

    def public_key(self, sk: int) -> bytes:
        return bytes(self._pop.SkToPk(sk))

    def sign(self, sk: int, message: bytes) -> bytes:
        return bytes(self._pop.Sign(sk, message))

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> bool:
        return bool(self._pop.Verify(pk, message, signature))

    def pop_prove(self, sk: int) -> bytes:
        return bytes(self._pop.PopProve(sk))

    def pop_verify(self, pk: bytes, proof: bytes) -> bool:
        return bool(self._pop.PopVerify(pk, proof))

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise BlsError("nothing to aggregate")
        try:
            return bytes(self._pop.Aggregate(list(signatures)))
        except (ValueError, AssertionError) as exc:
            raise BlsError(f"not a G2 point: {exc}") from exc

    def fast_aggregate_verify(
        self, pks: Sequence[bytes], message: bytes, signature: bytes
    ) -> bool:
        return bool(self._pop.FastAggregateVerify(list(pks), message, signature))


class FastBls:
    """py-arkworks-bls12381, with the draft's checks done here."""

    name = "arkworks"

    def __init__(self) -> None:
        import py_arkworks_bls12381 as ark

        self._ark = ark
        self._g1 = ark.G1Point()

    def _scalar(self, sk: int) -> Any:
        if not 0 < sk < ORDER:
            raise BlsError("a BLS secret key must lie in [1, q)")
        return self._ark.Scalar.from_be_bytes(sk.to_bytes(32, "big"))

    def _key(self, pk: bytes) -> Any | None:
        """KeyValidate, remembered: committee keys are checked once, not per vote."""
        return self._validated(pk)

    @lru_cache(maxsize=1024)  # noqa: B019 - one instance per process
    def _validated(self, pk: bytes) -> Any | None:
        """KeyValidate: a G1 point in the subgroup, not the identity."""
        if len(pk) != PUBLIC_KEY_SIZE:
            return None
        try:
            point = self._ark.G1Point.from_compressed_bytes(pk)
        except Exception:  # the binding's own error types
            return None
        if point == self._ark.G1Point.identity() or not point.is_in_subgroup():
            return None
        # One encoding per key: arkworks accepts an infinity flag with stray bits.
        return point if bytes(point.to_compressed_bytes()) == pk else None

    def _signature(self, signature: bytes) -> Any | None:
        if len(signature) != SIGNATURE_SIZE:
            return None
        try:
            point = self._ark.G2Point.from_compressed_bytes(signature)
        except Exception:
            return None
        canonical = bytes(point.to_compressed_bytes()) == signature
        return point if canonical and point.is_in_subgroup() else None

    def _hash(self, message: bytes, dst: bytes) -> Any:
        return self._ark.G2Point.hash_to_curve(message, dst)

    def _core_verify(self, pk: Any, message: bytes, sig: bytes, dst: bytes) -> bool:
        point = self._signature(sig)
        if point is None:
            return False
        q = self._hash(message, dst)
        return bool(self._ark.GT.pairing_check([pk, -self._g1], [q, point]))

    def public_key(self, sk: int) -> bytes:
        return bytes((self._g1 * self._scalar(sk)).to_compressed_bytes())

    def sign(self, sk: int, message: bytes) -> bytes:
        point = self._hash(message, SIGNATURE_DST) * self._scalar(sk)
        return bytes(point.to_compressed_bytes())

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> bool:
        key = self._key(pk)
        return key is not None and self._core_verify(
            key, message, signature, SIGNATURE_DST
        )

    def pop_prove(self, sk: int) -> bytes:
        pk = self.public_key(sk)
        return bytes((self._hash(pk, POP_DST) * self._scalar(sk)).to_compressed_bytes())

    def pop_verify(self, pk: bytes, proof: bytes) -> bool:
        key = self._key(pk)
        return key is not None and self._core_verify(key, pk, proof, POP_DST)

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise BlsError("nothing to aggregate")
        total = self._ark.G2Point.identity()
        for s in signatures:
            point = self._signature(s)
            if point is None:
                raise BlsError("not a G2 signature in the subgroup")
            total = total + point
        return bytes(total.to_compressed_bytes())

    def fast_aggregate_verify(
        self, pks: Sequence[bytes], message: bytes, signature: bytes
    ) -> bool:
        if not pks:
            return False
        total = self._ark.G1Point.identity()
        for pk in pks:
            key = self._key(pk)
            if key is None:
                return False
            total = total + key
        if total == self._ark.G1Point.identity():  # as py-ecc: KeyValidate(sum)
            return False
        return self._core_verify(total, message, signature, SIGNATURE_DST)


@lru_cache(maxsize=1)
def fast_bls() -> FastBls:
    """The process's fast backend."""
    return FastBls()


@lru_cache(maxsize=1)
def reference_bls() -> ReferenceBls:
    """The process's reference backend."""
    return ReferenceBls()


def signer_bitmap(signers: Sequence[int], committee: int) -> bytes:
    """Signer indices as a bitmap, bit ``i % 8`` of byte ``i // 8`` for index ``i``."""
    out = bytearray((committee + 7) // 8)
    for i in signers:
        if not 0 <= i < committee:
            raise BlsError(f"signer {i} is not in a committee of {committee}")
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def bitmap_signers(bitmap: bytes, committee: int) -> list[int]:
    """The indices a bitmap names (``BlsError`` for bits past the committee)."""
    if len(bitmap) != (committee + 7) // 8:
        raise BlsError("the bitmap's length does not fit the committee")
    signers = [i for i in range(8 * len(bitmap)) if bitmap[i // 8] >> (i % 8) & 1]
    if signers and signers[-1] >= committee:
        raise BlsError("the bitmap names a signer past the committee")
    return signers
