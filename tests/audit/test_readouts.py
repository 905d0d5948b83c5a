"""Machine-readable read-outs: what scripts get from a verified ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pot_support import miner, run_committee
from typer.testing import CliRunner

from pot_flower.audit import read_blocks
from pot_flower.cli import app
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.block import parse_block

RUN = 7
NODES = (100, 101, 102)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("readouts")
    unsigned = SubmissionRef(999, None, None, None)  # rejected: missing-signature
    run_committee(directory, run=RUN, rounds=2, nodes=NODES, bad=unsigned)
    return directory / "validator-0"


def test_export_writes_one_typed_block_per_line(ledger: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ledger", "export", str(ledger), str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "blocks.jsonl").read_text().splitlines()
    blocks = [json.loads(line) for line in lines]
    assert [b["height"] for b in blocks] == [0, 1, 2]
    assert (
        blocks[0]["kind"] == "genesis" and len(blocks[0]["params"]["validators"]) == 4
    )
    for block in blocks[1:]:
        assert block["kind"] == "round" and len(block["hash"]) == 64
        assert len(block["certified-by"]) >= 3
        subs = {s["node"]: s for s in block["submissions"]}
        assert subs[999]["verdict"] == "rejected"
        assert subs[999]["reason"] == "missing-signature"
        assert subs[999]["miner"] is None and subs[999]["reward"] == 0
        for i, node in enumerate(NODES):
            assert subs[node]["verdict"] == "accepted" and subs[node]["reason"] is None
            assert subs[node]["miner"] == miner(i).verify_key.raw.hex()
            assert subs[node]["reward"] > 0
        paid = sum(s["reward"] for s in block["submissions"])
        fees = sum(f["amount"] for f in block["validator-fees"])
        assert paid + fees == block["minted"]
    assert len(read_blocks(ledger)) == len(blocks)


def test_export_matches_the_stored_bytes(ledger: Path, tmp_path: Path) -> None:
    CliRunner().invoke(app, ["ledger", "export", str(ledger), str(tmp_path)])
    db = sqlite3.connect(ledger / "ledger.sqlite")
    rows = db.execute("SELECT height, hash, body FROM blocks ORDER BY height")
    exported = [json.loads(x) for x in (tmp_path / "blocks.jsonl").open()]
    for (height, digest, body), line in zip(rows, exported, strict=True):
        assert line["hash"] == bytes(digest).hex()
        assert (
            parse_block(bytes(body)).to_json()
            | {
                "hash": line["hash"],
                "certified-by": line["certified-by"],
            }
            == line
        )
        assert line["height"] == height
    db.close()


def test_export_refuses_a_ledger_that_does_not_verify(
    ledger: Path, tmp_path: Path
) -> None:
    bad = CliRunner().invoke(
        app,
        ["ledger", "export", str(ledger), str(tmp_path), "--genesis-hash", "00" * 32],
    )
    assert bad.exit_code == 1 and "does not verify" in bad.output
    assert not (tmp_path / "blocks.jsonl").exists()


def test_rewards_json_has_full_keys_and_node_ids(ledger: Path) -> None:
    result = CliRunner().invoke(app, ["rewards", str(ledger), "--json"])
    assert result.exit_code == 0, result.output
    value = json.loads(result.output)
    assert value["rounds"] == 2
    by_key = {m["key"]: m for m in value["miners"]}
    for i, node in enumerate(NODES):
        entry = by_key[miner(i).verify_key.raw.hex()]
        assert entry["nodes"] == [node] and entry["balance"] > 0
    assert [v["index"] for v in value["validators"]] == sorted(
        v["index"] for v in value["validators"]
    )
    assert all(len(v["key"]) == 64 for v in value["validators"])
    total = sum(m["balance"] for m in value["miners"]) + sum(
        v["balance"] for v in value["validators"]
    )
    assert total == value["minted"]


def test_show_prints_each_rounds_submissions(ledger: Path) -> None:
    plain = CliRunner().invoke(app, ["ledger", "show", str(ledger)])
    wide = {"COLUMNS": "200"}  # rich fits tables to the terminal's width
    detailed = CliRunner().invoke(
        app, ["ledger", "show", str(ledger), "--submissions"], env=wide
    )
    assert plain.exit_code == detailed.exit_code == 0
    assert "submissions" not in plain.output
    assert "block 1: submissions" in detailed.output
    assert "block 2: submissions" in detailed.output
    assert "missing-signature" in detailed.output and "999" in detailed.output
