"""Checkpoints: a re-verification may skip recomputing only what is unchanged.

A checkpoint is made by verifying a genuine copy; the copy is then tampered with in
every way pot_flower.sim.tamper knows and verified again with the checkpoint: the
outcome must be exactly the one a verifier without any checkpoint gets.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pot_support import run_committee
from typer.testing import CliRunner

from pot_flower.audit import Pins, audit_ledger
from pot_flower.audit.checkpoint import CheckpointStore
from pot_flower.cli import app
from pot_flower.sim import tamper


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tamper.Genuine:
    return tamper.build_genuine(tmp_path_factory.mktemp("genuine"))


def fields(report: object) -> dict[str, object]:
    keep = (
        "blocks",
        "bad_block",
        "problem",
        "failure",
        "hashes",
        "miner_balances",
        "validator_balances",
        "validators",
        "minted",
        "run",
        "wal",
    )
    return {k: getattr(report, k) for k in keep}


def test_a_second_verification_resumes_and_concludes_the_same(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    store = CheckpointStore(tmp_path / "cache")
    first = audit_ledger(genuine.directory, genuine.pins(), checkpoints=store)
    assert first.ok and first.resumed_at is None
    again = audit_ledger(genuine.directory, genuine.pins(), checkpoints=store)
    assert again.ok and again.resumed_at == genuine.head
    assert fields(again) == fields(first)
    full = audit_ledger(
        genuine.directory, genuine.pins(), checkpoints=store, resume=False
    )
    assert full.resumed_at is None and fields(full) == fields(first)


def test_every_tamper_after_a_checkpoint_fails_as_without_one(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    kinds = tamper.tamper_kinds(genuine)
    # Every kind but the field mutations, of which one in twelve (their families
    # alike): benchmarks/tamper_ledger.py's time would go to the rest.
    fields_ = [k for k in kinds if k.family.startswith("field-")]
    chosen = [k for k in kinds if not k.family.startswith("field-")] + fields_[::12]
    assert len(chosen) > 500
    store = CheckpointStore(tmp_path / "cache")
    resumed_then_refused = 0
    for index, kind in enumerate(chosen):
        source = genuine.wal_directory if kind.wal else genuine.directory
        target = tamper.copy_ledger(source, tmp_path / f"k{index}")
        made = audit_ledger(target, genuine.pins(), checkpoints=store)
        assert made.ok, (kind.name, made.problem)
        kind.apply(target)
        with_checkpoint = audit_ledger(target, genuine.pins(), checkpoints=store)
        without = audit_ledger(target, genuine.pins())
        assert fields(with_checkpoint) == fields(without), kind.name
        assert not without.ok, kind.name
        resumed_then_refused += with_checkpoint.resumed_at is not None
        shutil.rmtree(target)
    # Kinds that touch only what follows the checkpoint resume and still fail.
    assert resumed_then_refused > 0


def test_a_model_rewritten_with_its_times_restored_is_rehashed(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    target = tamper.copy_ledger(genuine.directory, tmp_path / "copy")
    store = CheckpointStore(tmp_path / "cache")
    assert audit_ledger(target, checkpoints=store).ok
    model = sorted((target / "models").iterdir())[1]
    before = model.stat()
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    report = audit_ledger(target, checkpoints=store)
    assert not report.ok and "does not match its digest" in str(report.problem)


def test_an_appended_ledger_recomputes_only_the_new_blocks(tmp_path: Path) -> None:
    run_committee(tmp_path / "short", rounds=2)
    run_committee(tmp_path / "long", rounds=2)
    store = CheckpointStore(tmp_path / "cache")
    ledger = tmp_path / "short" / "validator-0"
    assert audit_ledger(ledger, checkpoints=store).ok
    # The same path now holding a longer chain (another run, another genesis):
    shutil.rmtree(tmp_path / "short")
    run_committee(tmp_path / "short", rounds=3)
    report = audit_ledger(ledger, checkpoints=store)
    assert report.ok and report.resumed_at is None and report.head == 3


def test_a_truncated_ledger_after_a_checkpoint_is_what_it_is(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    kinds = {k.name: k for k in tamper.tamper_kinds(genuine)}
    target = tamper.copy_ledger(genuine.directory, tmp_path / "copy")
    store = CheckpointStore(tmp_path / "cache")
    assert audit_ledger(target, genuine.pins(), checkpoints=store).ok
    kinds[f"row/truncate-from/{genuine.head}"].apply(target)
    pinned = audit_ledger(target, genuine.pins(), checkpoints=store)
    assert not pinned.ok and pinned.resumed_at is None
    assert fields(pinned) == fields(audit_ledger(target, genuine.pins()))
    bare = audit_ledger(target, Pins(), checkpoints=store)
    assert bare.ok and bare.head == genuine.head - 1  # a shorter history, as ever


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "other-code", "other-ledger", "wrong-types"],
)
def test_a_damaged_or_foreign_checkpoint_is_ignored(
    genuine: tamper.Genuine, tmp_path: Path, damage: str
) -> None:
    target = tamper.copy_ledger(genuine.directory, tmp_path / "copy")
    store = CheckpointStore(tmp_path / "cache")
    assert audit_ledger(target, checkpoints=store).ok
    (file,) = (tmp_path / "cache").iterdir()
    value = json.loads(file.read_text())
    if damage == "garbage":
        file.write_bytes(b"\xff" * 100)
    elif damage == "truncated":
        file.write_text(file.read_text()[:-200])
    elif damage == "other-code":
        file.write_text(json.dumps({**value, "code": "0" * 64}))
    elif damage == "other-ledger":
        file.write_text(json.dumps({**value, "ledger": "/elsewhere"}))
    else:
        file.write_text(json.dumps({**value, "minted": "lots", "miners": 5}))
    report = audit_ledger(target, checkpoints=store)
    assert report.ok and report.resumed_at is None


def test_the_checkpoint_lives_with_the_verifier_never_beside_the_ledger(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    # Whoever can write a ledger must not be able to write what vouches for it.
    target = tamper.copy_ledger(genuine.directory, tmp_path / "copy")

    def files() -> list[Path]:  # SQLite's own -shm and -wal files aside
        return sorted(
            p.relative_to(target)
            for p in target.rglob("*")
            if not p.name.endswith(("-shm", "-wal"))
        )

    before = files()
    store = CheckpointStore(tmp_path / "cache")
    assert audit_ledger(target, checkpoints=store).ok
    assert files() == before
    (file,) = (tmp_path / "cache").iterdir()
    assert file.stat().st_mode & 0o077 == 0  # private to the verifier


def test_the_cli_says_it_resumed_and_full_recomputes(
    genuine: tamper.Genuine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POT_AUDIT_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    target = tamper.copy_ledger(genuine.directory, tmp_path / "copy")
    first = runner.invoke(app, ["ledger", "verify", str(target)])
    assert first.exit_code == 0 and "re-hashed" not in first.output
    second = runner.invoke(app, ["ledger", "verify", str(target)])
    assert second.exit_code == 0
    assert f"blocks 1-{genuine.head} re-hashed and matched" in second.output
    full = runner.invoke(app, ["ledger", "verify", str(target), "--full"])
    assert full.exit_code == 0 and "re-hashed" not in full.output


def test_an_unwritable_cache_changes_nothing(
    genuine: tamper.Genuine, tmp_path: Path
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    report = audit_ledger(genuine.directory, checkpoints=CheckpointStore(blocker))
    assert report.ok and report.resumed_at is None
