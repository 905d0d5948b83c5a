"""Verified checkpoints: re-verify a long ledger in the time it takes to re-hash it.

After a ledger verifies, the verifier keeps what its audit concluded at the head
(the chain state the audit carries, the balances, every block's hash and its
certificate's digest, and each model file's identity) in *its own* cache, never
in the ledger. The next audit of the same file re-checks block 0 in full (the
committee pins apply there), re-hashes every stored body and certificate, and may
skip recomputing blocks ``1..h`` only where all of them are byte for byte what it
verified; any difference (a changed, missing or extra row, another genesis, a
changed certificate) discards the checkpoint and the whole ledger is audited
again, so a tampered ledger fails exactly as it would without one. Model files
are re-hashed unless their size, inode, modification and change times all match:
the change time is set by the kernel on every write, and no user can set it back.

A checkpoint is bound to the audit's code (a digest of the checking packages'
sources): one written by another version is ignored. It is as trustworthy as the
verifier's home directory, which also holds the verifier's code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

CACHE_ENV = "POT_AUDIT_CACHE"
"""Where checkpoints are kept (default ``$XDG_CACHE_HOME/pot-flower/verified``)."""
FORMAT = 1
_CHECKED_BY = (  # the audit's code
    "pot_flower.audit",
    "pot_flower.protocol",
    "pot_flower.encoding",
    "pot_flower.zk",
)


@dataclass(frozen=True)
class FileId:
    """What identifies one version of a file without reading it."""

    size: int
    inode: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileId:
        s = path.stat()
        return cls(s.st_size, s.st_ino, s.st_mtime_ns, s.st_ctime_ns)

    def to_list(self) -> list[int]:
        return [self.size, self.inode, self.mtime_ns, self.ctime_ns]


@dataclass
class Checkpoint:
    """What a successful audit concluded at block ``len(hashes) - 1``."""

    hashes: list[bytes]
    certificates: list[bytes]
    """SHA-256 of each block's stored certificate (b"" where none is stored)."""
    previous_model: bytes
    previous_signers: list[int]
    miners: set[bytes]
    reputation: dict[bytes, int]
    models: dict[bytes, FileId]
    dp_clip_units: int | None
    miner_balances: dict[bytes, int]
    validator_balances: dict[int, int]
    minted: int

    @property
    def height(self) -> int:
        return len(self.hashes) - 1

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "code": code_digest(),
            "hashes": [h.hex() for h in self.hashes],
            "certificates": [c.hex() for c in self.certificates],
            "previous-model": self.previous_model.hex(),
            "previous-signers": self.previous_signers,
            "miners": sorted(m.hex() for m in self.miners),
            "reputation": {k.hex(): v for k, v in sorted(self.reputation.items())},
            "models": {k.hex(): v.to_list() for k, v in sorted(self.models.items())},
            "dp-clip-units": self.dp_clip_units,
            "miner-balances": {
                k.hex(): v for k, v in sorted(self.miner_balances.items())
            },
            "validator-balances": {
                str(k): v for k, v in sorted(self.validator_balances.items())
            },
            "minted": self.minted,
        }

    @classmethod
    def from_json(cls, value: dict[str, object]) -> Checkpoint:
        """Raise ``ValueError``/``KeyError``/``TypeError`` on anything unexpected."""
        if value["format"] != FORMAT or value["code"] != code_digest():
            raise ValueError("written by another version of the audit")

        def hexes(key: str) -> list[bytes]:
            items = value[key]
            if not isinstance(items, list):
                raise TypeError(key)
            return [bytes.fromhex(x) for x in items]

        def ints(key: str) -> dict[str, int]:
            items = value[key]
            if not isinstance(items, dict) or not all(
                isinstance(v, int) for v in items.values()
            ):
                raise TypeError(key)
            return items

        models = value["models"]
        signers = value["previous-signers"]
        clip = value["dp-clip-units"]
        minted = value["minted"]
        if not isinstance(models, dict) or not isinstance(signers, list):
            raise TypeError("models or signers")
        if not (clip is None or isinstance(clip, int)) or not isinstance(minted, int):
            raise TypeError("clip or minted")
        checkpoint = cls(
            hashes=hexes("hashes"),
            certificates=hexes("certificates"),
            previous_model=bytes.fromhex(str(value["previous-model"])),
            previous_signers=[int(s) for s in signers],
            miners=set(hexes("miners")),
            reputation={bytes.fromhex(k): v for k, v in ints("reputation").items()},
            models={bytes.fromhex(k): FileId(*map(int, v)) for k, v in models.items()},
            dp_clip_units=clip,
            miner_balances={
                bytes.fromhex(k): v for k, v in ints("miner-balances").items()
            },
            validator_balances={
                int(k): v for k, v in ints("validator-balances").items()
            },
            minted=minted,
        )
        if len(checkpoint.certificates) != len(checkpoint.hashes) or not (
            checkpoint.hashes
        ):
            raise ValueError("hashes and certificates differ in number")
        return checkpoint


def certificate_digest(data: object) -> bytes:
    """The digest a checkpoint keeps of a stored certificate (b"" for none)."""
    if data is None:
        return b""
    if not isinstance(data, bytes):
        return b"\x00"  # never a SHA-256 digest: such a row is always re-audited
    return hashlib.sha256(data).digest()


@cache
def code_digest() -> str:
    """SHA-256 of the audit's and the protocol's sources (this installation)."""
    h = hashlib.sha256()
    for name in _CHECKED_BY:
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            raise OSError(f"cannot find {name}'s sources")
        source = Path(spec.origin)
        root = source.parent
        files = sorted(root.rglob("*.py")) if source.name == "__init__.py" else [source]
        for file in files:
            h.update(f"{name}/{file.relative_to(root)}".encode() + b"\0")
            h.update(file.read_bytes())
    return h.hexdigest()


class CheckpointStore:
    """Checkpoints in ``directory``, one per ledger file (by its resolved path)."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is None:
            override = os.environ.get(CACHE_ENV)
            cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            directory = (
                Path(override)
                if override
                else Path(cache_home) / "pot-flower" / "verified"
            )
        self.directory = directory

    def _file(self, db_file: Path) -> Path:
        key = hashlib.sha256(str(db_file.resolve()).encode()).hexdigest()[:32]
        return self.directory / f"{key}.json"

    def load(self, db_file: Path) -> Checkpoint | None:
        """The checkpoint for ``db_file`` (None: none, unreadable or stale)."""
        try:
            value = json.loads(self._file(db_file).read_text())
            if not isinstance(value, dict) or value.get("ledger") != str(
                db_file.resolve()
            ):
                return None
            return Checkpoint.from_json(value)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, db_file: Path, checkpoint: Checkpoint) -> bool:
        """Write atomically; False if the cache cannot be written (no harm done)."""
        target = self._file(db_file)
        try:
            value = {"ledger": str(db_file.resolve()), **checkpoint.to_json()}
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(value, f)
            os.replace(tmp, target)
        except OSError:
            return False
        return True
