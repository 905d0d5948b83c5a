"""``pot ledger audit``: the model is the weighted sum of what the miners committed to.

On a chain whose updates are bound by Pedersen commitments and combined by the
plain weighted mean (:func:`~pot_flower.protocol.commitments.linear_auditable`),
every round block records the updates that entered the mean, their weights, the
weighted sum ``T`` and its blinding ``R`` (:class:`LinearOpening`). From the
ledger alone, without any individual update, this audit checks each round:

1. the weights are the mean's own: every accepted update (and one member of each
   copy group) is in, nothing else, weighted by its capped claimed examples;
   each counted miner signed the envelope the block's fields rebuild (its
   commitment and its claim are its own, not a quorum's); exact copies are
   proved equal by their blinding difference;
2. ``sum(w_i C_i) == Commit(T, R)``: ``T`` is the weighted sum of exactly the
   vectors those miners committed to in their signed envelopes;
3. the certified model is the previous one moved by ``round(T / sum(w))`` plus
   the server momentum's share of the last move, recomputed bit for bit from
   genesis's model.

What it does not prove: that an update was trained honestly (only that it is the
one its miner committed to), that a rejected update deserved its verdict (the
ledger does not reveal it), that near copies were near (they are equal only
within a tolerance, which hiding commitments cannot show), or anything of
rounds under rules that are not
linear in the updates (clipping, median, trimmed mean, Krum, NNM, DP noise):
those chains record no opening and the audit refuses them. The certificates and
the hash chain are ``pot ledger verify``'s: run both. A committee quorum that
certified a model other than the weighted sum passes ``verify`` and fails here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pot_flower.audit.content import COUNTED_ONCE, rebuilt_envelope
from pot_flower.audit.report import LedgerReadError
from pot_flower.audit.rows import read_blocks
from pot_flower.protocol.aggregation import apply_aggregate, momentum_step
from pot_flower.protocol.block import (
    BlockFormatError,
    GenesisBlock,
    RoundBlock,
    SubmissionRecord,
    parse_block,
)
from pot_flower.protocol.envelope import EnvelopeError, verify_envelope
from pot_flower.protocol.execution import capped_weights
from pot_flower.protocol.fixedpoint import IntArray
from pot_flower.protocol.layout import Layout
from pot_flower.protocol.model import (
    Arrays,
    ModelFormatError,
    decode_arrays,
    model_digest,
)
from pot_flower.protocol.params import Params
from pot_flower.protocol.robust.geometry import rounded_div
from pot_flower.validator.ledger import MODELS_DIR, StoredBlock
from pot_flower.zk.pedersen import weighted_sum

if TYPE_CHECKING:
    from pot_flower.zk.pedersen import FastBackend


class AuditFailure(Exception):
    """A round whose model the commitments do not account for."""


@dataclass
class OpeningReport:
    """What :func:`audit_openings` found."""

    ok: bool
    rounds: int = 0
    """Round blocks audited (their models recomputed)."""
    opened: int = 0
    """Rounds whose weighted sum was opened against the commitments."""
    problem: str | None = None
    height: int | None = None


def audit_openings(path: Path) -> OpeningReport:
    """Audit a validator's ledger directory (see the module's docstring)."""
    report = OpeningReport(ok=False)
    try:
        stored = read_blocks(path)
        _audit(path, stored, report)
    except (LedgerReadError, AuditFailure) as exc:
        report.problem = str(exc)
        return report
    report.ok = True
    return report


def _audit(path: Path, stored: list[StoredBlock], report: OpeningReport) -> None:
    if not stored or stored[0].height != 0:
        raise AuditFailure("the ledger has no genesis block")
    genesis = _parse(stored[0].body, 0)
    if not isinstance(genesis, GenesisBlock):
        raise AuditFailure("block 0: not a genesis block")
    params = genesis.params
    if not params.linear_auditable:
        raise AuditFailure(
            "this chain records no openings: its updates are "
            f"{params.commitment.value}-committed and combined by "
            f"{_rule(params)}; only Pedersen commitments under the plain "
            "weighted mean without DP can be opened from the ledger"
        )
    model = _genesis_model(path, genesis)
    layout = Layout(model)
    digest = genesis.model
    previous: IntArray | None = None
    pending: list[_Equation] = []
    current = 0
    try:
        for row in stored[1:]:
            current = report.height = row.height
            block = _parse(row.body, row.height)
            if not isinstance(block, RoundBlock) or block.height != row.height:
                raise AuditFailure(f"block {row.height}: not the round block expected")
            if block.base != digest:
                raise AuditFailure(
                    f"block {block.height}: trains from another model than the "
                    "previous block certified"
                )
            if block.opening is None:
                _check_nothing_entered(block)
            else:
                equation = _opening_equation(block, params, layout.size)
                pending.append(equation)
                move = rounded_div(equation.total, sum(equation.weights))
                moved = momentum_step(
                    move, previous, params.robust.momentum_ppm, layout.float_size
                )
                model = apply_aggregate(model, layout, moved)
                digest = model_digest(model)
                previous = moved if params.robust.keeps_aggregate else None
                report.opened += 1
            if block.model != digest:
                raise AuditFailure(
                    f"block {block.height}: the certified model is not the previous "
                    "model moved by the weighted sum its miners committed to"
                )
            report.rounds += 1
    except AuditFailure:
        # An earlier block whose sum does not open is the first failure.
        _check_equations([e for e in pending if e.height < current])
        raise
    _check_equations(pending)


def _rule(params: Params) -> str:
    if params.privacy.on:
        return "central DP"
    pre = "+".join(p.value for p in params.robust.pre_aggregators)
    return f"{pre + ' then ' if pre else ''}{params.robust.aggregator.value}"


def _parse(body: object, height: int) -> GenesisBlock | RoundBlock:
    if not isinstance(body, bytes):
        raise AuditFailure(f"block {height}: the body is not bytes")
    try:
        return parse_block(body)
    except BlockFormatError as exc:
        raise AuditFailure(f"block {height}: malformed: {exc.detail}") from exc


def _genesis_model(path: Path, genesis: GenesisBlock) -> Arrays:
    directory = path if path.is_dir() else path.parent
    try:
        data = (directory / MODELS_DIR / genesis.model.hex()).read_bytes()
        model = decode_arrays(data)
    except (OSError, ModelFormatError) as exc:
        raise AuditFailure(f"block 0: the initial model cannot be read: {exc}") from exc
    if model_digest(model) != genesis.model:
        raise AuditFailure("block 0: the stored initial model is not genesis's")
    return model


def _check_nothing_entered(block: RoundBlock) -> None:
    if any(s.accepted or s.reason in COUNTED_ONCE for s in block.submissions):
        raise AuditFailure(
            f"block {block.height}: updates entered the mean but no opening is recorded"
        )


@dataclass(frozen=True)
class _Equation:
    """One round's ``sum(w_i C_i) == Commit(T, R)``, checked with the others."""

    height: int
    commitments: list[bytes]
    weights: list[int]
    total: IntArray
    blinding: int


