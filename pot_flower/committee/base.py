"""The committee seam: what the strategy asks of validators.

:class:`Committee` is all :class:`~pot_flower.strategies.PoTStrategy` knows: start a
chain, tell the next round's ticket, take payloads, certify a round. Two committees
implement it: :class:`~pot_flower.committee.embedded.EmbeddedCommittee` (n
validators in this process) and :class:`~pot_flower.committee.remote.RemoteCommittee`
(validator processes over gRPC).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.block import RoundBlock
from pot_flower.protocol.certificate import Certificate
from pot_flower.protocol.envelope import round_nonce
from pot_flower.protocol.model import Arrays
from pot_flower.protocol.params import Params
from pot_flower.protocol.sealing import ClosedSeals, Seal

COORDINATOR = "coordinator"


class CommitteeError(RuntimeError):
    """The committee did not certify a round."""


@dataclass(frozen=True)
class Ticket:
    """What miners of the next round train against."""

    round: int
    nonce: bytes
    base_digest: bytes
    previous_block: bytes


@dataclass(frozen=True)
class CertifiedRound:
    """A round the committee executed and a quorum certified."""

    height: int
    block: bytes
    body: RoundBlock
    certificate: Certificate
    model: Arrays


class Committee(Protocol):
    """The validators, as the strategy sees them.

    A committee has opened a chain when it is built; every round the strategy asks
    for a :meth:`ticket`, sends it to the miners and hands their replies to
    :meth:`certify_round`.
    """

    @property
    def params(self) -> Params:
        """The chain's parameters (as genesis records them)."""
        ...

    @property
    def model(self) -> Arrays:
        """The global model of the last certified block."""
        ...

    def ticket(self) -> Ticket:
        """The next round's nonce and base model (from the last certified block)."""
        ...

    def close_seals(self, seals: Sequence[Seal]) -> ClosedSeals:
        """Close the next round's seals (commit-reveal chains).

        Parameters
        ----------
        seals : Sequence[Seal]
            The miners' signed seals, as relayed (invalid ones are dropped).

        Returns
        -------
        ClosedSeals
            The canonical set and the signatures of a quorum that closed it.

        Raises
        ------
        CommitteeError
            If no quorum closed this set (one closed another for the round).

        """
        ...

    def certify_round(
        self,
        submissions: list[SubmissionRef],
        payloads: Mapping[bytes, bytes],
        sealed: ClosedSeals | None = None,
    ) -> CertifiedRound:
        """Order, execute and certify the next round's batch.

        Parameters
        ----------
        submissions : list[SubmissionRef]
            Every reply of the round, as relayed (malformed ones included: each
            gets a verdict).
        payloads : Mapping[bytes, bytes]
            The replies' canonical array bytes by SHA-256 digest.
        sealed : ClosedSeals | None
            On a commit-reveal chain, the round's closed seals.

        Returns
        -------
        CertifiedRound
            The block a quorum executed and signed, and the model after it.

        Raises
        ------
        CommitteeError
            If no quorum certified the round.

        """
        ...

    def close(self) -> None:
        """Release connections, threads and files."""
        ...


class CertifiedHead(ABC):
    """The :class:`Committee` read-outs both committees share, from their head.

    A committee keeps its parameters and last certificate, and says what its last
    certified block holds through :meth:`_head`.
    """

    _params: Params
    _last: Certificate

    @abstractmethod
    def _head(self) -> tuple[int, bytes, Arrays, bytes]:
        """``(height, block hash, model, model digest)`` of the last certified block."""

    @property
    def params(self) -> Params:
        """The chain's parameters (as genesis records them)."""
        return self._params

    @property
    def last_certificate(self) -> Certificate:
        """The certificate of the last certified block."""
        return self._last

    @property
    def model(self) -> Arrays:
        """The global model of the last certified block."""
        return self._head()[2]

    def ticket(self) -> Ticket:
        """The next round's nonce and base model (from the last certified block)."""
        height, head, _, digest = self._head()
        nonce = round_nonce(self._params.run, height + 1, head)
        return Ticket(height + 1, nonce, digest, head)
