"""An attack suite for red-teaming a PoT deployment (and any Flower aggregator).

Omniscient colluding attacks (:mod:`.omniscient`) map a round's honest updates to
the Byzantine ones, as in ByzFL's threat model; :data:`SUITE` names them all, with
what else the attackers do (train on flipped labels, inflate ``num-examples``).

    from pot_flower.attacks import SUITE, Context
    bad = SUITE["alie"].updates(honest_updates, f=6, ctx=Context(norm_bound=100.0))
"""

from pot_flower.attacks.omniscient import (
    MAX_CLAIM,
    SUITE,
    Attack,
    AttackFn,
    Context,
    Updates,
    diversified,
)

__all__ = [
    "MAX_CLAIM",
    "SUITE",
    "Attack",
    "AttackFn",
    "Context",
    "Updates",
    "diversified",
]
