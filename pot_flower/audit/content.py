"""Checks on a block's content that need more than its format (see ``protocol.block``).

The block's format (fields, types, per-record invariants) is
:mod:`pot_flower.protocol.block`'s; here its errors become audit failures, and the
checks across a block's records and its certificate live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pot_flower.audit.report import BadBlock, Failure
from pot_flower.audit.rows import storage_class
from pot_flower.protocol.block import (
    BEFORE_EXAMPLES,
    PRE_ENVELOPE,
    SEALING_FAILED,
    BlockFormatError,
    Problem,
    RoundBlock,
    SubmissionRecord,
)
from pot_flower.protocol.certificate import Certificate, CertificateError
from pot_flower.protocol.commitments import CommitmentKind
from pot_flower.protocol.envelope import Envelope
from pot_flower.protocol.params import Params
from pot_flower.protocol.privacy.accountant import spent, within_tolerance
from pot_flower.protocol.privacy.adaptive import next_clip_norm
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import PPM
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.sealing import Seal, seal_of

_FAILURE = {
    Problem.CONTENT: Failure.BAD_CONTENT,
    Problem.VERDICTS: Failure.BAD_VERDICTS,
    Problem.REWARDS: Failure.BAD_REWARDS,
    Problem.ORDER: Failure.NOT_CANONICAL,
}


def bad_block(error: BlockFormatError) -> BadBlock:
    """A block format error as the audit failure it is."""
    return BadBlock(_FAILURE[error.problem], error.detail)


def check_certificate(data: object, height: int, digest: bytes) -> Certificate:
    """The stored certificate of block ``height``, if it names that block."""
    if data is None:
        raise BadBlock(Failure.UNCERTIFIED, "has no committee certificate")
    if not isinstance(data, bytes):
        raise BadBlock(
            Failure.MALFORMED_ROW,
            f"certificate is {storage_class(data)}, not a BLOB",
        )
    try:
        cert = Certificate.from_bytes(data)
    except CertificateError as exc:
        raise BadBlock(Failure.BAD_CERTIFICATE, f"certificate invalid: {exc}") from exc
    if type(cert.height) is not int or cert.height != height or cert.block != digest:
        raise BadBlock(
            Failure.BAD_CERTIFICATE, "certificate invalid: certifies another block"
        )
    return cert


# Decided before a reveal is checked against its seal: no salt is recorded.
BEFORE_SEAL = (
    PRE_ENVELOPE | BEFORE_EXAMPLES | {Reason.BAD_NUM_EXAMPLES} | SEALING_FAILED
)


def check_seals(block: RoundBlock, params: Params) -> None:
    """A commit-reveal round's closed seals, and the verdicts that follow from them.

    The seals must be closed by a quorum of the genesis committee for this round.
    Each seal is opened by a reveal, which records the salt: the envelope the
    block's fields rebuild hashes, with the salt, to the seal. Each seal nothing
    opened is recorded once ``not-revealed`` under its miner and seal, with no
    examples. Every verdict decided after the seal check records its salt, but
    on DP chains with hash commitments, whose records are blinded, none does (a
    salt and the seal would let anyone test a guessed update): there the
    verdicts only say which seals were opened. ``not-sealed`` and
    ``seal-mismatch`` follow from the seals.
    """
    subs = block.submissions
    if not params.commit_reveal:
        if block.sealed is not None or any(
            s.reason in SEALING_FAILED or s.salt is not None for s in subs
        ):
            raise BadBlock(Failure.BAD_CONTENT, "seals on a chain without them")
        return
    if block.sealed is None:
        raise BadBlock(Failure.BAD_CONTENT, "a commit-reveal round without seals")
    seals = block.sealed.seals
    if (seals.run, seals.round) != (params.run, block.height):
        raise BadBlock(Failure.BAD_CONTENT, "seals closed for another round")
    problem = block.sealed.problem(params.validators, params.quorum)
    if problem is not None:
        raise BadBlock(Failure.BAD_CONTENT, f"sealed: {problem}")
    # On DP chains with hash commitments, records are blinded and keep no salt.
    blinded = params.privacy.on and params.commitment == CommitmentKind.HASH
    opened = {s.node for s in subs if s.salt is not None or _opened_blind(s, blinded)}
    recorded: list[int] = []
    for s in subs:
        seal = seals.of_node(s.node)
        if blinded and s.salt is not None:
            raise BadBlock(
                Failure.BAD_CONTENT, f"node {s.node}: a salt would unblind its hash"
            )
        if s.reason == Reason.NOT_REVEALED:
            recorded.append(s.node)
            if not _unopened(s, seal, opened):
                raise BadBlock(
                    Failure.BAD_VERDICTS, f"node {s.node}: not-revealed, no such seal"
                )
        elif (s.reason == Reason.NOT_SEALED and seal is not None) or (
            s.reason == Reason.SEAL_MISMATCH and seal is None
        ):
            raise BadBlock(
                Failure.BAD_VERDICTS, f"node {s.node}: {s.reason} contradicts the seals"
            )
        elif s.reason not in BEFORE_SEAL and s.salt is None and not blinded:
            raise BadBlock(
                Failure.BAD_VERDICTS, f"node {s.node}: {s.reason} without its seal"
            )
        if s.salt is not None and not _opens(block, params, s, seal):
            raise BadBlock(
                Failure.BAD_VERDICTS, f"node {s.node}'s reveal does not open its seal"
            )
    unopened = [x.node for x in seals.seals if x.node not in opened]
    if sorted(recorded) != unopened:
        raise BadBlock(
            Failure.BAD_VERDICTS,
            "not-revealed records are not exactly the seals no reveal opened",
        )


def _opened_blind(s: SubmissionRecord, blinded: bool) -> bool:
    """On a blinded chain, whether ``s`` was decided after its seal opened."""
    return blinded and s.reason not in BEFORE_SEAL


def _unopened(s: SubmissionRecord, seal: Seal | None, opened: set[int]) -> bool:
    """Whether ``s`` is a well-formed record of ``seal``, which nothing opened."""
    return (
        seal is not None
        and s.node not in opened
        and (s.miner, s.commitment) == (seal.miner, seal.seal)
        and s.examples == 0
        and s.local_dp is None
        and s.salt is None
    )


def _opens(
    block: RoundBlock, params: Params, record: SubmissionRecord, seal: Seal | None
) -> bool:
    """Whether ``record``'s envelope, rebuilt from the block, hashes to ``seal``."""
    if seal is None or record.miner != seal.miner:
        return False
    envelope = rebuilt_envelope(block, params, record)
    return envelope is not None and seal_of(record.salt or b"", envelope) == seal.seal


