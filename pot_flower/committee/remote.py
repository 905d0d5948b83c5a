"""A remote committee: the :class:`~pot_flower.committee.base.Committee` seam over gRPC.

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
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import replace
from typing import Any, TypeVar

import grpc

from pot_flower.committee.base import (
    CertifiedHead,
    CertifiedRound,
    CommitteeError,
)
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.quorum import weak_quorum
from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.protocol.batch import RoundBatch, SubmissionRef
from pot_flower.protocol.block import (
    BlockFormatError,
    GenesisBlock,
    RoundBlock,
    parse_block,
)
from pot_flower.protocol.certificate import (
    BlsKey,
    Certificate,
    CertificateError,
    block_hash,
)
from pot_flower.protocol.commitments import CommitmentKind
from pot_flower.protocol.model import Arrays, decode_arrays, encode_arrays
from pot_flower.protocol.params import Params
from pot_flower.protocol.privacy.accountant import spent
from pot_flower.protocol.privacy.config import PrivacyConfig
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.scores import ScoreVector
from pot_flower.protocol.sealing import SEAL_SET_DOMAIN, ClosedSeals, Seal, SealSet
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.transport.gateway import Gateway
from pot_flower.transport.server import CHUNK_BYTES
from pot_flower.transport.uploads import first_chunk
from pot_flower.validator import availability
from pot_flower.validator.application import (
    close_seals_request,
    parse_closed,
    parse_result,
)
from pot_flower.validator.availability import Receipt, receipt_message
from pot_flower.validator.chains import OpenChain, available_request
from pot_flower.validator.reads import LATEST
from pot_flower.zk.signatures import SigningKey, VerifyKey

T = TypeVar("T")
UPLOAD_DEADLINE_S = 120.0
STRAGGLER_GRACE_S = 0.25
"""Longest wait, after a quorum voted, for the other validators' votes."""


def _score_vector(data: bytes) -> ScoreVector | None:
    try:
        return ScoreVector.from_value(decode(data))
    except (DecodeError, ValueError):
        return None


def _poll(
    ask: Callable[[], T | None], done: threading.Event, deadline: float
) -> T | None:
    """``ask()`` until it answers, ``done`` is set or the deadline passes.

    Quickly at first (a validator about to execute), every half second once a
    validator is down or unreachable (an RPC error).
    """
    pause = 0.01
    while not done.is_set() and time.monotonic() < deadline:
        try:
            answer = ask()
        except grpc.RpcError:
            pause = 0.5
        else:
            if answer is not None:
                return answer
        done.wait(pause)
        pause = min(2 * pause, 0.5)
    return None


class MovedOn(CommitteeError):
    """f + 1 validators hold block ``height`` already: the round was taken."""

    def __init__(self, height: int) -> None:
        super().__init__(f"the chain moved on to block {height}")
        self.height = height


