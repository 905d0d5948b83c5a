"""``pot report``: what a verified ledger says, drawn; an unverified one refused."""

from __future__ import annotations

import shutil
import sqlite3
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from flower_support import LocalGrid, Net, make_plain_app
from flwr.app import Array, ArrayRecord, ConfigRecord, Message
from typer.testing import CliRunner

from pot_flower.audit import audit_ledger
from pot_flower.cli import app
from pot_flower.clients import pot_mod
from pot_flower.report import LedgerNotVerified, ledger_series, write_report
from pot_flower.report.series import miner_label, short_labels
from pot_flower.strategies import PoTStrategy

PNG = b"\x89PNG\r\n\x1a\n"


def tamper(node: int, reply: Message) -> Message:
    """Node 1000's update is rewritten after signing; node 1007's has no arrays."""
    if reply.metadata.message_type == "train":
        if node == 1000:
            arrays = reply.content["arrays"]
            arrays["fc2.bias"] = Array(arrays["fc2.bias"].numpy() + np.float32(1))
        elif node == 1007:
            del reply.content["arrays"]
    return reply


def federation(tmp_path: Path, rounds: int = 3, **kwargs: object) -> Path:
    grid = LocalGrid(
        make_plain_app(mods=[pot_mod]),
        5,
        run_config={"pot-keystore": str(tmp_path / "keys")},
        tamper=tamper,
    )
    strategy = PoTStrategy(
        ledger_dir=tmp_path / "ledger",
        min_available_nodes=5,
        fraction_evaluate=0.0,
        **kwargs,  # type: ignore[arg-type]
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    return tmp_path / "ledger" / "validator-0"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return federation(tmp_path_factory.mktemp("run"))


def test_the_series_are_what_the_blocks_record(ledger: Path) -> None:
    series = ledger_series(ledger)
    report = audit_ledger(ledger)
    assert series.rounds == [1, 2, 3]
    assert series.accepted == [3, 3, 3]
    assert series.unpaid == [0, 0, 0]
    assert [dict(r) for r in series.rejected] == [
        {"commitment-mismatch": 1, "malformed-update": 1}
    ] * 3
    assert series.reasons[0] in ("commitment-mismatch", "malformed-update")
    # The last cumulative balance is the audited balance, for every account;
    # the two rejected miners are drawn at 0.
    final = {k: v[-1] for k, v in series.miner_balance.items()}
    assert {k: v for k, v in final.items() if v} == {
        miner_label(k): v for k, v in report.miner_balances.items()
    }
    assert sorted(final.values())[:2] == [0, 0] and len(final) == 5
    assert {k: v[-1] for k, v in series.validator_balance.items()} == dict(
        report.validator_balances
    )
    assert all(a <= b for v in series.miner_balance.values() for a, b in pairwise(v))
    # Rejected miners have no quality; accepted ones do, every round.
    assert [sum(q is not None for q in v) for v in series.quality.values()] == [3] * 3
    assert series.epsilon == [None, None, None]


def test_the_report_writes_pictures_and_a_summary_that_links_them(
    ledger: Path, tmp_path: Path
) -> None:
    written = write_report(ledger, tmp_path / "report")
    names = sorted(p.name for p in written.pictures)
    assert names == ["quality.png", "rewards.png", "verdicts.png"]
    for picture in written.pictures:
        data = picture.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, picture
    text = written.summary.read_text()
    for name in names:
        assert f"]({name})" in text
    assert "| 2 | 3 (0) | commitment-mismatch 1, malformed-update 1 | 0 |" in text
    assert "Totals: 9 accepted, 6 rejected." in text
    assert "3000000 token units minted" in text


def test_a_central_dp_ledger_gets_its_epsilon_drawn(tmp_path: Path) -> None:
    ledger = federation(tmp_path, rounds=2, dp="central", dp_clip_norm=0.5)
    series = ledger_series(ledger)
    assert all(e is not None and e > 0 for e in series.epsilon)
    assert series.epsilon[0] < series.epsilon[1]  # type: ignore[operator]
    written = write_report(ledger, tmp_path / "report")
    assert (tmp_path / "report" / "privacy.png").read_bytes().startswith(PNG)
    assert "epsilon |" in written.summary.read_text()


def test_a_ledger_that_does_not_verify_gets_no_report(
    ledger: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ledger, copy)
    with sqlite3.connect(copy / "ledger.sqlite") as db:  # a forger's edit
        db.execute("DROP TRIGGER blocks_append_only_update")
        db.execute("UPDATE blocks SET body = body || x'00' WHERE height = 2")
    with pytest.raises(LedgerNotVerified, match="does not verify"):
        write_report(copy, tmp_path / "report")
    assert not (tmp_path / "report").exists()
    result = CliRunner().invoke(
        app, ["report", str(copy), "--out", str(tmp_path / "r2")]
    )
    assert result.exit_code == 1 and "does not verify" in result.output
    assert not (tmp_path / "r2").exists()


def test_the_cli_writes_the_report(ledger: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", str(ledger), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "r" / "README.md").exists()


def test_verification_reports_its_progress_block_by_block(ledger: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = audit_ledger(ledger, progress=lambda d, t: calls.append((d, t)))
    assert report.ok
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_miners_sharing_a_prefix_are_never_drawn_as_one() -> None:
    honest, grinder = "ab12cd34" + "0" * 56, "ab12cd34" + "f" * 56
    other = "99" * 32
    short = short_labels([honest, grinder, other])
    assert len(set(short.values())) == 3
    assert short[honest] == honest[:16] and short[other] == other[:16]
    assert short_labels([honest, other]) == {honest: honest[:8], other: other[:8]}


def test_the_summary_says_what_was_trusted_and_lists_the_unpaid(
    ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "privacy.png").write_bytes(b"stale")  # from another ledger's report
    text = write_report(ledger, out).summary.read_text()
    assert "Trust: committee not pinned" in text
    assert text.count(" | 0 |") >= 2  # the two rejected miners, paid nothing
    assert not (out / "privacy.png").exists()


def test_an_out_path_that_is_a_file_is_a_usage_error(
    ledger: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["report", str(ledger), "--out", str(blocker)])
    assert result.exit_code == 2 and "cannot write the report" in result.output
