"""Ledgers: what the embedded committee writes verifies; any tampering is named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pot_support import RoundBuilder, model, run_committee
from typer.testing import CliRunner

from pot_flower.audit import Failure, audit_ledger
from pot_flower.cli import app
from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.encoding import decode, encode
from pot_flower.ops.committee_file import render_committee
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.sim import tamper
from pot_flower.validator.ledger import Ledger, LedgerError
from pot_flower.zk.signatures import SigningKey, VerifyKey


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, tuple[SigningKey, ...]]:
    """The committee's ledgers and its (genuine) keys."""
    directory = tmp_path_factory.mktemp("committee")
    committee = run_committee(directory)
    return directory, tuple(v.key for v in committee.validators)


@pytest.fixture(scope="module")
def ledgers(chain: tuple[Path, tuple[SigningKey, ...]]) -> Path:
    return chain[0]


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


# ------------------------------------------------ regressions (issue 9, item 2)
def rows(target: Path) -> dict[int, tuple[bytes, bytes]]:
    db = sqlite3.connect(target / "ledger.sqlite")
    found = {
        h: (b, c)
        for h, b, c in db.execute("SELECT height, body, certificate FROM blocks")
    }
    db.close()
    return found


def genesis_keys(target: Path) -> list[bytes]:
    genesis = decode(rows(target)[0][0])
    assert isinstance(genesis, dict) and isinstance(genesis["params"], dict)
    keys = genesis["params"]["validators"]
    assert isinstance(keys, list)
    return [k for k in keys if isinstance(k, bytes)]


