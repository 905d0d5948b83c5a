"""The coordinator's side: submit requests to a remote committee over gRPC.

Drives the PBFT client state machine (one outstanding request; f + 1 matching signed
replies decide) over real channels: a request goes to the primary with ``Submit``
(to every validator if that call fails, and on retransmission), replies arrive on
one ``Replies`` stream per validator, retransmission follows the client's timer
with back-off. Streams reconnect on their own.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping

import grpc

from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.effects import (
    Broadcast,
    CancelTimer,
    Completed,
    Effect,
    Rejected,
    Send,
    SetTimer,
)
from pot_flower.consensus.requester import RETRANSMIT_TIMER, Requester
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.zk.signatures import SigningKey

RECONNECT_S = 0.2
SEND_DEADLINE_S = 2.0
MAX_QUEUED_REPLIES = 10_000


class CommitteeTimeout(TimeoutError):
    """The committee did not answer within the deadline."""


class DuplicateCoordinator(RuntimeError):
    """Another coordinator uses this client id: its newer requests executed."""


class Gateway:
    """A PBFT client talking to validators at ``addresses``."""

    def __init__(
        self,
        config: CommitteeConfig,
        client_id: str,
        key: SigningKey,
        addresses: Mapping[int, str],
        *,
        channel_credentials: grpc.ChannelCredentials | None = None,
        retransmit_ms: int = 500,
    ) -> None:
        # Timestamps must grow across coordinator restarts: microseconds of wall time.
        self._client = Requester(
            client_id,
            key,
            config,
            first_timestamp=time.time_ns() // 1000,
            retransmit_ms=retransmit_ms,
        )
        self.id = client_id
        self._channels = {
            rid: open_channel(addr, channel_credentials)
            for rid, addr in addresses.items()
        }
        self._stubs = {
            rid: pot_pb2_grpc.ValidatorStub(ch)  # type: ignore[no-untyped-call]
            for rid, ch in self._channels.items()
        }
        # Bounded: beyond it replies are dropped, and retransmission recovers.
        self._replies: queue.Queue[bytes] = queue.Queue(MAX_QUEUED_REPLIES)
        self._pending: list[grpc.Future] = []
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        self._streams = [
            threading.Thread(target=self._listen, args=(rid,), daemon=True)
            for rid in self._stubs
        ]
        for thread in self._streams:
            thread.start()
        self._lock = threading.Lock()

    def _listen(self, rid: int) -> None:
        stub = self._stubs[rid]
        while not self._closed.is_set():
            try:
                for frame in stub.Replies(pot_pb2.Subscribe(client=self.id)):
                    with contextlib.suppress(queue.Full):
                        self._replies.put_nowait(frame.data)
            except grpc.RpcError:
                pass
            self._closed.wait(RECONNECT_S)

    def _send_all(self, data: bytes, but: int | None = None) -> None:
        for rid in self._stubs:
            if rid != but:
                self._send(rid, data)

    def _send(self, rid: int, data: bytes) -> grpc.Future:
        # Fire and forget (a validator that is down is what f tolerates), but keep
        # the futures: gRPC cancels a call whose future is garbage-collected.
        future = self._stubs[rid].Submit.future(
            pot_pb2.Frame(data=data), timeout=SEND_DEADLINE_S
        )
        with self._send_lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(future)
        return future

    def _send_to_primary(self, rid: int, data: bytes) -> None:
        def failed_over(future: grpc.Future) -> None:
            # A primary that is down: do not wait for the retransmission timer.
            if self._closed.is_set() or future.cancelled():
                return
            if future.exception() is not None:
                self._send_all(data, but=rid)

        self._send(rid, data).add_done_callback(failed_over)

    def call(self, operation: bytes, timeout: float = 30.0) -> bytes:
        """Have the committee execute ``operation``; its result (f + 1 agree)."""
        with self._lock:
            while not self._replies.empty():  # stale replies of earlier calls
                self._replies.get_nowait()
            deadline = time.monotonic() + timeout
            timer: float | None = None
            effects: list[Effect] = self._client.submit(operation)
            while True:
                for effect in effects:
                    if isinstance(effect, Send):
                        self._send_to_primary(effect.to, effect.message.to_bytes())
                    elif isinstance(effect, Broadcast):
                        self._send_all(effect.message.to_bytes())
                    elif isinstance(effect, SetTimer):
                        timer = time.monotonic() + effect.delay_ms / 1000
                    elif isinstance(effect, CancelTimer):
                        timer = None
                    elif isinstance(effect, Completed):
                        return effect.result
                    elif isinstance(effect, Rejected):
                        raise DuplicateCoordinator(
                            f"client id {self.id!r} is used by another coordinator:"
                            f" the committee executed its request {effect.newer},"
                            f" newer than ours ({effect.timestamp}); give each"
                            " coordinator its own id and key in the committee file"
                        )
                now = time.monotonic()
                if now >= deadline:
                    self._client.abandon()
                    raise CommitteeTimeout(f"no f + 1 matching replies in {timeout} s")
                wait = deadline - now if timer is None else min(timer, deadline) - now
                try:
                    data = self._replies.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    effects = (
                        self._client.on_timer(RETRANSMIT_TIMER)
                        if timer is not None and time.monotonic() >= timer
                        else []
                    )
                    continue
                effects = self._client.receive(data)

    def health(self, rid: int, timeout: float = 2.0) -> pot_pb2.HealthReply:
        """One validator's health report."""
        reply: pot_pb2.HealthReply = self._stubs[rid].Health(
            pot_pb2.HealthRequest(), timeout=timeout
        )
        return reply

    def close(self) -> None:
        self._closed.set()
        for channel in self._channels.values():
            channel.close()
