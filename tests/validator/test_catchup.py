"""A ledger brought up to an adopted state: only verified blocks, from any peers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from pot_support import miner, model, trained

from pot_flower.audit import audit_ledger
from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.patience import Interrupted, Unavailable
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.certificate import Certificate
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.submission import build_submission
from pot_flower.validator.catchup import BlockCopy, catch_up
from pot_flower.validator.ledger import Ledger, LedgerError

ROUNDS = 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ChainState]:
    directory = tmp_path_factory.mktemp("chain")
    committee = EmbeddedCommittee(
        directory, run=3, model=model(), norm_bound_units=max_norm_units(10.0)
    )
    current = model()
    for _ in range(ROUNDS):
        ticket = committee.ticket()
        sub = build_submission(
            miner(1),
            run=3,
            round_=ticket.round,
            node=7,
            nonce=ticket.nonce,
            received=current,
            returned=trained(current, ticket.round),
            num_examples=10,
        )
        digest = hashlib.sha256(sub.payload).digest()
        ref = SubmissionRef(7, sub.envelope_bytes, sub.signature, digest)
        current = committee.certify_round([ref], {digest: sub.payload}).model
    # The last block is certified too: the coordinator handed its certificate over.
    state = committee.validators[0].app.state
    committee.close()
    return directory / "validator-0", state


@dataclass
class Peers:
    """Copies from a genuine ledger, after what each liar says first."""

    ledger_dir: Path
    liars: list[str] = field(default_factory=list)
    asked: int = 0

    def copies(self, run: int, height: int, *, with_model: bool) -> Iterator[BlockCopy]:
        self.asked += 1
        with Ledger(self.ledger_dir) as ledger:
            block = ledger.block(height)
        assert block is not None
        model_bytes = None
        if with_model:
            named = _model(block.body)
            model_bytes = (self.ledger_dir / "models" / named.hex()).read_bytes()
        for liar in self.liars:
            if liar == "other-body":
                yield BlockCopy(block.body + b" ", block.certificate, model_bytes)
            elif liar == "forged-certificate":
                yield BlockCopy(block.body, forge(block.certificate), model_bytes)
            elif liar == "wrong-model" and with_model:
                yield BlockCopy(block.body, block.certificate, b"not the model")
        yield BlockCopy(block.body, block.certificate, model_bytes)


def forge(certificate: bytes | None) -> bytes:
    """The certificate with its first signature's first byte flipped."""
    assert certificate is not None
    genuine = Certificate.from_bytes(certificate)
    (index, signature), *rest = genuine.signatures
    bad = bytes([signature[0] ^ 1]) + signature[1:]
    return replace(genuine, signatures=((index, bad), *rest)).to_bytes()


def _model(body: bytes) -> bytes:
    from pot_flower.encoding import decode

    value = decode(body)
    assert isinstance(value, dict) and isinstance(value["model"], bytes)
    return value["model"]


def test_an_empty_ledger_is_filled_with_verified_blocks_only(
    chain: tuple[Path, ChainState], tmp_path: Path
) -> None:
    source, state = chain
    peers = Peers(source, ["other-body", "forged-certificate", "wrong-model"])
    with Ledger(tmp_path / "behind") as ledger:
        assert catch_up(ledger, state, peers, patience_s=2) == ROUNDS + 1
        with Ledger(source) as genuine:
            assert [b.body for b in ledger.blocks()] == [
                b.body for b in genuine.blocks()
            ]
            assert [b.certificate for b in ledger.blocks()] == [
                b.certificate for b in genuine.blocks()
            ]
    report = audit_ledger(tmp_path / "behind")
    assert report.ok, report.problem


def test_a_partial_ledger_resumes_from_its_head(
    chain: tuple[Path, ChainState], tmp_path: Path
) -> None:
    source, state = chain
    with Ledger(tmp_path / "partial") as ledger, Ledger(source) as genuine:
        for block in list(genuine.blocks())[:2]:  # killed after two blocks
            digest = _model(block.body)
            ledger.store_model(digest, (source / "models" / digest.hex()).read_bytes())
            ledger.append(block.height, block.hash, block.body)
        peers = Peers(source)
        assert catch_up(ledger, state, peers, patience_s=2) == ROUNDS - 1
        assert ledger.head_height() == ROUNDS
        assert catch_up(ledger, state, peers) == 0  # nothing left to do


def test_a_ledger_of_another_chain_is_refused(
    chain: tuple[Path, ChainState], tmp_path: Path
) -> None:
    source, state = chain
    with Ledger(tmp_path / "other") as ledger:
        ledger.append(0, b"\x07" * 32, b"another genesis")
        with pytest.raises(LedgerError, match="does not extend"):
            catch_up(ledger, state, Peers(source), patience_s=2)


def test_only_liars_means_waiting_then_giving_up_or_stopping(
    chain: tuple[Path, ChainState], tmp_path: Path
) -> None:
    source, state = chain

    class OnlyLiars(Peers):
        def copies(
            self, run: int, height: int, *, with_model: bool
        ) -> Iterator[BlockCopy]:
            for copy in super().copies(run, height, with_model=with_model):
                yield BlockCopy(copy.body + b"!", copy.certificate, copy.model)

    with Ledger(tmp_path / "cut-off") as ledger:
        with pytest.raises(Unavailable):
            catch_up(ledger, state, OnlyLiars(source), patience_s=0.3)
        with pytest.raises(Interrupted):
            catch_up(ledger, state, OnlyLiars(source), stopping=lambda: True)
        assert ledger.head_height() == -1  # nothing unverified was written


def test_certificate_repair_survives_a_failing_pass(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sqlite3
    import threading

    from pot_flower.transport import repair

    stopping = threading.Event()
    passes = []

    def flaky(self: object) -> None:
        passes.append(1)
        if len(passes) == 1:
            raise sqlite3.OperationalError("database is locked")
        stopping.set()

    monkeypatch.setattr(repair, "PASS_S", 0.01)
    monkeypatch.setattr(repair.CertificateRepair, "repair_once", flaky)
    thread = repair.CertificateRepair(None, None, None, stopping)  # type: ignore[arg-type]
    thread.start()
    thread.join(timeout=5)
    assert len(passes) == 2 and not thread.is_alive()
