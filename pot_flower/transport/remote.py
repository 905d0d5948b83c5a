"""A remote committee: the :class:`~pot_flower.committee.Committee` seam over gRPC.

The strategy's coordinator uploads payloads to every validator and collects a quorum
of availability receipts (validators' signatures that they hold them all), has the
committee order and execute the round batch with those receipts (f + 1 matching
results), then collects
validators' votes on the block until a quorum of valid signatures certifies it, and
hands the certificate back to every validator. It returns only what a quorum signed:
the block body must hash to the certified hash and the model to the block's digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from concurrent import futures
from typing import Any

import grpc

from pot_flower import availability
from pot_flower.availability import Receipt, receipt_message
from pot_flower.committee import CertifiedRound, CommitteeError, Ticket
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.protocol.block import (
    BLOCK_DOMAIN,
    Certificate,
    assemble_certificate,
    block_hash,
)
from pot_flower.protocol.envelope import round_nonce
from pot_flower.protocol.execution import Params, RoundBatch, SubmissionRef
from pot_flower.protocol.model import Arrays, decode_arrays, encode_arrays
from pot_flower.service import OpenChain, available_request
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.client import CommitteeClient
from pot_flower.transport.node import CHUNK_BYTES, LATEST, open_channel
from pot_flower.validator import parse_result
from pot_flower.zk.signatures import SigningKey, VerifyKey

UPLOAD_DEADLINE_S = 120.0


class RemoteCommittee:
    """Validators at ``addresses`` (see :class:`~pot_flower.committee.Committee`)."""

    def __init__(
        self,
        config: CommitteeConfig,
        addresses: Mapping[int, str],
        client_id: str,
        client_key: SigningKey,
        *,
        run: int,
        model: Arrays,
        norm_bound_units: int,
        registration: str = "open",
        allowed_miners: tuple[bytes, ...] = (),
        emission: int = 1_000_000,
        validator_fee_ppm: int = 100_000,
        channel_credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 120.0,
        resume: bool = False,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self._client = CommitteeClient(
            config,
            client_id,
            client_key,
            addresses,
            channel_credentials=channel_credentials,
        )
        self._channels = {
            rid: open_channel(a, channel_credentials) for rid, a in addresses.items()
        }
        self._stubs = {
            rid: pot_pb2_grpc.ValidatorStub(ch)  # type: ignore[no-untyped-call]
            for rid, ch in self._channels.items()
        }
        self._pool = futures.ThreadPoolExecutor(max_workers=max(4, len(addresses)))
        self._params = Params(
            run=run,
            validators=tuple(k.raw for k in config.replicas),
            quorum=config.quorum,
            norm_bound_units=norm_bound_units,
            registration=registration,
            allowed_miners=allowed_miners,
            emission=emission,
            validator_fee_ppm=validator_fee_ppm,
        )
        self._height = -1
        self._head = b""
        self._model: Arrays = {}
        self._model_digest = b""
        self._body: dict[str, Decoded] = {}
        if resume:
            self._last = self._resume()
            return
        model_bytes = encode_arrays(model)
        model_digest = hashlib.sha256(model_bytes).digest()
        receipts = self._make_available({model_digest: model_bytes}, [model_digest])
        request = OpenChain(
            run,
            model_digest,
            norm_bound_units,
            registration,
            allowed_miners,
            emission,
            validator_fee_ppm,
        )
        height, digest = self._order(available_request(request.to_bytes(), receipts), 0)
        self._last = self._certify(height, digest)

    @property
    def params(self) -> Params:
        return self._params

    @property
    def last_certificate(self) -> Certificate:
        return self._last

    @property
    def model(self) -> Arrays:
        return self._model

    def ticket(self) -> Ticket:
        run = self._params.run
        nonce = round_nonce(run, self._height + 1, self._head)
        return Ticket(self._height + 1, nonce, self._model_digest, self._head)

    def certify_round(
        self, submissions: list[SubmissionRef], payloads: Mapping[bytes, bytes]
    ) -> CertifiedRound:
        named = [s.payload for s in submissions if s.payload]
        receipts = self._make_available(payloads, named)
        height = self._height + 1
        batch = RoundBatch(self._params.run, height, tuple(submissions), self._last)
        _, digest = self._order(available_request(batch.to_bytes(), receipts), height)
        self._last = self._certify(height, digest)
        return CertifiedRound(height, digest, self._body, self._last, self._model)

    def close(self) -> None:
        self._client.close()
        self._pool.shutdown()
        for channel in self._channels.values():
            channel.close()

    # ------------------------------------------------------------ plumbing
    def _order(self, operation: bytes, height: int) -> tuple[int, bytes]:
        try:
            result = self._client.call(operation, timeout=self.timeout)
            got, digest = parse_result(result)
        except (TimeoutError, ValueError) as exc:
            raise CommitteeError(f"block {height}: {exc}") from exc
        if got != height:
            raise CommitteeError(f"block {height}: the committee executed {got}")
        return got, digest

    def _resume(self) -> Certificate:
        """Certify the highest block of this run that a quorum of validators holds.

        Every certified block was executed by a quorum, so none is lost; rounds go on
        from the next height, so none is duplicated. A block executed but not yet
        certified when the coordinator died gets its certificate now.
        """
        request = pot_pb2.BlockRequest(run=self._params.run, height=LATEST)
        heads: dict[tuple[int, bytes], int] = {}
        for stub in self._stubs.values():
            try:
                reply = stub.GetBlock(request, timeout=self.timeout)
                body = decode(reply.body) if reply.body else None
            except (grpc.RpcError, DecodeError):
                continue
            if isinstance(body, dict) and isinstance(body.get("height"), int):
                key = (int(body["height"]), block_hash(reply.body))  # type: ignore[arg-type]
                heads[key] = heads.get(key, 0) + 1
        # Validators ahead hold the lower blocks too; _certify checks the votes.
        for height, digest in sorted(heads, reverse=True):
            holders = sum(n for (h, _), n in heads.items() if h >= height)
            if holders < self.config.quorum:
                continue
            try:
                return self._certify(height, digest)
            except CommitteeError:
                continue
        raise CommitteeError(f"run {self._params.run}: no block a quorum holds")

    def _upload(self, payloads: Mapping[bytes, bytes]) -> None:
        def put(rid: int) -> None:
            for digest, data in payloads.items():
                chunks = (
                    pot_pb2.Chunk(
                        digest=digest if i == 0 else b"",
                        data=data[i : i + CHUNK_BYTES],
                    )
                    for i in range(0, max(len(data), 1), CHUNK_BYTES)
                )
                self._stubs[rid].PutPayload(chunks, timeout=UPLOAD_DEADLINE_S)

        jobs = [self._pool.submit(put, rid) for rid in self._stubs]
        failures = sum(1 for job in jobs if job.exception() is not None)
        if failures > self.config.f:
            raise CommitteeError(f"{failures} validators did not take the payloads")

    def _ask_all(self, method: str, request: Any) -> Iterator[tuple[int, Any]]:
        """Call ``method`` on every validator at once; yield replies as they come."""
        jobs = {
            self._pool.submit(getattr(stub, method), request, timeout=self.timeout): rid
            for rid, stub in self._stubs.items()
        }
        for job in futures.as_completed(jobs):
            try:
                reply = job.result()
            except grpc.RpcError:
                continue  # a validator down or slow: f of them are tolerated
            yield jobs[job], reply

    def _make_available(
        self, payloads: Mapping[bytes, bytes], named: list[bytes]
    ) -> list[Receipt]:
        """Upload, then gather receipts for ``named`` from a quorum of validators."""
        self._upload({d: payloads[d] for d in set(named) if d in payloads})
        message = receipt_message(named)
        request = pot_pb2.HoldsRequest(digests=sorted(set(named)))
        receipts: list[Receipt] = []
        missing: set[bytes] = set()
        for rid, reply in self._ask_all("Holds", request):
            missing.update(reply.missing)
            key = self.config.replicas[rid]
            if reply.receipt and key.verify(
                availability.DOMAIN, message, reply.receipt
            ):
                receipts.append((rid, reply.receipt))
        if len(receipts) < self.config.quorum:
            raise CommitteeError(
                f"{len(receipts)} validators hold the payloads, quorum is "
                f"{self.config.quorum} ({len(missing)} payloads missing somewhere)"
            )
        return sorted(receipts)

    def _certify(self, height: int, digest: bytes) -> Certificate:
        """Votes from validators until a quorum; the block and model it names."""
        run = self._params.run
        message = encode([height, digest])
        votes: dict[int, bytes] = {}
        body_bytes: bytes | None = None
        model_bytes: bytes | None = None
        request = pot_pb2.BlockRequest(run=run, height=height, with_model=True)
        for rid, reply in self._ask_all("GetBlock", request):
            if block_hash(reply.body) != digest:
                continue  # a validator that has not (or wrongly) executed it
            key = VerifyKey(self.config.replicas[rid].raw)
            if not key.verify(BLOCK_DOMAIN, message, reply.vote):
                continue
            votes[rid] = reply.vote
            body_bytes = reply.body
            if model_bytes is None and reply.model:
                model_bytes = reply.model
        if len(votes) < self.config.quorum or body_bytes is None:
            raise CommitteeError(
                f"block {height}: {len(votes)} valid votes, quorum is "
                f"{self.config.quorum}"
            )
        certificate = assemble_certificate(height, digest, votes, self.config.quorum)
        try:
            body = decode(body_bytes)
        except DecodeError as exc:
            raise CommitteeError(f"block {height}: undecodable body") from exc
        assert isinstance(body, dict)
        if model_bytes is None or hashlib.sha256(model_bytes).digest() != body.get(
            "model"
        ):
            raise CommitteeError(f"block {height}: no validator served its model")
        frame = pot_pb2.Frame(
            data=encode({"certificate": decode(certificate.to_bytes()), "run": run})
        )
        for job in [
            self._pool.submit(s.Certify, frame, timeout=10)
            for s in self._stubs.values()
        ]:
            job.exception()
        self._height = height
        self._head = digest
        self._body = body
        self._model = decode_arrays(model_bytes)
        self._model_digest = hashlib.sha256(model_bytes).digest()
        return certificate
