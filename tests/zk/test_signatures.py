"""Ed25519 signatures with domain separation."""

from pot_flower.zk.signatures import SigningKey, VerifyKey


def test_sign_and_verify() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"pbft/v1", b"hello")
    assert key.verify_key.verify(b"pbft/v1", b"hello", sig)


def test_signature_does_not_verify_under_another_domain_message_or_key() -> None:
    key = SigningKey.from_seed(b"a")
    sig = key.sign(b"pbft/v1", b"hello")
    assert not key.verify_key.verify(b"miner/v1", b"hello", sig)
    assert not key.verify_key.verify(b"pbft/v1", b"hellO", sig)
    assert not SigningKey.from_seed(b"b").verify_key.verify(b"pbft/v1", b"hello", sig)
    assert not key.verify_key.verify(b"pbft/v1", b"hello", sig[:-1])


def test_seeded_keys_are_deterministic_and_raw_keys_round_trip() -> None:
    a, b = SigningKey.from_seed(b"seed"), SigningKey.from_seed(b"seed")
    assert a.verify_key == b.verify_key
    assert SigningKey.from_bytes(a.to_bytes()).verify_key == a.verify_key
    assert VerifyKey(a.verify_key.raw) == a.verify_key


def test_keys_and_signatures_are_standard_ed25519() -> None:
    # RFC 8032, section 7.1, test 1: the seed gives the published public key.
    seed = bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    )
    public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert SigningKey.from_bytes(seed).verify_key.raw.hex() == public
    # Any other Ed25519 implementation (OpenSSL here) accepts our signatures on
    # the domain-tagged bytes, and we accept its.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.from_private_bytes(seed)
    tagged = b"pot-flower/pbft/v1\x00hello"
    ours = SigningKey.from_bytes(seed).sign(b"pbft/v1", b"hello")
    other.public_key().verify(ours, tagged)  # raises if invalid
    assert VerifyKey(bytes.fromhex(public)).verify(
        b"pbft/v1", b"hello", other.sign(tagged)
    )


def test_a_public_key_that_is_no_curve_point_verifies_nothing() -> None:
    key = VerifyKey(b"\xff" * 32)
    assert not key.verify(
        b"pbft/v1", b"hello", SigningKey.generate().sign(b"pbft/v1", b"hello")
    )
