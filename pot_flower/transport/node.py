"""A validator as a network service: the replica state machine behind gRPC.

One actor thread owns the replica and carries out its effects in order (persist,
then send), so the state machine never sees concurrency. The gRPC edge
(:mod:`pot_flower.transport.server`, an asyncio server) only parses, checks and
queues inputs in a fair, bounded inbox; one sender thread per peer streams frames
to it; coordinators subscribe to their replies with a server stream.

Failures are never hidden. A step that had to give up waiting for peers (payloads
they already collected, blocks that did not come in time) is abandoned unrecorded
and the replica is rebuilt from its durable records, so it retries or catches up by
state transfer; any other exception stops the replica, the health check reports
``failed`` with the reason and the daemon exits non-zero.
"""

from __future__ import annotations

import functools
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from pot_flower.consensus.application import Application
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.durable import DurableState
from pot_flower.consensus.effects import (
    Broadcast,
    CancelTimer,
    Dropped,
    Effect,
    Executed,
    Persist,
    Send,
    SendToClient,
    SetTimer,
    ViewInstalled,
)
from pot_flower.consensus.replica import Replica
from pot_flower.patience import Interrupted, Unavailable
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.transport.fetch import PeerFetcher
from pot_flower.transport.inbox import Inbox
from pot_flower.transport.limits import Limits
from pot_flower.transport.repair import CertificateRepair
from pot_flower.transport.server import ValidatorServer
from pot_flower.validator.chains import Chains
from pot_flower.validator.replica_store import RecordStore
from pot_flower.zk.signatures import SigningKey

log = logging.getLogger("pot.validator")

PEER_QUEUE = 10_000
GROUP_COMMIT = 64  # most inputs whose writes share one transaction
RECONNECT_S = 0.2
BATCH_FRAMES = 256
T = TypeVar("T")


@dataclass
class NodeStats:
    """Counters for health checks and logs."""

    received: int = 0
    sent: int = 0
    send_failures: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    executed: int = 0
    rebuilds: int = 0


class _Peer(threading.Thread):
    """Sends queued frames to one peer; reconnects and drops on failure."""

    def __init__(
        self,
        address: str,
        stats: NodeStats,
        channel_factory: Callable[[str], grpc.Channel],
    ) -> None:
        super().__init__(daemon=True, name=f"peer-{address}")
        self.address = address
        self.queue: queue.Queue[bytes | None] = queue.Queue(PEER_QUEUE)
        self.stats = stats
        self._channel_factory = channel_factory

    def offer(self, data: bytes) -> None:
        try:
            self.queue.put_nowait(data)
        except queue.Full:  # a dead peer must not stall the replica
            self.stats.send_failures += 1

    def _frames(self) -> Iterator[pot_pb2.Frame]:
        while True:
            data = self.queue.get()
            more: list[bytes] = []
            # Whatever else is already waiting rides along in the same frame.
            while data is not None and len(more) < BATCH_FRAMES:
                try:
                    extra = self.queue.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    self.queue.put(None)
                    break
                more.append(extra)
            if data is None:
                self._closed = True
                return
            self.stats.sent += 1 + len(more)
            yield pot_pb2.Frame(data=data, more=more)

    def run(self) -> None:
        # One long-lived stream per peer: far cheaper per message than unary calls.
        # A broken stream loses what was in flight (PBFT retransmits what matters)
        # and is reopened after a pause.
        channel = self._channel_factory(self.address)
        stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
        self._closed = False
        while not self._closed:
            try:
                stub.Link(self._frames(), wait_for_ready=True)
            except grpc.RpcError:
                self.stats.send_failures += 1
                time.sleep(RECONNECT_S)
        channel.close()


