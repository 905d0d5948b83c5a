"""What a validator daemon executes: every PoT chain it serves, one per Flower run.

Two operations reach it through PBFT: ``open-chain`` (genesis of a run's chain from
an initial model and parameters; the committee's keys come from the validator's own
configuration) and ``round`` (a round batch for an open chain, see
:mod:`pot_flower.protocol.execution`). Payloads arrive out of band, named by digest;
a validator missing one asks its peers before executing (``fetch``), so all honest
validators execute the same bytes or, if nobody has them, the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.ledger import Ledger
from pot_flower.payloads import PayloadStore
from pot_flower.protocol.execution import (
    ChainState,
    Params,
    RoundBatch,
    genesis,
)
from pot_flower.protocol.model import ModelFormatError, decode_arrays, encode_arrays
from pot_flower.validator import PoTApplication

Fetch = Callable[[bytes], bytes | None]


@dataclass(frozen=True)
class OpenChain:
    """The request that opens run ``run``'s chain on ``model`` (a payload digest)."""

    run: int
    model: bytes
    norm_bound_units: int
    registration: str = "open"
    allowed_miners: tuple[bytes, ...] = ()
    emission: int = 1_000_000
    validator_fee_ppm: int = 100_000

    def to_bytes(self) -> bytes:
        return encode(
            {
                "allowed-miners": list(self.allowed_miners),
                "emission": self.emission,
                "kind": "open-chain",
                "model": self.model,
                "norm-bound-units": self.norm_bound_units,
                "registration": self.registration,
                "run": self.run,
                "validator-fee-ppm": self.validator_fee_ppm,
            }
        )

    @classmethod
    def from_value(cls, value: dict[str, Decoded]) -> OpenChain:
        miners = value.get("allowed-miners")
        fields = (value.get("run"), value.get("model"), value.get("norm-bound-units"))
        if not (
            isinstance(fields[0], int)
            and isinstance(fields[1], bytes)
            and isinstance(fields[2], int)
            and isinstance(value.get("registration"), str)
            and isinstance(value.get("emission"), int)
            and isinstance(value.get("validator-fee-ppm"), int)
            and isinstance(miners, list)
            and all(isinstance(m, bytes) for m in miners)
        ):
            raise ValueError("malformed open-chain request")
        return cls(
            fields[0],
            fields[1],
            fields[2],
            str(value["registration"]),
            tuple(m for m in miners if isinstance(m, bytes)),
            int(value["emission"]),  # type: ignore[arg-type]
            int(value["validator-fee-ppm"]),  # type: ignore[arg-type]
        )


def _error(reason: str) -> bytes:
    return encode({"error": reason})


class ValidatorService:
    """The replicated application of a validator daemon (many chains).

    Parameters
    ----------
    directory : Path
        ``directory/run-<id>/`` holds each chain's ledger.
    validators : tuple[bytes, ...]
        The committee's public keys (from the committee file), by index.
    quorum : int
        Signatures a certificate needs.
    payloads : PayloadStore
        This validator's payload store.
    fetch : Callable[[bytes], bytes | None] | None
        Asks peers for a payload this validator lacks.

    """

    def __init__(
        self,
        directory: Path,
        validators: tuple[bytes, ...],
        quorum: int,
        payloads: PayloadStore,
        fetch: Fetch | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.validators = validators
        self.quorum = quorum
        self.payloads = payloads
        self.fetch = fetch
        self.chains: dict[int, PoTApplication] = {}

    # ------------------------------------------------------------ payloads
    def _available(self, digests: list[bytes]) -> Mapping[bytes, bytes]:
        for digest in digests:
            if digest not in self.payloads and self.fetch is not None:
                data = self.fetch(digest)
                if data is not None:
                    self.payloads.put(data)
        return self.payloads

    # ----------------------------------------------------------- execution
    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        try:
            value = decode(operation)
        except DecodeError as exc:
            return _error(f"undecodable request: {exc}")
        if not isinstance(value, dict):
            return _error("request must be a dictionary")
        kind = value.get("kind")
        if kind == "ping":  # a probe through consensus: ordered, executed, echoed
            return encode({"ping": value.get("digest", b"")})
        if kind == "open-chain":
            return self._open(value)
        if kind == "round":
            run = value.get("run")
            chain = self.chains.get(run) if isinstance(run, int) else None
            if chain is None:
                return _error(f"no chain for run {run!r}")
            try:
                batch = RoundBatch.from_bytes(operation)
            except ValueError as exc:
                return _error(f"malformed batch: {exc}")
            self._available([s.payload for s in batch.submissions if s.payload])
            return chain.execute(client, timestamp, operation, seq)
        return _error(f"unknown request kind {kind!r}")

    def _open(self, value: dict[str, Decoded]) -> bytes:
        try:
            request = OpenChain.from_value(value)
            params = Params(
                run=request.run,
                validators=self.validators,
                quorum=self.quorum,
                norm_bound_units=request.norm_bound_units,
                registration=request.registration,
                allowed_miners=request.allowed_miners,
                emission=request.emission,
                validator_fee_ppm=request.validator_fee_ppm,
            )
        except ValueError as exc:
            return _error(str(exc))
        model_bytes = self._available([request.model]).get(request.model)
        if model_bytes is None:
            return _error("initial model payload unavailable")
        try:
            model = decode_arrays(model_bytes)
        except ModelFormatError as exc:
            return _error(f"initial model: {exc}")
        body, state = genesis(params, {k: v.copy() for k, v in model.items()})
        existing = self.chains.get(request.run)
        if existing is not None:
            return _error(f"run {request.run} already has a chain")
        ledger = Ledger(self.directory / f"run-{request.run}")
        if ledger.head_height() < 0:
            ledger.store_model(state.model_digest, encode_arrays(state.model))
            ledger.append(0, state.head, body)
        elif ledger.block_hash(0) != state.head:
            return _error(f"run {request.run}: the ledger holds another chain")
        self.chains[request.run] = PoTApplication(state, self.payloads, ledger)
        return encode({"block": state.head, "height": 0})

    # --------------------------------------------------------------- state
    def snapshot(self) -> bytes:
        return encode(
            {str(run): app.snapshot() for run, app in sorted(self.chains.items())}
        )

    def restore(self, snapshot: bytes) -> None:
        value = decode(snapshot)
        if not isinstance(value, dict):
            raise ValueError("bad service snapshot")
        chains: dict[int, PoTApplication] = {}
        for run_text, state_bytes in value.items():
            if not isinstance(state_bytes, bytes):
                raise ValueError("bad chain snapshot")
            run = int(run_text)
            state = ChainState.from_bytes(state_bytes)
            old = self.chains.get(run)
            ledger = old.ledger if old else Ledger(self.directory / f"run-{run}")
            chains[run] = PoTApplication(state, self.payloads, ledger)
        self.chains = chains
