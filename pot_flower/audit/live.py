"""Asking a committee's live validators over gRPC for the head they vouch for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pot_flower.audit.report import LiveHead
from pot_flower.protocol.block import BlockFormatError, parse_block
from pot_flower.protocol.certificate import (
    Certificate,
    CertificateError,
    CertificateKind,
    Certifiers,
    block_hash,
)

if TYPE_CHECKING:
    from pot_flower.ops.committee_file import CommitteeFile

from pot_flower.validator.reads import LATEST


@dataclass(frozen=True)
class _Reply:
    """One validator's answer about one height (``height`` None: holds none)."""

    validator: int
    height: int | None = None
    block: bytes = b""
    vote: bool = False  # the validator's valid signature over (height, block)
    certified: bool = False  # a valid quorum certificate came with it


def _parse_reply(
    validator: int,
    body: bytes,
    vote: bytes,
    certificate: bytes,
    certifiers: Mapping[CertificateKind, Certifiers],
) -> _Reply:
    """Check what validator ``validator`` returned for a block request.

    The chain's certificate kind is in its genesis, which this does not fetch: a
    vote counts if it is the validator's under either of its keys, a certificate
    if it verifies under the committee's keys of its own kind.
    """
    try:
        height = parse_block(body).height
    except BlockFormatError:
        return _Reply(validator)
    if height < 0:
        return _Reply(validator)
    digest = block_hash(body)
    voted = any(
        c.vote_valid(validator, height, digest, vote) for c in certifiers.values()
    )
    certified = False
    if certificate:
        try:
            cert = Certificate.from_bytes(certificate)
            kind = certifiers.get(cert.kind)
            if kind is not None and (cert.height, cert.block) == (height, digest):
                cert.verify(kind)
                certified = True
        except CertificateError:
            certified = False
    return _Reply(validator, height, digest, voted, certified)


def committee_certifiers(
    committee: CommitteeFile,
) -> dict[CertificateKind, Certifiers]:
    """The committee file's keys for each certificate kind it can sign."""
    quorum = committee.config.quorum
    kinds = {
        CertificateKind.ED25519: Certifiers(
            CertificateKind.ED25519,
            tuple(k.raw for k in committee.config.replicas),
            quorum,
        )
    }
    if committee.bls:
        keys = tuple(k.key for k in committee.bls)
        kinds[CertificateKind.BLS] = Certifiers(CertificateKind.BLS, keys, quorum)
    return kinds


def _vouched(replies: Sequence[_Reply], height: int, quorum: int) -> bytes | None:
    """The block at ``height`` that a certificate or a quorum of votes vouches for."""
    votes: Counter[bytes] = Counter()
    for r in replies:
        if r.height != height:
            continue
        if r.certified:
            return r.block
        if r.vote:
            votes[r.block] += 1
    for block, count in votes.most_common(1):
        if count >= quorum:
            return block
    return None


def live_head(
    committee: CommitteeFile,
    run: int,
    *,
    identity: str = "coordinator",
    timeout: float = 5.0,
) -> LiveHead:
    """Ask every validator of ``committee`` for run ``run``'s head over gRPC.

    The head is the highest height whose block a valid quorum certificate, or
    valid votes of a quorum of validators, vouch for. Validators that do not
    answer are skipped; validators whose head is higher are asked for the lower
    heights too.

    Raises
    ------
    pot_flower.ops.committee_file.CommitteeFileError
        If the TLS files for ``identity`` are missing.

    """
    keys = tuple(k.raw for k in committee.config.replicas)
    quorum = committee.config.quorum
    if not 0 <= run <= LATEST:
        return LiveHead(0, len(keys), quorum)
    with _BlockAsker(committee, run, identity, timeout) as ask:
        heads = [r for r in ask.all(list(committee.addresses), LATEST) if r]
        if len(heads) < quorum:
            return LiveHead(len(heads), len(keys), quorum)
        for height in sorted({r.height for r in heads if r.height is not None})[::-1]:
            block = _vouched_at(ask, heads, height, quorum)
            if block is not None:
                return LiveHead(len(heads), len(keys), quorum, height, block)
        return LiveHead(len(heads), len(keys), quorum)


def _vouched_at(
    ask: _BlockAsker, heads: list[_Reply], height: int, quorum: int
) -> bytes | None:
    """The block at ``height`` a quorum vouches for, asking validators ahead."""
    replies = [r for r in heads if r.height == height]
    ahead = [r.validator for r in heads if r.height is not None and r.height > height]
    if len(replies) + len(ahead) < quorum and not any(r.certified for r in replies):
        return None
    replies += [r for r in ask.all(ahead, height) if r is not None]
    return _vouched(replies, height, quorum)


class _BlockAsker:
    """gRPC channels to a committee, asking for one run's blocks in parallel."""

    def __init__(
        self, committee: CommitteeFile, run: int, identity: str, timeout: float
    ) -> None:
        from concurrent import futures

        from pot_flower.transport import pot_pb2_grpc
        from pot_flower.transport.channels import open_channel

        self.certifiers = committee_certifiers(committee)
        self.run = run
        self.timeout = timeout
        credentials = committee.channel_credentials(identity)
        self.channels = {
            i: open_channel(address, credentials)
            for i, address in committee.addresses.items()
        }
        self.stubs = {
            i: pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
            for i, channel in self.channels.items()
        }
        self.pool = futures.ThreadPoolExecutor(max_workers=max(1, len(self.stubs)))

    def __enter__(self) -> _BlockAsker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()
        for channel in self.channels.values():
            channel.close()

    def one(self, validator: int, height: int) -> _Reply | None:
        """Validator ``validator``'s block at ``height`` (None: no answer)."""
        import grpc

        from pot_flower.transport import pot_pb2

        request = pot_pb2.BlockRequest(run=self.run, height=height)
        try:
            reply = self.stubs[validator].GetBlock(request, timeout=self.timeout)
        except grpc.RpcError:
            return None
        return _parse_reply(
            validator,
            reply.body,
            reply.vote,
            reply.certificate,
            self.certifiers,
        )

    def all(self, validators: list[int], height: int) -> list[_Reply | None]:
        """:meth:`one` for each of ``validators``, in parallel."""
        jobs = [self.pool.submit(self.one, i, height) for i in validators]
        return [job.result() for job in jobs]
