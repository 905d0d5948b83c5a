"""A coordinator that resumed while its predecessor's last batch was still ordered.

The chaos soak (benchmarks/soak.py, seed 2) found it: the coordinator was killed
right after submitting round 84's batch; its successor resumed while that request
was still being ordered, so a quorum held block 83 and it resumed from there. Then
the old request executed. The successor's own round 84 could never be made
available (validators past it refuse its uploads, rightly) and it waited out its
whole deadline for a misleading error. Now it sees f + 1 validators past the round
and takes the block that was certified for it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from process_support import RUN, ProcessCommittee, honest_batch

from pot_flower.committee.base import CommitteeError
from pot_flower.committee.remote import RemoteCommittee
from pot_flower.ops.committee_file import read_key
from pot_flower.ops.local import COORDINATOR
from pot_flower.protocol.fixedpoint import max_norm_units

DEADLINE_S = 30.0


def resumed(c: ProcessCommittee) -> RemoteCommittee:
    return RemoteCommittee(
        c.committee.config,
        c.committee.addresses,
        COORDINATOR,
        read_key(c.directory / f"{COORDINATOR}.key"),
        run=RUN,
        model={"w": np.zeros(1000, np.float32)},
        norm_bound_units=max_norm_units(10.0),
        timeout=DEADLINE_S,
        resume=True,
    )


def test_a_coordinator_that_resumed_too_early_takes_the_round_it_lost(
    tmp_path: Path,
) -> None:
    c = ProcessCommittee(tmp_path / "committee")
    try:
        c.round()
        c.round()  # coordinator A certified rounds 1 and 2
        b = resumed(c)  # B resumes: a quorum holds block 2
        assert b.ticket().round == 3
        assert c.round() == 3  # A's request for round 3, late, executes now
        refs, payloads = honest_batch(b, range(3, 6))
        began = time.monotonic()
        got = b.certify_round(refs, payloads)
        took = time.monotonic() - began
        assert got.height == 3 and took < DEADLINE_S / 3, took
        # The block certified for round 3 is A's: B's replies were dropped.
        assert {s.node for s in got.body.accepted}.isdisjoint({3, 4, 5})
        assert b.ticket().round == 4
        refs, payloads = honest_batch(b, range(3, 6))
        after = b.certify_round(refs, payloads)  # and B goes on from there
        assert after.height == 4
        assert {s.node for s in after.body.accepted} == {3, 4, 5}
        b.close()
    finally:
        c.close()


def test_a_coordinator_two_rounds_behind_is_told_to_resume(tmp_path: Path) -> None:
    c = ProcessCommittee(tmp_path / "committee")
    try:
        c.round()
        b = resumed(c)  # at block 1
        c.round()
        c.round()  # the chain moves on to block 3 without B
        refs, payloads = honest_batch(b, range(3, 6))
        began = time.monotonic()
        with pytest.raises(CommitteeError, match="resume the run again"):
            b.certify_round(refs, payloads)
        assert time.monotonic() - began < DEADLINE_S / 3
        b.close()
    finally:
        c.close()
