"""PoTStrategy with Pedersen commitments: unchanged ClientApps, pot_mod commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from flower_support import LocalGrid, Net, make_plain_app
from flwr.app import ArrayRecord, ConfigRecord

pytest.importorskip("py_arkworks_bls12381")

from pot_flower.audit import audit_ledger, read_blocks
from pot_flower.clients import pot_mod
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.commitments import CommitmentKind
from pot_flower.strategies import PoTStrategy


def test_a_pedersen_run_accepts_every_honest_update_and_verifies(
    tmp_path: Path,
) -> None:
    grid = LocalGrid(
        make_plain_app(mods=[pot_mod]),
        4,
        run_config={"pot-keystore": str(tmp_path / "keys")},
    )
    strategy = PoTStrategy.from_run_config(
        {
            "pot-commitment": "pedersen",
            "pot-ledger-dir": str(tmp_path / "ledger"),
            "min-available-nodes": 4,
            "fraction-evaluate": 0.0,
        }
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=2,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    assert [r.accepted for r in strategy.history] == [4, 4]
    for i in range(4):
        ledger = tmp_path / "ledger" / f"validator-{i}"
        report = audit_ledger(ledger)
        assert report.ok, report.problem
    blocks = [parse_block(b.body) for b in read_blocks(tmp_path / "ledger/validator-0")]
    genesis, rounds = blocks[0], [b for b in blocks if isinstance(b, RoundBlock)]
    assert genesis.params.commitment == CommitmentKind.PEDERSEN  # type: ignore[union-attr]
    assert {len(s.commitment or b"") for b in rounds for s in b.submissions} == {48}


def test_the_commitment_kind_is_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="'hash' or 'pedersen'"):
        PoTStrategy(commitment="sha3")
    assert PoTStrategy().commitment == CommitmentKind.HASH


def test_scored_pedersen_rounds_score_the_arrays_not_the_opening(
    tmp_path: Path,
) -> None:
    """The payload carries the blinding after the arrays: the score function must
    get the arrays (with the opening attached, every update scored nothing and
    was rejected as low-score)."""
    seen: list[int] = []

    def score(base: dict[str, object], returned: dict[str, object]) -> float:
        seen.append(len(returned))
        return 1.0

    grid = LocalGrid(
        make_plain_app(mods=[pot_mod]),
        4,
        run_config={"pot-keystore": str(tmp_path / "keys")},
    )
    strategy = PoTStrategy(
        commitment="pedersen",
        score_fn=score,  # type: ignore[arg-type]
        ledger_dir=tmp_path / "ledger",
        min_available_nodes=4,
        fraction_evaluate=0.0,
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=1,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    assert strategy.history[0].accepted == 4
    assert seen == [len(Net().state_dict())] * 4
