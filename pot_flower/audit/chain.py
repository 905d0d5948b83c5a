"""The audit itself: every block in height order, then completeness.

Every block is checked in a fixed order: its row (storage classes, height), its
hash, its certificate under the pinned or genesis committee, then its content
(canonical body, links, verdicts, rewards, fees) and its model file.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pot_flower.audit.checkpoint import (
    Checkpoint,
    CheckpointStore,
    FileId,
    certificate_digest,
)
from pot_flower.audit.completeness import _after_last, _wal_note
from pot_flower.audit.content import (
    COUNTED_ONCE,
    bad_block,
    check_certificate,
    check_clipping,
    check_duplicates,
    check_privacy,
    check_scores,
    check_seals,
)
from pot_flower.audit.report import (
    AuditReport,
    BadBlock,
    Failure,
    LedgerReadError,
    Pins,
)
from pot_flower.audit.rows import RawRow, _rows_by_height, read_rows, storage_class
from pot_flower.audit.wal import _open_regular, check_wal
from pot_flower.encoding import Decoded, DecodeError, decode
from pot_flower.protocol.block import (
    GENESIS_VERSION,
    BlockFormatError,
    GenesisBlock,
    RoundBlock,
    SubmissionRecord,
)
from pot_flower.protocol.certificate import (
    GENESIS_PREVIOUS,
    Certificate,
    CertificateError,
    block_hash,
)
from pot_flower.protocol.envelope import round_nonce
from pot_flower.protocol.execution import NOT_REGISTERING
from pot_flower.protocol.params import Params
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import fee_pool, largest_remainder
from pot_flower.protocol.settlement import settle
from pot_flower.validator.ledger import MODELS_DIR, resolve


@dataclass
class _Chain:
    """What the audit carries from one block to the next."""

    params: Params | None = None
    previous_hash: bytes = GENESIS_PREVIOUS
    previous_model: bytes = b""
    previous_signers: list[int] = field(default_factory=list)
    miners: set[bytes] = field(default_factory=set)
    reputation: dict[bytes, int] = field(default_factory=dict)
    models_seen: set[bytes] = field(default_factory=set)
    dp_clip_units: int | None = None  # the next round's, under adaptive clipping


class _Auditor:
    """Checks blocks in height order against the pins."""

    def __init__(self, report: AuditReport, pins: Pins, models: Path) -> None:
        self.report = report
        self.pins = pins
        self.models = models
        self.chain = _Chain()
        self.certificates: list[bytes] = []  # digests, for a checkpoint
        self.model_files: dict[bytes, FileId] = {}

    # ----------------------------------------------------------- checkpoints
    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue after ``checkpoint``'s head (prefix matched, genesis audited)."""
        chain, report = self.chain, self.report
        chain.previous_hash = checkpoint.hashes[-1]
        chain.previous_model = checkpoint.previous_model
        chain.previous_signers = list(checkpoint.previous_signers)
        chain.miners = set(checkpoint.miners)
        chain.reputation = dict(checkpoint.reputation)
        chain.models_seen = set(checkpoint.models)
        chain.dp_clip_units = checkpoint.dp_clip_units
        self.model_files = dict(checkpoint.models)
        self.certificates = list(checkpoint.certificates)
        report.blocks = len(checkpoint.hashes)
        report.hashes = list(checkpoint.hashes)
        report.miner_balances = dict(checkpoint.miner_balances)
        report.validator_balances = dict(checkpoint.validator_balances)
        report.minted = checkpoint.minted
        report.resumed_at = checkpoint.height

    def checkpoint(self) -> Checkpoint:
        """What this audit concluded so far."""
        chain, report = self.chain, self.report
        return Checkpoint(
            hashes=list(report.hashes),
            certificates=list(self.certificates),
            previous_model=chain.previous_model,
            previous_signers=list(chain.previous_signers),
            miners=set(chain.miners),
            reputation=dict(chain.reputation),
            models={
                d: i for d, i in self.model_files.items() if d in chain.models_seen
            },
            dp_clip_units=chain.dp_clip_units,
            miner_balances=dict(report.miner_balances),
            validator_balances=dict(report.validator_balances),
            minted=report.minted,
        )

    def models_unchanged(self, checkpoint: Checkpoint) -> bool:
        """Whether every model file is still what the checkpoint verified.

        A file whose identity changed is re-hashed; it must still match.
        """
        for digest, identity in checkpoint.models.items():
            file = self.models / digest.hex()
            try:
                if FileId.of(file) == identity:
                    continue
                if hashlib.sha256(_read_regular(file)).digest() != digest:
                    return False
            except OSError:
                return False
        return True

    # ------------------------------------------------------------- one block
    def block(self, height: int, row: RawRow) -> None:
        """Verify block ``height`` stored in ``row``; raise :class:`BadBlock`."""
        body_bytes, digest = self._row(row)
        chain = self.chain
        block: GenesisBlock | RoundBlock
        if height == 0:
            self._genesis_hash(digest)
            value = self._decode(body_bytes)
            params = self._genesis_committee(value)
            cert = self._verify_certificate(row.certificate, height, digest, params)
            block = self._genesis(value, params)
        else:
            assert chain.params is not None
            params = chain.params
            cert = self._verify_certificate(row.certificate, height, digest, params)
            block = self._round(self._decode(body_bytes), height, params)
        model = block.model
        self._check_model(model)
        chain.previous_hash = digest
        chain.previous_model = model
        chain.previous_signers = cert.signers
        self.report.blocks += 1
        self.report.hashes.append(digest)
        self.certificates.append(certificate_digest(row.certificate))

    def _row(self, row: RawRow) -> tuple[bytes, bytes]:
        for name, value in (("hash", row.hash), ("body", row.body)):
            if not isinstance(value, bytes):
                raise BadBlock(
                    Failure.MALFORMED_ROW,
                    f"{name} is {storage_class(value)}, not a BLOB",
                )
        assert isinstance(row.body, bytes) and isinstance(row.hash, bytes)
        digest = block_hash(row.body)
        if digest != row.hash:
            raise BadBlock(
                Failure.HASH_MISMATCH, "stored hash does not match the block's bytes"
            )
        return row.body, digest

    @staticmethod
    def _decode(body_bytes: bytes) -> Decoded:
        try:
            value = decode(body_bytes)
        except DecodeError as exc:
            raise BadBlock(
                Failure.NOT_CANONICAL, f"body is not canonical: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise BadBlock(Failure.BAD_CONTENT, "the block is not a dictionary")
        return value

    def _verify_certificate(
        self, data: object, height: int, digest: bytes, params: Params
    ) -> Certificate:
        cert = check_certificate(data, height, digest)
        try:
            cert.verify(params.certifiers)
        except CertificateError as exc:
            raise BadBlock(
                Failure.BAD_CERTIFICATE, f"certificate invalid: {exc}"
            ) from exc
        return cert

    # --------------------------------------------------------------- genesis
    def _genesis_hash(self, digest: bytes) -> None:
        pin = self.pins.committee
        if pin is not None and pin.genesis_hash not in (None, digest):
            assert pin.genesis_hash is not None
            raise BadBlock(
                Failure.COMMITTEE_MISMATCH,
                "genesis hash is not the pinned genesis hash "
                f"({digest.hex()[:16]} vs {pin.genesis_hash.hex()[:16]})",
            )

    def _genesis_committee(self, value: Decoded) -> Params:
        """Genesis parameters, after checking them against the committee pin."""
        pin = self.pins.committee
        try:
            params = GenesisBlock.params_of(value)
        except BlockFormatError as exc:
            raise bad_block(exc) from exc
        if pin is not None and pin.keys:
            if params.validators != pin.keys:
                raise BadBlock(
                    Failure.COMMITTEE_MISMATCH,
                    f"genesis names another committee ({len(params.validators)} "
                    f"keys) than the one pinned by {pin.source}",
                )
            if params.quorum < pin.min_quorum:
                raise BadBlock(
                    Failure.COMMITTEE_MISMATCH,
                    f"genesis quorum {params.quorum} is below the pinned "
                    f"{pin.min_quorum}",
                )
        return params

    def _genesis(self, value: Decoded, params: Params) -> GenesisBlock:
        try:
            block = GenesisBlock.from_value(value)
        except BlockFormatError as exc:
            raise bad_block(exc) from exc
        if block.height != 0:
            raise BadBlock(Failure.BROKEN_LINK, "height field differs from the row")
        if block.previous != GENESIS_PREVIOUS:
            raise BadBlock(Failure.BROKEN_LINK, "genesis does not start the chain")
        if block.version != GENESIS_VERSION:
            raise BadBlock(Failure.BAD_CONTENT, "unknown genesis version")
        self.chain.params = params
        if params.privacy.on and params.privacy.adaptive is not None:
            self.chain.dp_clip_units = params.privacy.clip_norm_units
        if params.registration == "allow-list":
            self.chain.miners = set(params.allowed_miners)
        self.report.validators = params.validators
        self.report.run = params.run
        return block

    # ----------------------------------------------------------------- round
    def _round(self, value: Decoded, height: int, params: Params) -> RoundBlock:
        try:
            block = RoundBlock.from_value(value)
        except BlockFormatError as exc:
            raise bad_block(exc) from exc
        self._links(block, height, params)
        check_duplicates(block.submissions, params.commitment)
        check_scores(block.submissions, params.robust)
        check_seals(block, params)
        check_privacy(block, params)
        self.chain.dp_clip_units = check_clipping(
            block, params, self.chain.dp_clip_units
        )
        self._registrations(block, params)
        # A copy group enters the aggregate once (through a rejected member); DP
        # noise moves the model every round.
        moved = params.privacy.on or any(
            s.accepted or s.reason in COUNTED_ONCE for s in block.submissions
        )
        if not moved and block.model != self.chain.previous_model:
            raise BadBlock(Failure.BROKEN_LINK, "model changed with nothing accepted")
        self._rewards(block, params)
        return block

    def _links(self, block: RoundBlock, height: int, params: Params) -> None:
        chain = self.chain
        if block.height != height:
            raise BadBlock(Failure.BROKEN_LINK, "height field differs from the row")
        if block.previous != chain.previous_hash:
            raise BadBlock(
                Failure.BROKEN_LINK, "does not chain to the previous block's hash"
            )
        if block.run != params.run:
            raise BadBlock(Failure.BROKEN_LINK, "names another run")
        if block.base != chain.previous_model:
            raise BadBlock(
                Failure.BROKEN_LINK, "base model is not the previous block's model"
            )
        if block.nonce != round_nonce(params.run, height, block.previous):
            raise BadBlock(
                Failure.BROKEN_LINK, "nonce is not the chain's nonce for this round"
            )

    def _registrations(self, block: RoundBlock, params: Params) -> None:
        subs = block.submissions
        miners = self.chain.miners
        signed = [s for s in subs if s.miner is not None]
        if params.registration == "allow-list":
            expected: list[bytes] = []
            for s in signed:
                if (s.reason == Reason.UNKNOWN_MINER) != (s.miner not in miners):
                    raise BadBlock(
                        Failure.BAD_VERDICTS,
                        "unknown-miner verdicts contradict genesis",
                    )
        else:
            if any(s.reason == Reason.UNKNOWN_MINER for s in subs):
                raise BadBlock(
                    Failure.BAD_VERDICTS, "unknown-miner under open registration"
                )
            expected = []
            for s in signed:
                if s.reason in NOT_REGISTERING or s.miner in miners:
                    continue
                if s.miner is not None and s.miner not in expected:
                    expected.append(s.miner)
        if list(block.registrations) != expected:
            raise BadBlock(
                Failure.BAD_VERDICTS, "registrations do not follow from the verdicts"
            )
        miners.update(expected)

    def _rewards(self, block: RoundBlock, params: Params) -> None:
        report = self.report
        fee = fee_pool(params.emission, params.validator_fee_ppm)
        accepted: list[SubmissionRecord] = list(block.accepted)
        settled = settle(params, self.chain.reputation, block.submissions)
        if [s.reputation_ppm for s in block.submissions] != settled.reputations:
            raise BadBlock(
                Failure.BAD_REWARDS, "reputations do not follow from the verdicts"
            )
        if [s.reward for s in block.submissions] != settled.rewards:
            raise BadBlock(
                Failure.BAD_REWARDS, "miner rewards do not follow from the scores"
            )
        self.chain.reputation = settled.reputation
        signers = [f.validator for f in block.validator_fees]
        shares = [f.amount for f in block.validator_fees]
        if signers and signers != self.chain.previous_signers:
            raise BadBlock(
                Failure.BAD_REWARDS,
                "fees paid to others than the previous block's certifiers",
            )
        if shares != (largest_remainder(fee, [1] * len(signers)) if signers else []):
            raise BadBlock(
                Failure.BAD_REWARDS, "validator fees do not split the fee pool"
            )
        minted = sum(settled.rewards) + sum(shares)
        if block.minted != minted:
            raise BadBlock(
                Failure.BAD_REWARDS, f"minted {block.minted} but paid out {minted}"
            )
        balances: defaultdict[bytes, int] = defaultdict(int, report.miner_balances)
        for s in accepted:
            assert s.miner is not None
            balances[s.miner] += s.reward
        report.miner_balances = dict(balances)
        for signer, share in zip(signers, shares, strict=True):
            report.validator_balances[signer] = (
                report.validator_balances.get(signer, 0) + share
            )
        report.minted += minted

    # ----------------------------------------------------------------- model
    def _check_model(self, digest: bytes) -> None:
        if digest in self.chain.models_seen:
            return
        file = self.models / digest.hex()
        try:
            identity = FileId.of(file)  # before reading: a later write changes it
            data = _read_regular(file)
        except FileNotFoundError:
            raise BadBlock(
                Failure.MODEL_MISSING,
                f"model {digest.hex()[:16]} is missing from {self.models}",
            ) from None
        except OSError as exc:
            raise BadBlock(
                Failure.MODEL_CORRUPT,
                f"model file {digest.hex()[:16]} is unreadable: {exc.strerror or exc}",
            ) from None
        if hashlib.sha256(data).digest() != digest:
            raise BadBlock(
                Failure.MODEL_CORRUPT,
                f"model file {digest.hex()[:16]} does not match its digest",
            )
        self.chain.models_seen.add(digest)
        self.model_files[digest] = identity


def _read_regular(file: Path) -> bytes:
    """A regular file's bytes (OSError for a FIFO, device or directory)."""
    with _open_regular(file) as f:
        return f.read()


def audit_ledger(
    path: Path,
    pins: Pins | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoints: CheckpointStore | None = None,
    *,
    resume: bool = True,
) -> AuditReport:
    """Recompute the whole ledger at ``path`` under ``pins``; never raises.

    Parameters
    ----------
    path : Path
        A ledger directory or its ``ledger.sqlite``.
    pins : Pins | None
        What to trust beyond the ledger (default: nothing; see :class:`Pins`).
    progress : Callable[[int, int], None] | None
        Called with (blocks checked, blocks stored) after each block (progress bars).
    checkpoints : CheckpointStore | None
        Where this verifier keeps what earlier audits of this file concluded
        (:mod:`~pot_flower.audit.checkpoint`): a prefix stored exactly as verified
        before is re-hashed, not recomputed, and a ledger that verifies leaves a
        new checkpoint. None (default): every block is recomputed.
    resume : bool
        False: recompute every block anyway (a checkpoint is still written).

    Returns
    -------
    AuditReport
        ``ok`` if every check holds; else the first failure, its block (None for a
        ledger-level failure) and what was pinned (``committee``, ``completeness``).

    """
    pins = pins or Pins()
    report = AuditReport(
        Path(path),
        committee=pins.committee_trust,
        completeness=pins.completeness,
        pinned_by=pins.committee.source if pins.committee is not None else None,
    )
    try:
        _audit(
            report, pins, progress or (lambda done, total: None), checkpoints, resume
        )
    except BadBlock as exc:  # a ledger-level failure
        report.fail(exc.failure, exc.detail, None)
    except Exception as exc:  # a bug in a check: report it, never raise
        report.fail(Failure.UNEXPECTED, f"{type(exc).__name__}: {exc}", None)
    return report


def _audit(
    report: AuditReport,
    pins: Pins,
    progress: Callable[[int, int], None],
    checkpoints: CheckpointStore | None,
    resume: bool,
) -> None:
    try:
        rows = read_rows(report.path)
    except LedgerReadError as exc:
        raise BadBlock(Failure.UNREADABLE, str(exc)) from exc
    db_file = resolve(report.path)
    report.wal = check_wal(db_file)
    if not rows:
        report.fail(Failure.EMPTY, "missing: the ledger holds no blocks", 0)
        return
    by_height, strays = _rows_by_height(rows)
    auditor = _Auditor(report, pins, db_file.parent / MODELS_DIR)
    checkpoint = checkpoints.load(db_file) if checkpoints and resume else None
    if checkpoint is not None and not (
        _prefix_matches(by_height, checkpoint) and auditor.models_unchanged(checkpoint)
    ):
        checkpoint = None
    total = len(rows)
    height = 0
    while height in by_height:
        stored = by_height.pop(height)
        try:
            if len(stored) > 1:
                raise BadBlock(Failure.DUPLICATE, f"stored {len(stored)} times")
            if checkpoint is not None and 0 < height <= checkpoint.height:
                if height == checkpoint.height:
                    auditor.restore(checkpoint)
            else:
                auditor.block(height, stored[0])
        except BadBlock as exc:
            report.fail(exc.failure, exc.detail + _wal_note(report.wal), height)
            return
        except Exception as exc:  # a bug in a check: report it, never raise
            report.fail(Failure.UNEXPECTED, f"{type(exc).__name__}: {exc}", height)
            return
        height += 1
        progress(height, total)
    _after_last(report, pins, height, by_height, strays)
    verified_more = report.resumed_at != report.head
    if checkpoints is not None and report.ok and report.blocks > 1 and verified_more:
        checkpoints.save(db_file, auditor.checkpoint())


def _prefix_matches(by_height: dict[int, list[RawRow]], checkpoint: Checkpoint) -> bool:
    """Whether blocks ``0..h`` are stored exactly as ``checkpoint`` verified them."""
    for height, (digest, certificate) in enumerate(
        zip(checkpoint.hashes, checkpoint.certificates, strict=True)
    ):
        stored = by_height.get(height, [])
        if len(stored) != 1:
            return False
        row = stored[0]
        if not isinstance(row.body, bytes) or row.hash != digest:
            return False
        if block_hash(row.body) != digest:
            return False
        if certificate_digest(row.certificate) != certificate:
            return False
    return True
