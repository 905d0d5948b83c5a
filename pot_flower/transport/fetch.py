"""Asking peers for what this validator lacks: payloads and ledger blocks.

One channel per peer, opened on first use and reused; each call has a deadline
and peers are asked in turn (starting with a different one each time), so one
slow or lying peer costs a deadline, never a wrong answer: callers verify every
byte against a digest or a certificate before using it.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping

import grpc

from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.validator.catchup import BlockCopy

FETCH_DEADLINE_S = 5.0


class PeerFetcher:
    """Fetch from the validators at ``addresses`` (see :class:`BlockSource`).

    Parameters
    ----------
    addresses : Mapping[int, str]
        ``host:port`` of every *other* validator.
    channel : Callable[[str], grpc.Channel]
        Opens a channel to an address (with this validator's credentials).
    max_bytes : int
        Largest payload accepted from a peer.

    """

    def __init__(
        self,
        addresses: Mapping[int, str],
        channel: Callable[[str], grpc.Channel],
        max_bytes: int,
    ) -> None:
        self._addresses = dict(addresses)
        self._open = channel
        self._max_bytes = max_bytes
        self._channels: dict[int, grpc.Channel] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def _stubs(self) -> Iterator[pot_pb2_grpc.ValidatorStub]:
        peers = sorted(self._addresses)
        if not peers:
            return
        start = next(self._turn) % len(peers)
        for rid in peers[start:] + peers[:start]:
            with self._lock:
                channel = self._channels.get(rid)
                if channel is None:
                    channel = self._channels[rid] = self._open(self._addresses[rid])
            yield pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]

    def payload(self, digest: bytes) -> bytes | None:
        """The payload named ``digest`` from the first peer that has it intact."""
        for stub in self._stubs():
            try:
                parts: list[bytes] = []
                size = 0
                for chunk in stub.GetPayload(
                    pot_pb2.PayloadRequest(digest=digest), timeout=FETCH_DEADLINE_S
                ):
                    size += len(chunk.data)
                    if size > self._max_bytes:
                        break
                    parts.append(chunk.data)
                else:
                    data = b"".join(parts)
                    if hashlib.sha256(data).digest() == digest:
                        return data
            except grpc.RpcError:
                continue
        return None

    def copies(self, run: int, height: int, *, with_model: bool) -> Iterator[BlockCopy]:
        """Each answering peer's copy of block ``height`` of run ``run``."""
        request = pot_pb2.BlockRequest(run=run, height=height, with_model=with_model)
        for stub in self._stubs():
            try:
                reply = stub.GetBlock(request, timeout=FETCH_DEADLINE_S)
            except grpc.RpcError:
                continue
            if reply.body:
                yield BlockCopy(
                    reply.body, reply.certificate or None, reply.model or None
                )

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
