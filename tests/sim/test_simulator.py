"""The fault-injection simulator and its checker: the protocol holds, bugs do not."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from pot_flower.sim.campaign import CampaignSpec, run_campaign, run_seed, splitmix64
from pot_flower.sim.checker import ReplicaTrace, check_liveness, check_safety
from pot_flower.sim.faults import FAULT_KINDS
from pot_flower.sim.mutants import MUTANTS
from pot_flower.sim.simulator import Simulation


@pytest.mark.slow
@pytest.mark.parametrize(("n", "runs"), [(4, 40), (7, 12), (10, 4)])
def test_full_fault_mix_keeps_safety_and_liveness(n: int, runs: int) -> None:
    spec = CampaignSpec(validators=n, runs=runs, seed=500, votes="mixed")
    report = run_campaign(spec, jobs=1)
    summary = report.summary()
    assert summary["safety_violations"] == 0, report.failing
    assert summary["liveness_failures"] == 0, report.failing
    assert summary["requests_committed"] == runs * 2 * 4
    # Byzantine traffic was seen and rejected, each time with a reason.
    assert summary["dropped"] and all(
        count > 0 for count in summary["dropped"].values()
    )


@pytest.mark.parametrize("votes", ["broadcast", "relay"])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_committee_size_runs_under_the_fault_mix(n: int, votes: str) -> None:
    spec = CampaignSpec(validators=n, runs=3, seed=9, votes=votes)
    summary = run_campaign(spec, jobs=1).summary()
    assert (summary["safety_violations"], summary["liveness_failures"]) == (0, 0)
    assert summary["requests_committed"] == 3 * 2 * 4


def attack_plans(
    n: int, mutant: str | None, count: int, victims_extra: int, relay: bool = False
) -> list[Simulation]:
    """Seeds whose plan is the coordinated attack aimed at one quorum rule."""
    f = (n - 1) // 3
    kinds = frozenset(FAULT_KINDS) - {"crash"}
    extra = {} if mutant is None else {"replica_factory": MUTANTS[mutant]}
    found: list[Simulation] = []
    seed = 0
    while len(found) < count:
        sim = Simulation(n, seed, faults=kinds, relay_votes=relay, **extra)  # type: ignore[arg-type]
        seed += 1
        plan = sim.plan
        if (
            0 in plan.byzantine
            and len(plan.partition) > 1
            and len(plan.victims) == f + victims_extra
        ):
            found.append(sim)
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mutant", "victims_extra"),
    [("commit-on-2f", 0), ("skip-prepared-certificates", 1)],
)
def test_checker_catches_a_replica_that_breaks_a_quorum_rule(
    mutant: str, victims_extra: int
) -> None:
    violating = [
        sim.seed
        for sim in attack_plans(4, mutant, 8, victims_extra)
        if sim.run().verdict.safety
    ]
    assert violating, f"{mutant} survived every coordinated attack"


@pytest.mark.parametrize("relay", [False, True])
@pytest.mark.parametrize("victims_extra", [0, 1])
def test_correct_replicas_survive_the_same_coordinated_attacks(
    victims_extra: int, relay: bool
) -> None:
    for sim in attack_plans(4, None, 8, victims_extra, relay):
        verdict = sim.run().verdict
        assert not verdict.safety and not verdict.liveness, (sim.seed, verdict)


def fingerprint(n: int, seed: int) -> str:
    sim = Simulation(n, seed)
    sim.run()
    traces = {
        rid: sorted((s, d.hex()) for s, d in t.executed.items())
        for rid, t in sim.traces.items()
    }
    blob = json.dumps(
        [traces, sorted(sim.accepted.items(), key=str).__repr__()], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def test_a_seed_replays_identically_in_another_process() -> None:
    here = fingerprint(4, 42)
    assert fingerprint(4, 42) == here
    code = "from test_simulator import fingerprint; print(fingerprint(4, 42))"
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=__file__.rsplit("/", 1)[0],
    ).stdout.strip()
    assert there == here


def test_checker_reports_disagreement_and_forged_acceptance() -> None:
    a, b = ReplicaTrace(), ReplicaTrace()
    a.executed[1], b.executed[1] = b"x" * 32, b"y" * 32
    a.results[("c", 1)], b.results[("c", 1)] = b"r1", b"r2"
    problems = check_safety({0: a, 1: b}, {("c", 1): b"r3"})
    assert any("disagree on the batch at seq 1" in p for p in problems)
    assert any("different results" in p for p in problems)
    assert any("no honest replica computed" in p for p in problems)


def test_checker_reports_requests_that_never_executed() -> None:
    done, behind = ReplicaTrace(last_executed=3), ReplicaTrace(last_executed=1)
    problems = check_liveness(
        {0: done, 1: behind}, [("c", 1), ("c", 2)], {("c", 1): b"r"}, {("c", 1): 3}
    )
    assert problems == [
        "replica 1 never executed request ('c', 1) (seq 3)",
        "request ('c', 2) never completed at its client",
    ]


def test_bad_campaign_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown faults"):
        CampaignSpec(validators=4, runs=1, faults=frozenset({"meteor"}))
    with pytest.raises(ValueError, match="unknown mutant"):
        CampaignSpec(validators=4, runs=1, mutant="nope")


def test_a_campaign_rejects_an_unknown_vote_routing() -> None:
    with pytest.raises(ValueError, match="vote routing"):
        CampaignSpec(validators=4, runs=1, votes="gossip")


def test_spread_seeds_cover_the_64_bit_range_and_replay_one_by_one() -> None:
    assert splitmix64(0) == 0xE220A8397B1DCDAF  # the reference output
    spec = CampaignSpec(validators=4, runs=3, seed=7, spread=True, votes="mixed")
    seeds = spec.seeds()
    assert seeds == [splitmix64(7), splitmix64(8), splitmix64(9)]
    assert all(s.bit_length() > 32 for s in seeds) and len(set(seeds)) == 3
    report = run_campaign(spec, jobs=1)
    assert report.summary()["spread"] is True
    # A reported seed replays alone, unmixed, as the same run (same routing too).
    replay = CampaignSpec(validators=4, runs=1, seed=seeds[1], votes="mixed")
    assert replay.seeds() == [seeds[1]]
    again = run_seed(replay, seeds[1])
    first = run_seed(spec, seeds[1])
    assert (again.messages, again.view_changes, again.sim_time_ms) == (
        first.messages,
        first.view_changes,
        first.sim_time_ms,
    )


# Seeds the deep campaigns found failing, replayed on every run of the suite.
FOUND_BY_CAMPAIGNS = [
    # n=7: a partition splits the honest replicas between views 1 and 2, the
    # votes of the two that moved ahead for view 1 are lost, the primary of view
    # 1 is Byzantine and stays behind, one traitor is silent: each group waited
    # for view-change votes that never came (no timer without a quorum for its
    # own view). A quorum changing to a view or beyond now arms the timer.
    (7, 11902253854286943232, "broadcast"),
]


@pytest.mark.parametrize(("n", "seed", "votes"), FOUND_BY_CAMPAIGNS)
def test_seeds_the_deep_campaigns_found_stay_fixed(
    n: int, seed: int, votes: str
) -> None:
    spec = CampaignSpec(validators=n, runs=1, seed=seed, votes=votes)
    verdict = run_seed(spec, seed).verdict
    assert not verdict.safety and not verdict.liveness, verdict