def verify(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ledger", "verify", *map(str, args)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


def test_a_truncated_ledger_fails_against_the_expected_height(
    ledgers: Path, tmp_path: Path
) -> None:
    target = copy_ledger(ledgers / "validator-0", tmp_path / "v")
    db = sqlite3.connect(target / "ledger.sqlite")
    db.execute("DROP TRIGGER blocks_append_only_delete")
    db.execute("DELETE FROM blocks WHERE height = 3")
    db.commit()
    db.close()
    code, output = verify(target)
    assert code == 0 and "completeness not checked" in output  # said, not hidden
    code, output = verify(target, "--expect-height", 3)
    assert code == 1 and ": block 3: missing" in output, output
    code, output = verify(ledgers / "validator-0", "--expect-height", 2)
    assert code == 1 and ": block 3: beyond the expected height 2" in output


def test_a_damaged_wal_is_named_even_without_pins(
    ledgers: Path, tmp_path: Path
) -> None:
    target = tmp_path / "wal"
    transactions, page_size = tamper.wal_copy(
        ledgers / "validator-1", tmp_path / "build", target
    )
    assert verify(target, "--expect-height", 3)[0] == 0
    append_3 = next(t for t in transactions if t.height == 3)
    wal = target / "ledger.sqlite-wal"
    data = bytearray(wal.read_bytes())
    data[32 + append_3.first_frame * (page_size + 24) + 24 + 100] ^= 1
    wal.write_bytes(bytes(data))
    # SQLite now silently shows blocks 0..2, a prefix that verifies by itself.
    code, output = verify(target)
    assert code == 1, output
    assert ": block 3: may be lost: the WAL is damaged at frame" in output
    report = audit_ledger(target)
    assert report.failure == Failure.WAL_DAMAGED and report.wal is not None


def test_a_forged_committee_fails_against_the_pinned_committee(
    ledgers: Path, tmp_path: Path
) -> None:
    genuine = ledgers / "validator-2"
    target = copy_ledger(genuine, tmp_path / "forged")
    genesis = decode(rows(target)[0][0])
    assert isinstance(genesis, dict) and isinstance(genesis["params"], dict)
    attacker = tamper.ATTACKER
    genesis["params"]["validators"] = [k.verify_key.raw for k in attacker]
    tamper.reforge(target, 0, encode(genesis), tamper.Variant.RESIGN, attacker)
    assert verify(target)[0] == 0  # re-chained and re-signed throughout
    committee = tmp_path / "committee.toml"
    validators = [
        (f"127.0.0.1:{7000 + i}", VerifyKey(k))
        for i, k in enumerate(genesis_keys(genuine))
    ]
    committee.write_text(render_committee(validators, {}, tls=False))
    code, output = verify(target, "--committee", committee)
    assert code == 1, output
    assert ": block 0: genesis names another committee" in output
    assert verify(genuine, "--committee", committee)[0] == 0
    keys = ",".join(k.hex() for k in genesis_keys(genuine))
    assert verify(target, "--validator-keys", keys)[0] == 1


@pytest.mark.parametrize(
    ("column", "value", "height"),
    [
        ("body", "a text body", 1),
        ("body", 3.5, 2),
        ("body", None, 3),
        ("hash", 12345, 1),
        ("hash", "ab" * 32, 0),
        ("certificate", "text", 2),
        ("certificate", -1, 3),
        ("height", "two", 2),
        ("height", -5, 0),
        ("height", 2.5, 3),
    ],
)
def test_type_confused_rows_fail_in_one_line(
    ledgers: Path, tmp_path: Path, column: str, value: object, height: int
) -> None:
    target = copy_ledger(ledgers / "validator-3", tmp_path / "v")
    db = sqlite3.connect(target / "ledger.sqlite")
    db.executescript(
        "CREATE TABLE loose (height, hash, body, certificate);"
        "INSERT INTO loose SELECT * FROM blocks; DROP TABLE blocks;"
        "ALTER TABLE loose RENAME TO blocks;"
    )
    db.execute(f"UPDATE blocks SET {column} = ? WHERE height = ?", (value, height))
    db.commit()
    db.close()
    report = audit_ledger(target)
    assert report.bad_block == height and report.failure != Failure.UNEXPECTED
    code, output = verify(target)
    assert code == 1 and len(output.strip().splitlines()) == 1
    assert f": block {height}: " in output
    for command in (["ledger", "show"], ["rewards"]):
        shown = CliRunner().invoke(app, [*command, str(target)])
        assert shown.exit_code in (0, 1) and "Traceback" not in shown.output


@pytest.mark.parametrize(
    ("field", "value"),
    [("quality-ppm", -1), ("examples", -5), ("reward", -1), ("quality-ppm", 10**7)],
)
def test_negative_counts_in_a_recertified_block_fail_cleanly(
    chain: tuple[Path, tuple[SigningKey, ...]],
    tmp_path: Path,
    field: str,
    value: int,
) -> None:
    ledgers, keys = chain
    target = copy_ledger(ledgers / "validator-0", tmp_path / "v")
    body = decode(rows(target)[3][0])
    assert isinstance(body, dict) and isinstance(body["submissions"], list)
    accepted = next(
        s
        for s in body["submissions"]
        if isinstance(s, dict) and s["verdict"] == "accepted"
    )
    accepted[field] = value
    # Re-hashed and re-certified by the committee itself: content must decide.
    tamper.reforge(target, 3, encode(body), tamper.Variant.INSIDER, keys)
    report = audit_ledger(target)
    assert report.bad_block == 3, report.problem
    assert report.failure in (Failure.BAD_CONTENT, Failure.BAD_REWARDS)
    code, output = verify(target, "--expect-height", 3)
    assert code == 1 and ": block 3: " in output


def test_the_seal_set_closed_for_a_round_survives_a_restart(tmp_path: Path) -> None:
    first, second = b"first set", b"second set"
    with Ledger(tmp_path) as ledger:
        assert ledger.close_seals(3, first) == first
        assert ledger.close_seals(3, second) == first  # the first set stays
    with Ledger(tmp_path) as ledger:  # restarted
        assert ledger.close_seals(3, second) == first
        assert ledger.close_seals(4, second) == second  # the next round's own
        assert ledger.close_seals(4, first) == second
