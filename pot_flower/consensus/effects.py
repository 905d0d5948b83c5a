"""What a replica or client asks its driver to do.

The state machines never touch sockets, clocks or disks. Each input returns a list of
effects, to be carried out in order: a :class:`Persist` comes before the sends that
depend on it, so a replica never says something it would forget after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Union

from pot_flower.consensus.messages import Message, Reply, Request, Superseded


@dataclass(frozen=True)
class Send:
    """Send ``message`` to replica ``to``."""

    to: int
    message: Message


@dataclass(frozen=True)
class Broadcast:
    """Send ``message`` to every other replica."""

    message: Message


@dataclass(frozen=True)
class SendToClient:
    """Send a reply (or a notice that a request was superseded) to ``client``."""

    client: str
    message: Reply | Superseded


@dataclass(frozen=True)
class Persist:
    """Apply ``writes`` to the durable store (atomically) before what follows.

    Keys are record names (see :mod:`pot_flower.consensus.durable`); a value of
    None deletes the record.
    """

    writes: Mapping[str, bytes | None]


@dataclass(frozen=True)
class SetTimer:
    """(Re)arm timer ``name`` to fire after ``delay_ms``."""

    name: str
    delay_ms: int


@dataclass(frozen=True)
class CancelTimer:
    """Disarm timer ``name`` if armed."""

    name: str


@dataclass(frozen=True)
class Executed:
    """Sequence number ``seq`` was executed (for observers: ledgers, checkers)."""

    seq: int
    view: int
    digest: bytes
    requests: tuple[Request, ...]
    results: tuple[bytes | None, ...]  # None: a duplicate request, not re-executed
    state_digest: bytes | None  # set at checkpoints


@dataclass(frozen=True)
class StateRestored:
    """The replica jumped to checkpoint ``seq`` by state transfer."""

    seq: int
    state_digest: bytes


@dataclass(frozen=True)
class ViewInstalled:
    """The replica entered ``view`` in normal operation."""

    view: int


class Drop(StrEnum):
    """Why a replica or requester dropped an input (the key drop counters use)."""

    MALFORMED = "malformed"
    NOT_A_MEMBER = "not-a-member"
    IMPERSONATION = "impersonation"  # claims to come from the receiver itself
    BAD_SIGNATURE = "bad-signature"
    BAD_REQUEST = "bad-request"  # from an unknown requester, or a bad signature
    FORGED_RELAY = "forged-relay"  # a relayed vote whose signature fails
    UNEXPECTED = "unexpected"  # a message type this role does not take
    STALE_REQUEST = "stale-request"
    EQUIVOCATION = "equivocation"
    INVALID_PRE_PREPARE = "invalid-pre-prepare"
    INVALID_PREPARE = "invalid-prepare"
    INVALID_COMMIT = "invalid-commit"
    OVERSIZED_BUNDLE = "oversized-bundle"
    OUTSIDE_WATERMARKS = "outside-watermarks"
    INVALID_COMMIT_CERTIFICATE = "invalid-commit-certificate"
    DIVERGED_STATE = "diverged-state"  # own checkpoint differs from a stable one
    NO_CHECKPOINT = "no-checkpoint"
    INVALID_STATE_TRANSFER = "invalid-state-transfer"
    INVALID_VIEW_CHANGE = "invalid-view-change"
    INVALID_NEW_VIEW = "invalid-new-view"


@dataclass(frozen=True)
class Dropped:
    """An input was rejected: ``reason`` for metrics, ``detail`` for logs."""

    reason: Drop
    detail: str
    sender: int | str | None = None


@dataclass(frozen=True)
class Completed:
    """Requester side: ``timestamp`` got f + 1 matching replies with ``result``."""

    timestamp: int
    result: bytes


@dataclass(frozen=True)
class Rejected:
    """Requester side: f + 1 replicas say request ``timestamp`` will never execute.

    They executed a newer request under this client's id (``newer``): another
    client holds the same id and key.
    """

    timestamp: int
    newer: int


Effect = Union[
    Send,
    Broadcast,
    SendToClient,
    Persist,
    SetTimer,
    CancelTimer,
    Executed,
    StateRestored,
    ViewInstalled,
    Dropped,
    Completed,
    Rejected,
]
