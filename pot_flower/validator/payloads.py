"""Content-addressed payload storage: submission arrays and models, by SHA-256.

Validators receive round payloads outside the consensus messages; a payload is
stored only if its bytes hash to its name, so whatever a validator executes is
exactly what the digest in the ordered batch names. Uploads stream to a temporary
file (memory stays at one chunk per upload) and are renamed into place once their
digest checks out.

:class:`Retention` decides what may be deleted and whose quota a payload counts
against: a payload is kept while a receipt promised it (see
:mod:`pot_flower.validator.availability`) and until the request that consumed it lies a
whole window below a stable checkpoint, where no honest validator can still need
it (a validator that far behind catches up by state transfer instead).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

DIGEST_SIZE = 32


class PayloadError(ValueError):
    """An upload that cannot be stored, with the reason."""


def _name(digest: bytes) -> str:
    return digest.hex()


class PayloadStore(Mapping[bytes, bytes]):
    """Payload bytes under ``directory/<sha256 hex>`` (a read-through mapping)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("*.tmp"):  # uploads cut off by a crash
            stale.unlink(missing_ok=True)

    def put(self, data: bytes) -> bytes:
        """Store ``data``; return its digest (idempotent, atomic)."""
        digest = hashlib.sha256(data).digest()
        target = self.directory / _name(digest)
        if not target.exists():
            tmp = target.with_suffix(f".{os.getpid()}.{id(data)}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return digest

    def writer(self, digest: bytes, size: int) -> PayloadWriter:
        """A streamed upload of ``size`` bytes that must hash to ``digest``."""
        return PayloadWriter(self, digest, size)

    def size(self, digest: bytes) -> int | None:
        try:
            return (self.directory / _name(digest)).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    def path(self, digest: bytes) -> Path | None:
        """The file holding ``digest``, if stored."""
        if not _valid(digest):
            return None
        path = self.directory / _name(digest)
        return path if path.exists() else None

    def delete(self, digest: bytes) -> None:
        if _valid(digest):
            (self.directory / _name(digest)).unlink(missing_ok=True)

    def ages(self) -> Iterator[tuple[bytes, float, int]]:
        """``(digest, seconds since written, size)`` of every stored payload."""
        now = time.time()
        for path in self.directory.iterdir():
            if len(path.name) == 2 * DIGEST_SIZE and "." not in path.name:
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                yield bytes.fromhex(path.name), now - stat.st_mtime, stat.st_size

    def __getitem__(self, digest: bytes) -> bytes:
        if not _valid(digest):
            raise KeyError(digest)
        path = self.directory / _name(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(digest) from None

    def __contains__(self, digest: object) -> bool:
        return _valid(digest) and (self.directory / _name(digest)).exists()  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[bytes]:
        for digest, _, _ in self.ages():
            yield digest

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _valid(digest: object) -> bool:
    return isinstance(digest, bytes) and len(digest) == DIGEST_SIZE


class PayloadWriter:
    """One upload in progress: bytes go to a temporary file, hashed as they come."""

    def __init__(self, store: PayloadStore, digest: bytes, size: int) -> None:
        if not _valid(digest):
            raise PayloadError("a payload is named by a 32-byte SHA-256 digest")
        self.digest = digest
        self.size = size
        self.written = 0
        self._hash = hashlib.sha256()
        self._target = store.directory / _name(digest)
        self._tmp = self._target.with_suffix(f".{os.getpid()}.{id(self)}.tmp")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 (closed by commit/abort)

    def write(self, chunk: bytes) -> None:
        if self.written + len(chunk) > self.size:
            raise PayloadError(f"more bytes than the declared {self.size}")
        self._hash.update(chunk)
        self._file.write(chunk)
        self.written += len(chunk)

    def commit(self) -> None:
        """Move the upload into place (PayloadError if it is not what it claimed)."""
        try:
            if self.written != self.size:
                raise PayloadError(f"{self.written} bytes, {self.size} declared")
            if self._hash.digest() != self.digest:
                raise PayloadError("payload does not match its digest")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._target)
        finally:
            self.abort()

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class Retention:
    """What the store must keep, and whose quota each payload counts against.

    Parameters
    ----------
    store : PayloadStore
        The payloads.
    quota_bytes : int
        Bytes one uploader may have stored and not yet collected.
    store_bytes : int
        Bytes the store may hold from uploads in all.

    """

    def __init__(self, store: PayloadStore, quota_bytes: int, store_bytes: int) -> None:
        self.store = store
        self.quota_bytes = quota_bytes
        self.store_bytes = store_bytes
        self._owner: dict[bytes, tuple[str, int]] = {}  # digest -> uploader, size
        self._charged: dict[str, int] = {}
        self.total = sum(size for _, _, size in store.ages())
        self._tick = 0
        self._promised: dict[bytes, int] = {}  # digest -> tick of the latest receipt
        self._consumed: dict[bytes, tuple[int, int]] = {}  # digest -> seq, tick
        self._lock = threading.Lock()  # uploads (edge) and executions (replica)

    def reserve(self, uploader: str, digest: bytes, size: int) -> str | None:
        """Charge an upload of ``size`` bytes before it is stored; why not, or None.

        Settle every reservation with :meth:`settle` once the upload ends.
        """
        with self._lock:
            charged = self._charged.get(uploader, 0)
            if charged + size > self.quota_bytes:
                return (
                    f"quota: {uploader!r} has {charged} payload bytes stored "
                    f"(quota {self.quota_bytes})"
                )
            if self.total + size > self.store_bytes:
                return f"payload store full ({self.total} of {self.store_bytes} bytes)"
            self._charged[uploader] = charged + size
            self.total += size
            return None

    def settle(self, uploader: str, digest: bytes, size: int, stored: bool) -> None:
        """End a reservation: the payload is now held (or the upload failed)."""
        with self._lock:
            if stored and digest not in self._owner:
                self._owner[digest] = (uploader, size)
                return
            self._charged[uploader] -= size
            self.total -= size

    def stored(self, uploader: str, digest: bytes, size: int) -> None:
        """Account a payload stored without a reservation (fetched from peers)."""
        with self._lock:
            if digest in self._owner:
                return
            self._owner[digest] = (uploader, size)
            self._charged[uploader] = self._charged.get(uploader, 0) + size
            self.total += size

    def charged(self, uploader: str) -> int:
        with self._lock:
            return self._charged.get(uploader, 0)

    def promised(self, digests: Iterable[bytes]) -> None:
        """A receipt for ``digests`` was signed: keep them until consumed again."""
        with self._lock:
            self._tick += 1
            for digest in digests:
                self._promised[digest] = self._tick

    def consumed(self, digests: Iterable[bytes], seq: int) -> None:
        """Sequence number ``seq`` executed with ``digests``."""
        with self._lock:
            self._tick += 1
            for digest in digests:
                self._consumed[digest] = (seq, self._tick)

    def collect(self, below: int) -> int:
        """Delete payloads consumed at or below ``below`` and not promised since."""
        with self._lock:
            doomed = [
                d
                for d, (seq, tick) in self._consumed.items()
                if seq <= below and self._promised.get(d, -1) < tick
            ]
            for digest in doomed:
                del self._consumed[digest]
                self._promised.pop(digest, None)
                self._forget(digest)
        return len(doomed)

    def sweep(self, older_than_s: float, keep: set[bytes]) -> int:
        """Delete payloads older than ``older_than_s`` except ``keep`` (start-up)."""
        doomed = [d for d, age, _ in self.store.ages() if age > older_than_s]
        doomed = [d for d in doomed if d not in keep]
        with self._lock:
            for digest in doomed:
                self._forget(digest)
        return len(doomed)

    def _forget(self, digest: bytes) -> None:
        size = self.store.size(digest) or 0
        self.store.delete(digest)
        owner = self._owner.pop(digest, None)
        if owner is not None:
            self._charged[owner[0]] -= owner[1]
        self.total = max(0, self.total - size)
