"""One round's settlement: each judged miner's new reputation and each reward.

Shared by round execution and the ledger audit, so both follow one rule. The pool
is split by :func:`rewards.miner_shares`; reputations follow
:func:`rewards.next_reputation`. A miner is judged once per round: by its accepted
submission if it has one, else by its first judged rejection in canonical order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pot_flower.protocol.block import JUDGED
from pot_flower.protocol.params import Params
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import (
    contribution_weights,
    fee_pool,
    miner_shares,
    next_reputation,
    reward_basis,
    standings,
)


class Judged(Protocol):
    """What settlement reads of a submission (a verdict or a block's record)."""

    @property
    def miner(self) -> bytes | None: ...
    @property
    def reason(self) -> Reason | None: ...
    @property
    def quality_ppm(self) -> int: ...
    @property
    def score(self) -> int | None: ...


@dataclass(frozen=True)
class Settlement:
    """Per submission (batch order): its reward and its recorded reputation."""

    rewards: list[int]
    reputations: list[int]
    reputation: dict[bytes, int]
    """The chain's reputations after the round (miners at 0 left out)."""


def settle(
    params: Params, reputation: Mapping[bytes, int], subs: Sequence[Judged]
) -> Settlement:
    """Rewards and reputations for one round's submissions, in canonical order."""
    accepted = [i for i, s in enumerate(subs) if s.reason is None]
    scored = params.robust.scored
    bases = [reward_basis(subs[i].quality_ppm, subs[i].score, scored) for i in accepted]
    standing = dict(zip(accepted, standings(contribution_weights(bases)), strict=True))
    rate = params.robust.reputation_rate_ppm
    after = dict(reputation)
    recorded = [0] * len(subs)
    if rate:
        judged: set[bytes] = set()
        rejected = [i for i, s in enumerate(subs) if s.reason is not None]
        for i in accepted + rejected:
            miner = subs[i].miner
            if miner is None or subs[i].reason not in JUDGED or miner in judged:
                continue
            judged.add(miner)
            r = next_reputation(after.get(miner, 0), standing.get(i, 0), rate)
            recorded[i] = r
            if r:
                after[miner] = r
            else:
                after.pop(miner, None)
    pool = params.emission - fee_pool(params.emission, params.validator_fee_ppm)
    shares = miner_shares(
        pool, bases, [recorded[i] for i in accepted] if rate else None
    )
    rewards = [0] * len(subs)
    for i, share in zip(accepted, shares, strict=True):
        rewards[i] = share
    return Settlement(rewards, recorded, after)
