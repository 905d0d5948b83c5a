"""Proof-of-Training scores: validators' signed score vectors and their agreement.

Each validator scores every submission of a round with the task owner's scoring
function on validation data it holds (a float: machines may round differently), and
signs the vector of scores in integer micro-units. A round's batch carries at least
a quorum (2f + 1) of these vectors; execution takes, per submission, the lower
median of the validators' scores. With at most f Byzantine vectors among them, the
median lies between the lowest and the highest honest score, so Byzantine
validators cannot move it outside the honest range, and every honest validator
computes the same integers from the same ordered batch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pot_flower.encoding import Decoded, encode
from pot_flower.zk.signatures import SigningKey, VerifyKey

SCORE_DOMAIN = b"pot/scores/v1"
SCALE = 1_000_000
"""Scores travel as integers: ``round(score * 1e6)``."""
LIMIT = 10**15
"""Largest |score| in micro-units; beyond it (or not finite) a score is clamped."""


def to_micro(score: float | None) -> int | None:
    """A validator's float score as the integer it signs (None: could not score)."""
    if score is None or math.isnan(score):
        return None
    if math.isinf(score):
        return LIMIT if score > 0 else -LIMIT
    return max(-LIMIT, min(LIMIT, round(score * SCALE)))


def submissions_digest(submissions: Sequence[Decoded]) -> bytes:
    """What a score vector is bound to: the batch's submissions, in batch order."""
    return hashlib.sha256(encode(list(submissions))).digest()


def _message(
    run: int, round_: int, digest: bytes, scores: Sequence[int | None]
) -> bytes:
    return encode([run, round_, digest, list(scores)])


@dataclass(frozen=True)
class ScoreVector:
    """One validator's signed scores of one batch (one entry per submission)."""

    validator: int
    scores: tuple[int | None, ...]
    signature: bytes

    @classmethod
    def signed(
        cls,
        key: SigningKey,
        validator: int,
        *,
        run: int,
        round_: int,
        digest: bytes,
        scores: Sequence[int | None],
    ) -> ScoreVector:
        message = _message(run, round_, digest, scores)
        return cls(validator, tuple(scores), key.sign(SCORE_DOMAIN, message))

    def verifies(
        self, key: bytes, *, run: int, round_: int, digest: bytes, count: int
    ) -> bool:
        """Whether it scores ``count`` submissions and its signature holds."""
        if len(self.scores) != count or any(
            s is not None and not -LIMIT <= s <= LIMIT for s in self.scores
        ):
            return False
        message = _message(run, round_, digest, self.scores)
        return VerifyKey(key).verify(SCORE_DOMAIN, message, self.signature)

    def to_value(self) -> list[Decoded]:
        return [self.validator, list(self.scores), self.signature]

    @classmethod
    def from_value(cls, value: Decoded) -> ScoreVector:
        if not (
            isinstance(value, list)
            and len(value) == 3
            and type(value[0]) is int
            and isinstance(value[1], list)
            and all(s is None or type(s) is int for s in value[1])
            and isinstance(value[2], bytes)
        ):
            raise ValueError("score vector must be [validator, [scores], signature]")
        return cls(value[0], tuple(value[1]), value[2])  # type: ignore[arg-type]


class ScoreError(ValueError):
    """Fewer than a quorum of valid score vectors: the batch is not executable."""


def agreed_scores(
    vectors: Sequence[ScoreVector],
    validators: Sequence[bytes],
    quorum: int,
    *,
    run: int,
    round_: int,
    digest: bytes,
    count: int,
) -> list[int | None]:
    """Per submission, the lower median of the valid vectors' scores.

    Vectors must come from distinct committee members, in ascending order, each
    verifying; a submission most validators could not score has no score (None).
    """
    indices = [v.validator for v in vectors]
    if indices != sorted(set(indices)):
        raise ScoreError("score vectors must come from distinct validators, in order")
    valid = [
        v
        for v in vectors
        if 0 <= v.validator < len(validators)
        and v.verifies(
            validators[v.validator], run=run, round_=round_, digest=digest, count=count
        )
    ]
    if len(valid) < quorum:
        raise ScoreError(f"{len(valid)} valid score vectors, quorum is {quorum}")
    agreed: list[int | None] = []
    for k in range(count):
        given = sorted(s for v in valid if (s := v.scores[k]) is not None)
        if 2 * len(given) <= len(valid):
            agreed.append(None)
        else:
            agreed.append(given[(len(given) - 1) // 2])
    return agreed
