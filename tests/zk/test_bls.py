"""BLS (PoP ciphersuite): byte-identical backends, aggregation, rogue keys."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("py_ecc")
pytest.importorskip("py_arkworks_bls12381")

from pot_flower.zk.bls import (
    ORDER,
    BlsError,
    bitmap_signers,
    fast_bls,
    reference_bls,
    secret_key,
    signer_bitmap,
)

FAST, REF = fast_bls(), reference_bls()
KEYS = [secret_key(bytes([i + 1]) * 32) for i in range(4)]
MESSAGE = b"block hash " + bytes(21)


@settings(max_examples=4, deadline=None)
@given(sk=st.integers(1, ORDER - 1), message=st.binary(max_size=64))
def test_keys_signatures_and_proofs_are_byte_identical(sk: int, message: bytes) -> None:
    assert FAST.public_key(sk) == REF.public_key(sk)
    assert FAST.sign(sk, message) == REF.sign(sk, message)
    assert FAST.pop_prove(sk) == REF.pop_prove(sk)


def test_each_backend_verifies_the_other_s_signatures() -> None:
    sk = KEYS[0]
    pk = FAST.public_key(sk)
    for signer, checker in ((FAST, REF), (REF, FAST)):
        sig = signer.sign(sk, MESSAGE)
        assert checker.verify(pk, MESSAGE, sig)
        assert not checker.verify(pk, MESSAGE + b"!", sig)
        assert checker.pop_verify(pk, signer.pop_prove(sk))


def test_aggregates_are_byte_identical_and_fast_aggregate_verify() -> None:
    pks = [FAST.public_key(k) for k in KEYS]
    sigs = [FAST.sign(k, MESSAGE) for k in KEYS]
    agg = FAST.aggregate(sigs[:3])
    assert agg == REF.aggregate(sigs[:3])
    for backend in (FAST, REF):
        assert backend.fast_aggregate_verify(pks[:3], MESSAGE, agg)
        # A missing signer's key, an extra one, or another message: all fail.
        assert not backend.fast_aggregate_verify(pks[:2], MESSAGE, agg)
        assert not backend.fast_aggregate_verify(pks, MESSAGE, agg)
        assert not backend.fast_aggregate_verify(pks[:3], b"other", agg)


def test_a_rogue_key_forges_fast_aggregate_verify_but_has_no_proof() -> None:
    """The rogue-key attack PoP exists for: pk' = x*P - pk_honest makes the sum of
    keys x*P, so x alone 'signs for both'; its proof of possession cannot be made."""
    import py_arkworks_bls12381 as ark

    honest = FAST.public_key(KEYS[0])
    x = 987654321
    rogue_point = ark.G1Point() * ark.Scalar(x) - ark.G1Point.from_compressed_bytes(
        honest
    )
    rogue = bytes(rogue_point.to_compressed_bytes())
    forged = FAST.sign(x, MESSAGE)
    assert FAST.fast_aggregate_verify([honest, rogue], MESSAGE, forged)
    # Without x' (the rogue key's discrete log) no proof of possession verifies.
    assert not FAST.pop_verify(rogue, FAST.pop_prove(x))
    assert not REF.pop_verify(rogue, FAST.pop_prove(x))


@pytest.mark.parametrize(
    "pk",
    [bytes(48), bytes([0xC0]) + bytes(47), secrets.token_bytes(48), b"short"],
    ids=["zeros", "identity", "random", "short"],
)
def test_invalid_keys_never_verify(pk: bytes) -> None:
    sig = FAST.sign(KEYS[0], MESSAGE)
    assert not FAST.verify(pk, MESSAGE, sig)
    assert not FAST.fast_aggregate_verify([pk], MESSAGE, sig)
    assert not FAST.pop_verify(pk, FAST.pop_prove(KEYS[0]))


@pytest.mark.parametrize(
    "sig",
    [bytes(96), secrets.token_bytes(96), b"x" * 95],
    ids=["zeros", "random", "short"],
)
def test_invalid_signatures_never_verify_nor_aggregate(sig: bytes) -> None:
    pk = FAST.public_key(KEYS[0])
    assert not FAST.verify(pk, MESSAGE, sig)
    with pytest.raises(BlsError):
        FAST.aggregate([sig])


def test_secret_keys_are_32_bytes_in_range() -> None:
    with pytest.raises(BlsError):
        secret_key(bytes(32))
    with pytest.raises(BlsError):
        secret_key(ORDER.to_bytes(32, "big"))
    with pytest.raises(BlsError):
        secret_key(b"\x01" * 31)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 70).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))
    )
)
def test_signer_bitmaps_round_trip(case: tuple[int, set[int]]) -> None:
    n, signers = case
    assert bitmap_signers(signer_bitmap(sorted(signers), n), n) == sorted(signers)


def test_a_bitmap_past_the_committee_is_refused() -> None:
    with pytest.raises(BlsError):
        bitmap_signers(b"\x80", 7)
    with pytest.raises(BlsError):
        signer_bitmap([7], 7)


def test_keys_that_sum_to_the_identity_never_verify() -> None:
    """pk and -pk (secret q - sk), each with a valid proof of possession: their
    sum is the identity, which would accept the identity signature on any
    message. Both backends refuse, as the draft's KeyValidate of the sum does."""
    sk = KEYS[1]
    pks = [FAST.public_key(sk), FAST.public_key(ORDER - sk)]
    identity = bytes([0xC0]) + bytes(95)
    for backend in (FAST, REF):
        assert not backend.fast_aggregate_verify(pks, MESSAGE, identity)
