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
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
NODES = 10


def _alive(group: int) -> list[int]:
    """The live (not zombie) processes of process group or session ``group``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # pid (comm) state ppid pgrp session ...; comm may hold spaces
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and group in (int(fields[2]), int(fields[3])):
                pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not DATA.exists(), reason="apt-get install dataset-fashion-mnist")
@pytest.mark.timeout(560)
def test_deployment_recipe_certifies_a_round_from_ten_supernodes(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    env = dict(os.environ, ROUNDS="1", NODES=str(NODES), WORK=str(work))
    log = tmp_path / "run.out"
    with log.open("w") as out:
        # Own session: on a timeout the script and its foreground children get
        # SIGTERM together, and its EXIT trap stops every process group it started.
        proc = subprocess.Popen(
            ["bash", str(ROOT / "examples/deployment/run.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=480)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = log.read_text(errors="replace")
    stopped = re.search(r"stopped process groups ([\d ]+)", output)
    groups = [int(g) for g in stopped.group(1).split()] if stopped else []
    leftovers = {g: _alive(g) for g in groups}
    for pids in leftovers.values():  # never leave daemons behind on this machine
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-4000:]
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
