"""The Deployment Engine recipe runs as its README says, with 10 SuperNodes.

examples/deployment/run.sh: a committee of 4 validator processes, a SuperLink and
10 SuperNodes (one miner each), `flwr run` of the quickstart for one round. The
certified round must hold accepted submissions from 10 distinct miners on 10
distinct Flower nodes (the keys the SuperNodes' ClientApps created), every
validator's ledger must verify at exactly that height, and no process the recipe
started may outlive it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_support import reap, run_recipe

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
# Minutes of processes: outside the test command, run by CI (pytest -m recipe).
pytestmark = pytest.mark.recipe
NODES = 10


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
@pytest.mark.timeout(560)
def test_deployment_recipe_certifies_a_round_from_ten_supernodes(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    env = dict(os.environ, ROUNDS="1", NODES=str(NODES), WORK=str(work))
    code, output = run_recipe(
        ["bash", str(ROOT / "examples/deployment/run.sh")],
        env,
        tmp_path / "run.out",
        480,
    )
    stopped = re.search(r"stopped process groups ([\d ]+)", output)
    groups = [int(g) for g in stopped.group(1).split()] if stopped else []
    leftovers = reap(groups)  # never leave daemons behind on this machine
    assert code == 0, output[-4000:]
    # The committee, the SuperLink and every SuperNode, all stopped.
    assert len(groups) == 2 + NODES, output[-2000:]
    assert not any(leftovers.values()), leftovers

    assert "round 1/1  accuracy" in output
    assert f"accepted {NODES}  rejected 0" in output
    assert re.search(r"^run \d+: finished:completed$", output, re.MULTILINE)
    verified = re.findall(r"^OK .*genesis \+ 1 rounds", output, re.MULTILINE)
    assert len(verified) == 4, output[-2000:]

    # What the certified block says, read as a script would (verified export).
    (ledger,) = (work / "committee" / "validator-0" / "chains").glob("run-*")
    command = ["ledger", "export", str(ledger), str(tmp_path / "export")]
    export = subprocess.run(
        [sys.executable, "-m", "pot_flower", *command, "--expect-height", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    blocks = [
        json.loads(line)
        for line in (tmp_path / "export" / "blocks.jsonl").read_text().splitlines()
    ]
    assert [b["height"] for b in blocks] == [0, 1]
    accepted = [s for s in blocks[1]["submissions"] if s["verdict"] == "accepted"]
    assert len(accepted) == NODES
    assert len({s["miner"] for s in accepted}) == NODES
    assert len({s["node"] for s in accepted}) == NODES
    # The miners are the keys the 10 SuperNodes' ClientApps made and kept.
    keys = {p.read_text().strip() for p in (work / "keystore").glob("miner-*.pub")}
    assert {s["miner"] for s in accepted} == keys
