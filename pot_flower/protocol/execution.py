"""Round execution: the deterministic function every validator applies to a batch.

Input: the chain state (params, head, global model, registry) and one round's batch
of submissions with their payloads. Output: a block (verdict and reason for every
submission, rewards) and the next global model. Only integers after the miner's
rounding, canonical order by miner id, canonical encoding before hashing: honest
validators produce identical bytes on any machine. Nothing in a submission can make
this raise; a malformed *batch* (the coordinator's fault) yields a batch error.

The steps, in order: :func:`parse_batch`, :func:`check_all` (each reply's checks),
:func:`register_and_dedupe`, :func:`reject_copies`, :func:`reject_low_scores`,
:func:`aggregate` (the robust stage), :func:`pay`, then the block.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from pot_flower.encoding import encode
from pot_flower.protocol.aggregation import (
    apply_aggregate,
    as_float,
    momentum_step,
    within_bounds,
)
from pot_flower.protocol.batch import BatchError, RoundBatch, SubmissionRef
from pot_flower.protocol.block import RoundBlock, SubmissionRecord, ValidatorFee
from pot_flower.protocol.certificate import Certificate, CertificateError, block_hash
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.commitments import (
    HASH_COMMITMENT_SIZE,
    CopyGroup,
    CopyMember,
    LinearOpening,
)
from pot_flower.protocol.fixedpoint import IntArray
from pot_flower.protocol.model import Arrays, model_digest
from pot_flower.protocol.params import MAX_SUBMISSIONS
from pot_flower.protocol.privacy.accountant import Spent, spent, within_tolerance
from pot_flower.protocol.privacy.adaptive import ClipStep, next_clip_norm
from pot_flower.protocol.privacy.mechanism import (
    blind_commitment,
    noise_seed,
    private_mean,
)
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import (
    PPM,
    fee_pool,
    largest_remainder,
    noise_floor_ppm,
    quality_ppm,
)
from pot_flower.protocol.robust import Aggregator, RobustConfig, robust_aggregate
from pot_flower.protocol.robust.geometry import lower_median
from pot_flower.protocol.robust.rules import (
    copy_groups,
    leave_one_out_median,
    leave_one_out_stats,
    median,
)
from pot_flower.protocol.scores import ScoreError, agreed_scores
from pot_flower.protocol.sealing import SealSet
from pot_flower.protocol.settlement import settle
from pot_flower.protocol.verdicts import (
    Verdict,
    check_openings,
    check_signed,
    check_update,
)

SEED_DOMAIN = b"pot-flower/round-seed/v1"
# Rejections that do not register a miner: the envelope is not for this round.
NOT_REGISTERING = frozenset(
    {
        Reason.UNKNOWN_MINER,
        Reason.WRONG_RUN,
        Reason.WRONG_ROUND,
        Reason.WRONG_NONCE,
        # Commit-reveal: a miner that never showed an update it sealed in time.
        Reason.NOT_SEALED,
        Reason.SEAL_MISMATCH,
        Reason.NOT_REVEALED,
    }
)


@dataclass(frozen=True)
class RoundOutcome:
    """The block a round produced and the state after it."""

    body: bytes
    hash: bytes
    state: ChainState
    verdicts: tuple[Verdict, ...]
    previous_certificate: Certificate | None  # the batch's, if it verified


def parse_batch(state: ChainState, batch_bytes: bytes) -> RoundBatch:
    """The batch, if it is executable at ``state`` (:class:`BatchError` if not)."""
    try:
        batch = RoundBatch.from_bytes(batch_bytes)
    except (ValueError, CertificateError) as exc:
        raise BatchError(f"malformed batch: {exc}") from exc
    params = state.params
    if batch.run != params.run:
        raise BatchError(f"batch for run {batch.run}, chain is run {params.run}")
    if batch.round != state.height + 1:
        raise BatchError(f"batch for round {batch.round}, next is {state.height + 1}")
    if len(batch.submissions) > MAX_SUBMISSIONS:
        raise BatchError(f"more than {MAX_SUBMISSIONS} submissions")
    _check_sealed(state, batch)
    return batch


def _check_sealed(state: ChainState, batch: RoundBatch) -> None:
    """A commit-reveal round's seals, closed by a quorum for this round; none else."""
    params = state.params
    if not params.commit_reveal:
        if batch.sealed is not None or any(
            s.salt is not None for s in batch.submissions
        ):
            raise BatchError("seals or salts on a chain without commit-reveal")
        return
    if batch.sealed is None:
        raise BatchError("a commit-reveal round needs the closed seals")
    seals = batch.sealed.seals
    if (seals.run, seals.round) != (batch.run, batch.round):
        raise BatchError("the seals were closed for another round")
    problem = batch.sealed.problem(params.validators, params.quorum)
    if problem is not None:
        raise BatchError(f"sealed: {problem}")
    # Each seal is opened by a submission or recorded not-revealed.
    if len(batch.submissions) + len(seals.seals) > MAX_SUBMISSIONS:
        raise BatchError(f"more than {MAX_SUBMISSIONS} submissions and seals")


