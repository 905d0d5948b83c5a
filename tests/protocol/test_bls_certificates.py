"""BLS block certificates: one aggregate and a signer bitmap, checked in one pairing."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from pot_support import VALIDATOR_KEYS, chain

from pot_flower.audit import Failure, audit_ledger
from pot_flower.audit.report import CommitteePin, Pins
from pot_flower.encoding import decode, encode
from pot_flower.protocol.block import BlockFormatError, GenesisBlock, parse_block
from pot_flower.protocol.certificate import (
    BLOCK_DOMAIN,
    BLS_KEY_INFO,
    BlsKey,
    Certificate,
    CertificateError,
    CertificateKind,
    Certifiers,
    block_message,
    sign_block,
)
from pot_flower.protocol.params import Params
from pot_flower.sim import tamper
from pot_flower.validator.ledger import LEDGER_FILE
from pot_flower.zk.bls import derive_secret_key, fast_bls, reference_bls
from pot_flower.zk.signatures import SigningKey, tagged

BLS = CertificateKind.BLS
KEYS = tuple(BlsKey.of(k) for k in VALIDATOR_KEYS)
CERTIFIERS = Certifiers(BLS, tuple(k.key for k in KEYS), 3)
ED25519 = Certifiers(
    CertificateKind.ED25519, tuple(k.verify_key.raw for k in VALIDATOR_KEYS), 3
)
DIGEST = hashlib.sha256(b"a block").digest()
ATTACKER = SigningKey.from_seed(b"attacker")


def votes(signers: range | list[int], height: int = 7) -> dict[int, bytes]:
    return {i: sign_block(VALIDATOR_KEYS[i], height, DIGEST, BLS) for i in signers}


def refused(cert: Certificate, certifiers: Certifiers = CERTIFIERS) -> str:
    with pytest.raises(CertificateError) as info:
        cert.verify(certifiers)
    return str(info.value)


# ------------------------------------------------------------- certificates
def test_an_aggregate_of_a_quorum_verifies_round_trips_and_is_small() -> None:
    cert = CERTIFIERS.assemble(7, DIGEST, votes(range(3)))
    cert.verify(CERTIFIERS)
    assert cert.kind == BLS and cert.signers == [0, 1, 2]
    again = Certificate.from_bytes(cert.to_bytes())
    assert again == cert
    again.verify(CERTIFIERS)
    listed = ED25519.assemble(
        7, DIGEST, {i: sign_block(VALIDATOR_KEYS[i], 7, DIGEST) for i in range(3)}
    )
    assert len(cert.to_bytes()) < len(listed.to_bytes())
    assert len(cert.aggregate or b"") == 96 and cert.bitmap == bytes([0b0111])


def test_every_voter_is_named_so_every_voter_is_paid() -> None:
    cert = CERTIFIERS.assemble(7, DIGEST, votes(range(4)))
    cert.verify(CERTIFIERS)
    assert cert.signers == [0, 1, 2, 3]


def test_a_missing_signer_or_a_wrong_bitmap_fails() -> None:
    good = CERTIFIERS.assemble(7, DIGEST, votes(range(3)))
    # The bitmap names three signers but only two signed.
    short = fast_bls().aggregate(list(votes(range(2)).values()))
    assert "does not verify" in refused(replace(good, aggregate=short))
    # Two signers are below the quorum, however valid.
    pair = replace(good, aggregate=short, bitmap=bytes([0b0011]))
    assert "quorum" in refused(pair)
    # A signer named who did not sign, one who signed not named.
    assert "does not verify" in refused(replace(good, bitmap=bytes([0b1011])))
    # Bits past the committee, and a bitmap of another length.
    assert "bitmap" in refused(replace(good, bitmap=bytes([0b10000111])))
    assert "bitmap" in refused(replace(good, bitmap=bytes([0b0111, 0])))
    assert "bitmap" in refused(replace(good, bitmap=b""))
    # The same votes for another height or block.
    assert "does not verify" in refused(replace(good, height=8))
    assert "does not verify" in refused(replace(good, block=bytes(32)))


@pytest.mark.parametrize("position", [0, 1, 47, 95])
def test_a_damaged_aggregate_fails(position: int) -> None:
    good = CERTIFIERS.assemble(7, DIGEST, votes(range(3)))
    assert good.aggregate is not None
    damaged = bytearray(good.aggregate)
    damaged[position] ^= 0x01
    refused(replace(good, aggregate=bytes(damaged)))


def test_malformed_encodings_are_refused_when_parsed() -> None:
    good = decode(CERTIFIERS.assemble(7, DIGEST, votes(range(3))).to_bytes())
    assert isinstance(good, dict)
    for change in (
        {"aggregate": b"\x00" * 95},
        {"aggregate": "text"},
        {"signers": [0, 1, 2]},
        {"height": True},
        {"signatures": []},
    ):
        with pytest.raises(CertificateError):
            Certificate.from_bytes(encode({**good, **change}))  # type: ignore[dict-item]
    with pytest.raises(CertificateError):
        Certificate.from_bytes(encode({k: v for k, v in good.items() if k != "block"}))


def test_a_certificate_of_the_other_kind_fails() -> None:
    listed = ED25519.assemble(
        7, DIGEST, {i: sign_block(VALIDATOR_KEYS[i], 7, DIGEST) for i in range(4)}
    )
    assert "ed25519 certificate" in refused(listed)
    aggregated = CERTIFIERS.assemble(7, DIGEST, votes(range(4)))
    assert "bls certificate" in refused(aggregated, ED25519)


def test_a_vote_is_checked_alone_before_it_joins_an_aggregate() -> None:
    vote = votes([1])[1]
    assert CERTIFIERS.vote_valid(1, 7, DIGEST, vote)
    assert not CERTIFIERS.vote_valid(0, 7, DIGEST, vote)  # another's key
    assert not CERTIFIERS.vote_valid(1, 8, DIGEST, vote)
    assert not CERTIFIERS.vote_valid(4, 7, DIGEST, vote)  # not in the committee
    assert not CERTIFIERS.vote_valid(1, 7, DIGEST, vote[:-1])
    ed_vote = sign_block(VALIDATOR_KEYS[1], 7, DIGEST)
    assert not CERTIFIERS.vote_valid(1, 7, DIGEST, ed_vote)
    with pytest.raises(CertificateError):  # a bad vote cannot be aggregated
        CERTIFIERS.assemble(7, DIGEST, {**votes(range(2)), 2: b"\x01" * 96})


# ------------------------------------------------------------------- keys
def test_the_reference_backend_computes_the_same_votes_and_aggregate() -> None:
    ref = reference_bls()
    secrets_ = [derive_secret_key(k.to_bytes(), BLS_KEY_INFO) for k in VALIDATOR_KEYS]
    assert [ref.public_key(s) for s in secrets_] == [k.key for k in KEYS]
    message = tagged(BLOCK_DOMAIN, block_message(7, DIGEST))
    ref_votes = [ref.sign(s, message) for s in secrets_[:3]]
    assert ref_votes == list(votes(range(3)).values())
    cert = CERTIFIERS.assemble(7, DIGEST, votes(range(3)))
    assert ref.aggregate(ref_votes) == cert.aggregate
    assert ref.fast_aggregate_verify(
        list(CERTIFIERS.keys[:3]), message, cert.aggregate or b""
    )
    assert ref.pop_verify(KEYS[0].key, KEYS[0].proof)


def test_keys_are_derived_deterministically_and_apart() -> None:
    assert BlsKey.of(VALIDATOR_KEYS[0]) == KEYS[0]
    assert len({k.key for k in KEYS}) == 4
    assert KEYS[0].problem(VALIDATOR_KEYS[0].verify_key.raw) is None
    # Endorsed by its own validator only.
    assert "endorsed" in (KEYS[0].problem(VALIDATOR_KEYS[1].verify_key.raw) or "")


def rogue_key() -> bytes:
    """``x*P - sum(honest keys 1..3)``: the four keys sum to x*P."""
    import py_arkworks_bls12381 as ark

    total = ark.G1Point() * ark.Scalar(123456789)
    for key in KEYS[1:]:
        total = total - ark.G1Point.from_compressed_bytes(key.key)
    return bytes(total.to_compressed_bytes())


def test_a_rogue_key_would_forge_every_certificate_and_is_refused() -> None:
    rogue = rogue_key()
    # Unchecked, the attacker alone "signs for all four" with x.
    unchecked = Certifiers(BLS, (rogue, *CERTIFIERS.keys[1:]), 3)
    forged_vote = fast_bls().sign(
        123456789, tagged(BLOCK_DOMAIN, block_message(7, DIGEST))
    )
    forged = Certificate(7, DIGEST, (), forged_vote, bytes([0b1111]))
    forged.verify(unchecked)  # the attack PoP exists for
    # A committee with that key cannot be formed: no proof, however endorsed.
    endorsed = VALIDATOR_KEYS[0].sign(b"pot/bls-key/v1", rogue)
    attempt = BlsKey(rogue, KEYS[0].proof, endorsed)
    validators = tuple(k.verify_key.raw for k in VALIDATOR_KEYS)
    with pytest.raises(ValueError, match="proof of possession"):
        Params(run=1, validators=validators, quorum=3, norm_bound_units=100,
               bls=(attempt, *KEYS[1:]))  # fmt: skip


def test_a_key_not_endorsed_by_its_validator_is_refused() -> None:
    """A forger's own proven key in validator 0's place (it could then sign)."""
    validators = tuple(k.verify_key.raw for k in VALIDATOR_KEYS)
    theirs = BlsKey.of(ATTACKER)
    for bls, match in (
        ((theirs, *KEYS[1:]), "not endorsed"),
        (KEYS[:3], "3 BLS keys for 4"),
        ((KEYS[0], KEYS[0], *KEYS[2:]), "repeated"),
    ):
        with pytest.raises(ValueError, match=match):
            Params(run=1, validators=validators, quorum=3, norm_bound_units=100,
                   bls=bls)  # fmt: skip


def test_genesis_records_the_keys_and_reads_them_back() -> None:
    state = chain(bls=KEYS)
    assert state.params.certifiers == CERTIFIERS
    assert Params.from_value(state.params.to_value()) == state.params
    assert "bls" not in chain().params.to_value()  # Ed25519 chains: genesis as before
    value = state.params.to_value()
    for bad in ([], [[KEYS[0].key, KEYS[0].proof]], [k.to_value() for k in KEYS[:3]]):
        with pytest.raises(ValueError):
            Params.from_value({**value, "bls": bad})
    # Through the block parser, as every verifier reads it.
    body = encode(
        {
            "kind": "genesis",
            "height": 0,
            "version": 1,
            "previous": bytes(32),
            "model": bytes(32),
            "layout": [["w", "float32", [2]]],
            "params": value,
        }
    )
    assert GenesisBlock.params_of(decode(body)).bls == KEYS
    swapped = dict(value)
    swapped["bls"] = [BlsKey.of(ATTACKER).to_value(), *swapped["bls"][1:]]  # type: ignore[index]
    with pytest.raises(BlockFormatError, match="endorsed"):
        parse_block(encode({**decode(body), "params": swapped}))  # type: ignore[dict-item]


# --------------------------------------------------------- a chain of them
@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tamper.Genuine:
    return tamper.build_genuine(
        tmp_path_factory.mktemp("bls"), rounds=4, certificate=BLS
    )


def stored(directory: Path) -> dict[int, bytes]:
    with sqlite3.connect(directory / LEDGER_FILE) as db:
        return dict(db.execute("SELECT height, certificate FROM blocks").fetchall())


def test_an_embedded_committee_certifies_its_blocks_with_aggregates(
    genuine: tamper.Genuine,
) -> None:
    certificates = stored(genuine.directory)
    assert len(certificates) == genuine.head + 1
    for data in certificates.values():
        cert = Certificate.from_bytes(data)
        assert cert.kind == BLS and cert.signers == [0, 1, 2, 3]
        assert len(data) < 200
    report = audit_ledger(genuine.directory, genuine.pins())
    assert report.ok, report.problem
    # Every validator's ledger verifies, and the fees went to the certifiers.
    for i in range(4):
        other = genuine.directory.parent / f"validator-{i}"
        assert audit_ledger(other, genuine.pins()).ok
    assert set(report.validator_balances) == {0, 1, 2, 3}


def forged(genuine: tamper.Genuine, tmp_path: Path, height: int, data: object) -> str:
    target = tamper.copy_ledger(genuine.directory, tmp_path / "forged")
    with sqlite3.connect(target / LEDGER_FILE) as db:
        for trigger in ("blocks_append_only_update", "blocks_certify_once"):
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        db.execute("UPDATE blocks SET certificate = ? WHERE height = ?", (data, height))
    report = audit_ledger(target, genuine.pins())
    assert not report.ok and report.bad_block == height
    assert report.failure == Failure.BAD_CERTIFICATE, report.problem
    return report.problem or ""


def test_pot_ledger_verify_refuses_a_damaged_aggregate(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    cert = Certificate.from_bytes(stored(genuine.directory)[2])
    damaged = bytearray(cert.aggregate or b"")
    damaged[10] ^= 0x40
    forged(genuine, tmp_path, 2, replace(cert, aggregate=bytes(damaged)).to_bytes())


def test_pot_ledger_verify_refuses_a_signer_dropped_from_the_bitmap(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    cert = Certificate.from_bytes(stored(genuine.directory)[3])
    forged(genuine, tmp_path, 3, replace(cert, bitmap=bytes([0b0111])).to_bytes())


def test_pot_ledger_verify_refuses_the_validators_ed25519_signatures_on_a_bls_chain(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    """Every validator's genuine Ed25519 vote: still not the chain's certificate."""
    digest = genuine.hash(1)
    listed = Certificate(
        1, digest, tuple((i, sign_block(k, 1, digest)) for i, k in enumerate(
            genuine.committee))
    )  # fmt: skip
    assert "ed25519 certificate" in forged(genuine, tmp_path, 1, listed.to_bytes())


def test_a_forged_genesis_with_the_attackers_bls_keys_fails_even_unpinned(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    value = genuine.value(0)
    params = value["params"]
    assert isinstance(params, dict)
    theirs = [BlsKey.of(SigningKey.from_seed(b"forger-%d" % i)) for i in range(4)]
    params["bls"] = [k.to_value() for k in theirs]
    target = tamper.copy_ledger(genuine.directory, tmp_path / "forged")
    tamper.reforge(target, 0, encode(value), tamper.Variant.RESIGN)
    for pins in (None, genuine.pins()):
        report = audit_ledger(target, pins)
        assert not report.ok and report.bad_block == 0
    pinned = audit_ledger(
        target, Pins(committee=CommitteePin(keys=genuine.keys), expect_height=None)
    )
    assert "endorsed" in (pinned.problem or "")