def rebuilt_envelope(
    block: RoundBlock, params: Params, record: SubmissionRecord
) -> bytes | None:
    """The envelope bytes a record's miner signed, rebuilt from the block's fields."""
    if record.miner is None or record.commitment is None:
        return None
    try:
        return Envelope(
            run=params.run,
            round=block.height,
            node=record.node,
            miner=record.miner,
            base_digest=block.base,
            nonce=block.nonce,
            commitment=record.commitment,
            num_examples=record.examples,
            local_dp=record.local_dp,
        ).to_bytes()
    except ValueError:  # EnvelopeError: fields no miner could have signed
        return None


COUNTED_ONCE = frozenset({Reason.COPIED_UPDATE, Reason.NEAR_COPY})
"""Rejections whose group still enters the aggregate once."""


def check_scores(subs: Sequence[SubmissionRecord], config: RobustConfig) -> None:
    """Agreed scores only on scored chains; low-score exactly below the threshold."""
    for s in subs:
        if not config.scored:
            if s.score is not None or s.reason == Reason.LOW_SCORE:
                raise BadBlock(
                    Failure.BAD_VERDICTS, "scores on a chain without scoring"
                )
            continue
        low = s.score is None or s.score < config.score_threshold
        if s.accepted and low:
            raise BadBlock(Failure.BAD_VERDICTS, "accepted below the score threshold")
        if s.reason == Reason.LOW_SCORE and not low:
            raise BadBlock(Failure.BAD_VERDICTS, "low-score above the score threshold")