_spare_lock = threading.Lock()
_spare: list[IntArray] = []  # the last round's update matrix, at most one


def update_matrix(rows: int, size: int) -> IntArray:
    """An int64 ``(rows, size)`` matrix for a round's updates (contents undefined).

    The last round's matrix is reused where it fits and nothing holds it any more
    (every view of an array references it, so its reference count tells): pages
    a process touches for the first time cost more than the checks that fill
    them (0.6-1.4 s for the 300 MB of 1,000 quickstart updates on the benchmark
    machine). A matrix more than twice the rows needed is not kept.
    """
    if rows == 0:
        return np.empty((0, size), dtype=np.int64)  # the kept matrix stays kept
    with _spare_lock:
        spare = _spare.pop() if _spare else None
    # Two references: ``spare`` and getrefcount's argument; a third is a view.
    if spare is not None and (
        sys.getrefcount(spare) > 2
        or spare.shape[1] != size
        or not rows <= spare.shape[0] <= 2 * rows
    ):
        spare = None
    if spare is None:
        spare = np.empty((rows, size), dtype=np.int64)
    with _spare_lock:
        _spare[:] = [spare]
    return spare[:rows]


def _sort_key(v: Verdict, sub: SubmissionRef) -> tuple[bytes, int, bytes, bytes]:
    return (v.miner or b"", sub.node, sub.envelope or b"", sub.signature or b"")


def check_all(
    state: ChainState, batch: RoundBatch, payloads: Mapping[bytes, bytes]
) -> list[Verdict]:
    """Every submission's own verdict (with its agreed score), in canonical order.

    The updates that pass sit in one int64 matrix, a row each (their ``flat``).
    """
    scores = agreed(state, batch)
    sealed = None if batch.sealed is None else batch.sealed.seals
    signed = [check_signed(state, sub, sealed) for sub in batch.submissions]
    # A row for each signed submission whose payload is at hand, no more: the
    # updates that pass are written into it (the others' rows stay untouched).
    present = [
        envelope is not None and sub.payload in payloads
        for (_, envelope), sub in zip(signed, batch.submissions, strict=True)
    ]
    matrix = update_matrix(sum(present), state.layout.size)
    free = iter(matrix)
    checked = []
    for (verdict, envelope), sub, score, here in zip(
        signed, batch.submissions, scores, present, strict=True
    ):
        if envelope is not None:
            row = next(free) if here else None
            verdict.reason = check_update(state, envelope, sub, payloads, verdict, row)
        verdict.score = score
        checked.append((verdict, sub))
    check_openings(state, checked)
    if sealed is not None:
        checked += unrevealed(sealed, [v for v, _ in checked])
    checked.sort(key=lambda pair: _sort_key(*pair))
    return [v for v, _ in checked]