class ValidatorNode:
    """Run replica ``replica_id`` of ``config`` as a gRPC service.

    Parameters
    ----------
    config : CommitteeConfig
        The committee (public keys of validators and clients, tuning).
    replica_id : int
        This validator's index.
    key : SigningKey
        This validator's private key.
    app : Application
        What the committee executes (restored from the durable records).
    addresses : Mapping[int, str]
        ``host:port`` of every validator, this one included.
    store : RecordStore | None
        Durable consensus records; None keeps them in memory only.
    server_credentials, channel_credentials : optional
        mTLS credentials; None means plaintext (loopback development only).
    service : Chains | None
        The PoT service behind ``app`` (payloads, ledgers), wired to the peers.
    limits : Limits | None
        Resource bounds of the gRPC edge (default: :class:`Limits`).
    stopping : Callable[[], bool] | None
        Set by the daemon on SIGTERM: ends waits for peers even before
        :meth:`stop` (during start-up, say).

    """

    def __init__(
        self,
        config: CommitteeConfig,
        replica_id: int,
        key: SigningKey,
        app: Application,
        addresses: Mapping[int, str],
        *,
        store: RecordStore | None = None,
        server_credentials: grpc.ServerCredentials | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        service: Chains | None = None,
        limits: Limits | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.id = replica_id
        self.key = key
        self.app = app
        self.config = config
        self.limits = limits or Limits()
        self.addresses = dict(addresses)
        self.store = store
        self.stats = NodeStats()
        self.failure: str | None = None
        self._stopping = threading.Event()
        self._asked_to_stop = stopping or (lambda: False)
        self._channel_credentials = channel_credentials
        self.fetcher = PeerFetcher(
            {r: a for r, a in self.addresses.items() if r != replica_id},
            self._channel,
            self.limits.max_payload_bytes,
        )
        self.service = service
        if service is not None:
            service.fetch = self.fetcher.payload
            service.blocks = self.fetcher
            service.stopping = self.stop_asked
            service.patience_s = self.limits.payload_patience_s
        self.inbox = Inbox(self.limits.inbox_bytes)
        self._timers: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._pending_writes: dict[str, bytes | None] = {}
        self._outbox: list[Callable[[], None]] = []
        self.replica = self._build_replica()
        self._low = self.replica.low
        self._peers = {
            rid: _Peer(addr, self.stats, self._channel)
            for rid, addr in self.addresses.items()
            if rid != replica_id
        }
        self.server = ValidatorServer(
            self, self.addresses[replica_id], self.limits, server_credentials
        )
        self._actor = threading.Thread(target=self._run, daemon=True, name="replica")
        self.repair = (
            None
            if service is None
            else CertificateRepair(
                service, self.fetcher, self.call_future, self._stopping
            )
        )

    # ---------------------------------------------------------------- life
    def stop_asked(self) -> bool:
        """Whether this validator is stopping (ends waits for peers)."""
        return self._stopping.is_set() or self._asked_to_stop()

    def _channel(self, address: str) -> grpc.Channel:
        return open_channel(address, self._channel_credentials, self.limits)

    def _build_replica(self) -> Replica:
        """The replica as its durable records left it (replaying what they hold)."""
        records = self.store.load() if self.store is not None else {}
        durable = DurableState.from_records(records) if records else None
        return Replica(self.config, self.id, self.key, self.app, durable)

    def start(self) -> None:
        """Serve, connect to peers and start the replica."""
        self.server.start()
        for peer in self._peers.values():
            peer.start()
        self._actor.start()
        if self.repair is not None:
            self.repair.start()
        self.inbox.put_control("start")
        log.info("validator %d serving on %s", self.id, self.addresses[self.id])

    def stop(self, grace: float = 2.0) -> bool:
        """Stop within about ``grace`` + 8 s whatever callers do; True if clean."""
        self._stopping.set()
        self.inbox.put_control("stop")
        self._actor.join(timeout=grace + 5)
        clean = self.server.stop(grace)
        for peer in self._peers.values():
            peer.queue.put(None)
        self.fetcher.close()
        if self.store is not None and not self._actor.is_alive():
            self.store.close()
        return clean and not self._actor.is_alive()

    # --------------------------------------------------------------- inputs
    def offer(self, surface: str, data: bytes) -> bool:
        """Queue wire bytes for the replica (False: over the inbox budget)."""
        self.stats.received += 1
        if self.inbox.offer(surface, data):
            return True
        self.count_drop("inbox full")
        return False

    def count_drop(self, reason: str) -> None:
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1

    def call_future(self, fn: Callable[[], T]) -> futures.Future[T]:
        """Run ``fn`` on the replica's thread (state is never shared)."""
        done: futures.Future[T] = futures.Future()
        self.inbox.put_control("call", (fn, done))
        return done

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the replica's thread and return its result."""
        return self.call_future(fn).result(timeout=timeout)

    def health(self) -> pot_pb2.HealthReply:
        r = self.replica
        if self.failure is not None:
            status = "failed"
        elif self.stop_asked():
            status = "stopping"
        else:
            status = "serving"
        return pot_pb2.HealthReply(
            status=status,
            replica=self.id,
            view=r.view,
            last_executed=r.last_executed,
            stable=r.low,
            in_view_change=r.in_view_change,
            received=self.stats.received,
            dropped=sum(self.stats.dropped.values()),
            detail=self.failure or "",
        )

    # ---------------------------------------------------------------- actor
    def _run(self) -> None:
        while True:
            timeout = None
            if self._heap:
                timeout = max(0.0, self._heap[0][0] - time.monotonic())
            first = self.inbox.get(timeout)
            items = [] if first is None else [first]
            # Group commit: take what else is waiting, persist the steps' writes in
            # one transaction, then release the messages that depended on them.
            while items and len(items) < GROUP_COMMIT:
                more = self.inbox.get_nowait()
                if more is None:
                    break
                items.append(more)
            done = 0
            try:
                for kind, value in items:
                    if kind == "stop":
                        self._flush()
                        return
                    self._step(kind, value)
                    done += 1
                self._fire_due()
                self._flush()
                self._collect()
            except Interrupted:
                # Stopped while a step waited for peers: the step is abandoned
                # unrecorded, so a restart replays it from the last records.
                log.info("validator %d: stopped while waiting for peers", self.id)
                return
            except Unavailable as exc:
                try:
                    self._rebuild(str(exc), items[done + 1 :])
                except Exception as failure:  # cannot even start over: say so
                    self._fail(failure)
                    return
            except Exception as exc:  # a bug or a damaged disk: say so, stop
                self._fail(exc)
                return

    def _fail(self, exc: Exception) -> None:
        self.failure = f"{type(exc).__name__}: {exc}"
        log.exception("validator %d: replica stopped: %s", self.id, self.failure)

    def _rebuild(self, why: str, unprocessed: list[tuple[str, Any]]) -> None:
        """Abandon the step that gave up; restart the replica from its records."""
        if self.store is None:
            raise RuntimeError(f"cannot retry without durable records: {why}")
        log.warning("validator %d: step abandoned (%s); rebuilding", self.id, why)
        # The steps before it completed: persist their writes, then say what
        # depended on them. The abandoned step had produced no effects yet.
        self._flush()
        self.stats.rebuilds += 1
        self.replica = self._build_replica()
        self._timers.clear()
        self._heap.clear()
        self._apply(self.replica.start())
        self._flush()
        for kind, value in unprocessed:
            if kind != "bytes":  # calls and stops must not be lost; bytes may be
                self.inbox.put_control(kind, value)

    def _collect(self) -> None:
        low = self.replica.low
        if low != self._low:
            self._low = low
            if self.service is not None:
                # A whole window below the stable checkpoint nobody honest needs a
                # payload any more: a validator that far behind takes a snapshot.
                collected = self.service.collect(low - self.config.window)
                if collected:
                    log.info("validator %d collected %d payloads", self.id, collected)

    def _step(self, kind: str, value: Any) -> None:
        if kind == "bytes":
            self._apply(self.replica.receive(value))
        elif kind == "start":
            self._apply(self.replica.start())
        elif kind == "call":
            self._flush()  # calls read durable state: make it current first
            fn, done = value
            if not done.set_running_or_notify_cancel():
                return  # its caller gave up waiting (the edge cancelled it): skip
            try:
                result = fn()
            except Exception as exc:  # reported to the caller
                done.set_exception(exc)
            else:
                done.set_result(result)

    def _flush(self) -> None:
        if self._pending_writes and self.store is not None:
            self.store.apply(self._pending_writes)
        self._pending_writes = {}
        outbox, self._outbox = self._outbox, []
        for send in outbox:
            send()

    def _fire_due(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            deadline, name = heapq.heappop(self._heap)
            if self._timers.get(name) == deadline:
                del self._timers[name]
                self._apply(self.replica.on_timer(name))

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                self._pending_writes.update(effect.writes)
            elif isinstance(effect, Send):
                peer = self._peers.get(effect.to)
                if peer is not None:
                    data = effect.message.to_bytes()
                    self._outbox.append(functools.partial(peer.offer, data))
            elif isinstance(effect, Broadcast):
                data = effect.message.to_bytes()
                for peer in self._peers.values():
                    self._outbox.append(functools.partial(peer.offer, data))
            elif isinstance(effect, SendToClient):
                data = effect.message.to_bytes()
                self._outbox.append(
                    functools.partial(self.server.publish, effect.client, data)
                )
            elif isinstance(effect, SetTimer):
                deadline = time.monotonic() + effect.delay_ms / 1000
                self._timers[effect.name] = deadline
                heapq.heappush(self._heap, (deadline, effect.name))
            elif isinstance(effect, CancelTimer):
                self._timers.pop(effect.name, None)
            elif isinstance(effect, Dropped):
                reason = effect.reason.value
                count = self.stats.dropped.get(reason, 0) + 1
                self.stats.dropped[reason] = count
                if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th...: logs stay small
                    log.info(
                        "validator %d dropped input (%s; %d of kind %s so far)",
                        self.id,
                        effect.detail,
                        count,
                        reason,
                    )
            elif isinstance(effect, Executed):
                self.stats.executed += 1
            elif isinstance(effect, ViewInstalled):
                log.info("validator %d entered view %d", self.id, effect.view)
