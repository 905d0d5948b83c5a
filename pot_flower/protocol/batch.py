"""The batch PBFT orders once per round: the coordinator's relay of the replies."""

from __future__ import annotations

from dataclasses import dataclass

from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.protocol.certificate import Certificate
from pot_flower.protocol.params import integer
from pot_flower.protocol.privacy.accountant import Spent
from pot_flower.protocol.scores import ScoreVector, submissions_digest
from pot_flower.protocol.sealing import ClosedSeals


@dataclass(frozen=True)
class SubmissionRef:
    """One reply as the coordinator relays it: the signed envelope and its arrays.

    ``payload`` is the SHA-256 of the canonical bytes of the returned arrays; the
    arrays themselves travel outside the consensus messages. ``salt`` is the
    revealed salt of the envelope's seal (commit-reveal rounds only).
    """

    node: int
    envelope: bytes | None
    signature: bytes | None
    payload: bytes | None
    salt: bytes | None = None

    def to_value(self) -> list[Decoded]:
        value: list[Decoded] = [self.node, self.envelope, self.signature, self.payload]
        return value if self.salt is None else [*value, self.salt]


@dataclass(frozen=True)
class RoundBatch:
    """The request PBFT orders once per round."""

    run: int
    round: int
    submissions: tuple[SubmissionRef, ...]
    previous_certificate: Certificate | None = None
    scores: tuple[ScoreVector, ...] = ()
    """Validators' signed score vectors (scoring chains need a quorum of them)."""
    privacy: Spent | None = None
    """On a DP chain, the privacy spent once this round runs, as the coordinator
    computed it (validators check it against their own accountant)."""
    sealed: ClosedSeals | None = None
    """On a commit-reveal chain, the round's seals as the committee closed them."""

    def to_bytes(self) -> bytes:
        return encode(
            {
                **(
                    {"sealed": self.sealed.to_value()}
                    if self.sealed is not None
                    else {}
                ),
                **(
                    {"privacy": self.privacy.to_value()}
                    if self.privacy is not None
                    else {}
                ),
                "kind": "round",
                "previous-certificate": (
                    None
                    if self.previous_certificate is None
                    else decode(self.previous_certificate.to_bytes())
                ),
                "round": self.round,
                "run": self.run,
                "scores": [v.to_value() for v in self.scores],
                "submissions": [s.to_value() for s in self.submissions],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundBatch:
        try:
            value = decode(data)
        except DecodeError as exc:
            raise ValueError(f"batch is not canonical: {exc}") from exc
        if not (
            isinstance(value, dict)
            and set(value) - {"privacy", "sealed"}
            == {"kind", "previous-certificate", "round", "run", "scores", "submissions"}
            and value["kind"] == "round"
            and isinstance(value["submissions"], list)
            and isinstance(value["scores"], list)
        ):
            raise ValueError("not a round batch")
        subs = []
        for item in value["submissions"]:
            if not (
                isinstance(item, list)
                and len(item) in (4, 5)
                and isinstance(item[0], int)
                and all(x is None or isinstance(x, bytes) for x in item[1:])
                and (len(item) == 4 or item[4] is not None)
            ):
                raise ValueError(
                    "submission must be [node, envelope, signature, payload(, salt)]"
                )
            subs.append(SubmissionRef(*item))  # type: ignore[arg-type]
        cert_value = value["previous-certificate"]
        cert = None if cert_value is None else Certificate.from_value(cert_value)
        scores = tuple(ScoreVector.from_value(v) for v in value["scores"])
        privacy = Spent.from_value(value["privacy"]) if "privacy" in value else None
        sealed = None
        if "sealed" in value:
            sealed = ClosedSeals.from_value(value["sealed"])
        return cls(
            integer(value["run"]),
            integer(value["round"]),
            tuple(subs),
            cert,
            scores,
            privacy,
            sealed,
        )

    def scores_digest(self) -> bytes:
        """What validators' score vectors of this batch are bound to."""
        return submissions_digest([s.to_value() for s in self.submissions])


class BatchError(ValueError):
    """A batch that cannot be executed at this state (no block is produced)."""
