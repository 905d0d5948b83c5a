"""Content-addressed payload storage: submission arrays and models, by SHA-256.

Validators receive round payloads outside the consensus messages; a payload is
stored only if its bytes hash to its name, so whatever a validator executes is
exactly what the digest in the ordered batch names.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path


class PayloadStore(Mapping[bytes, bytes]):
    """Payload bytes under ``directory/<sha256 hex>`` (a read-through mapping)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> bytes:
        """Store ``data``; return its digest (idempotent, atomic)."""
        digest = hashlib.sha256(data).digest()
        target = self.directory / digest.hex()
        if not target.exists():
            tmp = target.with_suffix(f".{os.getpid()}.{id(data)}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return digest

    def __getitem__(self, digest: bytes) -> bytes:
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise KeyError(digest)
        path = self.directory / digest.hex()
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(digest) from None

    def __contains__(self, digest: object) -> bool:
        return (
            isinstance(digest, bytes)
            and len(digest) == 32
            and (self.directory / digest.hex()).exists()
        )

    def __iter__(self) -> Iterator[bytes]:
        for path in self.directory.iterdir():
            if len(path.name) == 64 and "." not in path.name:
                yield bytes.fromhex(path.name)

    def __len__(self) -> int:
        return sum(1 for _ in self)
