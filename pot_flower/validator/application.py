"""A validator: the PoT round execution as a PBFT application, with its own ledger.

The replica orders batches; this application executes them (every validator process
checks every submission itself; the embedded committee's replicas, one process,
share one execution), appends the block to the validator's ledger and keeps
the chain state that the next round starts from. Results are the same bytes at
every honest validator: ``encode({"height", "block"})`` or ``{"error"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.patience import Unavailable
from pot_flower.protocol.batch import BatchError
from pot_flower.protocol.certificate import Certificate, CertificateError, sign_block
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import RoundOutcome, execute_round
from pot_flower.protocol.model import encode_arrays
from pot_flower.protocol.sealing import SealSet, sign_seal_set
from pot_flower.validator.catchup import NO_PEERS, BlockSource, catch_up
from pot_flower.validator.ledger import Ledger, LedgerError
from pot_flower.zk.signatures import SigningKey

log = logging.getLogger("pot.validator")
CLOSE_SEALS = "close-seals"
"""The request kind that closes a commit-reveal round's seals."""
_CLOSE_PREFIX = encode({"kind": CLOSE_SEALS})[:-1]  # the dict left open

Executor = Callable[
    [ChainState, bytes, Mapping[bytes, bytes], bytes | None], RoundOutcome
]
"""How a batch is executed: :func:`~pot_flower.protocol.execution.execute_round`'s
signature (state, batch, payloads, noise key)."""


class PoTApplication:
    """The state machine PBFT replicates (see :class:`~consensus.Application`).

    Parameters
    ----------
    state : ChainState
        The chain state after genesis (or after the last block).
    payloads : Mapping[bytes, bytes]
        Where the arrays of submissions are found by digest.
    ledger : Ledger | None
        Where blocks and models are written (None: in memory only).
    blocks : BlockSource | None
        Peers' blocks, for bringing the ledger up to a state adopted by state
        transfer (see :mod:`pot_flower.validator.catchup`); None: no peers to ask.
    stopping : Callable[[], bool] | None
        Whether the validator is shutting down (ends a wait for peers).
    noise_key : bytes | None
        The committee's secret noise key (chains with central DP need it).
    executor : Executor
        Runs the pure round function (default: :func:`execute_round`); the
        embedded committee passes one execution shared by its replicas.

    """

    def __init__(
        self,
        state: ChainState,
        payloads: Mapping[bytes, bytes],
        ledger: Ledger | None = None,
        *,
        blocks: BlockSource | None = None,
        stopping: Callable[[], bool] | None = None,
        patience_s: float = 30.0,
        noise_key: bytes | None = None,
        executor: Executor = execute_round,
    ) -> None:
        self.state = state
        self.executor = executor
        self.noise_key = noise_key
        self.payloads = payloads
        self.ledger = ledger
        self.blocks = blocks
        self.stopping = stopping or (lambda: False)
        self.patience_s = patience_s
        self.last_body: bytes | None = None
        #: A certificate for a block this validator has not executed yet.
        self.early_certificate: Certificate | None = None
        #: Commit-reveal, without a ledger: the seal set closed for the next round.
        self.closed_seals: dict[int, bytes] = {}

    def catch_up(self, state: ChainState) -> int:
        """Bring the ledger up to ``state`` from peers (verified); blocks appended."""
        if self.ledger is None:
            return 0
        if self.blocks is None and self.ledger.head_height() < state.height:
            raise LedgerError(
                f"the ledger stops at {self.ledger.head_height()}, the state is at "
                f"{state.height}, and there are no peers to fetch blocks from"
            )
        head = self.ledger.head_height()
        if head < state.height:
            log.info(
                "run %d: catching up the ledger from peers (blocks %d..%d)",
                state.params.run,
                head + 1,
                state.height,
            )
        appended = catch_up(
            self.ledger,
            state,
            self.blocks or NO_PEERS,
            stopping=self.stopping,
            patience_s=self.patience_s,
        )
        if appended:
            log.info(
                "run %d: ledger caught up to block %d (%d blocks verified and "
                "appended)",
                state.params.run,
                state.height,
                appended,
            )
        return appended

    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        closing = parse_close_seals(operation)
        if isinstance(closing, str):
            return encode({"error": closing})
        if closing is not None:
            return self.close_seals(closing)
        try:
            outcome = self.executor(
                self.state, operation, self.payloads, self.noise_key
            )
        except BatchError as exc:
            return encode({"error": str(exc)})
        if self.ledger is not None:
            # A ledger left behind (killed during a catch-up, or damaged) is brought
            # up to the state before the new block goes on top of it.
            self.catch_up(self.state)
            self.ledger.store_model(
                outcome.state.model_digest, encode_arrays(outcome.state.model)
            )
            stored = self.ledger.block_hash(outcome.state.height)
            if stored is None:
                self.ledger.append(outcome.state.height, outcome.hash, outcome.body)
            elif stored != outcome.hash:  # replay after a restart must agree
                raise RuntimeError(
                    f"block {outcome.state.height} differs from the ledger's"
                )
            if outcome.previous_certificate is not None:
                self.ledger.certify(
                    self.state.height, outcome.previous_certificate.to_bytes()
                )
        self.state = outcome.state
        self.last_body = outcome.body
        self._apply_early_certificate()
        return encode({"block": outcome.hash, "height": outcome.state.height})

    def offer_certificate(self, certificate: Certificate) -> str:
        """Store a verified certificate for one of this chain's blocks.

        One for a block this validator has not executed yet (it is catching up)
        is kept until it has; returns why it cannot be used, or "".
        """
        ledger = self.ledger
        if ledger is None:
            return "this validator keeps no ledger"
        if certificate.height > ledger.head_height():
            early = self.early_certificate
            if early is None or certificate.height > early.height:
                self.early_certificate = certificate
            return ""
        if ledger.block_hash(certificate.height) != certificate.block:
            return "certifies a block this validator does not hold"
        ledger.certify(certificate.height, certificate.to_bytes())
        return ""

    def close_seals(self, seals: SealSet) -> bytes:
        """Execute an ordered close of the next round's seals; the result.

        The first set ordered for a round is closed, durably (the ledger keeps
        it across restarts); a later one gets the first back, so a resumed
        coordinator reveals the seals closed before it stopped. Every honest
        validator executes the same order: the same bytes everywhere.
        """
        state = self.state
        next_round = state.height + 1
        if not state.params.commit_reveal:
            return encode({"error": "this chain has no commit-reveal rounds"})
        if (seals.run, seals.round) != (state.params.run, next_round):
            return encode({"error": f"the next round to seal is {next_round}"})
        closed = self.closed_for(next_round)
        if closed is not None:  # closed before: checked then, returned as it is
            return encode({"closed": closed.to_value()})
        problem = seals.problem()
        if problem is not None:
            return encode({"error": f"seals: {problem}"})
        encoded = encode(seals.to_value())
        if self.ledger is not None:
            first = self.ledger.close_seals(next_round, encoded)
        else:
            for old in [r for r in self.closed_seals if r < next_round]:
                del self.closed_seals[old]
            first = self.closed_seals.setdefault(next_round, encoded)
        return encode({"closed": decode(first)})

    def closed_for(self, round_: int) -> SealSet | None:
        """The seal set this validator closed for ``round_`` (None: none)."""
        data = (
            self.ledger.closed_seals(round_)
            if self.ledger is not None
            else self.closed_seals.get(round_)
        )
        return None if data is None else SealSet.from_value(decode(data))

    def _apply_early_certificate(self) -> None:
        early, ledger = self.early_certificate, self.ledger
        if early is None or ledger is None or early.height > ledger.head_height():
            return
        self.early_certificate = None
        if ledger.block_hash(early.height) == early.block:
            ledger.certify(early.height, early.to_bytes())

    def snapshot(self) -> bytes:
        return self.state.to_bytes()

    def restore(self, snapshot: bytes) -> None:
        """Adopt a certified state; the ledger follows it first (ValueError: retry)."""
        state = ChainState.from_bytes(snapshot)
        try:
            self.catch_up(state)
        except Unavailable as exc:
            raise ValueError(f"ledger catch-up: {exc}") from exc
        self.state = state
        self._apply_early_certificate()


