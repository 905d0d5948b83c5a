"""The replica's durable records in SQLite (one atomic transaction per Persist)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path


class RecordStore:
    """Key-value records (see :mod:`pot_flower.consensus.durable`) in ``path``.

    WAL journal, ``synchronous=FULL``: when :meth:`apply` returns the writes survive
    a crash, so the replica may send what depended on them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records "
            "(key TEXT PRIMARY KEY, value BLOB NOT NULL)"
        )
        self._db.commit()

    def load(self) -> dict[str, bytes]:
        return {
            k: bytes(v) for k, v in self._db.execute("SELECT key, value FROM records")
        }

    def apply(self, writes: Mapping[str, bytes | None]) -> None:
        with self._db:
            for key, value in writes.items():
                if value is None:
                    self._db.execute("DELETE FROM records WHERE key = ?", (key,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO records (key, value) VALUES (?, ?)",
                        (key, value),
                    )

    def close(self) -> None:
        self._db.close()