def unrevealed(
    sealed: SealSet, verdicts: list[Verdict]
) -> list[tuple[Verdict, SubmissionRef]]:
    """A ``not-revealed`` verdict for each seal that no reveal opened.

    Recorded with the miner that signed the seal and the seal as its commitment,
    so a miner that seals and walks away (or sends junk in its place) is on the
    ledger under its key, and earns nothing.
    """
    revealed = {v.node for v in verdicts if v.salt is not None}
    return [
        (
            Verdict(s.node, s.miner, s.seal, 0, Reason.NOT_REVEALED),
            SubmissionRef(s.node, None, None, None),
        )
        for s in sealed.seals
        if s.node not in revealed
    ]


def agreed(state: ChainState, batch: RoundBatch) -> list[int | None]:
    """The committee's agreed score of each submission (batch order).

    On a scored chain, a batch without a quorum of valid score vectors is the
    coordinator's fault: :class:`BatchError`, no block.
    """
    if not state.params.robust.scored:
        return [None] * len(batch.submissions)
    params = state.params
    try:
        return agreed_scores(
            batch.scores,
            params.validators,
            params.quorum,
            run=params.run,
            round_=batch.round,
            digest=batch.scores_digest(),
            count=len(batch.submissions),
        )
    except ScoreError as exc:
        raise BatchError(str(exc)) from exc


def reject_low_scores(
    config: RobustConfig, passed: list[Verdict], keep: list[int]
) -> list[int]:
    """On a scored chain, updates scoring below the threshold leave the round.

    ``keep`` indexes ``passed``; copy-group representatives (already rejected)
    that score low leave the aggregate too. Returns the positions that stay.
    """
    if not config.scored:
        return keep
    staying = []
    for i in keep:
        v = passed[i]
        if v.score is None or v.score < config.score_threshold:
            if v.accepted:
                v.reason = Reason.LOW_SCORE
            v.flat = None
        else:
            staying.append(i)
    return staying


def register_and_dedupe(state: ChainState, verdicts: list[Verdict]) -> list[bytes]:
    """Register new miners; keep one submission per miner.

    Returns the miners this round registers (open registration), in canonical order.
    """
    registered: list[bytes] = []
    seen: set[bytes] = set()
    open_registration = state.params.registration == "open"
    for v in verdicts:
        if v.miner is None or v.reason in NOT_REGISTERING:
            continue
        new = v.miner not in state.miners and v.miner not in registered
        if open_registration and new:
            registered.append(v.miner)
        if v.accepted:
            if v.miner in seen:
                v.reason, v.flat = Reason.DUPLICATE_SUBMISSION, None
            seen.add(v.miner)
    return registered


def reject_copies(
    config: RobustConfig, passed: list[Verdict], rows: IntArray
) -> list[int]:
    """Reject identical and nearly identical updates; one of each group counts.

    Nobody can tell who copied whom, so no member of a group is paid; the group's
    first member (canonical order) still enters the aggregate once, so copying an
    honest update neither removes it nor multiplies it. ``rows`` are the passed
    updates; returns the positions the robust stage combines, in canonical order.
    """
    digests = [v.update_digest or b"" for v in passed]
    groups = copy_groups(rows, digests, config.copy_tolerance_ppm)
    repeated = {c for c, k in Counter(digests).items() if k > 1}
    left_out: set[int] = set()
    for group in groups:
        for i in group:
            passed[i].reason = (
                Reason.COPIED_UPDATE if digests[i] in repeated else Reason.NEAR_COPY
            )
        left_out |= set(group[1:])
        for i in group[1:]:
            passed[i].copy_of = passed[group[0]]
    for i in left_out:
        passed[i].flat = None
    return [i for i in range(len(passed)) if i not in left_out]


