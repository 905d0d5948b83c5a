"""The Ray-cluster recipe (examples/ray-cluster/run.sh) runs as its README says.

A Ray head and a second Ray node (1 CPU each) started with ``ray start`` in their own
process groups, a simulation SuperLink started with ``RAY_ADDRESS`` pointing at the
head, ``flwr run`` of the quickstart with PoTStrategy: the ClientApp actors must have
run on both nodes of *that* cluster (its GCS says so; a private Ray instance started
by Flower would leave it empty), every validator's ledger must verify, and no
process the recipe started may outlive it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from recipe_support import reap, run_recipe

from pot_flower.audit import audit_ledger

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ray-cluster" / "run.sh"
DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
# Minutes of processes: outside the test command, run by CI (pytest -m recipe).
pytestmark = pytest.mark.recipe


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
def test_ray_cluster_recipe_runs_the_clientapps_on_the_cluster(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    work = tmp_path / "work"
    env = dict(os.environ, ROUNDS="1", NODES="4", RAY_NODES="2", WORK=str(work))
    env.pop("RAY_ADDRESS", None)  # the script must start its own cluster
    code, output = run_recipe(
        ["bash", str(SCRIPT), "-c", "batch-size=128"], env, tmp_path / "run.out", 230
    )
    groups = [int(g) for g in re.findall(r"process group (\d+):", output)]
    leftovers = reap(groups)  # never leave a cluster behind on this machine
    assert code == 0, output[-4000:]

    # Everything the script started (2 Ray nodes, the SuperLink) is gone.
    assert len(groups) == 3, output[-2000:]
    assert not any(leftovers.values()), leftovers
    temp = re.search(r"temp dir (/\S+)\)", output)
    assert temp and not Path(temp.group(1)).exists()

    # The round ran and was certified; every ledger verifies (the CLI said so, and
    # so does the auditor here).
    assert "round 1/1  accuracy" in output
    assert "accepted 4  rejected 0" in output
    assert len(re.findall(r"^OK .*verified", output, re.MULTILINE)) == 4
    for i in range(4):
        report = audit_ledger(work / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
        assert report.blocks == 2

    # The cluster's GCS: Flower's simulation driver connected to it, and its
    # ClientApp actors ran on both Ray nodes.
    cluster = json.loads((work / "cluster.json").read_text())
    assert "flwr-simulation" in cluster["driver"]["entrypoint"]
    assert len(cluster["nodes"]) == 2
    assert all(n["client_app_actors"] >= 1 for n in cluster["nodes"].values())
