"""Availability receipts: no validator decides anything from a payload's absence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pot_flower.encoding import decode
from pot_flower.patience import Interrupted
from pot_flower.protocol.model import encode_arrays
from pot_flower.validator.availability import receipts_problem, sign_receipt
from pot_flower.validator.chains import Chains, OpenChain, available_request
from pot_flower.validator.payloads import PayloadStore
from pot_flower.zk.signatures import SigningKey

KEYS = [SigningKey.from_seed(b"availability-%d" % i) for i in range(4)]
RAW = tuple(k.verify_key.raw for k in KEYS)
QUORUM = 3
MODEL = encode_arrays({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
DIGEST = hashlib.sha256(MODEL).digest()
OPEN = OpenChain(run=7, model=DIGEST, norm_bound_units=10**9).to_bytes()


def receipts(signers: range | list[int], digests: list[bytes]) -> list:
    return [(i, sign_receipt(KEYS[i], digests)) for i in signers]


def service(tmp_path: Path, name: str, *, holds: bool, fetch=None) -> Chains:
    store = PayloadStore(tmp_path / name / "payloads")
    if holds:
        store.put(MODEL)
    return Chains(tmp_path / name / "chains", RAW, QUORUM, store, fetch)


def test_a_quorum_of_receipts_over_the_same_digests_proves_availability() -> None:
    other = hashlib.sha256(b"other").digest()
    assert receipts_problem(receipts(range(3), [DIGEST]), [DIGEST], RAW, 3) is None
    # The digest list is canonical: order and repetition do not matter.
    signed = receipts(range(3), [other, DIGEST])
    assert receipts_problem(signed, [DIGEST, other, DIGEST], RAW, 3) is None


@pytest.mark.parametrize(
    ("signed", "problem"),
    [
        (lambda: receipts(range(2), [DIGEST]), "2 receipts, quorum is 3"),
        (lambda: receipts([0, 1, 1], [DIGEST]), "two receipts from validator 1"),
        (
            lambda: [*receipts([0, 1], [DIGEST]), (9, b"x" * 64)],
            "receipt from unknown validator 9",
        ),
        (
            lambda: receipts(range(3), [hashlib.sha256(b"else").digest()]),
            "bad receipt signature from validator 0",
        ),
        (
            lambda: (
                [
                    *receipts([0, 1], [DIGEST]),
                    (2, KEYS[3].sign(b"payload-availability/v1", b"x")),
                ]
            ),
            "bad receipt signature from validator 2",
        ),
    ],
)
def test_receipts_that_prove_nothing_are_named(signed, problem: str) -> None:
    assert receipts_problem(signed(), [DIGEST], RAW, 3) == problem


def test_payload_requests_without_valid_receipts_are_refused_alike(
    tmp_path: Path,
) -> None:
    holder = service(tmp_path, "holder", holds=True)
    lacking = service(tmp_path, "lacking", holds=False, fetch=lambda d: None)
    for request, reason in [
        (OPEN, "open-chain requests name payloads: wrap them in 'available'"),
        (
            available_request(OPEN, receipts(range(2), [DIGEST])),
            "payload availability: 2 receipts, quorum is 3",
        ),
    ]:
        results = {s.execute("c", 1, request, 1) for s in (holder, lacking)}
        assert [decode(r) for r in results] == [{"error": reason}]
    assert not holder.chains and not lacking.chains


def test_a_validator_lacking_a_payload_waits_for_it_and_decides_the_same(
    tmp_path: Path,
) -> None:
    attempts = []

    def flaky_peers(digest: bytes) -> bytes | None:
        attempts.append(digest)
        return MODEL if len(attempts) >= 3 else None  # peers unreachable twice

    request = available_request(OPEN, receipts(range(3), [DIGEST]))
    holder = service(tmp_path, "holder", holds=True)
    lacking = service(tmp_path, "lacking", holds=False, fetch=flaky_peers)
    assert lacking.execute("c", 1, request, 1) == holder.execute("c", 1, request, 1)
    assert len(attempts) == 3 and 7 in lacking.chains
    assert lacking.snapshot() == holder.snapshot()


def test_a_validator_stopping_while_it_waits_abandons_the_step(tmp_path: Path) -> None:
    lacking = service(tmp_path, "lacking", holds=False, fetch=lambda d: None)
    lacking.stopping = lambda: True
    request = available_request(OPEN, receipts(range(3), [DIGEST]))
    with pytest.raises(Interrupted):
        lacking.execute("c", 1, request, 1)
    assert not lacking.chains