def _opening_equation(block: RoundBlock, params: Params, size: int) -> _Equation:
    """The round's opening equation, after checking it against the block's records."""
    from pot_flower.zk.pedersen import CommitmentError, fast_backend

    opening = block.opening
    assert opening is not None
    if len(opening.total) != 8 * size:
        raise AuditFailure(
            f"block {block.height}: the opened sum is not the model's size"
        )
    subs = block.submissions
    indices = [i for i, _ in opening.weights]
    entered = {i for i, s in enumerate(subs) if s.accepted}
    if not entered <= set(indices) or any(
        not (subs[i].accepted or subs[i].reason in COUNTED_ONCE) for i in indices
    ):
        raise AuditFailure(
            f"block {block.height}: the opening's updates are not the accepted ones"
        )
    weights = [w for _, w in opening.weights]
    if weights != capped_weights([subs[i].examples for i in indices]):
        raise AuditFailure(
            f"block {block.height}: the weights are not the capped claimed examples"
        )
    for i, signature in zip(indices, opening.signatures, strict=True):
        if not _signed_by_miner(block, params, subs[i], signature):
            raise AuditFailure(
                f"block {block.height}: submission {i}'s commitment and claim are "
                "not what its miner signed"
            )
    try:
        _check_copies(block, set(indices), fast_backend())
    except CommitmentError as exc:
        raise AuditFailure(f"block {block.height}: {exc}") from exc
    return _Equation(
        block.height,
        [subs[i].commitment or b"" for i in indices],
        weights,
        opening.vector,
        opening.blinding,
    )


