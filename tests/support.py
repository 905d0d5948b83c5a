"""Test support: a committee of real keys and signed messages to craft inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from pot_flower.consensus.application import HashChainApp
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.effects import Broadcast, Effect, Send, SendToClient
from pot_flower.consensus.messages import (
    Checkpoint,
    Commit,
    CommitCertificate,
    Committed,
    FetchState,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Reply,
    Request,
    StateTransfer,
    Status,
    Superseded,
    ViewChange,
    Votes,
    batch_digest,
    sha256,
)
from pot_flower.consensus.replica import Replica
from pot_flower.zk.signatures import SigningKey


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


def every_message(c: Committee) -> list[Message]:
    """One valid, signed instance of every message type."""
    req = c.request()
    pp = c.pre_prepare(0, 1, req)
    prepares = tuple(c.prepare(0, 1, pp.digest, i) for i in (1, 2))
    commits = tuple(c.commit(0, 1, pp.digest, i) for i in (0, 1, 2))
    cp = tuple(Checkpoint(2, sha256(b"s"), i).signed(c.keys[i]) for i in range(3))
    vc = ViewChange(1, 2, cp, (PreparedCertificate(pp, prepares),), 1).signed(c.keys[1])
    return [
        req,
        pp,
        prepares[0],
        commits[0],
        Reply(0, "alice", 1, b"result", 2).signed(c.keys[2]),
        Superseded("alice", 1, 2, 2).signed(c.keys[2]),
        cp[0],
        vc,
        NewView(1, (vc,), (c.pre_prepare(1, 1),), 1).signed(c.keys[1]),
        Status(0, False, 0, 0, 3).signed(c.keys[3]),
        Committed(CommitCertificate(pp, commits), 3).signed(c.keys[3]),
        Votes(prepares, commits, 0).signed(c.keys[0]),
        FetchState(2, 3).signed(c.keys[3]),
        StateTransfer(2, b"snapshot", cp, 0).signed(c.keys[0]),
    ]
