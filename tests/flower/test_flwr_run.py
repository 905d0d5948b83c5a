"""End to end: the quickstart under `flwr run` (simulation engine), ledgers verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from pot_flower.audit import audit_ledger
from pot_flower.ops.superlink import flwr_run, local_superlink

APP = Path(__file__).resolve().parents[2] / "examples" / "quickstart-pytorch"
DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def quickstart(tmp_path: Path, **config: object) -> str:
    """The quickstart on 4 simulated SuperNodes with ``config``; its output."""
    with local_superlink(tmp_path / "flwr-home") as env:
        proc = flwr_run(
            APP,
            env,
            run_config={
                "pot-ledger-dir": str(tmp_path / "ledger"),
                "pot-keystore": str(tmp_path / "keys"),
                **config,
            },
            num_supernodes=4,
            timeout=280,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    return output


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
def test_quickstart_runs_under_flwr_run_and_leaves_verified_ledgers(
    tmp_path: Path,
) -> None:
    output = quickstart(tmp_path, **{"num-server-rounds": 2, "fraction-evaluate": 0.5})
    assert "round 2/2  accuracy" in output
    assert "accepted 4  rejected 0" in output
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
        assert report.blocks == 3
    assert len(list((tmp_path / "keys").glob("miner-*.key"))) == 4


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
def test_quickstart_with_central_dp_stops_at_its_budget(tmp_path: Path) -> None:
    """`-c pot-dp=central` on the quickstart: noised rounds, epsilon in every block,
    and the run ends cleanly before the budget (3.19 after 2 rounds, 4.01 after 3)."""
    output = quickstart(
        tmp_path,
        **{
            "num-server-rounds": 3,
            "fraction-evaluate": 0.0,
            "pot-dp": "central",
            "pot-dp-noise-multiplier": 2.0,
            "pot-dp-clip-norm": 1.0,
            "pot-dp-target-epsilon": 3.5,
        },
    )
    assert "Privacy budget" in output and "stops after round 2 of 3" in output
    assert "epsilon 3.1890" in output
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
        assert report.blocks == 3


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
def test_quickstart_with_pedersen_commit_reveal_and_bls_passes_the_ledger_audit(
    tmp_path: Path,
) -> None:
    """`-c pot-commitment=pedersen pot-commit-reveal=true pot-certificate=bls` on
    the quickstart under `flwr run`: miners commit and seal in Flower's simulation
    workers and reveal from their nodes' Context.state; blocks carry aggregated
    BLS certificates; every model opens against the commitments from the ledger
    alone."""
    pytest.importorskip("py_arkworks_bls12381")
    from pot_flower.audit.opening import audit_openings

    output = quickstart(
        tmp_path,
        **{
            "num-server-rounds": 2,
            "fraction-evaluate": 0.0,
            "pot-commitment": "pedersen",
            "pot-robust": "off",
            "pot-commit-reveal": True,
            "pot-certificate": "bls",
        },
    )
    assert "accepted 4  rejected 0" in output
    assert "commit-reveal: 4 of 4 replies sealed, 4 revealed" in output
    for i in range(4):
        ledger = tmp_path / "ledger" / f"validator-{i}"
        assert audit_ledger(ledger).ok
        report = audit_openings(ledger)
        assert report.ok, report.problem
        assert report.opened == 2
