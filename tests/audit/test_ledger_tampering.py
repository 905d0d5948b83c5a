"""`pot ledger verify` with the committee pinned: every tampered ledger is refused.

The tamper kinds come from pot_flower.sim.tamper (shared with
benchmarks/tamper_ledger.py): fields x mutations x forger variants, forged
committees, rows, certificates, files, models and WAL damage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pot_flower.audit import (
    CommitteePin,
    CommitteeTrust,
    Completeness,
    Failure,
    LiveHead,
    Pins,
    audit_ledger,
    scan_wal,
)
from pot_flower.cli import app
from pot_flower.ops.committee_file import render_committee
from pot_flower.sim import tamper
from pot_flower.zk.signatures import VerifyKey


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tamper.Genuine:
    return tamper.build_genuine(tmp_path_factory.mktemp("genuine"))


@pytest.fixture(scope="module")
def kinds(genuine: tamper.Genuine) -> dict[str, tamper.TamperKind]:
    return {k.name: k for k in tamper.tamper_kinds(genuine)}


def tampered(
    genuine: tamper.Genuine, kinds: dict[str, tamper.TamperKind], name: str, tmp: Path
) -> Path:
    kind = kinds[name]
    source = genuine.wal_directory if kind.wal else genuine.directory
    target = tamper.copy_ledger(source, tmp / name.replace("/", "_"))
    kind.apply(target)
    return target


OUTSIDER_FIELD_FAMILIES = {
    f"field-{v}" for v in ("tamper", "rehash", "rechain", "resign")
}


def pinned_args(genuine: tamper.Genuine) -> list[str]:
    keys = ",".join(k.hex() for k in genuine.keys)
    return ["--validator-keys", keys, "--expect-height", str(genuine.head)]


def test_genuine_ledgers_verify_with_every_pin(genuine: tamper.Genuine) -> None:
    runner = CliRunner()
    for directory in (genuine.directory, genuine.wal_directory):
        plain = runner.invoke(app, ["ledger", "verify", str(directory)])
        assert plain.exit_code == 0, plain.output
        assert "committee not pinned: genesis keys trusted" in plain.output
        assert "completeness not checked" in plain.output
        pinned = runner.invoke(
            app, ["ledger", "verify", str(directory), *pinned_args(genuine)]
        )
        assert pinned.exit_code == 0, pinned.output
        assert "committee pinned" in pinned.output and "complete:" in pinned.output
        hashed = runner.invoke(
            app,
            [
                "ledger",
                "verify",
                str(directory),
                "--genesis-hash",
                genuine.hash(0).hex(),
            ],
        )
        assert hashed.exit_code == 0 and "pinned by --genesis-hash" in hashed.output
    report = audit_ledger(genuine.wal_directory, genuine.pins())
    assert report.ok and report.wal is None
    assert report.committee == CommitteeTrust.KEYS_PINNED
    assert report.completeness == Completeness.EXPECTED_HEIGHT


def test_every_tamper_kind_is_rejected_with_the_committee_pinned(
    genuine: tamper.Genuine, kinds: dict[str, tamper.TamperKind], tmp_path: Path
) -> None:
    # Every kind but half the outsiders' field kinds (their four forger variants
    # of one mutation fail alike); benchmarks/tamper_ledger.py runs them all.
    chosen = [
        kind
        for i, kind in enumerate(kinds.values())
        if i % 2 == 0 or kind.family not in OUTSIDER_FIELD_FAMILIES
    ]
    result = tamper.run_suite(genuine, tmp_path, chosen)
    summary = result.summary()
    assert summary["kinds"] >= 1000
    assert result.accepted == [], [o.kind.name for o in result.accepted][:10]
    assert result.crashed == [], [o.crashed for o in result.crashed][:3]
    assert result.misnamed == [], [(o.kind.name, o.problem) for o in result.misnamed][
        :10
    ]
    families = summary["families"]
    assert isinstance(families, dict)
    for family in ("committee", "row", "certificate", "file", "model", "wal"):
        assert families.get(family, 0) > 0, family
    for outcome in result.outcomes:  # one clean line, naming its block
        assert outcome.problem is not None and "\n" not in outcome.problem
        if outcome.kind.expect is not None:
            assert outcome.problem.startswith(f"block {outcome.kind.expect}: ")


def test_the_cli_refuses_them_in_one_line_without_a_traceback(
    genuine: tamper.Genuine, kinds: dict[str, tamper.TamperKind], tmp_path: Path
) -> None:
    runner = CliRunner()
    sample = list(kinds)[::9]  # every family, a few hundred kinds
    assert len(sample) >= 200
    for name in sample:
        target = tampered(genuine, kinds, name, tmp_path)
        verify = runner.invoke(
            app, ["ledger", "verify", str(target), *pinned_args(genuine)]
        )
        assert verify.exit_code == 1, (name, verify.output)
        assert "Traceback" not in verify.output and verify.exception is not None
        assert isinstance(verify.exception, SystemExit), name
        lines = verify.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("FAIL"), (name, lines)
        expect = kinds[name].expect
        if expect is not None:
            assert f": block {expect}: " in lines[0], (name, lines)
        if sample.index(name) % 4:
            continue  # show and rewards on a quarter of them (tables are slow)
        for command in (["ledger", "show"], ["rewards"]):
            shown = runner.invoke(app, [*command, str(target)])
            assert shown.exit_code in (0, 1, 2), (name, command, shown.output)
            assert isinstance(shown.exception, SystemExit | None), (name, command)


def test_without_pins_a_forged_committee_and_a_cut_ledger_are_only_trusted(
    genuine: tamper.Genuine, kinds: dict[str, tamper.TamperKind], tmp_path: Path
) -> None:
    runner = CliRunner()
    forged = tampered(genuine, kinds, "committee/all-keys", tmp_path)
    cut = tampered(genuine, kinds, f"row/drop/{genuine.head}", tmp_path)
    for target in (forged, cut):
        trusting = runner.invoke(app, ["ledger", "verify", str(target)])
        assert trusting.exit_code == 0, trusting.output
        assert (
            "committee not pinned: genesis keys trusted; completeness not checked"
            in trusting.output
        )
    by_keys = runner.invoke(
        app, ["ledger", "verify", str(forged), *pinned_args(genuine)]
    )
    assert by_keys.exit_code == 1 and ": block 0: genesis names another" in (
        by_keys.output
    )
    by_hash = runner.invoke(
        app, ["ledger", "verify", str(forged), "--genesis-hash", genuine.hash(0).hex()]
    )
    assert by_hash.exit_code == 1 and "block 0: genesis hash" in by_hash.output
    by_height = runner.invoke(
        app, ["ledger", "verify", str(cut), "--expect-height", str(genuine.head)]
    )
    assert by_height.exit_code == 1
    assert f"block {genuine.head}: missing" in by_height.output


def test_committee_file_pin(genuine: tamper.Genuine, tmp_path: Path) -> None:
    def write(name: str, keys: tuple[bytes, ...]) -> Path:
        path = tmp_path / name
        validators = [
            (f"127.0.0.1:{7000 + i}", VerifyKey(k)) for i, k in enumerate(keys)
        ]
        # TLS on, no TLS files here: pinning reads only the keys.
        path.write_text(render_committee(validators, {}, tls=True))
        return path

    runner = CliRunner()
    right = write("right.toml", genuine.keys)
    wrong = write("wrong.toml", tuple(k.verify_key.raw for k in tamper.ATTACKER))
    ok = runner.invoke(
        app, ["ledger", "verify", str(genuine.directory), "--committee", str(right)]
    )
    assert ok.exit_code == 0 and "committee pinned" in ok.output, ok.output
    bad = runner.invoke(
        app, ["ledger", "verify", str(genuine.directory), "--committee", str(wrong)]
    )
    assert bad.exit_code == 1
    assert "block 0: genesis names another committee" in bad.output
    assert "wrong.toml" in bad.output
    both = runner.invoke(
        app,
        [
            "ledger",
            "verify",
            str(genuine.directory),
            "--committee",
            str(right),
            "--validator-keys",
            genuine.keys[0].hex(),
        ],
    )
    assert both.exit_code == 2
    for bad_option in (
        ["--validator-keys", "zz"],
        ["--validator-keys", "00ff"],
        ["--genesis-hash", "12"],
        ["--committee", str(tmp_path / "absent.toml")],
        ["--committee", str(genuine.directory / "ledger.sqlite")],
        ["--expect-height", "-1"],
    ):
        usage = runner.invoke(
            app, ["ledger", "verify", str(genuine.directory), *bad_option]
        )
        assert usage.exit_code == 2, (bad_option, usage.output)
        assert "Traceback" not in usage.output


def test_a_pinned_quorum_below_two_f_plus_one_is_refused(
    genuine: tamper.Genuine,
) -> None:
    stricter = CommitteePin(keys=genuine.keys, quorum=4)
    report = audit_ledger(genuine.directory, Pins(committee=stricter))
    assert report.failure == Failure.COMMITTEE_MISMATCH and report.bad_block == 0
    with pytest.raises(ValueError):
        CommitteePin(keys=genuine.keys[:1] * 2)


def test_live_head_pins_completeness(genuine: tamper.Genuine) -> None:
    """The live head as a source: reached, beyond, forked, or not established."""
    head, block = genuine.head, genuine.hash(genuine.head)

    def audit(live: LiveHead) -> Failure | None:
        report = audit_ledger(genuine.directory, Pins(live_head=lambda run: live))
        assert report.completeness == Completeness.LIVE_QUORUM
        return report.failure

    assert audit(LiveHead(4, 4, 3, head, block)) is None
    assert audit(LiveHead(3, 4, 3, head - 1, genuine.hash(head - 1))) is None
    assert audit(LiveHead(4, 4, 3, head + 1, b"\1" * 32)) == Failure.MISSING
    assert audit(LiveHead(4, 4, 3, head, b"\2" * 32)) == Failure.FORK
    assert audit(LiveHead(2, 4, 3)) == Failure.LIVE_HEAD_UNKNOWN
    assert audit(LiveHead(4, 4, 3)) == Failure.LIVE_HEAD_UNKNOWN


def test_wal_scanner_tells_stale_frames_from_damage(genuine: tamper.Genuine) -> None:
    data = (genuine.wal_directory / tamper.WAL_FILE).read_bytes()
    assert scan_wal(data) is None
    assert scan_wal(b"") is None and scan_wal(data[:32]) is None
    frame = genuine.page_size + 24
    # Frames of an older WAL generation (other salts) after the valid ones: normal.
    stale = bytearray(data[32 : 32 + frame])
    stale[8] ^= 0xFF
    assert scan_wal(data + bytes(stale)) is None
    damaged = bytearray(data)
    damaged[32 + frame + 100] ^= 1
    found = scan_wal(bytes(damaged))
    assert found is not None and found.frame == 1 and found.lost_commits >= 2
    cut = scan_wal(data + data[32 : 32 + frame // 2])
    assert cut is not None and cut.tail


def backup(source: Path, target: Path) -> Path:
    """A consistent copy of a live validator's ledger (SQLite's backup API)."""
    import shutil
    import sqlite3

    target.mkdir(parents=True)
    src = sqlite3.connect(source / "ledger.sqlite")
    dst = sqlite3.connect(target / "ledger.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    shutil.copytree(source / "models", target / "models")
    return target


def test_against_a_live_committee(tmp_path: Path) -> None:
    """--against: the head a quorum of validator processes certifies, over gRPC."""
    import sqlite3

    from pot_flower.committee.remote import RemoteCommittee
    from pot_flower.ops.committee_file import load_committee, read_key
    from pot_flower.ops.local import COORDINATOR, prepare, running
    from pot_flower.protocol.fixedpoint import max_norm_units

    home = tmp_path / "committee"
    path = prepare(4, home)
    committee = load_committee(path)
    runner = CliRunner()
    with running(path) as processes:
        remote = RemoteCommittee(
            committee.config,
            committee.addresses,
            COORDINATOR,
            read_key(home / f"{COORDINATOR}.key"),
            run=tamper.RUN,
            model=tamper.initial_model(),
            norm_bound_units=max_norm_units(10.0),
            timeout=60,
        )
        try:
            current = remote.model
            for _ in range(2):
                refs, payloads = tamper.round_submissions(
                    remote, current, unavailable=False
                )
                current = remote.certify_round(refs, payloads).model
        finally:
            remote.close()
        live = home / "validator-1" / "chains" / f"run-{tamper.RUN}"
        copy = backup(live, tmp_path / "copy")
        against = ["--against", str(path), "--timeout", "5"]
        ok = runner.invoke(app, ["ledger", "verify", str(copy), *against])
        assert ok.exit_code == 0, ok.output
        assert "committee pinned" in ok.output
        assert "committee pinned by committee.toml" in ok.output
        assert "reaches the head a quorum of 4 live validators certifies" in ok.output
        cut = backup(live, tmp_path / "cut")
        db = sqlite3.connect(cut / "ledger.sqlite")
        db.execute("DROP TRIGGER blocks_append_only_delete")
        db.execute("DELETE FROM blocks WHERE height = 2")
        db.commit()
        db.close()
        assert runner.invoke(app, ["ledger", "verify", str(cut)]).exit_code == 0
        short = runner.invoke(app, ["ledger", "verify", str(cut), *against])
        assert short.exit_code == 1, short.output
        assert "block 2: missing" in short.output and "live validators" in short.output
        for i in (1, 2, 3):
            processes[i].terminate()
            processes[i].wait(timeout=30)
        alone = runner.invoke(app, ["ledger", "verify", str(copy), *against])
        assert alone.exit_code == 3, alone.output
        assert "completeness not checked: only 1 of 4 validators answered" in (
            alone.output
        )
