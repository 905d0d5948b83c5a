"""A validator's ledger: an append-only, hash-chained SQLite file plus model files.

``<dir>/ledger.sqlite`` holds one row per block (height, hash, canonical body,
certificate); ``<dir>/models/<sha256 hex>`` holds every global model the chain
names, content-addressed. WAL journal and ``synchronous=FULL``: a block that
``append`` returned for survives a power cut. Triggers refuse updates and deletes
of blocks; :mod:`pot_flower.audit` re-verifies everything from the bytes anyway.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LEDGER_FILE = "ledger.sqlite"
MODELS_DIR = "models"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    body BLOB NOT NULL,
    certificate BLOB
);
CREATE TRIGGER IF NOT EXISTS blocks_append_only_delete BEFORE DELETE ON blocks
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS blocks_append_only_update
BEFORE UPDATE OF height, hash, body ON blocks
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS closed_seals (
    round INTEGER PRIMARY KEY,
    seals BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS blocks_certify_once
BEFORE UPDATE OF certificate ON blocks WHEN OLD.certificate IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'the block is already certified'); END;
"""


class LedgerError(RuntimeError):
    """The ledger cannot be opened or does not accept a write."""


@dataclass(frozen=True)
class StoredBlock:
    """One row of the ledger as stored (nothing verified yet)."""

    height: int
    hash: bytes
    body: bytes
    certificate: bytes | None


def resolve(path: Path) -> Path:
    """The SQLite file for ``path`` (a ledger file or the directory holding it)."""
    return path / LEDGER_FILE if path.is_dir() else path


class Ledger:
    """Open (creating if needed) the ledger in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.models = self.directory / MODELS_DIR
        self.models.mkdir(parents=True, exist_ok=True)
        try:
            # One thread at a time (a validator's replica thread), not always the same.
            self._db = sqlite3.connect(
                self.directory / LEDGER_FILE, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger in {self.directory}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- writes
    def append(self, height: int, digest: bytes, body: bytes) -> None:
        """Append block ``height``; it must follow the current head."""
        head = self.head_height()
        if height != head + 1:
            raise LedgerError(f"block {height} does not follow head {head}")
        with self._db:
            self._db.execute(
                "INSERT INTO blocks (height, hash, body) VALUES (?, ?, ?)",
                (height, digest, body),
            )

    def certify(self, height: int, certificate: bytes) -> None:
        """Attach a (verified) certificate to block ``height``; idempotent."""
        row = self._db.execute(
            "SELECT certificate FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no block {height} to certify")
        if row[0] is not None:
            return
        with self._db:
            self._db.execute(
                "UPDATE blocks SET certificate = ? WHERE height = ?",
                (certificate, height),
            )

    def close_seals(self, round_: int, seals: bytes) -> bytes:
        """The seal set closed for ``round_``: ``seals`` unless another was first.

        Durable before any signature leaves: a restarted validator never closes
        a second set for a round (commit-reveal, :mod:`~.protocol.sealing`);
        earlier rounds' sets are dropped.
        """
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO closed_seals (round, seals) VALUES (?, ?)",
                (round_, seals),
            )
            self._db.execute("DELETE FROM closed_seals WHERE round < ?", (round_,))
        return bytes(self.closed_seals(round_) or b"")

    def closed_seals(self, round_: int) -> bytes | None:
        """The encoded seal set closed for ``round_``, if any."""
        row = self._db.execute(
            "SELECT seals FROM closed_seals WHERE round = ?", (round_,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def store_model(self, digest: bytes, data: bytes) -> None:
        """Keep a model's canonical bytes under its digest (atomic, idempotent)."""
        target = self.models / digest.hex()
        if target.exists():
            return
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    # ----------------------------------------------------------------- reads
    def has_model(self, digest: bytes) -> bool:
        return (self.models / digest.hex()).exists()

    def uncertified(self) -> list[int]:
        """Heights of blocks that have no certificate yet."""
        rows = self._db.execute(
            "SELECT height FROM blocks WHERE certificate IS NULL ORDER BY height"
        ).fetchall()
        return [int(h) for (h,) in rows]

    def head_height(self) -> int:
        row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return -1 if row[0] is None else int(row[0])

    def block_hash(self, height: int) -> bytes | None:
        row = self._db.execute(
            "SELECT hash FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def block(self, height: int) -> StoredBlock | None:
        row = self._db.execute(
            "SELECT height, hash, body, certificate FROM blocks WHERE height = ?",
            (height,),
        ).fetchone()
        if row is None:
            return None
        h, digest, body, cert = row
        return StoredBlock(int(h), bytes(digest), bytes(body), cert and bytes(cert))

    def blocks(self) -> Iterator[StoredBlock]:
        for height, digest, body, cert in self._db.execute(
            "SELECT height, hash, body, certificate FROM blocks ORDER BY height"
        ):
            yield StoredBlock(height, bytes(digest), bytes(body), cert and bytes(cert))
