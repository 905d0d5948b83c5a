"""An in-memory committee: real replicas and signatures, a FIFO zero-delay network.

The simplest driver of the state machines: every effect is carried out at once,
messages travel as wire bytes through one queue, timers fire only when asked. Used
by tests, by the benchmark and, in process, by the embedded committee.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pot_flower.consensus.application import Application, HashChainApp
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.durable import DurableState, apply_writes
from pot_flower.consensus.effects import (
    Broadcast,
    CancelTimer,
    Completed,
    Effect,
    Executed,
    Persist,
    Send,
    SendToClient,
    SetTimer,
)
from pot_flower.consensus.replica import Replica
from pot_flower.consensus.requester import Requester
from pot_flower.zk.signatures import SigningKey


@dataclass
class NodeLog:
    """What the driver saw one replica do."""

    executed: list[Executed] = field(default_factory=list)
    store: dict[str, bytes] = field(default_factory=dict)  # persisted records
    timers: set[str] = field(default_factory=set)


class MemoryDriver:
    """n replicas and any number of clients wired through one FIFO queue.

    Parameters
    ----------
    n : int
        Committee size.
    clients : Iterable[str] (default: ("client-0",))
        Requester ids to register.
    app_factory : callable (default: HashChainApp)
        Builds each replica's application.
    persist : bool (default: True)
        Keep each replica's persisted records (they are encoded either way).
    seed : bytes (default: b"committee")
        Derives every key deterministically.
    **config : Any
        Passed on to :class:`CommitteeConfig`.

    """

    def __init__(
        self,
        n: int,
        *,
        clients: Iterable[str] = ("client-0",),
        app_factory: Callable[[], Application] = HashChainApp,
        persist: bool = True,
        seed: bytes = b"committee",
        **config: Any,
    ) -> None:
        self.keys = [SigningKey.from_seed(seed + b"/replica/%d" % i) for i in range(n)]
        client_keys = {
            c: SigningKey.from_seed(seed + b"/client/" + c.encode()) for c in clients
        }
        self.config = CommitteeConfig(
            replicas=tuple(k.verify_key for k in self.keys),
            clients={c: k.verify_key for c, k in client_keys.items()},
            **config,
        )
        self.app_factory = app_factory
        self.persist = persist
        self.replicas: dict[int, Replica] = {
            i: Replica(self.config, i, self.keys[i], app_factory()) for i in range(n)
        }
        self.clients = {c: Requester(c, k, self.config) for c, k in client_keys.items()}
        self.logs = {i: NodeLog() for i in range(n)}
        self.completed: dict[str, list[Completed]] = {c: [] for c in client_keys}
        self.down: set[int] = set()
        self.cut: set[tuple[int | str, int | str]] = set()  # (src, dst) links dropped
        self._queue: deque[tuple[int | str, int | str, bytes]] = deque()
        self.delivered = 0
        for i, replica in self.replicas.items():
            self._apply(i, replica.start())

    # ------------------------------------------------------------- driving
    def submit(self, client: str, operation: bytes) -> None:
        """Have ``client`` send a request (it must not have one outstanding)."""
        self._apply(client, self.clients[client].submit(operation))

    def run(self, max_messages: int = 1_000_000) -> int:
        """Deliver queued messages until the queue is empty; return how many."""
        count = 0
        while self._queue and count < max_messages:
            _src, dst, data = self._queue.popleft()
            count += 1
            if isinstance(dst, str):
                self._apply(dst, self.clients[dst].receive(data))
            elif dst not in self.down:
                self._apply(dst, self.replicas[dst].receive(data))
        self.delivered += count
        return count

    def fire(self, node: int | str, timer: str) -> None:
        """Fire a timer now (tests decide when time passes)."""
        if isinstance(node, str):
            self._apply(node, self.clients[node].on_timer(timer))
        elif node not in self.down:
            self._apply(node, self.replicas[node].on_timer(timer))

    def crash(self, rid: int) -> None:
        """Stop delivering to and from replica ``rid``."""
        self.down.add(rid)

    def restart(self, rid: int) -> None:
        """Rebuild replica ``rid`` from the records it persisted."""
        stored = self.logs[rid].store
        durable = DurableState.from_records(stored) if stored else None
        self.replicas[rid] = Replica(
            self.config, rid, self.keys[rid], self.app_factory(), durable
        )
        self.down.discard(rid)
        self._apply(rid, self.replicas[rid].start())

    # ------------------------------------------------------------ plumbing
    def _enqueue(self, src: int | str, dst: int | str, data: bytes) -> None:
        if (src, dst) in self.cut or (isinstance(src, int) and src in self.down):
            return
        self._queue.append((src, dst, data))

    def _apply(self, node: int | str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._enqueue(node, effect.to, effect.message.to_bytes())
            elif isinstance(effect, Broadcast):
                data = effect.message.to_bytes()
                for rid in self.replicas:
                    if rid != node:
                        self._enqueue(node, rid, data)
            elif isinstance(effect, SendToClient):
                self._enqueue(node, effect.client, effect.message.to_bytes())
            elif isinstance(effect, Persist) and isinstance(node, int):
                if self.persist:
                    apply_writes(self.logs[node].store, effect.writes)
            elif isinstance(effect, SetTimer) and isinstance(node, int):
                self.logs[node].timers.add(effect.name)
            elif isinstance(effect, CancelTimer) and isinstance(node, int):
                self.logs[node].timers.discard(effect.name)
            elif isinstance(effect, Executed) and isinstance(node, int):
                self.logs[node].executed.append(effect)
            elif isinstance(effect, Completed) and isinstance(node, str):
                self.completed[node].append(effect)
