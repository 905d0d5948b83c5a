"""Run many seeded simulations (in parallel) and aggregate what the checker found."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pot_flower.consensus.quorum import max_faulty
from pot_flower.sim.faults import FAULT_KINDS
from pot_flower.sim.mutants import MUTANTS
from pot_flower.sim.simulator import RunResult, Simulation, percentile

VOTE_ROUTINGS = ("broadcast", "relay", "mixed")
_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """SplitMix64's output function of ``x``: a bijection on 64-bit integers.

    Consecutive inputs map to seeds spread over the whole 64-bit range, so a
    campaign of ``--spread`` seeds ``splitmix64(base + i)`` samples fault plans
    far apart instead of a run of neighbours; each seed stays replayable on its
    own (``--runs 1 --seed S``). Constants from Steele, Lea and Flood, "Fast
    splittable pseudorandom number generators" (OOPSLA 2014).
    """
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@dataclass(frozen=True)
class CampaignSpec:
    """What to simulate: one committee size, many seeds."""

    validators: int
    runs: int
    seed: int = 0
    faults: frozenset[str] = frozenset(FAULT_KINDS)
    faulty: int | None = None
    clients: int = 2
    requests_per_client: int = 4
    mutant: str | None = None
    #: Vote routing: "broadcast" (all-to-all), "relay" (through the primary) or
    #: "mixed" (odd seeds relay).
    votes: str = "broadcast"
    #: Run i uses ``splitmix64(seed + i)`` instead of ``seed + i``.
    spread: bool = False

    def seeds(self) -> list[int]:
        """The seed of every run, in order (what ``failing_seeds`` reports)."""
        bases = range(self.seed, self.seed + self.runs)
        return [splitmix64(b) for b in bases] if self.spread else list(bases)

    def __post_init__(self) -> None:
        if self.validators < 1:
            raise ValueError("--validators must be >= 1")
        if self.runs < 1:
            raise ValueError("--runs must be >= 1")
        unknown = self.faults - set(FAULT_KINDS)
        if unknown:
            kinds = ", ".join(FAULT_KINDS)
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {kinds}")
        if self.mutant is not None and self.mutant not in MUTANTS:
            raise ValueError(
                f"unknown mutant {self.mutant!r}; choose from {sorted(MUTANTS)}"
            )
        if self.votes not in VOTE_ROUTINGS:
            raise ValueError(
                f"unknown vote routing {self.votes!r}; choose from "
                + ", ".join(VOTE_ROUTINGS)
            )
        if self.faulty is not None and not 0 <= self.faulty <= self.validators:
            raise ValueError("--faulty must be between 0 and the number of validators")


@dataclass
class CampaignReport:
    """Aggregated outcome; ``summary()`` is the JSON the CLI prints."""

    spec: CampaignSpec
    runs: int = 0
    requests_committed: int = 0
    safety_violations: int = 0
    liveness_failures: int = 0
    view_changes: int = 0
    byzantine_replicas: int = 0
    crashed_replicas: int = 0
    messages: int = 0
    latencies_wall_ms: list[float] = field(default_factory=list)
    latencies_sim_ms: list[float] = field(default_factory=list)
    failing: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def add(self, result: RunResult) -> None:
        """Fold one run in."""
        self.runs += 1
        self.requests_committed += result.requests_committed
        self.view_changes += result.view_changes
        self.byzantine_replicas += len(result.byzantine)
        self.crashed_replicas += result.crashes
        self.messages += result.messages
        self.latencies_wall_ms.extend(result.latencies_wall_ms)
        self.latencies_sim_ms.extend(result.latencies_sim_ms)
        self.dropped.update(result.dropped)
        if result.verdict.safety:
            self.safety_violations += 1
        if result.verdict.liveness:
            self.liveness_failures += 1
        if (result.verdict.safety or result.verdict.liveness) and len(
            self.failing
        ) < 20:
            self.failing.append(
                {
                    "seed": result.seed,
                    "byzantine": {str(k): v for k, v in result.byzantine.items()},
                    "safety": result.verdict.safety[:3],
                    "liveness": result.verdict.liveness[:3],
                }
            )

    def summary(self) -> dict[str, Any]:
        """The figures, as one flat JSON-able dict."""
        spec = self.spec
        return {
            "runs": self.runs,
            "validators": spec.validators,
            "faulty": max_faulty(spec.validators)
            if spec.faulty is None
            else spec.faulty,
            "faults": sorted(spec.faults),
            "mutant": spec.mutant,
            "votes": spec.votes,
            "seed": spec.seed,
            "spread": spec.spread,
            "requests_committed": self.requests_committed,
            "safety_violations": self.safety_violations,
            "liveness_failures": self.liveness_failures,
            "view_changes": self.view_changes,
            "byzantine_replicas": self.byzantine_replicas,
            "crashed_replicas": self.crashed_replicas,
            "messages": self.messages,
            "commit_latency_p50_ms": round(percentile(self.latencies_wall_ms, 50), 3),
            "commit_latency_p99_ms": round(percentile(self.latencies_wall_ms, 99), 3),
            "sim_latency_p50_ms": round(percentile(self.latencies_sim_ms, 50), 1),
            "sim_latency_p99_ms": round(percentile(self.latencies_sim_ms, 99), 1),
            "elapsed_s": round(self.elapsed_s, 2),
            # Why honest validators rejected inputs (most frequent first).
            "dropped": dict(self.dropped.most_common(12)),
            "failing_seeds": [f["seed"] for f in self.failing],
        }


def run_seed(spec: CampaignSpec, seed: int) -> RunResult:
    """One simulation of the campaign (a top-level function, so it pickles)."""
    factory = MUTANTS[spec.mutant] if spec.mutant else None
    kwargs: dict[str, Any] = {} if factory is None else {"replica_factory": factory}
    return Simulation(
        spec.validators,
        seed,
        faults=spec.faults,
        faulty=spec.faulty,
        clients=spec.clients,
        requests_per_client=spec.requests_per_client,
        relay_votes=spec.votes == "relay" or (spec.votes == "mixed" and seed % 2 == 1),
        **kwargs,
    ).run()


def _run_chunk(spec: CampaignSpec, seeds: list[int]) -> list[RunResult]:
    return [run_seed(spec, s) for s in seeds]


def run_campaign(
    spec: CampaignSpec,
    *,
    jobs: int | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> CampaignReport:
    """Run the seeds of :meth:`CampaignSpec.seeds` on ``jobs`` processes."""
    report = CampaignReport(spec)
    start = time.perf_counter()
    jobs = max(1, jobs or os.cpu_count() or 1)
    seeds = spec.seeds()
    for result in _results(spec, seeds, jobs):
        report.add(result)
        if on_result is not None:
            on_result(result)
    report.elapsed_s = time.perf_counter() - start
    return report


def _results(spec: CampaignSpec, seeds: list[int], jobs: int) -> Iterator[RunResult]:
    if jobs == 1:
        for seed in seeds:
            yield run_seed(spec, seed)
        return
    chunk = 5
    chunks = [seeds[i : i + chunk] for i in range(0, len(seeds), chunk)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for results in pool.map(_run_chunk, [spec] * len(chunks), chunks):
            yield from results
