"""Signed payload uploads: only the committee's coordinators may store payloads.

The first chunk of a ``PutPayload`` stream names the uploader (a coordinator id of
the committee file), the run and round, the payload's digest and size, and carries
the uploader's Ed25519 signature over them, so a stranger cannot make a validator
store anything, with or without TLS. With TLS the caller's certificate must also be
the uploader's. A signed upload is good for its round only: replayed once the chain
has moved past that round, it is refused (its payload could never be used, and would
never be collected). What an upload may cost is bounded by the validator's
:class:`~pot_flower.transport.limits.Limits` and its payload quotas.
"""

from __future__ import annotations

from pot_flower.consensus.config import CommitteeConfig
from pot_flower.encoding import encode
from pot_flower.transport import pot_pb2
from pot_flower.transport.limits import Limits, shown
from pot_flower.zk.signatures import SigningKey

DOMAIN = b"payload-upload/v2"


def upload_message(
    client: str, run: int, round_: int, digest: bytes, size: int
) -> bytes:
    """The bytes an upload signature covers."""
    return encode([client, run, round_, digest, size])


def first_chunk(
    key: SigningKey, client: str, run: int, round_: int, digest: bytes, size: int
) -> pot_pb2.Chunk:
    """The signed chunk that opens an upload of ``size`` bytes (data follows).

    ``round_`` is the round the payload is for (0: the chain's initial model).
    """
    message = upload_message(client, run, round_, digest, size)
    return pot_pb2.Chunk(
        digest=digest,
        client=client,
        run=run,
        round=round_,
        size=size,
        signature=key.sign(DOMAIN, message),
    )


def upload_problem(
    chunk: pot_pb2.Chunk,
    config: CommitteeConfig,
    limits: Limits,
    identity: str | None,
) -> str | None:
    """Why the upload ``chunk`` opens may not be stored, or None."""
    if len(chunk.digest) != 32:
        return "the first chunk must name a 32-byte SHA-256 digest"
    if chunk.size > limits.max_payload_bytes:
        return f"payload of {chunk.size} bytes exceeds {limits.max_payload_bytes}"
    key = config.clients.get(chunk.client)
    if key is None:
        return f"uploader {shown(chunk.client)} is not a coordinator of this committee"
    if identity is not None and identity != chunk.client:
        who = shown(chunk.client)
        return f"upload as {who} with the certificate of {shown(identity)}"
    message = upload_message(
        chunk.client, chunk.run, chunk.round, chunk.digest, chunk.size
    )
    if not key.verify(DOMAIN, message, chunk.signature):
        return "bad upload signature"
    return None


def past_round_problem(chunk: pot_pb2.Chunk, height: int | None) -> str | None:
    """Why an upload for a round the chain (at ``height``) is past is refused."""
    if height is not None and chunk.round <= height:
        return (
            f"upload for round {chunk.round} of run {chunk.run}, which this "
            f"validator has executed (height {height})"
        )
    return None
