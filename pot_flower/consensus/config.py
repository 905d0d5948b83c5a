"""Committee configuration shared by every replica and client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pot_flower.consensus.quorum import max_faulty, quorum, weak_quorum
from pot_flower.zk.signatures import VerifyKey


@dataclass(frozen=True)
class CommitteeConfig:
    """Who is in the committee and how the protocol is tuned.

    Parameters
    ----------
    replicas : tuple[VerifyKey, ...]
        Public keys of the validators, indexed by replica id.
    clients : Mapping[str, VerifyKey]
        Clients allowed to submit requests (the allow-list), by client id.
    checkpoint_interval : int (default: 8)
        A checkpoint is taken every ``checkpoint_interval`` sequence numbers.
    window : int (default: 32)
        Distance between low and high watermark; a multiple of the interval.
    max_batch : int (default: 16)
        Most requests the primary puts in one pre-prepare.
    max_in_flight : int (default: 4)
        Most proposed-but-unexecuted slots; beyond it requests wait and batch up.
    request_timeout_ms : int (default: 1000)
        How long a replica waits for a known request to execute before it
        suspects the primary and starts a view change.
    view_change_timeout_ms : int (default: 1000)
        How long to wait for a new view once a quorum asked for it; doubles on
        each consecutive failed view change (up to ``2**max_backoff`` times).
    status_interval_ms : int (default: 250)
        Period of status broadcasts that drive retransmission and catch-up.
    max_backoff : int (default: 4)
        Cap on the doublings of ``view_change_timeout_ms``.
    relay_votes : bool (default: False)
        Backups send prepares and commits to the primary only, and the primary
        relays each quorum in one :class:`~pot_flower.consensus.messages.Votes`
        message (linear message count, two extra hops). Votes keep their
        authors' signatures, so safety is unchanged; a primary that withholds
        relays is suspected like one that withholds pre-prepares.

    """

    replicas: tuple[VerifyKey, ...]
    clients: Mapping[str, VerifyKey] = field(default_factory=dict)
    checkpoint_interval: int = 8
    window: int = 32
    max_batch: int = 16
    max_in_flight: int = 4
    request_timeout_ms: int = 1000
    view_change_timeout_ms: int = 1000
    status_interval_ms: int = 250
    max_backoff: int = 4
    relay_votes: bool = False

    def __post_init__(self) -> None:
        if not self.replicas:
            raise ValueError("committee has no replicas")
        if self.checkpoint_interval < 1:
            raise ValueError("checkpoint_interval must be >= 1")
        if self.window < 2 * self.checkpoint_interval or (
            self.window % self.checkpoint_interval
        ):
            raise ValueError("window must be a multiple of, and >= 2x, the interval")
        if self.max_batch < 1 or self.max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        if len({k.raw for k in self.replicas}) != len(self.replicas):
            raise ValueError("replica keys must be distinct")

    @property
    def n(self) -> int:
        """Committee size."""
        return len(self.replicas)

    @property
    def f(self) -> int:
        """Byzantine replicas tolerated."""
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        """Votes needed for a certificate (2f + 1 when n = 3f + 1)."""
        return quorum(self.n)

    @property
    def weak_quorum(self) -> int:
        """F + 1."""
        return weak_quorum(self.n)
