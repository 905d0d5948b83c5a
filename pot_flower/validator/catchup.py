"""Bring a validator's ledger up to the chain state it adopted.

A validator that lagged behind a stable checkpoint adopts the checkpoint's state by
state transfer: the chain state (height, head hash, global model) is certified by a
quorum's checkpoint signatures, but the blocks, certificates and models between its
own ledger head and that state are not in it. They are fetched from peers and
trusted only once verified: from the adopted head down, each block must hash to
what the block above names as its ``previous`` (the head to the certified
``state.head``), and the lowest must extend the local ledger; each model must hash
to its block's digest; a certificate is kept only if it verifies under the chain's
committee. Blocks are appended bottom-up, so a validator killed half-way holds a
verified prefix and resumes from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pot_flower.patience import Interrupted, wait_for
from pot_flower.protocol.block import BlockFormatError, parse_block
from pot_flower.protocol.certificate import (
    GENESIS_PREVIOUS,
    Certificate,
    CertificateError,
    block_hash,
)
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.model import encode_arrays
from pot_flower.protocol.params import Params
from pot_flower.validator.ledger import Ledger, LedgerError

T = TypeVar("T")


@dataclass(frozen=True)
class BlockCopy:
    """One peer's copy of a block (nothing verified yet)."""

    body: bytes
    certificate: bytes | None = None
    model: bytes | None = None


class BlockSource(Protocol):
    """Where copies of a chain's blocks come from (the validator's peers)."""

    def copies(self, run: int, height: int, *, with_model: bool) -> Iterator[BlockCopy]:
        """Each reachable peer's copy of block ``height`` of run ``run``, lazily."""
        ...


class _NoPeers:
    def copies(self, run: int, height: int, *, with_model: bool) -> Iterator[BlockCopy]:
        return iter(())


#: A source without peers (a ledger that is not behind needs none).
NO_PEERS: BlockSource = _NoPeers()


def _links(body: bytes) -> tuple[bytes, bytes] | None:
    """``(previous, model)`` digests named by a block body, or None."""
    try:
        block = parse_block(body)
    except BlockFormatError:
        return None
    return block.previous, block.model


def _certificate(copy: BlockCopy, height: int, params: Params) -> bytes | None:
    """The copy's certificate if it certifies this block under ``params``."""
    if not copy.certificate:
        return None
    try:
        cert = Certificate.from_bytes(copy.certificate)
        if cert.height != height or cert.block != block_hash(copy.body):
            return None
        cert.verify(params.certifiers)
    except CertificateError:
        return None
    return copy.certificate


@dataclass(frozen=True)
class _Verified:
    height: int
    body: bytes
    model: bytes
    certificate: bytes | None


def catch_up(
    ledger: Ledger,
    state: ChainState,
    source: BlockSource,
    *,
    stopping: Callable[[], bool] = lambda: False,
    patience_s: float = 30.0,
) -> int:
    """Append the blocks from ``ledger``'s head up to ``state``; return how many.

    Raises :class:`~pot_flower.validator.ledger.LedgerError` if the ledger holds another
    chain than the state extends, :class:`~pot_flower.patience.Unavailable` if
    peers did not serve a verifiable copy in time and
    :class:`~pot_flower.patience.Interrupted` when told to stop.
    """
    head = ledger.head_height()
    if head >= state.height:
        if ledger.block_hash(state.height) != state.head:
            raise LedgerError(
                f"run {state.params.run}: the ledger holds another block "
                f"{state.height} than the adopted state"
            )
        return 0
    run = state.params.run
    wait = _Waiter(source, run, stopping, patience_s)
    blocks: list[_Verified] = []
    expected = state.head
    for height in range(state.height, head, -1):  # top-down: each proves the next
        copy, certificate = wait.block(height, expected, state.params)
        links = _links(copy.body)
        assert links is not None  # checked when fetched
        blocks.append(_Verified(height, copy.body, links[1], certificate))
        expected = links[0]
    below = ledger.block_hash(head) if head >= 0 else GENESIS_PREVIOUS
    if expected != below:
        raise LedgerError(
            f"run {run}: the adopted state does not extend this ledger's block {head}"
        )
    appended = 0
    for block in reversed(blocks):  # bottom-up: a prefix is always verified
        if not ledger.has_model(block.model):
            if block.height == state.height:
                model = encode_arrays(state.model)
            else:
                model = wait.model(block.height, block.model)
            ledger.store_model(block.model, model)
        ledger.append(block.height, block_hash(block.body), block.body)
        if block.certificate is not None:
            ledger.certify(block.height, block.certificate)
        appended += 1
        if stopping():
            raise Interrupted("stopping while catching up the ledger")
    fill_certificates(ledger, state, source)
    return appended


def fill_certificates(ledger: Ledger, state: ChainState, source: BlockSource) -> int:
    """Certificates for uncertified blocks below ``state``'s head, from peers.

    Every block below the head is certified (the head's batch carried its
    predecessor's certificate), so honest peers hold them; one pass, best effort:
    a certificate missing everywhere is not a reason to stay behind.
    """
    filled = 0
    for height in ledger.uncertified():
        if height >= state.height:
            break
        digest = ledger.block_hash(height)
        for copy in source.copies(state.params.run, height, with_model=False):
            if block_hash(copy.body) != digest:
                continue
            certificate = _certificate(copy, height, state.params)
            if certificate is not None:
                ledger.certify(height, certificate)
                filled += 1
                break
    return filled


@dataclass(frozen=True)
class _Waiter:
    """Fetches verified copies from ``source``, patiently."""

    source: BlockSource
    run: int
    stopping: Callable[[], bool]
    patience_s: float

    def block(
        self, height: int, digest: bytes, params: Params
    ) -> tuple[BlockCopy, bytes | None]:
        """A copy of block ``height`` hashing to ``digest``, certified if any is."""

        def attempt() -> tuple[BlockCopy, bytes | None] | None:
            uncertified = None
            for copy in self.source.copies(self.run, height, with_model=False):
                if block_hash(copy.body) != digest or _links(copy.body) is None:
                    continue
                certificate = _certificate(copy, height, params)
                if certificate is not None:
                    return copy, certificate
                uncertified = uncertified or copy
            return None if uncertified is None else (uncertified, None)

        return self._wait(attempt, f"block {height} of run {self.run}")

    def model(self, height: int, digest: bytes) -> bytes:
        """The model of block ``height``, hashing to ``digest``."""

        def attempt() -> bytes | None:
            for copy in self.source.copies(self.run, height, with_model=True):
                model = copy.model
                if model is not None and hashlib.sha256(model).digest() == digest:
                    return model
            return None

        return self._wait(attempt, f"model of block {height} of run {self.run}")

    def _wait(self, attempt: Callable[[], T | None], what: str) -> T:
        return wait_for(
            attempt, what=what, stopping=self.stopping, patience_s=self.patience_s
        )