def check_privacy(block: RoundBlock, params: Params) -> None:
    """A DP chain's block records what the accountant says it spent, or more.

    Recomputed from genesis's parameters with the same accountant the committee
    uses; a claim short of it by more than one rounding fails, so no block can
    make the budget look less spent than it is.
    """
    config = params.privacy
    if not config.on:
        if block.privacy is not None:
            raise BadBlock(Failure.BAD_PRIVACY, "privacy spent on a chain without DP")
        return
    claim = block.privacy
    if claim is None:
        raise BadBlock(Failure.BAD_PRIVACY, "a DP round records no privacy spent")
    own = spent(config, block.height)
    if not within_tolerance(claim, own):
        raise BadBlock(
            Failure.BAD_PRIVACY,
            f"records epsilon {claim.epsilon:.6f} (sampled "
            f"{claim.epsilon_sampled:.6f}) after {claim.rounds} rounds; the "
            f"accountant gives {own.epsilon:.6f} ({own.epsilon_sampled:.6f}) "
            f"after {own.rounds}",
        )
    target = config.target_epsilon_micro
    if target and max(claim.epsilon_micro, own.epsilon_micro) > target:
        raise BadBlock(Failure.BAD_PRIVACY, "a round past the privacy budget")
    # Nothing computed from one update is published under DP (README).
    for s in block.submissions:
        if s.clipped or (s.accepted and s.quality_ppm != PPM):
            raise BadBlock(
                Failure.BAD_PRIVACY, "a DP block records a per-update quality or clip"
            )


def check_clipping(
    block: RoundBlock, params: Params, expected: int | None
) -> int | None:
    """The next clip norm, after checking the block used the one the last set.

    ``None`` on chains with a fixed clip norm. The trajectory follows from
    genesis and the recorded noised counts alone (:func:`next_clip_norm`): a block
    that clipped with another norm, or one that records no step on an adaptive
    chain (or one on another chain), fails.
    """
    config = params.privacy
    step = block.clipping
    if expected is None:
        if step is not None:
            raise BadBlock(
                Failure.BAD_PRIVACY, "records a DP clip step on a chain without one"
            )
        return None
    if step is None:
        raise BadBlock(Failure.BAD_PRIVACY, "an adaptive DP round records no clip step")
    if step.clip_norm_units != expected:
        raise BadBlock(
            Failure.BAD_PRIVACY,
            f"clipped at {step.clip_norm_units} units where the trajectory from "
            f"genesis gives {expected}",
        )
    return next_clip_norm(step, config, params.norm_bound_units)


def check_duplicates(
    subs: Sequence[SubmissionRecord], kind: CommitmentKind = CommitmentKind.HASH
) -> None:
    """One passing submission per miner; identical updates all marked copied.

    On a Pedersen chain equal updates have unequal commitments (fresh blinding
    factors), so the ledger shows only one direction: equal commitments must be
    marked copied; which other updates were equal, the hiding commitments do not
    reveal. Every passing update's commitment has the chain's size.
    """
    seen: set[bytes | None] = set()
    firsts: list[SubmissionRecord] = []
    for s in subs:
        if not s.passed:
            continue
        if s.miner in seen:
            if s.reason != Reason.DUPLICATE_SUBMISSION:
                raise BadBlock(Failure.BAD_VERDICTS, "a miner is paid twice in a round")
            continue
        if s.reason == Reason.DUPLICATE_SUBMISSION:
            raise BadBlock(Failure.BAD_VERDICTS, "a first submission marked duplicate")
        seen.add(s.miner)
        firsts.append(s)
        if s.commitment is None or len(s.commitment) != kind.size:
            raise BadBlock(
                Failure.BAD_CONTENT,
                f"a passing update's commitment is not a {kind.value} commitment",
            )
    counts = Counter(s.commitment for s in firsts)
    for s in firsts:
        repeated = counts[s.commitment] > 1
        copied = s.reason == Reason.COPIED_UPDATE
        if (repeated and not copied) or (copied and not repeated and kind == "hash"):
            raise BadBlock(
                Failure.BAD_VERDICTS, "copied-update verdicts are inconsistent"
            )
