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
