"""Ledgers: what the embedded committee writes verifies; any tampering is named."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pot_support import RoundBuilder, miner, model, trained
from typer.testing import CliRunner

from pot_flower.audit import audit_ledger
from pot_flower.cli import app
from pot_flower.committee import EmbeddedCommittee
from pot_flower.ledger import Ledger, LedgerError
from pot_flower.protocol.execution import SubmissionRef
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.submission import build_submission


def run_committee(directory: Path, rounds: int = 3) -> EmbeddedCommittee:
    committee = EmbeddedCommittee(
        directory, run=5, model=model(), norm_bound_units=max_norm_units(10.0)
    )
    current = model()
    for _ in range(rounds):
        ticket = committee.ticket()
        refs, payloads = [], {}
        for i in range(5):
            sub = build_submission(
                miner(i),
                run=5,
                round_=ticket.round,
                node=100 + i,
                nonce=ticket.nonce,
                received=current,
                returned=trained(current, i + 10 * ticket.round),
                num_examples=10 + i,
            )
            digest = hashlib.sha256(sub.payload).digest()
            payloads[digest] = sub.payload
            refs.append(
                SubmissionRef(100 + i, sub.envelope_bytes, sub.signature, digest)
            )
        refs.append(SubmissionRef(999, b"junk", b"junk", None))  # a bad one
        certified = committee.certify_round(refs, payloads)
        current = certified.model
    committee.close()
    return committee


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("committee")
    run_committee(directory)
    return directory


def copy_ledger(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    src = sqlite3.connect(source / "ledger.sqlite")
    dst = sqlite3.connect(target / "ledger.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    (target / "models").symlink_to(source / "models")
    return target


def test_every_validator_ledger_verifies_and_they_are_identical(ledgers: Path) -> None:
    bodies = []
    for i in range(4):
        report = audit_ledger(ledgers / f"validator-{i}")
        assert report.ok, report.problem
        assert report.blocks == 4
        assert report.minted == 3 * 1_000_000  # round 1 pays the genesis certifiers
        bodies.append([b.body for b in Ledger(ledgers / f"validator-{i}").blocks()])
    assert bodies[0] == bodies[1] == bodies[2] == bodies[3]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changing_any_byte_of_a_stored_block_is_caught(
    ledgers: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    target = copy_ledger(ledgers / "validator-0", tmp_path_factory.mktemp("t") / "v")
    db = sqlite3.connect(target / "ledger.sqlite")
    height = data.draw(st.integers(0, 3), label="height")
    column = data.draw(st.sampled_from(["body", "hash", "certificate"]), label="column")
    (value,) = db.execute(
        f"SELECT {column} FROM blocks WHERE height = ?", (height,)
    ).fetchone()
    position = data.draw(st.integers(0, len(value) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(value)
    changed[position] ^= flip
    db.execute("DROP TRIGGER blocks_append_only_update")
    db.execute("DROP TRIGGER blocks_certify_once")
    db.execute(
        f"UPDATE blocks SET {column} = ? WHERE height = ?", (bytes(changed), height)
    )
    db.commit()
    db.close()
    report = audit_ledger(target)
    assert not report.ok
    # A changed body may also show up as the next block's broken link; the first
    # bad block is named, never a later one.
    assert report.bad_block == height, report.problem
    assert report.problem is not None and f"block {height}" in report.problem


def test_cli_verify_show_and_rewards(ledgers: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["ledger", "verify", str(ledgers / "validator-2")])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    shown = runner.invoke(app, ["ledger", "show", str(ledgers / "validator-2")])
    assert shown.exit_code == 0 and "genesis" in shown.output
    paid = runner.invoke(
        app, ["rewards", str(ledgers / "validator-2" / "ledger.sqlite")]
    )
    assert paid.exit_code == 0 and "total minted" in paid.output
    target = copy_ledger(ledgers / "validator-1", tmp_path / "v1")
    db = sqlite3.connect(target / "ledger.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="already certified"):
        db.execute("UPDATE blocks SET certificate = NULL WHERE height = 2")
    db.execute("DROP TRIGGER blocks_certify_once")
    db.execute("UPDATE blocks SET certificate = NULL WHERE height = 2")
    db.commit()
    db.close()
    bad = runner.invoke(app, ["ledger", "verify", str(target)])
    assert bad.exit_code == 1
    assert "block 2" in bad.output and "certificate" in bad.output


def test_ledger_is_append_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(0, b"h" * 32, b"body")
    with pytest.raises(LedgerError):
        ledger.append(2, b"x" * 32, b"body")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger._db.execute("DELETE FROM blocks")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger._db.execute("UPDATE blocks SET body = x'00'")
    ledger.close()


def test_missing_or_corrupt_model_files_are_named(
    ledgers: Path, tmp_path: Path
) -> None:
    target = tmp_path / "v"
    target.mkdir()
    src = sqlite3.connect(ledgers / "validator-3" / "ledger.sqlite")
    dst = sqlite3.connect(target / "ledger.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    (target / "models").mkdir()
    report = audit_ledger(target)
    assert report.bad_block == 0 and "missing" in (report.problem or "")


def test_garbage_file_is_a_clear_failure(tmp_path: Path) -> None:
    (tmp_path / "ledger.sqlite").write_bytes(b"not a database" * 100)
    report = audit_ledger(tmp_path)
    assert not report.ok and "cannot read" in (report.problem or "")
    assert not audit_ledger(tmp_path / "absent").ok


def test_builder_rounds_match_committee_blocks(tmp_path: Path) -> None:
    # The committee executes exactly what the pure function does.
    committee = EmbeddedCommittee(
        tmp_path, run=5, model=model(), norm_bound_units=max_norm_units(10.0)
    )
    state = committee.validators[0].app.state
    builder = RoundBuilder(state)
    builder.honest(1)
    builder.honest(2)
    from pot_flower.protocol.execution import execute_round

    batch = builder.batch(previous_certificate=committee.last_certificate)
    expected = execute_round(state, batch, builder.payloads)
    certified = committee.certify_round(builder.refs, builder.payloads)
    committee.close()
    assert certified.block == expected.hash
