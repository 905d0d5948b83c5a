"""Message wire format: signed, canonical, strictly parsed."""

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import Committee, every_message

from pot_flower.consensus.messages import (
    NULL_DIGEST,
    Checkpoint,
    FetchState,
    Message,
    MessageError,
    PreparedCertificate,
    StateTransfer,
    Status,
    ViewChange,
    batch_digest,
    decode_message,
    sha256,
)


def test_every_message_round_trips_with_its_signature(committee: Committee) -> None:
    for message in every_message(committee):
        decoded = decode_message(message.to_bytes())
        assert decoded == message
        assert decoded.to_bytes() == message.to_bytes()
        key = (
            committee.client_key
            if message.TAG == "request"
            else committee.keys[message.sender]
        )  # type: ignore[attr-defined]
        assert decoded.verify(key.verify_key)


def test_tampering_breaks_the_signature(committee: Committee) -> None:
    pp = committee.pre_prepare(0, 1, committee.request())
    forged = replace(pp, seq=2, _payload=b"")
    assert not forged.verify(committee.keys[0].verify_key)


def test_null_batch_has_the_null_digest() -> None:
    assert batch_digest(()) == NULL_DIGEST


@pytest.mark.parametrize(
    "mutate",
    [
        lambda pp: replace(pp, digest=sha256(b"other")),  # digest does not match batch
        lambda pp: replace(pp, seq=0),
        lambda pp: replace(
            pp, requests=pp.requests * 2, digest=batch_digest(pp.requests * 2)
        ),
    ],
)
def test_structurally_invalid_pre_prepares_are_rejected(
    committee: Committee, mutate
) -> None:  # type: ignore[no-untyped-def]
    bad = mutate(committee.pre_prepare(0, 1, committee.request())).signed(
        committee.keys[0]
    )
    with pytest.raises(MessageError):
        decode_message(bad.to_bytes())


def test_nested_message_of_the_wrong_type_is_rejected(committee: Committee) -> None:
    req = committee.request()
    pp = committee.pre_prepare(0, 1, req)
    # A certificate whose "prepares" are commits.
    commits = tuple(committee.commit(0, 1, pp.digest, i) for i in (1, 2))
    vc = ViewChange(1, 0, (), (PreparedCertificate(pp, commits),), 1).signed(
        committee.keys[1]
    )
    with pytest.raises(MessageError):
        decode_message(vc.to_bytes())


def test_wrong_expected_type_is_rejected(committee: Committee) -> None:
    with pytest.raises(MessageError):
        decode_message(committee.request().to_bytes(), Checkpoint)


@settings(max_examples=300)
@given(st.data())
def test_mutated_wire_bytes_never_crash_the_parser(data: st.DataObject) -> None:
    c = Committee()
    wire = bytearray(data.draw(st.sampled_from(every_message(c))).to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(MessageError):
        decode_message(bytes(wire))


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    with contextlib.suppress(MessageError):
        decode_message(data)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Status(-1, False, 0, 0, 1), "view must be non-negative"),
        (Status(0, False, 0, 0, -2), "sender must be non-negative"),
        (Checkpoint(2, b"short", 1), "state digest must be 32 bytes"),
        (FetchState(1, -1), "sender must be non-negative"),
        (StateTransfer(0, b"", (), 1), "seq must be >= 1"),
    ],
)
def test_out_of_range_fields_are_rejected(
    committee: Committee, message: Message, reason: str
) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_message(message.signed(committee.keys[1]).to_bytes())
