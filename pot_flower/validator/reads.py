"""Read-only reads of a ledger beside its writer (SQLite in WAL mode allows them).

Serving blocks and finding uncertified ones never waits for the replica's thread,
the ledger's only writer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pot_flower.protocol.block import BlockFormatError, parse_block
from pot_flower.validator.ledger import LEDGER_FILE, MODELS_DIR

LATEST = (1 << 64) - 1
"""The height that names a ledger's latest block."""


@dataclass(frozen=True)
class BlockCopy:
    """A stored block as read: its row and, if asked for, its model file."""

    height: int
    hash: bytes
    body: bytes
    certificate: bytes | None
    model: bytes


def read_block(directory: Path, height: int, with_model: bool) -> BlockCopy | None:
    """Block ``height`` (or :data:`LATEST`) of the ledger in ``directory``."""
    file = directory / LEDGER_FILE
    if not file.exists():
        return None
    try:
        row = _read_row(file, height)
    except sqlite3.Error:  # the chain's ledger is being created right now
        return None
    if row is None:
        return None
    stored_height, digest, body, certificate = row
    model = b""
    if with_model:
        named = _model_digest(bytes(body))
        path = directory / MODELS_DIR / named.hex() if named else None
        if path is not None and path.exists():
            model = path.read_bytes()
    return BlockCopy(
        int(stored_height),
        bytes(digest),
        bytes(body),
        None if certificate is None else bytes(certificate),
        model,
    )


def _read_row(file: Path, height: int) -> tuple[int, bytes, bytes, bytes | None] | None:
    db = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=5)
    try:
        if height == LATEST:
            row = db.execute(
                "SELECT height, hash, body, certificate FROM blocks "
                "ORDER BY height DESC LIMIT 1"
            ).fetchone()
        else:
            row = db.execute(
                "SELECT height, hash, body, certificate FROM blocks WHERE height = ?",
                (height,),
            ).fetchone()
    finally:
        db.close()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _model_digest(body: bytes) -> bytes | None:
    try:
        return parse_block(body).model
    except BlockFormatError:
        return None


def uncertified(directory: Path, limit: int) -> list[tuple[int, bytes]]:
    """``(height, hash)`` of up to ``limit`` uncertified blocks, lowest first.

    Raises ``sqlite3.Error`` while the ledger is being created (the caller retries).
    """
    file = directory / LEDGER_FILE
    if not file.exists():
        return []
    db = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "SELECT height, hash FROM blocks WHERE certificate IS NULL "
            "ORDER BY height LIMIT ?",
            (limit,),
        ).fetchall()
    finally:
        db.close()
    return [(int(h), bytes(d)) for h, d in rows]
