"""A validator as a network service: the replica state machine behind gRPC.

One actor thread owns the replica and carries out its effects in order (persist,
then send), so the state machine never sees concurrency. gRPC handler threads only
enqueue bytes; one sender thread per peer drains a bounded queue with unary RPCs
(deadline, drop on failure: PBFT's status exchange retransmits what matters);
coordinators subscribe to their replies with a server stream.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
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

from pot_flower.availability import sign_receipt
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
from pot_flower.encoding import DecodeError, decode
from pot_flower.protocol.block import Certificate, CertificateError, sign_block
from pot_flower.service import Interrupted, ValidatorService
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.store import RecordStore
from pot_flower.zk.signatures import SigningKey

log = logging.getLogger("pot.validator")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest frame a validator accepts (gRPC refuses bigger ones before parsing)."""
PEER_QUEUE = 10_000
MAX_WORKERS = 32  # inbound peer streams and reply streams each hold one
GROUP_COMMIT = 64  # most inputs whose writes share one transaction
SEND_DEADLINE_S = 2.0
RECONNECT_S = 0.2
BATCH_FRAMES = 256
FETCH_DEADLINE_S = 10.0
CHUNK_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 30
MAX_HELD_DIGESTS = 100_000  # digests one availability receipt may cover
LATEST = (1 << 64) - 1  # BlockRequest.height for "the latest block"
T = TypeVar("T")
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    # Peers come and go: retry connections quickly, and do not share subchannels
    # (and their back-off) between channels of one process.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.use_local_subchannel_pool", 1),
]


def open_channel(
    address: str, credentials: grpc.ChannelCredentials | None = None
) -> grpc.Channel:
    """A channel to ``address``: mTLS with ``credentials``, else plaintext."""
    if credentials is None:
        return grpc.insecure_channel(address, options=GRPC_OPTIONS)
    return grpc.secure_channel(address, credentials, options=GRPC_OPTIONS)


