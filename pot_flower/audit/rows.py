"""Reading a ledger's rows as SQLite stores them, and summarising them as text."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pot_flower.audit.report import LedgerReadError
from pot_flower.protocol.block import (
    Block,
    BlockFormatError,
    GenesisBlock,
    Problem,
    parse_block,
)
from pot_flower.protocol.certificate import Certificate, CertificateError
from pot_flower.protocol.fixedpoint import SCALE
from pot_flower.validator.ledger import StoredBlock, resolve


@dataclass(frozen=True)
class RawRow:
    """One row of ``blocks`` exactly as SQLite returned it (any storage class)."""

    height: object
    hash: object
    body: object
    certificate: object


def storage_class(value: object) -> str:
    """The SQLite storage class of a value Python's sqlite3 returned."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, str):
        return "TEXT"
    return "BLOB"


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def read_rows(path: Path) -> list[RawRow]:
    """Every row of the ledger's ``blocks`` table, read-only and untyped.

    Raises
    ------
    LedgerReadError
        If there is no ledger file, SQLite cannot read it, its integrity check
        fails or it has no ``blocks`` table with the ledger's columns.

    """
    file = resolve(Path(path))
    if not file.is_file():
        raise LedgerReadError(f"no ledger file at {file}")
    for suffix in ("-wal", "-shm", "-journal"):
        side = file.resolve().with_name(file.resolve().name + suffix)
        if side.exists() and not side.is_file():
            raise LedgerReadError(f"{side} is not a regular file")
    try:
        db = sqlite3.connect(file.resolve().as_uri() + "?mode=ro", uri=True)
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise LedgerReadError(f"cannot open {file}: {exc}") from exc
    try:
        db.text_factory = _lenient_text
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            raise LedgerReadError(f"{file} fails SQLite's integrity check: {check}")
        kind = db.execute(
            "SELECT type FROM sqlite_master WHERE name = 'blocks'"
        ).fetchone()
        if kind is None or kind[0] != "table":
            raise LedgerReadError(f"{file} has no blocks table")
        rows = db.execute("SELECT height, hash, body, certificate FROM blocks")
        return [RawRow(*row) for row in rows.fetchall()]
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise LedgerReadError(f"cannot read {file}: {exc}") from exc
    finally:
        db.close()


def read_blocks(path: Path) -> list[StoredBlock]:
    """Every row as a :class:`StoredBlock`, by height (nothing verified).

    Raises
    ------
    LedgerReadError
        As :func:`read_rows`, or if a row has columns of the wrong storage class.

    """
    blocks = []
    for row in read_rows(path):
        cert = row.certificate
        if not (
            type(row.height) is int
            and isinstance(row.hash, bytes)
            and isinstance(row.body, bytes)
            and (cert is None or isinstance(cert, bytes))
        ):
            raise LedgerReadError(
                f"a row of the wrong storage class: {_row_types(row)}"
            )
        blocks.append(StoredBlock(row.height, row.hash, row.body, cert))
    return sorted(blocks, key=lambda b: b.height)


def _row_types(row: RawRow) -> str:
    return (
        f"height {storage_class(row.height)}, hash {storage_class(row.hash)}, "
        f"body {storage_class(row.body)}, certificate {storage_class(row.certificate)}"
    )


@dataclass(frozen=True)
class RowSummary:
    """What ``pot ledger show`` displays for a row (nothing verified; all text)."""

    height: str
    hash: str
    model: str
    accepted: str
    rejected: str
    reasons: str
    minted: str
    signers: str
    epsilon: str = ""
    """Privacy spent so far, "epsilon (sampled)"; "" on chains without DP."""
    dp_clip: str = ""
    """The DP clip norm this round used under adaptive clipping; "" otherwise."""


def _short(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bytes):
        return value.hex()[:12] or "(empty)"
    return f"{storage_class(value)} {value!r}"[:24]


def typed_block(row: RawRow) -> Block | BlockFormatError:
    """The row's body as a typed block, or why it is not one (nothing verified)."""
    if not isinstance(row.body, bytes):
        return BlockFormatError(Problem.CONTENT, f"body is {storage_class(row.body)}")
    try:
        return parse_block(row.body)
    except BlockFormatError as exc:
        return exc


def summarize(row: RawRow) -> RowSummary:
    """A row as text, whatever it holds (a malformed body is named as such)."""
    height = str(row.height) if type(row.height) is int else _short(row.height)
    block = typed_block(row)
    signers = _signers(row.certificate)
    if isinstance(block, BlockFormatError):
        detail = f"malformed: {block.detail}"[:60]
        return RowSummary(height, _short(row.hash), detail, "", "", "", "", signers)
    if isinstance(block, GenesisBlock):
        model, digest = _short(block.model), _short(row.hash)
        return RowSummary(height, digest, model, "genesis", "", "", "", signers)
    reasons = Counter(str(s.reason) for s in block.submissions if s.reason is not None)
    accepted = len(block.accepted)
    return RowSummary(
        height,
        _short(row.hash),
        _short(block.model),
        str(accepted),
        str(len(block.submissions) - accepted),
        ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items())),
        str(block.minted),
        signers,
        (
            f"{block.privacy.epsilon:.4f} ({block.privacy.epsilon_sampled:.4f})"
            if block.privacy is not None
            else ""
        ),
        (
            f"{block.clipping.clip_norm_units / SCALE:.4g}"
            if block.clipping is not None
            else ""
        ),
    )


def _signers(data: object) -> str:
    if not isinstance(data, bytes):
        return "-"
    try:
        return ",".join(str(i) for i in Certificate.from_bytes(data).signers)
    except CertificateError:
        return "invalid"


def sorted_rows(rows: Sequence[RawRow]) -> list[RawRow]:
    """Rows by integer height, then rows whose height is something else."""
    by_height, strays = _rows_by_height(rows)
    ordered = [row for h in sorted(by_height) for row in by_height[h]]
    return ordered + list(strays)


def _rows_by_height(
    rows: Sequence[RawRow],
) -> tuple[dict[int, list[RawRow]], list[RawRow]]:
    by_height: dict[int, list[RawRow]] = {}
    strays: list[RawRow] = []
    for row in rows:
        if type(row.height) is int and row.height >= 0:
            by_height.setdefault(row.height, []).append(row)
        else:
            strays.append(row)
    return by_height, strays
