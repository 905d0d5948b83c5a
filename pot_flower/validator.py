"""A validator: the PoT round execution as a PBFT application, with its own ledger.

The replica orders batches; this application executes them (every validator checks
every submission itself), appends the block to the validator's ledger and keeps
the chain state that the next round starts from. Results are the same bytes at
every honest validator: ``encode({"height", "block"})`` or ``{"error"}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.ledger import Ledger
from pot_flower.protocol.block import Certificate, CertificateError, sign_block
from pot_flower.protocol.execution import BatchError, ChainState, execute_round
from pot_flower.protocol.model import encode_arrays
from pot_flower.zk.signatures import SigningKey


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

    """

    def __init__(
        self,
        state: ChainState,
        payloads: Mapping[bytes, bytes],
        ledger: Ledger | None = None,
    ) -> None:
        self.state = state
        self.payloads = payloads
        self.ledger = ledger
        self.last_body: bytes | None = None

    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        try:
            outcome = execute_round(self.state, operation, self.payloads)
        except BatchError as exc:
            return encode({"error": str(exc)})
        if self.ledger is not None:
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
        return encode({"block": outcome.hash, "height": outcome.state.height})

    def snapshot(self) -> bytes:
        return self.state.to_bytes()

    def restore(self, snapshot: bytes) -> None:
        self.state = ChainState.from_bytes(snapshot)


class Validator:
    """A validator's identity, application and ledger, as drivers handle them."""

    def __init__(self, index: int, key: SigningKey, app: PoTApplication) -> None:
        self.index = index
        self.key = key
        self.app = app

    def vote(self, height: int, digest: bytes) -> bytes | None:
        """Sign block ``height`` if this validator executed it with that hash."""
        state = self.app.state
        if state.height != height or state.head != digest:
            return None
        return sign_block(self.key, height, digest)

    def accept_certificate(self, certificate: Certificate) -> None:
        """Verify a certificate for one of our blocks and store it in the ledger."""
        params = self.app.state.params
        certificate.verify(params.validators, params.quorum)
        ledger = self.app.ledger
        if ledger is None:
            return
        if ledger.block_hash(certificate.height) != certificate.block:
            raise CertificateError("certifies a block this ledger lacks")
        ledger.certify(certificate.height, certificate.to_bytes())


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