def _check_equations(equations: list[_Equation]) -> None:
    """Every round's equation at once, by random linear combination.

    ``sum_h rho_h (sum_i w_hi C_hi) == Commit(sum_h rho_h T_h, sum_h rho_h R_h)``
    with 128-bit ``rho`` hashed from everything checked: one multi-scalar
    multiplication over the model for the whole ledger. If it fails, round by
    round, to name the first block that does not open.
    """
    if not equations or _holds(equations):
        return
    for equation in equations:
        if not _holds([equation]):
            raise AuditFailure(
                f"block {equation.height}: the weighted sum does not open the "
                "miners' commitments"
            )


def _holds(equations: list[_Equation]) -> bool:
    from pot_flower.zk.pedersen import ORDER, CommitmentError, fast_backend

    h = hashlib.sha256(b"pot-flower/ledger-audit/v1")
    for e in equations:
        h.update(e.height.to_bytes(8, "big") + e.blinding.to_bytes(32, "big"))
        h.update(b"".join(e.commitments) + np.asarray(e.total, "<i8").tobytes())
        h.update(b"".join(w.to_bytes(8, "big") for w in e.weights))
    seed = h.digest()
    rho = [
        int.from_bytes(hashlib.sha256(seed + k.to_bytes(8, "big")).digest()[:16], "big")
        for k in range(len(equations))
    ]
    points = [c for e in equations for c in e.commitments]
    scalars = [
        (r * w) % ORDER for r, e in zip(rho, equations, strict=True) for w in e.weights
    ]
    # T entries reach 2**62: split each into 32-bit halves so the limbed sums
    # stay within int64, then join them in Python integers.
    totals = [e.total for e in equations]
    low = weighted_sum([t & 0xFFFFFFFF for t in totals], rho)
    high = weighted_sum([t >> 32 for t in totals], rho)
    summed = [lo + (hi << 32) for lo, hi in zip(low, high, strict=True)]
    blinding = sum(r * e.blinding for r, e in zip(rho, equations, strict=True))
    fast = fast_backend()
    try:
        left = fast.combine(points, scalars)
        right = fast.commit_wide(summed, blinding % ORDER)
    except CommitmentError:
        return False
    return left == right


def _signed_by_miner(
    block: RoundBlock, params: Params, record: SubmissionRecord, signature: bytes
) -> bool:
    """Whether the record's miner signed the envelope the block's fields rebuild."""
    envelope = rebuilt_envelope(block, params, record)
    try:
        return envelope is not None and verify_envelope(envelope, signature) is not None
    except EnvelopeError:
        return False


def _check_copies(block: RoundBlock, counted: set[int], fast: FastBackend) -> None:
    """Each copy group entered once, through its counted member.

    Exact copies are proved equal by their blinding difference:
    ``C_j - C_first = d * H``.
    """
    assert block.opening is not None
    subs = block.submissions
    grouped: set[int] = set()
    for group in block.opening.copies:
        members = [m.index for m in group.members]
        if (
            group.counted not in counted
            or any(i in counted for i in members)
            or any(
                subs[i].reason not in COUNTED_ONCE for i in [group.counted, *members]
            )
        ):
            raise AuditFailure(
                f"block {block.height}: a copy group does not enter the mean once"
            )
        grouped.update([group.counted, *members])
        first = subs[group.counted].commitment or b""
        for m in group.members:
            if m.delta is None:
                continue  # a near copy: equal only within tolerance, not provable
            difference = fast.combine([subs[m.index].commitment or b"", first], [1, -1])
            if difference != fast.commit(np.zeros(0, dtype=np.int64), m.delta):
                raise AuditFailure(
                    f"block {block.height}: submission {m.index} is not a copy of "
                    f"submission {group.counted}"
                )
    if any(subs[i].reason in COUNTED_ONCE and i not in grouped for i in counted):
        raise AuditFailure(
            f"block {block.height}: a set-aside copy entered outside its group"
        )
