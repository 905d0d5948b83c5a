"""Verify a ledger from its bytes alone: chain, certificates, rewards, models.

Trust starts at the genesis block, which names the committee; everything after it
must follow by recomputation. The first failing block is reported with why.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pot_flower.encoding import Decoded, DecodeError, decode
from pot_flower.ledger import MODELS_DIR, StoredBlock, resolve
from pot_flower.protocol.block import (
    GENESIS_PREVIOUS,
    Certificate,
    CertificateError,
    block_hash,
)
from pot_flower.protocol.envelope import round_nonce
from pot_flower.protocol.execution import ACCEPTED, REJECTED, Params, Reason
from pot_flower.protocol.rewards import fee_pool, largest_remainder


class BadBlock(Exception):
    """Raised inside the audit with the reason a block fails."""


@dataclass
class AuditReport:
    """What :func:`audit_ledger` found."""

    path: Path
    blocks: int = 0
    bad_block: int | None = None
    problem: str | None = None
    miner_balances: dict[bytes, int] = field(default_factory=dict)
    validator_balances: dict[int, int] = field(default_factory=dict)
    validators: tuple[bytes, ...] = ()
    minted: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_blocks(path: Path) -> list[StoredBlock]:
    """Every stored row, read-only; raises ``sqlite3.Error`` on a damaged file."""
    file = resolve(path)
    if not file.exists():
        raise FileNotFoundError(f"no ledger at {path}")
    db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        rows = db.execute(
            "SELECT height, hash, body, certificate FROM blocks ORDER BY height"
        ).fetchall()
    finally:
        db.close()
    return [
        StoredBlock(int(h), bytes(d), bytes(b), None if c is None else bytes(c))
        for h, d, b, c in rows
    ]


def _dict(value: Decoded, what: str) -> dict[str, Decoded]:
    if not isinstance(value, dict):
        raise BadBlock(f"{what} is not a dictionary")
    return value


def _int(body: dict[str, Decoded], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadBlock(f"field {key!r} is missing or not an integer")
    return value


def _bytes(body: dict[str, Decoded], key: str) -> bytes:
    value = body.get(key)
    if not isinstance(value, bytes):
        raise BadBlock(f"field {key!r} is missing or not bytes")
    return value


def audit_ledger(path: Path) -> AuditReport:
    """Recompute the whole ledger at ``path``; never raises for bad content."""
    report = AuditReport(Path(path))
    try:
        rows = read_blocks(path)
    except (sqlite3.Error, FileNotFoundError) as exc:
        report.problem = f"cannot read the ledger: {exc}"
        return report
    if not rows:
        report.problem = "the ledger is empty"
        return report
    models_dir = resolve(path).parent / MODELS_DIR
    params: Params | None = None
    previous_hash = GENESIS_PREVIOUS
    previous_model = b""
    previous_signers: list[int] = []
    for expected_height, row in enumerate(rows):
        try:
            if row.height != expected_height:
                raise BadBlock(f"expected height {expected_height}, found {row.height}")
            digest = block_hash(row.body)
            if digest != row.hash:
                raise BadBlock("stored hash does not match the block's bytes")
            try:
                body = _dict(decode(row.body), "the block")
            except DecodeError as exc:
                raise BadBlock(f"body is not canonical: {exc}") from exc
            if _int(body, "height") != row.height:
                raise BadBlock("height field differs from the row")
            if _bytes(body, "previous") != previous_hash:
                raise BadBlock("does not chain to the previous block's hash")
            if row.height == 0:
                params = _genesis(body)
                report.validators = params.validators
            else:
                assert params is not None
                _round(body, params, previous_model, previous_signers, report)
            assert params is not None
            model = _bytes(body, "model")
            _check_model(models_dir, model)
            if row.certificate is None:
                raise BadBlock("has no committee certificate")
            try:
                cert = Certificate.from_bytes(row.certificate)
                if cert.height != row.height or cert.block != digest:
                    raise CertificateError("certifies another block")
                cert.verify(params.validators, params.quorum)
            except CertificateError as exc:
                raise BadBlock(f"certificate invalid: {exc}") from exc
        except BadBlock as exc:
            report.bad_block = row.height
            report.problem = f"block {row.height}: {exc}"
            return report
        report.blocks += 1
        previous_hash = digest
        previous_model = model
        previous_signers = cert.signers
    return report


def _genesis(body: dict[str, Decoded]) -> Params:
    if body.get("kind") != "genesis":
        raise BadBlock("block 0 is not a genesis block")
    try:
        return Params.from_value(body.get("params"))
    except ValueError as exc:
        raise BadBlock(f"genesis parameters invalid: {exc}") from exc


def _check_model(models_dir: Path, digest: bytes) -> None:
    file = models_dir / digest.hex()
    if not file.exists():
        raise BadBlock(f"model {digest.hex()[:16]} is missing from {models_dir}")
    if hashlib.sha256(file.read_bytes()).digest() != digest:
        raise BadBlock(f"model file {digest.hex()[:16]} does not match its digest")


def _round(
    body: dict[str, Decoded],
    params: Params,
    previous_model: bytes,
    previous_signers: list[int],
    report: AuditReport,
) -> None:
    height = _int(body, "height")
    if body.get("kind") != "round":
        raise BadBlock("is not a round block")
    if _int(body, "run") != params.run:
        raise BadBlock("names another run")
    if _bytes(body, "base") != previous_model:
        raise BadBlock("base model is not the previous block's model")
    if _bytes(body, "nonce") != round_nonce(
        params.run, height, _bytes(body, "previous")
    ):
        raise BadBlock("nonce is not the chain's nonce for this round")
    submissions = body.get("submissions")
    if not isinstance(submissions, list):
        raise BadBlock("submissions missing")
    scores: list[int] = []
    paid: list[tuple[bytes, int]] = []
    codes = {r.value for r in Reason}
    for item in submissions:
        sub = _dict(item, "a submission")
        verdict, reason = sub.get("verdict"), sub.get("reason")
        reward = _int(sub, "reward")
        if verdict == ACCEPTED and reason == "":
            miner = _bytes(sub, "miner")
            scores.append(_int(sub, "examples") * _int(sub, "quality-ppm"))
            paid.append((miner, reward))
        elif verdict == REJECTED and reason in codes:
            if reward != 0:
                raise BadBlock("a rejected submission was paid")
        else:
            raise BadBlock(f"unknown verdict {verdict!r} / reason {reason!r}")
    fee = fee_pool(params.emission, params.validator_fee_ppm)
    expected = largest_remainder(params.emission - fee, scores)
    if [r for _, r in paid] != expected:
        raise BadBlock("miner rewards do not follow from the scores")
    fees = body.get("validator-fees")
    if not isinstance(fees, list):
        raise BadBlock("validator-fees missing")
    signers = []
    shares = []
    for entry in fees:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise BadBlock("malformed validator fee")
        signer, share = entry
        if not isinstance(signer, int) or not isinstance(share, int):
            raise BadBlock("malformed validator fee")
        signers.append(signer)
        shares.append(share)
    if signers and signers != previous_signers:
        raise BadBlock("fees paid to others than the previous block's certifiers")
    if shares != (largest_remainder(fee, [1] * len(signers)) if signers else []):
        raise BadBlock("validator fees do not split the fee pool")
    minted = sum(expected) + sum(shares)
    if _int(body, "minted") != minted:
        raise BadBlock(f"minted {_int(body, 'minted')} but paid out {minted}")
    miners: defaultdict[bytes, int] = defaultdict(int, report.miner_balances)
    for miner, reward in paid:
        miners[miner] += reward
    report.miner_balances = dict(miners)
    for signer, share in zip(signers, shares, strict=True):
        report.validator_balances[signer] = (
            report.validator_balances.get(signer, 0) + share
        )
    report.minted += minted
