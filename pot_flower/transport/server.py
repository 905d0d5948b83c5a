"""A validator's gRPC edge: every input parsed, checked and bounded here.

The server runs on its own asyncio event loop, so an idle stream costs a coroutine,
not a thread: a stranger holding a thousand streams open cannot starve consensus
traffic or the health check. Requests arrive as raw bytes and are parsed here, so a
malformed message is answered ``INVALID_ARGUMENT`` with a reason (gRPC's own
deserialization failures leave a call stuck that blocks server shutdown forever,
and log a traceback each). Numeric fields are range-checked; anything unexpected
is answered ``INTERNAL`` and logged, rate-limited: no call ever ends ``UNKNOWN``.

Bounds (:class:`~pot_flower.transport.limits.Limits`): concurrent RPCs; ``Link``
streams (idle ones make room for new ones; with TLS two per validator identity);
``Replies`` streams per coordinator (a new one closes the oldest); concurrent
uploads and downloads; bytes queued for the replica per surface; payload bytes per
coordinator and in all. Uploads must be signed by a coordinator of the committee
file (and, with TLS, come from that coordinator's certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message as ProtoMessage

from pot_flower.consensus.messages import MessageError, decode_message
from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.protocol.certificate import (
    Certificate,
    CertificateError,
    sign_block,
)
from pot_flower.protocol.scores import ScoreVector
from pot_flower.protocol.sealing import SealSet, sign_seal_set
from pot_flower.transport import pot_pb2
from pot_flower.transport.channels import server_options
from pot_flower.transport.limits import Limits, shown
from pot_flower.transport.uploads import past_round_problem, upload_problem
from pot_flower.validator.availability import sign_receipt
from pot_flower.validator.chains import ScoringPending, ScoringRefused
from pot_flower.validator.payloads import PayloadError
from pot_flower.validator.reads import LATEST, BlockCopy, read_block

if TYPE_CHECKING:
    from pot_flower.transport.node import ValidatorNode
    from pot_flower.validator.chains import Chains

log = logging.getLogger("pot.validator")
SERVICE = "pot.v1.Validator"
CHUNK_BYTES = 1 << 20
MAX_HELD_DIGESTS = 100_000  # digests one availability receipt may cover
MAX_INDEX = (1 << 63) - 1  # largest height SQLite can hold (runs are any uint64)
MAX_SEAL_CALLS = 8  # SignSeals calls waiting on the replica's thread at once
CALL_TIMEOUT_S = 10.0  # a call onto the replica's thread (Certify)
MAX_CALLS = 64  # calls waiting for the replica's thread at once
MAX_DISK_CALLS = 16  # receipts and block reads on worker threads at once
PEER_STREAMS_PER_IDENTITY = 2  # a reconnecting peer's new stream and its old one
VOUCH_EVERY_S = 1.0  # how often a Link stream's traffic is checked for a signature
P = TypeVar("P", bound=ProtoMessage)
Context: TypeAlias = grpc.aio.ServicerContext  # Any to mypy: grpc has no stubs
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncIterator[Any]]


class RateLimitedLog:
    """Log the 1st, 2nd, 4th, 8th... occurrence of each kind of event."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def event(self, kind: str, detail: str, level: int = logging.INFO) -> None:
        with self._lock:
            count = self.counts.get(kind, 0) + 1
            self.counts[kind] = count
        if count & (count - 1) == 0:
            log.log(level, "%s (%s; %d so far)", kind, detail, count)


def caller_identity(context: Context) -> str | None:
    """The common name of the caller's TLS certificate, or None without TLS."""
    names = context.auth_context().get("x509_common_name")
    return names[0].decode("utf-8", "replace") if names else None


def parse(message_type: type[P], data: bytes) -> P:
    """Parse raw request bytes (ValueError with a reason)."""
    if not isinstance(data, bytes):
        raise ValueError("request is not bytes")
    try:
        return cast(P, message_type.FromString(data))
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"malformed {message_type.__name__}: {exc}") from exc