class Signer:
    """One embedded validator: its key, application and ledger; it signs its blocks."""

    def __init__(self, index: int, key: SigningKey, app: PoTApplication) -> None:
        self.index = index
        self.key = key
        self.app = app

    def sign_closed(self, round_: int) -> bytes | None:
        """Sign the seals this validator closed for ``round_`` (None: none)."""
        closed = self.app.closed_for(round_)
        return None if closed is None else sign_seal_set(self.key, closed)

    def vote(self, height: int, digest: bytes) -> bytes | None:
        """Sign block ``height`` if this validator executed it with that hash."""
        state = self.app.state
        if state.height != height or state.head != digest:
            return None
        return sign_block(self.key, height, digest, state.params.certifiers.kind)

    def accept_certificate(self, certificate: Certificate) -> None:
        """Verify a certificate for one of our blocks and store it in the ledger."""
        params = self.app.state.params
        certificate.verify(params.certifiers)
        ledger = self.app.ledger
        if ledger is None:
            return
        if ledger.block_hash(certificate.height) != certificate.block:
            raise CertificateError("certifies a block this ledger lacks")
        ledger.certify(certificate.height, certificate.to_bytes())


def close_seals_request(seals: SealSet) -> bytes:
    """The request that orders closing ``seals`` (one PBFT step)."""
    return encode({"kind": CLOSE_SEALS, "run": seals.run, "seals": seals.to_value()})


def parse_close_seals(operation: bytes) -> SealSet | str | None:
    """The seals a close request orders, why it is malformed, or None (not one).

    Round batches are the hot path: they are told apart by the canonical
    encoding's first bytes (``kind`` sorts first), not decoded twice.
    """
    if not operation.startswith(_CLOSE_PREFIX):
        return None
    try:
        value = decode(operation)
    except DecodeError:
        return None
    if not isinstance(value, dict) or value.get("kind") != CLOSE_SEALS:
        return None
    try:
        if set(value) != {"kind", "run", "seals"}:
            raise ValueError("a close request is {kind, run, seals}")
        return SealSet.from_value(value["seals"])
    except ValueError as exc:
        return f"malformed close request: {exc}"


def parse_closed(result: bytes) -> SealSet:
    """The closed set from a close request's result; ValueError for errors."""
    try:
        value = decode(result)
    except DecodeError as exc:
        raise ValueError(f"undecodable result: {exc}") from exc
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        raise ValueError(str(value["error"]))
    if not isinstance(value, dict) or set(value) != {"closed"}:
        raise ValueError("malformed result")
    return SealSet.from_value(value["closed"])


def parse_result(result: bytes) -> tuple[int, bytes]:
    """``(height, block hash)`` from an execution result; ValueError for errors."""
    try:
        value = decode(result)
    except DecodeError as exc:
        raise ValueError(f"undecodable result: {exc}") from exc
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        raise ValueError(str(value["error"]))
    if not (
        isinstance(value, dict)
        and isinstance(value.get("height"), int)
        and isinstance(value.get("block"), bytes)
    ):
        raise ValueError("malformed result")
    return value["height"], value["block"]  # type: ignore[return-value]