class RemoteCommittee(CertifiedHead):
    """Validators at ``addresses`` (the :class:`~.base.Committee` seam).

    The keyword settings are :class:`~pot_flower.protocol.params.Params`'; ``bls``
    holds every validator's BLS key (the committee file's)
    for a chain certified by BLS aggregates, empty for Ed25519 lists.
    """

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
        robust: RobustConfig | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 120.0,
        resume: bool = False,
        privacy: PrivacyConfig | None = None,
        commitment: CommitmentKind = CommitmentKind.HASH,
        bls: tuple[BlsKey, ...] = (),
        commit_reveal: bool = False,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self._client_id = client_id
        self._client_key = client_key
        self._connect(addresses, channel_credentials)
        self._params = Params(
            run=run,
            validators=tuple(k.raw for k in config.replicas),
            quorum=config.quorum,
            norm_bound_units=norm_bound_units,
            registration=registration,
            allowed_miners=allowed_miners,
            emission=emission,
            validator_fee_ppm=validator_fee_ppm,
            robust=robust or RobustConfig(),
            privacy=privacy or PrivacyConfig(),
            commitment=commitment,
            bls=bls,
            commit_reveal=commit_reveal,
        )
        self._height = -1
        self._head_hash = b""
        self._model: Arrays = {}
        self._model_digest = b""
        self._body: RoundBlock | None = None  # the last certified round's
        self._last = self._resume() if resume else self._open_chain(model)

    def _head(self) -> tuple[int, bytes, Arrays, bytes]:
        return self._height, self._head_hash, self._model, self._model_digest

    def close_seals(self, seals: Sequence[Seal]) -> ClosedSeals:
        """Order closing the seals (one PBFT step), then gather a quorum's signatures.

        The committee closes the first set ordered for a round: a resumed
        coordinator gets the set closed before it stopped, and reveals those.
        Signatures are gathered like votes, a validator that is down or behind
        delaying nobody.
        """
        height = self._height + 1
        closing = SealSet.close(self._params.run, height, seals)
        try:
            result = self._client.call(close_seals_request(closing), self.timeout)
            closed = parse_closed(result)
        except (TimeoutError, ValueError) as exc:
            raise CommitteeError(f"round {height}: seals not closed: {exc}") from exc
        if closed.round != height or closed.run != self._params.run:
            raise CommitteeError(f"round {height}: the committee closed another round")
        deadline = time.monotonic() + self.timeout
        done = threading.Event()
        frame = pot_pb2.Frame(data=encode({"run": self._params.run, "round": height}))
        jobs = {
            self._pool.submit(
                self._seal_signature, rid, frame, closed.digest(), done, deadline
            ): rid
            for rid in self._stubs
        }
        signatures: dict[int, bytes] = {}
        try:
            pending = set(jobs)
            while pending and len(signatures) < self.config.quorum:
                finished, pending = futures.wait(
                    pending, return_when=futures.FIRST_COMPLETED
                )
                signatures |= {jobs[j]: s for j in finished if (s := j.result())}
            if pending:  # stragglers within a short grace sign too
                finished = futures.wait(pending, timeout=STRAGGLER_GRACE_S)[0]
                signatures |= {jobs[j]: s for j in finished if (s := j.result())}
        finally:
            done.set()
        if len(signatures) < self.config.quorum:
            raise CommitteeError(
                f"round {height}: {len(signatures)} validators signed the closed "
                f"seals, quorum is {self.config.quorum}"
            )
        return ClosedSeals(closed, tuple(sorted(signatures.items())))

    def _seal_signature(
        self,
        rid: int,
        frame: pot_pb2.Frame,
        digest: bytes,
        done: threading.Event,
        deadline: float,
    ) -> bytes | None:
        """Validator ``rid``'s verified signature of the closed seals, once signed."""
        key = VerifyKey(self._params.validators[rid])

        def signed() -> bytes | None:
            reply = self._stubs[rid].SignSeals(frame, timeout=10)
            valid = key.verify(SEAL_SET_DOMAIN, digest, reply.signature)
            return bytes(reply.signature) if reply.signature and valid else None

        return _poll(signed, done, deadline)

    def certify_round(
        self,
        submissions: list[SubmissionRef],
        payloads: Mapping[bytes, bytes],
        sealed: ClosedSeals | None = None,
    ) -> CertifiedRound:
        height = self._height + 1
        try:
            digest = self._submit_round(height, submissions, payloads, sealed)
        except MovedOn as moved:
            # Another coordinator's batch for this round executed after this one
            # resumed (it was still being ordered when the last run died): that
            # block is this round's, certified once; these replies are dropped.
            if moved.height != height:
                raise CommitteeError(
                    f"round {height}: the chain is at block {moved.height}, "
                    "certified from another coordinator's batches; resume the "
                    "run again to continue from there"
                ) from moved
            self._last = self._resume()
            if self._height != height:
                raise CommitteeError(
                    f"round {height}: no quorum certifies the block it moved to"
                ) from moved
            assert self._head_hash is not None
            digest = self._head_hash
        else:
            self._last = self._certify(height, digest)
        assert self._body is not None  # set by _certify
        return CertifiedRound(height, digest, self._body, self._last, self._model)

    def _submit_round(
        self,
        height: int,
        submissions: list[SubmissionRef],
        payloads: Mapping[bytes, bytes],
        sealed: ClosedSeals | None,
    ) -> bytes:
        """Make the round's payloads available and order its batch; the block hash.

        Raises :class:`MovedOn` where f + 1 validators already hold block
        ``height`` (at least one honest one executed another batch for it).
        """
        named = [s.payload for s in submissions if s.payload]
        try:
            receipts = self._make_available(payloads, named, round_=height)
            batch = RoundBatch(
                self._params.run, height, tuple(submissions), self._last, sealed=sealed
            )
            if self._params.robust.scored:
                batch = replace(batch, scores=self._gather_scores(batch))
            if self._params.privacy.on:
                batch = replace(batch, privacy=spent(self._params.privacy, height))
            request = available_request(batch.to_bytes(), receipts)
            return self._order(request, height)[1]
        except CommitteeError as exc:
            self._check_moved_on(height, exc)
            raise

    def _check_moved_on(self, height: int, cause: Exception | None = None) -> None:
        """Raise :class:`MovedOn` if f + 1 validators hold a block at ``height``."""
        request = pot_pb2.BlockRequest(run=self._params.run, height=LATEST)
        heights = []
        for _, reply in self._ask_all("GetBlock", request):
            try:
                heights.append(parse_block(reply.body).height)
            except BlockFormatError:
                continue
        ahead = sorted((h for h in heights if h >= height), reverse=True)
        need = weak_quorum(len(self.config.replicas))
        if len(ahead) >= need:
            # The (f + 1)-th highest: at least one honest validator holds it.
            raise MovedOn(ahead[need - 1]) from cause

    def close(self) -> None:
        self._client.close()
        self._pool.shutdown()
        for channel in self._channels.values():
            channel.close()

    # ------------------------------------------------------------ plumbing
    def _connect(
        self,
        addresses: Mapping[int, str],
        credentials: grpc.ChannelCredentials | None,
    ) -> None:
        """The gateway for ordering, and one stub per validator for the PoT RPCs."""
        self._client = Gateway(
            self.config,
            self._client_id,
            self._client_key,
            addresses,
            channel_credentials=credentials,
        )
        self._channels = {
            rid: open_channel(a, credentials) for rid, a in addresses.items()
        }
        self._stubs = {
            rid: pot_pb2_grpc.ValidatorStub(ch)  # type: ignore[no-untyped-call]
            for rid, ch in self._channels.items()
        }
        # Per validator: a vote poll, a certificate hand-over and a receipt or
        # upload may be in flight at once, stragglers included.
        self._pool = futures.ThreadPoolExecutor(max_workers=4 * len(addresses) + 4)

    def _open_chain(self, model: Arrays) -> Certificate:
        """Genesis of this run's chain on every validator; its certificate."""
        p = self._params
        model_bytes = encode_arrays(model)
        model_digest = hashlib.sha256(model_bytes).digest()
        receipts = self._make_available(
            {model_digest: model_bytes}, [model_digest], round_=0
        )
        request = OpenChain(
            p.run,
            model_digest,
            p.norm_bound_units,
            p.registration,
            p.allowed_miners,
            p.emission,
            p.validator_fee_ppm,
            p.robust,
            p.privacy,
            p.commitment,
            p.certifiers.kind,
            p.commit_reveal,
        )
        height, digest = self._order(available_request(request.to_bytes(), receipts), 0)
        return self._certify(height, digest)

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
        self._adopt_genesis_params()
        request = pot_pb2.BlockRequest(run=self._params.run, height=LATEST)
        heads: dict[tuple[int, bytes], int] = {}
        for stub in self._stubs.values():
            try:
                reply = stub.GetBlock(request, timeout=self.timeout)
                block = parse_block(reply.body)
            except (grpc.RpcError, BlockFormatError):
                continue
            key = (block.height, block_hash(reply.body))
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

    def _adopt_genesis_params(self) -> None:
        """A resumed chain keeps the parameters its genesis fixed, not today's.

        What the coordinator computes from them (the privacy claim of each batch)
        must be the chain's; the genesis a quorum of validators returns alike is
        taken (fewer agreeing: today's settings stay, and a validator refuses a
        claim that does not match its chain).
        """
        request = pot_pb2.BlockRequest(run=self._params.run, height=0)
        bodies: dict[bytes, int] = {}
        for stub in self._stubs.values():
            try:
                body = stub.GetBlock(request, timeout=self.timeout).body
            except grpc.RpcError:
                continue
            bodies[body] = bodies.get(body, 0) + 1
        for body, count in bodies.items():
            if count < self.config.quorum:
                continue
            try:
                block = parse_block(body)
            except BlockFormatError:
                continue
            same = isinstance(block, GenesisBlock) and (
                block.params.run == self._params.run
                and block.params.validators == self._params.validators
            )
            if isinstance(block, GenesisBlock) and same:
                self._params = block.params
                return

    def _upload(
        self, payloads: Mapping[bytes, bytes], round_: int, rids: Iterable[int]
    ) -> list[str]:
        """Upload ``payloads`` to validators ``rids``; why each failed one did."""
        run = self._params.run
        tickets = {
            digest: first_chunk(
                self._client_key, self._client_id, run, round_, digest, len(data)
            )
            for digest, data in payloads.items()
        }

        def put(rid: int) -> None:
            for digest, data in payloads.items():
                chunks = itertools.chain(
                    [tickets[digest]],
                    (
                        pot_pb2.Chunk(data=data[i : i + CHUNK_BYTES])
                        for i in range(0, len(data), CHUNK_BYTES)
                    ),
                )
                ack = self._stubs[rid].PutPayload(chunks, timeout=UPLOAD_DEADLINE_S)
                if not ack.accepted:
                    raise CommitteeError(f"validator {rid} refused: {ack.reason}")

        jobs = [self._pool.submit(put, rid) for rid in rids]
        return [str(exc) for job in jobs if (exc := job.exception()) is not None]

    def _ask_all(
        self, method: str, request: Any, rids: Iterable[int] | None = None
    ) -> Iterator[tuple[int, Any]]:
        """Call ``method`` on validators at once; yield replies as they come."""
        stubs = self._stubs if rids is None else {r: self._stubs[r] for r in rids}
        jobs = {
            self._pool.submit(getattr(stub, method), request, timeout=self.timeout): rid
            for rid, stub in stubs.items()
        }
        for job in futures.as_completed(jobs):
            try:
                reply = job.result()
            except grpc.RpcError:
                continue  # a validator down or slow: f of them are tolerated
            yield jobs[job], reply

    def _make_available(
        self, payloads: Mapping[bytes, bytes], named: list[bytes], *, round_: int
    ) -> list[Receipt]:
        """Upload, then gather receipts for ``named`` from a quorum of validators.

        Validators that are down or restarting are asked again (each attempt
        uploads only to those that lack something) until the deadline.
        """
        wanted = {d: payloads[d] for d in set(named) if d in payloads}
        message = receipt_message(named)
        request = pot_pb2.HoldsRequest(digests=sorted(set(named)))
        receipts: dict[int, bytes] = {}
        deadline = time.monotonic() + self.timeout
        pause = 0.1
        while True:
            lacking = [rid for rid in self._stubs if rid not in receipts]
            refusals = self._upload(wanted, round_, lacking)
            missing: set[bytes] = set()
            for rid, reply in self._ask_all("Holds", request, lacking):
                missing.update(reply.missing)
                key = self.config.replicas[rid]
                if reply.receipt and key.verify(
                    availability.DOMAIN, message, reply.receipt
                ):
                    receipts[rid] = reply.receipt
                    if len(receipts) == self.config.quorum:
                        return sorted(receipts.items())
            if refusals and round_ > 0:
                self._check_moved_on(round_)  # refused because it is past?
            if time.monotonic() + pause > deadline:
                raise CommitteeError(
                    f"{len(receipts)} validators hold the payloads, quorum is "
                    f"{self.config.quorum} ({len(missing)} payloads missing "
                    f"somewhere; {refusals[0] if refusals else 'no refusals'})"
                )
            time.sleep(pause)
            pause = min(2 * pause, 2.0)

    def _gather_scores(self, batch: RoundBatch) -> tuple[ScoreVector, ...]:
        """A quorum of validators' signed score vectors of ``batch``.

        Each validator scores with the task owner's function on its own data
        once it has executed the previous round and holds the payloads. Returns
        as soon as a quorum verifies: a validator that holds the call delays
        nobody; one not there yet ("pending") or refusing is asked again, with
        backoff, until the deadline.
        """
        request = pot_pb2.ScoreRequest(run=batch.run, batch=batch.to_bytes())
        digest, count = batch.scores_digest(), len(batch.submissions)
        vectors: dict[int, ScoreVector] = {}
        problems: dict[int, str] = {}
        deadline = time.monotonic() + self.timeout
        backoff = dict.fromkeys(self._stubs, 0.05)
        due = dict.fromkeys(self._stubs, 0.0)  # when to ask each again
        inflight: dict[futures.Future[Any], int] = {}
        while len(vectors) < self.config.quorum:
            now = time.monotonic()
            if now >= deadline:
                shown = "; ".join(
                    f"validator {r}: {p}" for r, p in sorted(problems.items())
                )
                raise CommitteeError(
                    f"{len(vectors)} validators scored round {batch.round}, quorum "
                    f"is {self.config.quorum} ({shown or 'no answers'})"
                )
            for rid in [r for r, t in due.items() if t <= now]:
                del due[rid]
                call = self._stubs[rid].Score
                inflight[self._pool.submit(call, request, timeout=deadline - now)] = rid
            wake = min([deadline, *due.values()]) - now
            done, _ = futures.wait(
                inflight, timeout=max(wake, 0.01), return_when=futures.FIRST_COMPLETED
            )
            for job in done:
                rid = inflight.pop(job)
                vector, problem = self._score_reply(job, rid, batch, digest, count)
                if vector is not None:
                    vectors[rid] = vector
                    continue
                problems[rid] = problem
                due[rid] = time.monotonic() + backoff[rid]
                backoff[rid] = min(2 * backoff[rid], 1.0)
        return tuple(vectors[r] for r in sorted(vectors))

    def _score_reply(
        self,
        job: futures.Future[Any],
        rid: int,
        batch: RoundBatch,
        digest: bytes,
        count: int,
    ) -> tuple[ScoreVector | None, str]:
        """Validator ``rid``'s verified vector, or why there is none."""
        try:
            reply = job.result()
        except grpc.RpcError as exc:
            return None, f"{exc.code().name}: {exc.details()}"
        if not reply.vector:
            return None, reply.pending or "no vector"
        vector = _score_vector(reply.vector)
        key = self.config.replicas[rid].raw
        if (
            vector is None
            or vector.validator != rid
            or not vector.verifies(
                key, run=batch.run, round_=batch.round, digest=digest, count=count
            )
        ):
            return None, "a score vector that does not verify"
        return vector, ""

    def _certify(self, height: int, digest: bytes) -> Certificate:
        """Votes from validators until a quorum; the block and model it names.

        f + 1 matching results mean the block exists, not that a quorum has
        executed it yet: each validator is asked until it has (or the deadline),
        independently, so a validator that is down delays nobody. The model is
        then fetched once, from a voter.
        """
        votes, body_bytes, recorded = self._collect_votes(height, digest)
        try:
            block = parse_block(body_bytes)
        except BlockFormatError as exc:
            raise CommitteeError(f"block {height}: {exc}") from exc
        run = self._params.run
        model_bytes = self._model_from(sorted(votes), run, height, block.model)
        # A block certified before (a resumed run) keeps the certificate its
        # validators recorded: the next block pays fees to exactly those signers.
        certificate = recorded or self._params.certifiers.assemble(
            height, digest, votes
        )
        self._hand_over(certificate, waiting_for=list(votes))
        self._height = height
        self._head_hash = digest
        self._body = block if isinstance(block, RoundBlock) else None
        self._model = decode_arrays(model_bytes)
        self._model_digest = hashlib.sha256(model_bytes).digest()
        return certificate

    def _collect_votes(
        self, height: int, digest: bytes
    ) -> tuple[dict[int, bytes], bytes, Certificate | None]:
        """A quorum's votes, the block's body, and a certificate a voter recorded."""
        deadline = time.monotonic() + self.timeout
        done = threading.Event()
        request = pot_pb2.BlockRequest(run=self._params.run, height=height)
        jobs = {
            self._pool.submit(self._vote, rid, request, digest, done, deadline): rid
            for rid in self._stubs
        }
        votes: dict[int, bytes] = {}
        body_bytes = b""
        recorded: Certificate | None = None
        started = time.monotonic()
        grace: float | None = None  # set once a quorum voted
        try:
            for job in futures.as_completed(jobs):
                found = job.result()
                if found is not None:
                    votes[jobs[job]], body_bytes, stored = found
                    recorded = recorded or self._valid_certificate(
                        stored, height, digest
                    )
                if grace is None and len(votes) >= self.config.quorum:
                    # Stragglers that vote soon after the quorum are paid too;
                    # one that is down costs at most the grace.
                    grace = min(
                        STRAGGLER_GRACE_S, max(0.02, time.monotonic() - started)
                    )
                    break
            if grace is not None:
                pending = [j for j in jobs if not j.done()]
                finished, _ = futures.wait(pending, timeout=grace)
                for job in finished:
                    found = job.result()
                    if found is not None:
                        votes[jobs[job]] = found[0]
        finally:
            done.set()
        if len(votes) < self.config.quorum:
            raise CommitteeError(
                f"block {height}: {len(votes)} valid votes, quorum is "
                f"{self.config.quorum}"
            )
        return votes, body_bytes, recorded

    def _hand_over(self, certificate: Certificate, waiting_for: list[int]) -> None:
        """Give every validator the certificate; wait for ``waiting_for`` to hold it.

        The voters are up: waiting for them lets a resumed coordinator find the
        certificate; the others, possibly down, are not waited for.
        """
        run = self._params.run
        frame = pot_pb2.Frame(
            data=encode({"certificate": decode(certificate.to_bytes()), "run": run})
        )
        handed = {
            rid: self._pool.submit(stub.Certify, frame, timeout=10)
            for rid, stub in self._stubs.items()
        }
        futures.wait([handed[rid] for rid in waiting_for], timeout=10)

    def _vote(
        self,
        rid: int,
        request: pot_pb2.BlockRequest,
        digest: bytes,
        done: threading.Event,
        deadline: float,
    ) -> tuple[bytes, bytes, bytes] | None:
        """``(vote, body, certificate)`` of ``rid`` once it has executed the block."""
        certifiers = self._params.certifiers

        def voted() -> tuple[bytes, bytes, bytes] | None:
            reply = self._stubs[rid].GetBlock(request, timeout=10)
            if block_hash(reply.body) == digest and certifiers.vote_valid(
                rid, request.height, digest, reply.vote
            ):
                return reply.vote, reply.body, reply.certificate
            return None

        return _poll(voted, done, deadline)

    def _valid_certificate(
        self, data: bytes, height: int, digest: bytes
    ) -> Certificate | None:
        if not data:
            return None
        try:
            certificate = Certificate.from_bytes(data)
            if (certificate.height, certificate.block) != (height, digest):
                return None
            certificate.verify(self._params.certifiers)
        except CertificateError:
            return None
        return certificate

    def _model_from(
        self, voters: list[int], run: int, height: int, named: bytes
    ) -> bytes:
        """The model ``named`` by block ``height``, from the first voter serving it."""
        request = pot_pb2.BlockRequest(run=run, height=height, with_model=True)
        for rid in voters:
            try:
                reply = self._stubs[rid].GetBlock(request, timeout=self.timeout)
            except grpc.RpcError:
                continue
            if reply.model and hashlib.sha256(reply.model).digest() == named:
                return bytes(reply.model)
        raise CommitteeError(f"block {height}: no validator served its model")
