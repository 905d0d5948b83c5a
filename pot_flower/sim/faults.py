"""The fault plan of one simulated run, drawn from its seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = ("delay", "drop", "duplicate", "partition", "crash", "byzantine")
BYZANTINE_BEHAVIOURS = (
    "silent",
    "equivocate",
    "conflicting-votes",
    "garbage",
    "wrong-results",
    "collude",
)


@dataclass(frozen=True)
class Crash:
    """Replica ``replica`` is down from ``at_ms`` until ``restart_ms``."""

    replica: int
    at_ms: int
    restart_ms: int


@dataclass(frozen=True)
class FaultPlan:
    """Everything that goes wrong in one run. Network faults end at ``gst_ms``.

    Before global stabilization time (GST) messages may be delayed by up to
    ``max_delay_ms`` and partitions isolate groups of replicas; after it, delays
    are at most ``stable_delay_ms`` and partitions have healed. Drops and
    duplicates continue throughout, so progress relies on retransmission.
    """

    gst_ms: int
    max_delay_ms: int
    stable_delay_ms: int
    drop_rate: float
    duplicate_rate: float
    partition: tuple[frozenset[int], ...]
    partition_from_ms: int
    crashes: tuple[Crash, ...]
    byzantine: dict[int, str]
    victims: tuple[int, ...] = ()  # honest replicas that colluders steer

    def partitioned(self, a: int | str, b: int | str, now_ms: int) -> bool:
        """Whether a message from ``a`` to ``b`` sent now is cut by the partition."""
        if not self.partition or not self.partition_from_ms <= now_ms < self.gst_ms:
            return False
        if not isinstance(a, int) or not isinstance(b, int):
            return False  # clients reach every replica
        grouped = frozenset().union(*self.partition)
        if a not in grouped or b not in grouped:
            return False  # replicas outside every group bridge the partition
        return not any(a in group and b in group for group in self.partition)


def draw_fault_plan(
    rng: random.Random,
    n: int,
    faulty: int,
    kinds: frozenset[str],
) -> FaultPlan:
    """Draw a fault plan with at most ``faulty`` faulty replicas at any time."""
    unknown = kinds - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
    gst = rng.randint(1000, 3000)
    replicas = list(range(n))
    rng.shuffle(replicas)
    # Split the faulty budget between Byzantine replicas and crash-restarts.
    if "byzantine" in kinds and "crash" in kinds:
        n_byz = rng.randint(0, faulty)
    elif "byzantine" in kinds:
        n_byz = faulty
    else:
        n_byz = 0
    n_crash = faulty - n_byz if "crash" in kinds else 0
    byz_ids = replicas[:n_byz]
    if n_byz and rng.random() < 0.5 and 0 not in byz_ids:
        byz_ids[0] = 0  # often make the first primary the traitor
    byzantine = {r: rng.choice(BYZANTINE_BEHAVIOURS) for r in byz_ids}
    victims: tuple[int, ...] = ()
    if n_byz and rng.random() < 0.3:
        # A coordinated attack: every traitor colludes against the same victims.
        byzantine = dict.fromkeys(byz_ids, "collude")
    colluding_partition: tuple[frozenset[int], ...] = ()
    if "collude" in byzantine.values():
        # Victims never include the next primary: it must miss what they saw.
        honest = [r for r in range(n) if r not in byzantine and r != 1 % n]
        rng.shuffle(honest)
        victims = tuple(sorted(honest[: rng.choice([faulty, faulty + 1])]))
        if set(byzantine.values()) == {"collude"} and "partition" in kinds:
            # The adversary schedules the network before GST: victims, the helper
            # and the rest hear each other only through the colluders (who relay
            # what serves the attack, see ByzantineReplica).
            rest = [r for r in range(n) if r not in byzantine and r not in victims]
            helper = (
                [r for r in rest if r != 1 % n][:1] if len(victims) <= faulty else []
            )
            others = [r for r in rest if r not in helper]
            groups = (frozenset(victims), frozenset(helper), frozenset(others))
            colluding_partition = tuple(g for g in groups if g)
            gst = max(gst, 2500)  # long enough asynchrony for the next view to form
    crash_pool = [r for r in range(n) if r not in byzantine]
    rng.shuffle(crash_pool)
    crashes = []
    for replica in crash_pool[:n_crash]:
        at = rng.randint(0, gst - 200)
        crashes.append(Crash(replica, at, rng.randint(at + 50, gst)))
    partition: tuple[frozenset[int], ...] = ()
    if colluding_partition:
        partition = colluding_partition
    elif "partition" in kinds and n > 1 and rng.random() < 0.6:
        members = list(range(n))
        rng.shuffle(members)
        cut = rng.randint(1, n - 1)
        partition = (frozenset(members[:cut]), frozenset(members[cut:]))
    return FaultPlan(
        gst_ms=gst,
        # A scheduling adversary delivers its own traffic fast; isolation does the rest.
        max_delay_ms=(rng.randint(20, 400) if not colluding_partition else 20)
        if "delay" in kinds
        else 5,
        stable_delay_ms=10 if "delay" in kinds else 5,
        drop_rate=rng.uniform(0.0, 0.2) if "drop" in kinds else 0.0,
        duplicate_rate=rng.uniform(0.0, 0.1) if "duplicate" in kinds else 0.0,
        partition=partition,
        partition_from_ms=0 if colluding_partition else rng.randint(0, gst // 2),
        crashes=tuple(crashes),
        byzantine=byzantine,
        victims=victims,
    )