def stack_and_free(passed: list[Verdict]) -> IntArray:
    """The passed updates as one int64 matrix in ``passed``'s order, copied nowhere.

    Each update already sits in a row of the round's matrix (:func:`check_all`,
    in submission order); the rows are moved into canonical order in place and
    the verdicts let go of theirs, so the round holds each update once.
    """
    held = [v for v in passed if v.flat is not None]
    matrix = held[0].flat.base  # type: ignore[union-attr]
    assert isinstance(matrix, np.ndarray) and matrix.ndim == 2
    start, stride = matrix.ctypes.data, matrix.strides[0]
    order = [(v.flat.ctypes.data - start) // stride for v in held]  # type: ignore[union-attr]
    for v in held:
        v.flat = None
    # The base may be a reused matrix with spare rows past the round's.
    return permute_rows(matrix[: max(order) + 1], order)


def permute_rows(matrix: IntArray, order: list[int]) -> IntArray:
    """``matrix[order]`` (distinct rows) as a view of ``matrix``, moved in place.

    Rows past ``len(order)`` are left in any order. One spare row: each cycle of
    the permutation is followed once.
    """
    n = matrix.shape[0]
    listed = set(order)
    source = order + [i for i in range(n) if i not in listed]
    spare = np.empty(matrix.shape[1], dtype=matrix.dtype)
    done = [False] * n
    for first in range(n):
        if done[first] or source[first] == first:
            continue
        spare[:] = matrix[first]
        j = first
        while source[j] != first:
            matrix[j] = matrix[source[j]]
            done[j] = True
            j = source[j]
        matrix[j] = spare
        done[j] = True
    return matrix[: len(order)]


def keep_rows(rows: IntArray, keep: list[int]) -> IntArray:
    """``rows[keep]`` for ascending ``keep``, moved down in place (a view)."""
    for j, i in enumerate(keep):
        if i != j:
            rows[j] = rows[i]
    return rows[: len(keep)]


def contributions(
    state: ChainState, passed: list[Verdict]
) -> tuple[list[Verdict], IntArray | None]:
    """The verdicts whose updates the robust stage combines, and those updates.

    The updates stay in the round's matrix, moved in place (at 1,000 miners of
    the quickstart CNN a copy of all updates is 300 MB; a row scores its verdict
    later): copies are set aside, then low scores.
    """
    if not passed:
        return [], None
    rows = stack_and_free(passed)
    config = state.params.robust
    keep = reject_low_scores(config, passed, reject_copies(config, passed, rows))
    if len(keep) < len(passed):
        rows = keep_rows(rows, keep)
    return [passed[i] for i in keep], rows if keep else None


def private_aggregate(
    state: ChainState, contributing: list[Verdict], rows: IntArray | None, seed: bytes
) -> tuple[Arrays, bytes, IntArray | None, ClipStep | None]:
    """The next model of a DP chain: the noised mean of clipped updates.

    Replaces the robust stage (``Params`` admits only the plain mean with DP);
    every round adds noise, even one where no update counts, so whether a round
    spends privacy never depends on anyone's data. Qualities are not measured
    (they would publish a function of each update): every accepted update stands
    at 1e6 and the pool is shared equally. Server momentum, post-processing of
    the noised aggregate, still applies. Under adaptive clipping, also the
    round's clip step (the clip norm used and the noised count that moves it).
    """
    layout = state.layout
    size = layout.float_size
    floats = rows[:, :size] if rows is not None else np.zeros((0, size), dtype=np.int64)
    move = np.zeros(layout.size, dtype=np.int64)
    move[:size], step = private_mean(
        floats, state.params.privacy, seed, size, state.dp_clip_units
    )
    for v in contributing:
        if v.accepted:
            v.quality_ppm = PPM
    move = momentum_step(move, state.aggregate, state.params.robust.momentum_ppm, size)
    model = apply_aggregate(state.model, layout, move)
    kept = move if state.params.robust.keeps_aggregate else None
    return model, model_digest(model), kept, step


def privacy_claim(state: ChainState, batch: RoundBatch) -> Spent | None:
    """The batch's privacy claim, checked: ``BatchError`` if this round may not run.

    The claim must match this validator's own accountant (never below it) and stay
    within the chain's budget; the committee refuses the round otherwise.
    """
    config = state.params.privacy
    if not config.on:
        if batch.privacy is not None:
            raise BatchError("a privacy claim on a chain without DP")
        return None
    try:
        own = spent(config, batch.round)
    except Exception as exc:  # the accountant is a library: its failure, not ours
        raise BatchError(f"privacy accountant failed: {exc}") from exc
    claim = batch.privacy
    if claim is None or not within_tolerance(claim, own):
        raise BatchError(f"privacy claim {claim} does not match the accountant's {own}")
    target = config.target_epsilon_micro
    # Either figure past the target refuses: a claim one millionth short of this
    # validator's own may not slip a round under the budget.
    if target and max(claim.epsilon_micro, own.epsilon_micro) > target:
        raise BatchError(
            f"privacy budget exhausted: round {batch.round} would bring epsilon "
            f"to {claim.epsilon:.6f}, above the target {target / PPM:.6f}"
        )
    return claim


def aggregate(
    state: ChainState, contributing: list[Verdict], rows: IntArray | None
) -> tuple[Arrays, bytes, IntArray | None]:
    """The next model, its digest and the move the chain keeps.

    Runs the chain's robust stage on the contributing updates (``rows``, one per
    verdict): updates a selecting rule drops become ``not-selected``, clipped ones
    are flagged, and each update still accepted is scored against
    :func:`quality_reference` (a quality below the noise floor counts as 0). The
    model moves by the aggregate plus the server momentum's share of the last move,
    held within the range of what the rule combined (:func:`within_bounds`).
    """
    config = state.params.robust
    if not contributing or rows is None:
        return state.model, state.model_digest, state.aggregate
    # A linear opening recomputes the model from the sum alone: no box there;
    # and none on chains from before the box (they replay as certified).
    boxed = (
        config.momentum_ppm > 0
        and config.momentum_box
        and state.aggregate is not None
        and not state.params.linear_auditable
    )
    result = robust_aggregate(
        config,
        rows,
        capped_weights([v.examples for v in contributing]),
        seed=round_seed(state, contributing),
        previous=state.aggregate,
        bounds=boxed,
    )
    for i in result.clipped:
        if contributing[i].accepted:
            contributing[i].clipped = True
    for i in result.excluded:
        v = contributing[i]
        if v.accepted:
            v.reason = Reason.NOT_SELECTED
    floor = noise_floor_ppm(rows.shape[1])
    reference = quality_reference(config, rows, result.aggregate)
    for i, v in enumerate(contributing):
        if v.accepted:
            ref_flat, ref_sq = as_float(reference(i))
            # Exact as float64: every |unit| < 2**31.
            quality = quality_ppm(rows[i].astype(np.float64), ref_flat, ref_sq)
            v.quality_ppm = quality if quality >= floor else 0
    size = state.layout.float_size
    move = momentum_step(result.aggregate, state.aggregate, config.momentum_ppm, size)
    if boxed and result.low is not None and result.high is not None:
        move = within_bounds(move, result.low, result.high, size)
    model = apply_aggregate(state.model, state.layout, move)
    kept = move if config.keeps_aggregate else None
    return model, model_digest(model), kept


def quality_reference(
    config: RobustConfig, rows: IntArray, aggregate: IntArray
) -> Callable[[int], IntArray]:
    """What each accepted update's quality (and so its pay) is measured against.

    The robust aggregate; but where the aggregator is the mean (``off``,
    ``default``), a mean the attackers helped shape would pay them for it, so the
    coordinate-wise median of the *other* updates, which fewer than half cannot
    move outside the honest range. Leave-one-out, because an update pulls the
    median of all towards itself in every coordinate: Gaussian-noise attackers,
    scored against the median they were part of, took 10.8 % of the pool under
    ``default`` at 30 % attackers, against the median of the others 0.00 %
    (``benchmarks/robustness.py``); label flippers took 31 % against the mean.
    """
    if config.aggregator != Aggregator.MEAN:
        return lambda i: aggregate
    n = rows.shape[0]
    if n < 2:
        return lambda i: median(rows)
    stats = leave_one_out_stats(rows)
    return lambda i: leave_one_out_median(stats, n, rows[i])


def linear_opening(
    verdicts: list[Verdict], contributing: list[Verdict], rows: IntArray | None
) -> LinearOpening | None:
    """The opening of the round's weighted sum (Pedersen chains, the plain mean).

    The weights are the mean's own (:func:`capped_weights`), the total is the
    mean's numerator ``sum(w_i m_i)`` in int64 (within range: weights sum below
    2**31, units below 2**32), and the blinding ``sum(w_i r_i) mod q``; with each
    counted miner's envelope signature (the audit rebuilds the envelope from the
    block and checks its miner committed to that commitment and claim), and each
    copy group (its counted member, the others, and for exact copies the
    difference of blinding factors, which proves the commitments open to one
    update without opening either).
    """
    if not contributing or rows is None:
        return None
    from pot_flower.zk.pedersen import ORDER

    weights = capped_weights([v.examples for v in contributing])
    position = {id(v): i for i, v in enumerate(verdicts)}
    total = np.zeros(rows.shape[1], dtype=np.int64)
    for row, w in zip(rows, weights, strict=True):
        total += row * w
    blinding = sum(
        w * (v.blinding or 0) for v, w in zip(contributing, weights, strict=True)
    )
    groups: dict[int, list[CopyMember]] = {}
    counted = {id(v) for v in contributing}
    for v in verdicts:
        first = v.copy_of
        if first is not None and id(first) in counted:
            exact = v.update_digest == first.update_digest
            delta = ((v.blinding or 0) - (first.blinding or 0)) % ORDER
            groups.setdefault(position[id(first)], []).append(
                CopyMember(position[id(v)], delta if exact else None)
            )
    return LinearOpening(
        tuple((position[id(v)], w) for v, w in zip(contributing, weights, strict=True)),
        total.astype("<i8").tobytes(),
        blinding % ORDER,
        tuple(v.signature or b"" for v in contributing),
        tuple(CopyGroup(k, tuple(m)) for k, m in sorted(groups.items())),
    )


CLAIM_CAP_MULTIPLE = 2
"""Claims weigh at most this multiple of the round's median claim."""


def capped_weights(examples: list[int]) -> list[int]:
    """Claimed examples capped at twice the round's median claim.

    A miner cannot buy weight by claiming more: past the cap, every claim weighs
    the same, and Byzantine miners (fewer than half) cannot move the median. Twice
    the median, not the median itself, so that honest miners with more data than
    most keep FedAvg's weighting (measured: the median cap cost up to 0.7 points
    of accuracy on Dirichlet(0.5) partitions, twice the median none).
    """
    cap = CLAIM_CAP_MULTIPLE * lower_median(examples)
    return [min(e, cap) for e in examples]


def round_seed(state: ChainState, accepted: list[Verdict]) -> bytes:
    """The seed of the round's random choices (bucketing).

    Fixed only once the accepted updates are: the round's nonce and their
    commitments, in canonical order.
    """
    commitments = [v.commitment or b"" for v in accepted]
    return hashlib.sha256(SEED_DOMAIN + encode([state.nonce(), commitments])).digest()


def verified_certificate(
    state: ChainState, certificate: Certificate | None
) -> Certificate | None:
    """The batch's certificate of the head block, if it verifies."""
    if certificate is None:
        return None
    try:
        if certificate.height != state.height or certificate.block != state.head:
            raise CertificateError("certifies another block")
        certificate.verify(state.params.certifiers)
    except CertificateError:
        return None
    return certificate


def pay(
    state: ChainState, verdicts: list[Verdict], certificate: Certificate | None
) -> tuple[tuple[ValidatorFee, ...], int, dict[bytes, int]]:
    """Settle the round: rewards and reputations on the verdicts.

    Returns the validators' fees, the total minted and the chain's reputations
    after the round.
    """
    params = state.params
    fee = fee_pool(params.emission, params.validator_fee_ppm)
    signers = certificate.signers if certificate is not None else []
    fee_shares = largest_remainder(fee, [1] * len(signers)) if signers else []
    settled = settle(params, state.reputation, verdicts)
    for v, reward, reputation in zip(
        verdicts, settled.rewards, settled.reputations, strict=True
    ):
        v.reward, v.reputation_ppm = reward, reputation
    fees = tuple(
        ValidatorFee(i, share) for i, share in zip(signers, fee_shares, strict=True)
    )
    return fees, sum(settled.rewards) + sum(fee_shares), settled.reputation


def records(
    verdicts: list[Verdict], noise_key: bytes | None
) -> tuple[SubmissionRecord, ...]:
    """The block's records; on a DP chain with commitments blinded by the key.

    Hash commitments only: a Pedersen commitment hides the update already, and
    a ``not-revealed`` record's is its seal, public in the block anyway. A
    blinded record keeps no salt: with the seal, it would unblind the hash.
    """
    out = [v.record() for v in verdicts]
    if noise_key is None:
        return tuple(out)
    return tuple(
        replace(r, commitment=blind_commitment(noise_key, r.commitment), salt=None)
        if r.commitment is not None
        and len(r.commitment) == HASH_COMMITMENT_SIZE
        and r.reason != Reason.NOT_REVEALED
        else r
        for r in out
    )


def execute_round(
    state: ChainState,
    batch_bytes: bytes,
    payloads: Mapping[bytes, bytes],
    noise_key: bytes | None = None,
) -> RoundOutcome:
    """Execute one round's batch; raise :class:`BatchError` if it is not executable.

    ``payloads`` maps payload digests to canonical array bytes; each is re-hashed
    before use, so a wrong or missing payload only rejects its own submission.
    ``noise_key`` is the committee's secret noise key, which a DP chain needs
    (:mod:`pot_flower.protocol.privacy.mechanism`).
    """
    batch = parse_batch(state, batch_bytes)
    claim = privacy_claim(state, batch)
    if claim is not None and noise_key is None:
        raise BatchError("a DP round needs the committee's noise key")
    verdicts = check_all(state, batch, payloads)
    registered = register_and_dedupe(state, verdicts)
    passed = [v for v in verdicts if v.accepted]
    step: ClipStep | None = None
    opening: LinearOpening | None = None
    if claim is not None and noise_key is not None:
        seed = noise_seed(noise_key, state.params.run, batch.round, batch.submissions)
        new_model, new_digest, kept, step = private_aggregate(
            state, *contributions(state, passed), seed
        )
    else:
        contributing, rows = contributions(state, passed)
        new_model, new_digest, kept = aggregate(state, contributing, rows)
        if state.params.linear_auditable:
            opening = linear_opening(verdicts, contributing, rows)
    certificate = verified_certificate(state, batch.previous_certificate)
    fees, minted, reputation = pay(state, verdicts, certificate)
    block = RoundBlock(
        height=state.height + 1,
        run=state.params.run,
        previous=state.head,
        base=state.model_digest,
        nonce=state.nonce(),
        model=new_digest,
        minted=minted,
        registrations=tuple(registered),
        submissions=records(verdicts, noise_key if claim is not None else None),
        validator_fees=fees,
        privacy=claim,
        clipping=step,
        opening=opening,
        sealed=batch.sealed,
    )
    body = block.to_bytes()
    digest = block_hash(body)
    for v in verdicts:
        v.flat = v.blinding = None  # free the arrays; the block has what matters
    next_state = replace(
        state,
        height=state.height + 1,
        head=digest,
        model=new_model,
        model_digest=new_digest,
        miners=state.miners | set(registered),
        aggregate=kept,
        reputation=reputation,
        dp_clip_units=(
            state.dp_clip_units
            if step is None
            else next_clip_norm(
                step, state.params.privacy, state.params.norm_bound_units
            )
        ),
    )
    return RoundOutcome(body, digest, next_state, tuple(verdicts), certificate)
