"""The deterministic state machine the committee replicates (injected into replicas)."""

from __future__ import annotations

import hashlib
from typing import Protocol

from pot_flower.encoding import DecodeError, decode, encode


class Application(Protocol):
    """What PBFT executes; deterministic: same inputs, same bytes, everywhere."""

    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        """Apply one request and return its result."""
        ...

    def snapshot(self) -> bytes:
        """Canonical bytes of the whole state (hashed into checkpoints)."""
        ...

    def restore(self, snapshot: bytes) -> None:
        """Replace the state with a snapshot (state transfer, recovery)."""
        ...


class HashChainApp:
    """A tiny reference application: a running hash over every executed operation.

    Its result for each request is the new chain head, so any divergence in order or
    content shows up in replies and checkpoint digests at once.
    """

    def __init__(self) -> None:
        self.head = b"\x00" * 32
        self.count = 0

    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        self.head = hashlib.sha256(
            encode([self.head, client, timestamp, operation])
        ).digest()
        self.count += 1
        return self.head

    def snapshot(self) -> bytes:
        return encode([self.head, self.count])

    def restore(self, snapshot: bytes) -> None:
        try:
            value = decode(snapshot)
        except DecodeError as exc:
            raise ValueError(f"bad snapshot: {exc}") from exc
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], bytes)
            and isinstance(value[1], int)
        ):
            raise ValueError("bad snapshot shape")
        self.head, self.count = value[0], value[1]