@dataclass
class NodeStats:
    """Counters for health checks and logs."""

    received: int = 0
    sent: int = 0
    send_failures: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    executed: int = 0


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
        service: ValidatorService | None = None,
    ) -> None:
        self.id = replica_id
        self.key = key
        self.service = service
        if service is not None:
            service.fetch = self.fetch_payload
        self.config = config
        self.addresses = dict(addresses)
        self.store = store
        self.stats = NodeStats()
        records = store.load() if store is not None else {}
        durable = DurableState.from_records(records) if records else None
        self.replica = Replica(config, replica_id, key, app, durable)
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._timers: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._pending_writes: dict[str, bytes | None] = {}
        self._outbox: list[Callable[[], None]] = []
        self._subscribers: dict[str, list[queue.Queue[bytes | None]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        if service is not None:
            service.stopping = self._stopping.is_set
        self._channel_credentials = channel_credentials
        self._server_credentials = server_credentials
        self._peers = {
            rid: _Peer(addr, self.stats, self._channel)
            for rid, addr in self.addresses.items()
            if rid != replica_id
        }
        self._server: grpc.Server | None = None
        self._actor = threading.Thread(target=self._run, daemon=True, name="replica")

    # ---------------------------------------------------------------- life
    def _channel(self, address: str) -> grpc.Channel:
        return open_channel(address, self._channel_credentials)

    def start(self) -> None:
        """Serve, connect to peers and start the replica."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_WORKERS), options=GRPC_OPTIONS
        )
        pot_pb2_grpc.add_ValidatorServicer_to_server(  # type: ignore[no-untyped-call]
            _Servicer(self), server
        )
        address = self.addresses[self.id]
        if self._server_credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, self._server_credentials)
        if bound == 0:
            raise OSError(f"cannot listen on {address}")
        server.start()
        self._server = server
        for peer in self._peers.values():
            peer.start()
        self._actor.start()
        self._inbox.put(("start", None))
        log.info("validator %d serving on %s", self.id, address)

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving, let the replica finish its current step, close."""
        self._stopping.set()
        self._inbox.put(("stop", None))
        self._actor.join(timeout=grace + 5)
        if self._server is not None:
            self._server.stop(grace).wait()
        for peer in self._peers.values():
            peer.queue.put(None)
        with self._lock:
            for subscribers in self._subscribers.values():
                for q in subscribers:
                    q.put(None)
        if self.store is not None:
            self.store.close()

    # --------------------------------------------------------------- inputs
    def deliver(self, data: bytes) -> None:
        self.stats.received += 1
        self._inbox.put(("bytes", data))

    def subscribe(self, client: str) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue(1000)
        with self._lock:
            self._subscribers.setdefault(client, []).append(q)
        return q

    def unsubscribe(self, client: str, q: queue.Queue[bytes | None]) -> None:
        with self._lock:
            if q in self._subscribers.get(client, []):
                self._subscribers[client].remove(q)

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the replica's thread (state is never shared) and return."""
        done: futures.Future[T] = futures.Future()
        self._inbox.put(("call", (fn, done)))
        return done.result(timeout=timeout)

    def fetch_payload(self, digest: bytes) -> bytes | None:
        """Ask peers for a payload this validator lacks (first valid answer wins)."""
        for address in [p.address for p in self._peers.values()]:
            channel = self._channel(address)
            try:
                stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
                parts = [
                    chunk.data
                    for chunk in stub.GetPayload(
                        pot_pb2.PayloadRequest(digest=digest), timeout=FETCH_DEADLINE_S
                    )
                ]
                data = b"".join(parts)
                if hashlib.sha256(data).digest() == digest:
                    return data
            except grpc.RpcError:
                continue
            finally:
                channel.close()
        return None

    def health(self) -> pot_pb2.HealthReply:
        r = self.replica
        return pot_pb2.HealthReply(
            status="stopping" if self._stopping.is_set() else "serving",
            replica=self.id,
            view=r.view,
            last_executed=r.last_executed,
            stable=r.low,
            in_view_change=r.in_view_change,
            received=self.stats.received,
            dropped=sum(self.stats.dropped.values()),
        )

    # ---------------------------------------------------------------- actor
    def _run(self) -> None:
        while True:
            timeout = None
            if self._heap:
                timeout = max(0.0, self._heap[0][0] - time.monotonic())
            try:
                items = [self._inbox.get(timeout=timeout)]
            except queue.Empty:
                items = []
            # Group commit: take what else is waiting, persist the steps' writes in
            # one transaction, then release the messages that depended on them.
            while items and len(items) < GROUP_COMMIT and not self._inbox.empty():
                items.append(self._inbox.get_nowait())
            try:
                for kind, value in items:
                    if kind == "stop":
                        self._flush()
                        return
                    self._step(kind, value)
                self._fire_due()
                self._flush()
            except Interrupted:
                # Stopped while a step waited for payloads: the step is abandoned
                # unrecorded, so a restart replays it from the last records.
                log.info("validator %d: stopped while waiting for payloads", self.id)
                return
            except Exception:  # a bug must not silently kill the actor
                log.exception("validator %d: step failed", self.id)
                raise

    def _step(self, kind: str, value: Any) -> None:
        if kind == "bytes":
            self._apply(self.replica.receive(value))
        elif kind == "start":
            self._apply(self.replica.start())
        elif kind == "call":
            self._flush()  # calls read durable state: make it current first
            fn, done = value
            try:
                done.set_result(fn())
            except Exception as exc:  # reported to the caller
                done.set_exception(exc)

    def _flush(self) -> None:
        if self._pending_writes and self.store is not None:
            self.store.apply(self._pending_writes)
        self._pending_writes = {}
        outbox, self._outbox = self._outbox, []
        for send in outbox:
            send()

    def _to_client(self, client: str, data: bytes) -> None:
        with self._lock:
            for q in self._subscribers.get(client, []):
                # Full: the client retransmits and the replica re-replies.
                with contextlib.suppress(queue.Full):
                    q.put_nowait(data)

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
                    functools.partial(self._to_client, effect.client, data)
                )
            elif isinstance(effect, SetTimer):
                deadline = time.monotonic() + effect.delay_ms / 1000
                self._timers[effect.name] = deadline
                heapq.heappush(self._heap, (deadline, effect.name))
            elif isinstance(effect, CancelTimer):
                self._timers.pop(effect.name, None)
            elif isinstance(effect, Dropped):
                reason = effect.reason.split(":")[0]
                count = self.stats.dropped.get(reason, 0) + 1
                self.stats.dropped[reason] = count
                if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th...: logs stay small
                    log.info(
                        "validator %d dropped input (%s; %d so far)",
                        self.id,
                        effect.reason,
                        count,
                    )
            elif isinstance(effect, Executed):
                self.stats.executed += 1
            elif isinstance(effect, ViewInstalled):
                log.info("validator %d entered view %d", self.id, effect.view)


class _Servicer(pot_pb2_grpc.ValidatorServicer):
    def __init__(self, node: ValidatorNode) -> None:
        self.node = node

    def Deliver(
        self, request: pot_pb2.Frame, context: grpc.ServicerContext
    ) -> pot_pb2.Ack:
        self.node.deliver(request.data)
        return pot_pb2.Ack(accepted=True)

    def Link(
        self, request_iterator: Iterator[pot_pb2.Frame], context: grpc.ServicerContext
    ) -> pot_pb2.Ack:
        for frame in request_iterator:
            self.node.deliver(frame.data)
            for data in frame.more:
                self.node.deliver(data)
        return pot_pb2.Ack(accepted=True)

    def Submit(
        self, request: pot_pb2.Frame, context: grpc.ServicerContext
    ) -> pot_pb2.Ack:
        self.node.deliver(request.data)
        return pot_pb2.Ack(accepted=True)

    def Replies(
        self, request: pot_pb2.Subscribe, context: grpc.ServicerContext
    ) -> Iterator[pot_pb2.Frame]:
        q = self.node.subscribe(request.client)
        context.add_callback(lambda: q.put(None))
        try:
            while context.is_active():
                data = q.get()
                if data is None:
                    return
                yield pot_pb2.Frame(data=data)
        finally:
            self.node.unsubscribe(request.client, q)

    def Health(
        self, request: pot_pb2.HealthRequest, context: grpc.ServicerContext
    ) -> pot_pb2.HealthReply:
        return self.node.health()

    # ------------------------------------------------------- PoT services
    def _service(self, context: grpc.ServicerContext) -> ValidatorService:
        service = self.node.service
        if service is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "no PoT service here")
        assert service is not None
        return service

    def PutPayload(
        self, request_iterator: Iterator[pot_pb2.Chunk], context: grpc.ServicerContext
    ) -> pot_pb2.Ack:
        service = self._service(context)
        digest = b""
        parts: list[bytes] = []
        size = 0
        for chunk in request_iterator:
            digest = digest or chunk.digest
            size += len(chunk.data)
            if size > MAX_PAYLOAD_BYTES:
                return pot_pb2.Ack(accepted=False, reason="payload too large")
            parts.append(chunk.data)
        data = b"".join(parts)
        if hashlib.sha256(data).digest() != digest:
            return pot_pb2.Ack(
                accepted=False, reason="payload does not match its digest"
            )
        service.payloads.put(data)
        return pot_pb2.Ack(accepted=True)

    def GetPayload(
        self, request: pot_pb2.PayloadRequest, context: grpc.ServicerContext
    ) -> Iterator[pot_pb2.Chunk]:
        service = self._service(context)
        data = service.payloads.get(request.digest)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such payload")
            return
        for start in range(0, max(len(data), 1), CHUNK_BYTES):
            yield pot_pb2.Chunk(
                digest=request.digest if start == 0 else b"",
                data=data[start : start + CHUNK_BYTES],
            )

    def Holds(
        self, request: pot_pb2.HoldsRequest, context: grpc.ServicerContext
    ) -> pot_pb2.HoldsReply:
        service = self._service(context)
        digests = list(request.digests)
        if len(digests) > MAX_HELD_DIGESTS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many digests")
        missing = [d for d in digests if d not in service.payloads]
        if missing:
            return pot_pb2.HoldsReply(missing=missing)
        return pot_pb2.HoldsReply(receipt=sign_receipt(self.node.key, digests))

    def GetBlock(
        self, request: pot_pb2.BlockRequest, context: grpc.ServicerContext
    ) -> pot_pb2.BlockReply:
        service = self._service(context)
        node = self.node

        def read() -> pot_pb2.BlockReply:
            chain = service.chains.get(request.run)
            ledger = chain.ledger if chain is not None else None
            height = request.height
            if ledger is not None and height == LATEST:
                height = ledger.head_height()
            block = ledger.block(height) if ledger is not None else None
            if block is None or ledger is None:
                return pot_pb2.BlockReply()
            model = b""
            if request.with_model:
                body = decode(block.body)
                digest = body.get("model") if isinstance(body, dict) else None
                if isinstance(digest, bytes):
                    path = ledger.models / digest.hex()
                    model = path.read_bytes() if path.exists() else b""
            return pot_pb2.BlockReply(
                body=block.body,
                vote=sign_block(node.key, block.height, block.hash),
                certificate=block.certificate or b"",
                model=model,
            )

        return node.call(read)

    def Certify(
        self, request: pot_pb2.Frame, context: grpc.ServicerContext
    ) -> pot_pb2.Ack:
        service = self._service(context)
        try:
            value = decode(request.data)
            if not isinstance(value, dict) or not isinstance(value.get("run"), int):
                raise ValueError("expected {run, certificate}")
            certificate = Certificate.from_value(value.get("certificate"))
            certificate.verify(service.validators, service.quorum)
        except (DecodeError, ValueError, CertificateError) as exc:
            return pot_pb2.Ack(accepted=False, reason=str(exc))
        run = int(value["run"])  # type: ignore[arg-type]

        def store() -> str:
            chain = service.chains.get(run)
            if chain is None or chain.ledger is None:
                return f"no chain for run {run}"
            if chain.ledger.block_hash(certificate.height) != certificate.block:
                return "certifies a block this validator does not hold"
            chain.ledger.certify(certificate.height, certificate.to_bytes())
            return ""

        reason = self.node.call(store)
        return pot_pb2.Ack(accepted=not reason, reason=reason)
