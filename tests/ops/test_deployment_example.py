"""The Deployment Engine recipe runs as its README says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
def test_deployment_recipe_runs_and_every_ledger_verifies() -> None:
    env = dict(os.environ, ROUNDS="1", NODES="2")
    proc = subprocess.run(
        ["bash", str(ROOT / "examples/deployment/run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "round 1/1  accuracy" in output
    assert output.count("OK ") == 4, output[-2000:]
