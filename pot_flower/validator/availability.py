"""Payload availability receipts: proof that enough validators hold a batch's bytes.

Round payloads travel outside consensus, named by digest. A validator that lacks
one when the batch executes must not decide anything from its absence (its peers,
holding the bytes, would decide otherwise and the ledgers would part). So the
coordinator orders a batch only with *receipts*: signatures of a quorum of
validators over the batch's digest list, each given only by a validator that holds
every payload. A quorum of 2f + 1 receipts means f + 1 honest holders, so a
validator that lacks a payload waits and fetches it from them; without a valid
quorum of receipts every honest validator refuses the request the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pot_flower.encoding import encode
from pot_flower.zk.signatures import SigningKey, VerifyKey

DOMAIN = b"payload-availability/v1"

Receipt = tuple[int, bytes]
"""(validator id, its signature over :func:`receipt_message`)."""


def canonical_digests(digests: Iterable[bytes]) -> list[bytes]:
    """The digests a receipt covers: distinct, sorted."""
    return sorted(set(digests))


def receipt_message(digests: Iterable[bytes]) -> bytes:
    """The bytes a receipt signs."""
    return encode(canonical_digests(digests))


def sign_receipt(key: SigningKey, digests: Iterable[bytes]) -> bytes:
    """A validator's receipt for ``digests`` (call only when holding all of them)."""
    return key.sign(DOMAIN, receipt_message(digests))


def receipts_problem(
    receipts: Sequence[Receipt],
    digests: Iterable[bytes],
    validators: Sequence[bytes],
    quorum: int,
) -> str | None:
    """Why ``receipts`` do not prove ``digests`` available, or None if they do."""
    message = receipt_message(digests)
    signers: set[int] = set()
    for vid, signature in receipts:
        if not 0 <= vid < len(validators):
            return f"receipt from unknown validator {vid}"
        if vid in signers:
            return f"two receipts from validator {vid}"
        if not VerifyKey(validators[vid]).verify(DOMAIN, message, signature):
            return f"bad receipt signature from validator {vid}"
        signers.add(vid)
    if len(signers) < quorum:
        return f"{len(signers)} receipts, quorum is {quorum}"
    return None