@dataclass(eq=False)
class _Stream:
    """One inbound stream the edge keeps track of."""

    id: int
    identity: str | None
    task: asyncio.Task[Any] | None
    opened: float = field(default_factory=time.monotonic)
    last_seen: float = 0.0  # when a validator's signature last vouched for it
    vouched: bool = False
    checked: float = 0.0  # when its traffic was last checked for a peer's words
    queue: asyncio.Queue[bytes | None] | None = None
    closed: bool = False

    def close(self) -> None:
        """End the stream (a reply stream returns, a request stream is cancelled)."""
        self.closed = True
        if self.queue is not None:
            while not self.queue.empty():  # what it had not sent is lost anyway
                self.queue.get_nowait()
            self.queue.put_nowait(None)
        elif self.task is not None:
            self.task.cancel()


class ValidatorServer:
    """Serve ``node`` on ``address`` (one thread runs the event loop).

    Parameters
    ----------
    node : ValidatorNode
        The validator whose inputs this edge feeds.
    address : str
        ``host:port`` to listen on.
    limits : Limits
        The bounds enforced here.
    credentials : grpc.ServerCredentials | None
        Mutual TLS; None for plaintext (loopback development only).

    """

    def __init__(
        self,
        node: ValidatorNode,
        address: str,
        limits: Limits,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.node = node
        self.address = address
        self.limits = limits
        self.credentials = credentials
        self.noise = RateLimitedLog()
        self._loop = asyncio.new_event_loop()
        self._server: grpc.aio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="grpc-edge"
        )
        self._ids = itertools.count(1)
        self._links: list[_Stream] = []
        self._subscribers: dict[str, list[_Stream]] = {}
        self.busy: dict[str, int] = {}  # calls in progress, by kind of slot
        # Scoring runs on a thread of its own, one batch at a time; a call that is
        # cut off leaves its batch running, and the slot stays taken until it ends.
        self._score_pool = futures.ThreadPoolExecutor(1, "pot-score")
        self._scoring: asyncio.Future[Any] | None = None
        self.closing = False
        self.refused: dict[str, int] = {}

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Bind and serve (OSError if the address cannot be bound)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        server = grpc.aio.server(
            options=server_options(self.limits),
            maximum_concurrent_rpcs=self.limits.max_concurrent_rpcs,
        )
        server.add_generic_rpc_handlers((self._handlers(),))
        try:
            if self.credentials is None:
                bound = server.add_insecure_port(self.address)
            else:
                bound = server.add_secure_port(self.address, self.credentials)
        except RuntimeError:  # grpc's way of saying the port is taken
            bound = 0
        if bound == 0:
            raise OSError(f"cannot listen on {self.address} (in use?)")
        await server.start()
        self._server = server

    def stop(self, grace: float) -> bool:
        """Stop serving within ``grace`` + 3 s whatever callers do; True if clean."""
        self.closing = True
        clean = True
        if self._server is not None and self._thread.is_alive():
            stopping = asyncio.run_coroutine_threadsafe(
                self._server.stop(grace), self._loop
            )
            try:
                stopping.result(timeout=grace + 3)
            except (futures.TimeoutError, RuntimeError):
                clean = False
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=3)
        self._score_pool.shutdown(wait=False, cancel_futures=True)
        return clean and not self._thread.is_alive()

    # ----------------------------------------------------- replies (actor side)
    def publish(self, client: str, data: bytes) -> None:
        """Send a reply to ``client``'s streams (called from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop has stopped
            self._loop.call_soon_threadsafe(self._publish, client, data)

    def _publish(self, client: str, data: bytes) -> None:
        for stream in self._subscribers.get(client, []):
            assert stream.queue is not None
            # Full: the client retransmits and the replica re-replies.
            with contextlib.suppress(asyncio.QueueFull):
                stream.queue.put_nowait(data)

    # --------------------------------------------------------------- plumbing
    def _handlers(self) -> grpc.GenericRpcHandler:
        def out(message: ProtoMessage) -> bytes:
            return bytes(message.SerializeToString())

        unary = {
            "Deliver": self._inbox("deliver"),
            "Submit": self._inbox("submit"),
            "Health": self._health,
            "Holds": self._holds,
            "Score": self._score,
            "GetBlock": self._get_block,
            "Certify": self._certify,
            "SignSeals": self._sign_seals,
        }
        handlers: dict[str, grpc.RpcMethodHandler] = {
            name: grpc.unary_unary_rpc_method_handler(
                self._guard_unary(name, fn), response_serializer=out
            )
            for name, fn in unary.items()
        }
        handlers["Link"] = grpc.stream_unary_rpc_method_handler(
            self._guard_unary("Link", self._link), response_serializer=out
        )
        handlers["PutPayload"] = grpc.stream_unary_rpc_method_handler(
            self._guard_unary("PutPayload", self._put_payload),
            response_serializer=out,
        )
        handlers["Replies"] = grpc.unary_stream_rpc_method_handler(
            self._guard_stream("Replies", self._replies), response_serializer=out
        )
        handlers["GetPayload"] = grpc.unary_stream_rpc_method_handler(
            self._guard_unary("GetPayload", self._get_payload),
            response_serializer=out,
        )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _guard_unary(self, name: str, fn: Unary) -> Unary:
        async def guarded(request: Any, context: Context) -> Any:
            try:
                return await fn(request, context)
            except ValueError as exc:  # a malformed or out-of-range request
                self.noise.event(f"{name}: invalid request", str(exc))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as exc:  # never UNKNOWN: report, log (rate-limited)
                await self._internal(name, exc, context)

        return guarded

    def _guard_stream(self, name: str, fn: Streaming) -> Streaming:
        async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for item in fn(request, context):
                    yield item
            except ValueError as exc:
                self.noise.event(f"{name}: invalid request", str(exc))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as exc:
                await self._internal(name, exc, context)

        return guarded

    async def _internal(self, name: str, exc: Exception, context: Context) -> None:
        if self.closing:  # calls cut off by the shutdown fail on their own
            await context.abort(grpc.StatusCode.UNAVAILABLE, "validator stopping")
        self.noise.event(f"{name}: internal error", repr(exc), logging.ERROR)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")

    async def _refuse(
        self,
        context: Context,
        code: grpc.StatusCode,
        kind: str,
        detail: str,
    ) -> None:
        """End the call with ``code``; count and log (rate-limited) by ``kind``."""
        self.refused[kind] = self.refused.get(kind, 0) + 1
        self.noise.event(f"refused {kind}", detail)
        await context.abort(code, f"{kind}: {detail}")

    def _offer(self, surface: str, frame: pot_pb2.Frame) -> bool:
        accepted = self.node.offer(surface, frame.data)
        for data in frame.more:
            accepted = self.node.offer(surface, data) and accepted
        return accepted

    async def _service(self, context: Context) -> Chains:
        service = self.node.service
        if service is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "no PoT service on this validator"
            )
        assert service is not None
        return service

    # -------------------------------------------------------------- consensus
    def _inbox(self, surface: str) -> Unary:
        """The handler of a one-frame RPC into the inbox (Deliver, Submit)."""

        async def offer(raw: bytes, context: Context) -> pot_pb2.Ack:
            if not self._offer(surface, parse(pot_pb2.Frame, raw)):
                return pot_pb2.Ack(accepted=False, reason="inbox full (dropped)")
            return pot_pb2.Ack(accepted=True)

        return offer

    async def _link(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> pot_pb2.Ack:
        identity = caller_identity(context)
        if identity is not None and not identity.startswith("validator-"):
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "link",
                f"only validators link, not {shown(identity)}",
            )
        stream = _Stream(next(self._ids), identity, None)
        self._admit_link(stream)
        # Frames are read by a task of their own: closing the stream cancels that
        # task, and this call then ends with a status the peer sees (cancelling
        # the call's own task would leave the peer writing into a dead stream).
        reader = asyncio.ensure_future(self._read_link(requests, stream))
        stream.task = reader
        try:
            await reader
        except asyncio.CancelledError:
            if not stream.closed:
                raise  # the call itself ended (peer gone, server stopping)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "link stream closed for a new one"
            )
        finally:
            reader.cancel()
            if stream in self._links:
                self._links.remove(stream)
        return pot_pb2.Ack(accepted=True)

    async def _read_link(self, requests: AsyncIterator[bytes], stream: _Stream) -> None:
        surface = f"link:{stream.id}"
        async for raw in requests:
            frame = parse(pot_pb2.Frame, raw)
            self._vouch(stream, frame)
            if not self._offer(surface, frame):
                self.node.count_drop("inbox full")

    def _vouch(self, stream: _Stream, frame: pot_pb2.Frame) -> None:
        """Mark ``stream`` active if it carries a committee member's words.

        Without TLS anyone can open a link and keep it busy with junk: only a
        message signed by another validator keeps a stream from counting as
        idle (checked at most once a second per stream; with TLS the
        certificate already says who is there).
        """
        now = time.monotonic()
        if stream.identity is not None:
            stream.last_seen, stream.vouched = now, True
        elif now - stream.checked >= VOUCH_EVERY_S and frame.data:
            stream.checked = now
            if self._from_a_peer(frame.data):
                stream.last_seen, stream.vouched = now, True
                self._bound_proven()

    def _bound_proven(self) -> None:
        """Replayed signed messages could prove strangers' streams: bound them."""
        proven = [s for s in self._links if s.identity is None and self._proven(s)]
        excess = len(proven) - self._proven_slots
        if excess > 0:
            for stream in sorted(proven, key=lambda s: s.last_seen)[:excess]:
                self._evict(stream)

    def _from_a_peer(self, data: bytes) -> bool:
        try:
            message = decode_message(data)
        except MessageError:
            return False
        sender = getattr(message, "sender", None)
        config = self.node.config
        if not isinstance(sender, int) or not 0 <= sender < config.n:
            return False
        return sender != self.node.id and message.verify(config.replicas[sender])

    def _admit_link(self, stream: _Stream) -> None:
        """Make room for ``stream`` among the Link streams.

        With TLS a validator identity has two slots (a reconnecting peer's new
        stream closes its dead one). Without TLS nobody is known until a stream
        carries a signed message: unproven streams share ``max-peer-streams``
        slots and a newcomer closes the oldest of them, so a stranger churning
        streams only ever displaces his own; proven ones (recently vouched for
        by a validator's signature) have slots of their own and are never
        displaced by newcomers.
        """
        if stream.identity is not None:  # mTLS: only committee members get here
            same = [s for s in self._links if s.identity == stream.identity]
            if len(same) >= PEER_STREAMS_PER_IDENTITY:
                self._evict(same[0])  # the peer reconnected: its old stream is dead
        else:
            unproven = [s for s in self._links if not self._proven(s)]
            if len(unproven) >= self.limits.max_peer_streams:
                self._evict(min(unproven, key=lambda s: s.opened))
        self._links.append(stream)

    @property
    def _proven_slots(self) -> int:
        return PEER_STREAMS_PER_IDENTITY * self.node.config.n

    def _proven(self, stream: _Stream) -> bool:
        """Whether a validator's signature vouched for the stream lately."""
        recent = time.monotonic() - stream.last_seen < self.limits.idle_stream_s
        return stream.vouched and recent

    def _evict(self, stream: _Stream) -> None:
        stream.close()
        if stream in self._links:
            self._links.remove(stream)

    async def _replies(
        self, raw: bytes, context: Context
    ) -> AsyncIterator[pot_pb2.Frame]:
        client = parse(pot_pb2.Subscribe, raw).client
        if client not in self.node.config.clients:
            await self._refuse(
                context,
                grpc.StatusCode.NOT_FOUND,
                "replies",
                f"unknown client {shown(client)}",
            )
        identity = caller_identity(context)
        if identity is not None and identity != client:
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "replies",
                f"for {shown(client)} asked with the certificate of {shown(identity)}",
            )
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(1000)
        stream = _Stream(next(self._ids), identity, None, queue=queue)
        streams = self._subscribers.setdefault(client, [])
        if len(streams) >= self.limits.max_reply_streams:
            streams.pop(0).close()  # newest wins: a restarted coordinator gets in
        streams.append(stream)
        try:
            while True:
                data = await queue.get()
                if data is None:
                    return
                yield pot_pb2.Frame(data=data)
        finally:
            if stream in streams:
                streams.remove(stream)

    async def _health(self, raw: bytes, context: Context) -> pot_pb2.HealthReply:
        parse(pot_pb2.HealthRequest, raw)
        return self.node.health()

    # --------------------------------------------------------------- payloads
    async def _put_payload(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> pot_pb2.Ack:
        service = await self._service(context)
        chunks = aiter(requests)
        first = await self._next_chunk(chunks, context)
        if first is None:
            return pot_pb2.Ack(accepted=False, reason="empty upload")
        problem = self._upload_problem(service, first, context)
        if problem is not None:
            return pot_pb2.Ack(accepted=False, reason=problem)
        if first.digest in service.payloads:
            return pot_pb2.Ack(accepted=True)  # already held
        # Only signed uploads count against the limit: strangers cannot hold
        # the slots of the committee's coordinators.
        async with self._slot("uploads", self.limits.max_uploads, context):
            return await self._store(service, first, chunks, context)

    async def _store(
        self,
        service: Chains,
        first: pot_pb2.Chunk,
        chunks: AsyncIterator[bytes],
        context: Context,
    ) -> pot_pb2.Ack:
        retention = service.retention
        if retention is not None:
            problem = retention.reserve(first.client, first.digest, first.size)
            if problem is not None:
                self.noise.event("refused an upload", problem)
                return pot_pb2.Ack(accepted=False, reason=problem)
        writer = service.payloads.writer(first.digest, first.size)
        stored = False
        try:
            chunk: pot_pb2.Chunk | None = first
            while chunk is not None:
                if chunk.data:
                    await asyncio.to_thread(writer.write, chunk.data)
                chunk = await self._next_chunk(chunks, context)
            await asyncio.to_thread(writer.commit)
            stored = True
            return pot_pb2.Ack(accepted=True)
        except PayloadError as exc:
            return pot_pb2.Ack(accepted=False, reason=str(exc))
        finally:
            writer.abort()
            if retention is not None:
                retention.settle(first.client, first.digest, first.size, stored)

    @contextlib.asynccontextmanager
    async def _slot(
        self, kind: str, limit: int, context: Context
    ) -> AsyncIterator[None]:
        """One of ``limit`` slots for a kind of call, or RESOURCE_EXHAUSTED."""
        busy = self.busy.get(kind, 0)
        if busy >= limit:
            await self._refuse(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED, kind, f"{busy} in progress"
            )
        self.busy[kind] = busy + 1
        try:
            yield
        finally:
            self.busy[kind] -= 1

    async def _next_chunk(
        self, chunks: AsyncIterator[bytes], context: Context
    ) -> pot_pb2.Chunk | None:
        """The next chunk of an upload; None at its end; abort if it stalls."""
        try:
            raw = await asyncio.wait_for(anext(chunks), self.limits.idle_stream_s)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            await self._refuse(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "uploads",
                f"no chunk for {self.limits.idle_stream_s} s",
            )
        return parse(pot_pb2.Chunk, raw)

    def _upload_problem(
        self, service: Chains, chunk: pot_pb2.Chunk, context: Context
    ) -> str | None:
        problem = upload_problem(
            chunk, self.node.config, self.limits, caller_identity(context)
        )
        if problem is None:
            chain = service.chains.get(chunk.run)
            height = None if chain is None else chain.state.height
            problem = past_round_problem(chunk, height)
        if problem is not None:
            self.noise.event("refused an upload", problem)
        return problem

    async def _get_payload(self, raw: bytes, context: Context) -> None:
        service = await self._service(context)
        digest = parse(pot_pb2.PayloadRequest, raw).digest
        if len(digest) != 32:
            raise ValueError("a payload digest is 32 bytes")
        async with self._slot("downloads", self.limits.max_downloads, context):
            await self._send_payload(service, digest, context)

    async def _send_payload(
        self, service: Chains, digest: bytes, context: Context
    ) -> None:
        path = service.payloads.path(digest)
        try:
            file = open(path, "rb") if path is not None else None  # noqa: SIM115
        except FileNotFoundError:  # collected meanwhile
            file = None
        if file is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such payload")
        assert file is not None
        with file:
            first = True
            while True:
                data = await asyncio.to_thread(file.read, CHUNK_BYTES)
                if not data and not first:
                    return
                chunk = pot_pb2.Chunk(digest=digest if first else b"", data=data)
                await self._write(context, chunk, "downloads")
                first = False
                if not data:
                    return

    async def _write(self, context: Context, message: ProtoMessage, kind: str) -> None:
        """Send one message of a stream; a reader that stalls loses its slot."""
        try:
            await asyncio.wait_for(context.write(message), self.limits.idle_stream_s)
        except TimeoutError:
            await self._refuse(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                kind,
                f"reader stalled for {self.limits.idle_stream_s} s",
            )

    async def _holds(self, raw: bytes, context: Context) -> pot_pb2.HoldsReply:
        service = await self._service(context)
        digests = list(parse(pot_pb2.HoldsRequest, raw).digests)
        if len(digests) > MAX_HELD_DIGESTS:
            raise ValueError(f"more than {MAX_HELD_DIGESTS} digests")
        if any(len(d) != 32 for d in digests):
            raise ValueError("a payload digest is 32 bytes")
        async with self._slot("receipts", MAX_DISK_CALLS, context):
            missing = await asyncio.to_thread(
                lambda: [d for d in digests if d not in service.payloads]
            )
        if missing:
            return pot_pb2.HoldsReply(missing=missing)
        if service.retention is not None:
            service.retention.promised(digests)
        return pot_pb2.HoldsReply(receipt=sign_receipt(self.node.key, digests))

    async def _score(self, raw: bytes, context: Context) -> pot_pb2.ScoreReply:
        service = await self._service(context)
        request = parse(pot_pb2.ScoreRequest, raw)
        identity = caller_identity(context)
        if identity is not None and identity.startswith("validator-"):
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "score",
                "only coordinators ask for scores",
            )
        if self._scoring is not None and not self._scoring.done():
            await self._refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "scoring",
                "a batch is being scored",
            )
        loop = asyncio.get_running_loop()
        self._scoring = loop.run_in_executor(
            self._score_pool, service.score, request.run, request.batch
        )
        try:
            batch, scores = await asyncio.shield(self._scoring)
        except ScoringPending as exc:
            return pot_pb2.ScoreReply(pending=str(exc))
        except ScoringRefused as exc:
            await self._refuse(
                context, grpc.StatusCode.FAILED_PRECONDITION, "score", str(exc)
            )
            raise  # not reached: the refusal aborts the call
        vector = ScoreVector.signed(
            self.node.key,
            self.node.id,
            run=batch.run,
            round_=batch.round,
            digest=batch.scores_digest(),
            scores=scores,
        )
        return pot_pb2.ScoreReply(vector=encode(vector.to_value()))

    # ----------------------------------------------------------------- ledger
    async def _get_block(self, raw: bytes, context: Context) -> pot_pb2.BlockReply:
        service = await self._service(context)
        request = parse(pot_pb2.BlockRequest, raw)
        if request.height > MAX_INDEX and request.height != LATEST:
            raise ValueError(
                f"height {request.height} out of range (at most 2**63 - 1, or "
                "2**64 - 1 for the latest block)"
            )
        directory = Path(service.directory) / f"run-{request.run}"
        # A model can be as big as a message: its reads share the download slots.
        kind, limit = ("downloads", self.limits.max_downloads)
        if not request.with_model:
            kind, limit = ("block reads", MAX_DISK_CALLS)
        chain = service.chains.get(request.run)

        def read_and_vote() -> tuple[BlockCopy | None, bytes]:
            found = read_block(directory, request.height, request.with_model)
            if found is None or chain is None:  # no chain loaded: no vote of its kind
                return found, b""
            kind = chain.state.params.certifiers.kind
            return found, sign_block(self.node.key, found.height, found.hash, kind)

        async with self._slot(kind, limit, context):
            found, vote = await asyncio.to_thread(read_and_vote)
        if found is None:
            return pot_pb2.BlockReply()
        return pot_pb2.BlockReply(
            body=found.body,
            vote=vote,
            certificate=found.certificate or b"",
            model=found.model,
        )

    async def _sign_seals(self, raw: bytes, context: Context) -> pot_pb2.SealReply:
        """Commit-reveal: sign the seals this validator closed for a round.

        Closing is a PBFT request; this signs only what it ordered, so whoever
        asks learns nothing and can change nothing (one signature per call).
        """
        service = await self._service(context)
        value = decode(parse(pot_pb2.Frame, raw).data)  # DecodeError: ValueError
        if not isinstance(value, dict) or set(value) != {"run", "round"}:
            raise ValueError("expected {run, round}")
        run, round_ = value["run"], value["round"]
        if not (type(run) is int and type(round_) is int and 0 <= round_ <= MAX_INDEX):
            raise ValueError("run and round must be integers in range")

        def closed_for() -> SealSet | str:  # on the replica's thread: its ledger
            chain = service.chains.get(run)
            if chain is None:
                return f"no chain for run {run}"
            closed = chain.closed_for(round_)
            return f"no seals closed for round {round_}" if closed is None else closed

        try:
            # Its own slots: a flood of these cannot crowd out Certify's calls.
            async with self._slot("seal signatures", MAX_SEAL_CALLS, context):
                closed = await asyncio.wait_for(
                    asyncio.wrap_future(self.node.call_future(closed_for)),
                    CALL_TIMEOUT_S,
                )
        except TimeoutError:
            return pot_pb2.SealReply(reason="validator busy")
        if isinstance(closed, str):
            return pot_pb2.SealReply(reason=closed)
        return pot_pb2.SealReply(signature=sign_seal_set(self.node.key, closed))

    async def _certify(self, raw: bytes, context: Context) -> pot_pb2.Ack:
        service = await self._service(context)
        data = parse(pot_pb2.Frame, raw).data
        try:
            value = decode(data)
            if not isinstance(value, dict) or set(value) != {"certificate", "run"}:
                raise ValueError("expected {certificate, run}")
            run = value["run"]
            if not isinstance(run, int) or isinstance(run, bool) or run < 0:
                raise ValueError("run must be a non-negative integer")
            certificate = Certificate.from_value(value["certificate"])
            chain = service.chains.get(run)
            if chain is None:
                return pot_pb2.Ack(accepted=False, reason=f"no chain for run {run}")
            certifiers = chain.state.params.certifiers
            async with self._slot("calls", MAX_CALLS, context):
                await asyncio.to_thread(certificate.verify, certifiers)
        except (DecodeError, ValueError, CertificateError) as exc:
            return pot_pb2.Ack(accepted=False, reason=str(exc))

        def store() -> str:
            # Looked up again: a state transfer may have replaced the chain since.
            current = service.chains.get(run)
            if current is None:
                return f"no chain for run {run}"
            return current.offer_certificate(certificate)

        try:
            async with self._slot("calls", MAX_CALLS, context):
                reason = await asyncio.wait_for(
                    asyncio.wrap_future(self.node.call_future(store)), CALL_TIMEOUT_S
                )
        except TimeoutError:
            return pot_pb2.Ack(accepted=False, reason="validator busy")
        return pot_pb2.Ack(accepted=not reason, reason=reason)
