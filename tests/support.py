"""Test support: a committee of real keys and signed messages to craft inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from pot_flower.zk.signatures import SigningKey

from pot_flower.consensus.application import HashChainApp
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.effects import Broadcast, Effect, Send, SendToClient
from pot_flower.consensus.messages import (
    Commit,
    Message,
    Prepare,
    PrePrepare,
    Request,
    batch_digest,
)
from pot_flower.consensus.replica import Replica


@dataclass
class Committee:
    """Keys for n replicas and one client, plus shortcuts to sign messages."""

    n: int = 4
    overrides: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = [
            SigningKey.from_seed(b"test-replica-%d" % i) for i in range(self.n)
        ]
        self.client_key = SigningKey.from_seed(b"test-client")
        self.config = CommitteeConfig(
            replicas=tuple(k.verify_key for k in self.keys),
            clients={"alice": self.client_key.verify_key},
            **{"checkpoint_interval": 2, "window": 4, **self.overrides},
        )

    def replica(self, rid: int) -> Replica:
        return Replica(self.config, rid, self.keys[rid], HashChainApp())

    def request(self, ts: int = 1, op: bytes = b"op") -> Request:
        return Request("alice", ts, op).signed(self.client_key)

    def pre_prepare(self, view: int, seq: int, *requests: Request) -> PrePrepare:
        pp = PrePrepare(
            view, seq, batch_digest(requests), tuple(requests), view % self.n
        )
        return pp.signed(self.keys[view % self.n])

    def prepare(self, view: int, seq: int, digest: bytes, sender: int) -> Prepare:
        return Prepare(view, seq, digest, sender).signed(self.keys[sender])

    def commit(self, view: int, seq: int, digest: bytes, sender: int) -> Commit:
        return Commit(view, seq, digest, sender).signed(self.keys[sender])


def sent(effects: list[Effect], kind: type[Message]) -> list[Message]:
    """Messages of type ``kind`` among the effects (sends, broadcasts, replies)."""
    out: list[Message] = []
    for e in effects:
        if isinstance(e, (Send, Broadcast, SendToClient)) and isinstance(
            e.message, kind
        ):
            out.append(e.message)
    return out


def of_type(effects: list[Effect], kind: type) -> list:
    """Effects of type ``kind``."""
    return [e for e in effects if isinstance(e, kind)]
