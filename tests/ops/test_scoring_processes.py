"""Scoring with validator processes: each loads the committee file's score function."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from pot_flower.audit import audit_ledger
from pot_flower.committee.remote import RemoteCommittee
from pot_flower.ops.committee_file import load_committee, read_key
from pot_flower.ops.daemon import EXIT_CONFIG
from pot_flower.ops.local import COORDINATOR, prepare, start, stop_all, wait_healthy
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.submission import build_submission
from pot_flower.zk.signatures import SigningKey

TASK = '''
import numpy as np


def score(base, returned):
    """Small updates score high (stands in for a validation-loss gain)."""
    return 1.0 - sum(float(np.abs(returned[k] - base[k]).sum()) for k in base) / 10
'''


@pytest.fixture
def task_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A task owner's module, installed on the validators' (here: one) host."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "owner_task.py").write_text(TASK)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'mods'}{os.pathsep}{path}")
    return "owner_task:score"


def test_validator_processes_score_and_exclude_a_harmful_update(
    tmp_path: Path, task_module: str
) -> None:
    path = prepare(4, tmp_path / "committee", score_fn=task_module)
    committee = load_committee(path)
    assert committee.score_fn == task_module
    processes = start(path)
    try:
        assert wait_healthy(path, timeout=60)
        remote = RemoteCommittee(
            committee.config,
            committee.addresses,
            COORDINATOR,
            read_key(path.parent / f"{COORDINATOR}.key"),
            run=9,
            model={"w": np.zeros(100, np.float32)},
            norm_bound_units=max_norm_units(10.0),
            robust=RobustConfig(scored=True),
        )
        ticket, refs, payloads = remote.ticket(), [], {}
        for i, step in enumerate((0.001, 0.002, 0.003, 0.5)):
            sub = build_submission(
                SigningKey.from_seed(b"miner-%d" % i),
                run=9,
                round_=ticket.round,
                node=i,
                nonce=ticket.nonce,
                received=remote.model,
                returned={"w": np.full(100, step, np.float32)},
                num_examples=10,
            )
            digest = hashlib.sha256(sub.payload).digest()
            payloads[digest] = sub.payload
            refs.append(SubmissionRef(i, sub.envelope_bytes, sub.signature, digest))
        body = remote.certify_round(refs, payloads).body
        remote.close()
    finally:
        stop_all(processes)
    by_node = {s.node: s for s in body.submissions}
    assert [by_node[i].reason for i in range(4)] == [None, None, None, Reason.LOW_SCORE]
    assert by_node[0].score == 990_000  # 1 - 100 * 0.001 / 10, in micro
    report = audit_ledger(path.parent / "validator-0" / "chains" / "run-9")
    assert report.ok, report


def test_a_validator_without_the_score_function_refuses_to_start(
    tmp_path: Path,
) -> None:
    path = prepare(4, tmp_path / "committee", score_fn="not_installed_here:score")
    processes = start(path, [0])
    try:
        assert processes[0].wait(timeout=60) == EXIT_CONFIG
    finally:
        stop_all(processes)
    log = (path.parent / "validator-0" / "validator.log").read_text()
    assert "cannot load score function 'not_installed_here:score'" in log
