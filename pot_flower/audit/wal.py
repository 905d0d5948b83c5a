"""Scanning the WAL for committed frames SQLite would silently drop."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import time
from pathlib import Path
from typing import BinaryIO

from pot_flower.audit.report import WalDamage

WAL_HEADER = 32
WAL_FRAME_HEADER = 24
WAL_VERSION = 3007000
_WAL_ORDER = {0x377F0682: "<", 0x377F0683: ">"}  # checksum words' byte order
_MASK = 0xFFFFFFFF


def _wal_checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), continued."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & _MASK
        s1 = (s1 + words[i + 1] + s0) & _MASK
    return s0, s1


def _valid_page_size(size: int) -> bool:
    return 512 <= size <= 65536 and size & (size - 1) == 0


def scan_wal(data: bytes | mmap.mmap) -> WalDamage | None:
    """Damage in a WAL file's bytes that would make SQLite drop committed frames.

    SQLite reads frames while their salts match the header's and their
    cumulative checksums hold, and ignores the rest. Frames of an earlier WAL
    generation (other salts) after the valid ones are normal; a frame of the
    current generation at or after the first invalid one means frames that were
    written in this generation are being ignored. (After a crash mid-write a
    later, shorter write can leave such remnants too; they are reported alike.)
    """
    if len(data) < WAL_HEADER:
        return None  # no header yet: nothing was ever committed to it
    magic, version, page_size, _, salt1, salt2, c1, c2 = struct.unpack(
        ">8I", data[:WAL_HEADER]
    )
    order = _WAL_ORDER.get(magic)
    frame_size = page_size + WAL_FRAME_HEADER
    if (
        order is None
        or version != WAL_VERSION
        or not _valid_page_size(page_size)
        or _wal_checksum(data[:24], order, 0, 0) != (c1, c2)
    ):
        if len(data) <= WAL_HEADER:
            return None
        return WalDamage(None, 0, 0, "the WAL header is invalid, so SQLite ignores it")
    count, partial = divmod(len(data) - WAL_HEADER, frame_size)
    sums = (c1, c2)
    first_bad: int | None = None
    for i in range(count):
        offset = WAL_HEADER + i * frame_size
        pgno, _, s1, s2, f1, f2 = struct.unpack_from(">6I", data, offset)
        if (s1, s2) != (salt1, salt2) or pgno == 0:
            first_bad = i
            break
        sums = _wal_checksum(data[offset : offset + 8], order, *sums)
        page = data[offset + WAL_FRAME_HEADER : offset + frame_size]
        sums = _wal_checksum(page, order, *sums)
        if sums != (f1, f2):
            first_bad = i
            break
    current = _current_frames(data, first_bad, count, partial, frame_size)
    if current is None:
        return None
    start = count if first_bad is None else first_bad
    commits = sum(1 for is_commit in current if is_commit)
    what = "a partial frame" if first_bad is None else f"frame {start}"
    return WalDamage(
        start,
        count,
        commits,
        f"the WAL is damaged at {what} of {count}; SQLite ignores it and every "
        f"later frame, {commits} commit(s) among them",
        tail=len(current) == 1,
    )


def _current_frames(
    data: bytes | mmap.mmap,
    first_bad: int | None,
    count: int,
    partial: int,
    frame_size: int,
) -> list[bool] | None:
    """Commit flags of current-generation frames from the first bad one on.

    None if there are none (the WAL holds only stale frames after the valid ones).
    """
    salts = data[16:24]
    start = count if first_bad is None else first_bad
    found: list[bool] = []
    for i in range(start, count):
        offset = WAL_HEADER + i * frame_size
        if data[offset + 8 : offset + 16] == salts:
            found.append(data[offset + 4 : offset + 8] != b"\0\0\0\0")
    tail = WAL_HEADER + count * frame_size
    if partial and (partial < 16 or data[tail + 8 : tail + 16] == salts):
        found.append(False)  # a frame cut short (a write in progress, or cut)
    return found or None


def check_wal(db_file: Path, settle_s: float = 0.05) -> WalDamage | None:
    """Damage in the WAL beside ``db_file`` (None if it is absent or sound).

    Damage confined to the last frame is looked at again after ``settle_s``: a
    live validator's frame can be caught half-written.
    """
    wal = db_file.resolve().with_name(db_file.resolve().name + "-wal")
    for attempt in range(2):
        try:
            damage = _scan_wal_file(wal)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return WalDamage(None, 0, 0, f"the WAL cannot be read: {exc}")
        if damage is None or not damage.tail or attempt == 1:
            return damage
        time.sleep(settle_s)
    return None  # pragma: no cover (the loop returns)


def _open_regular(file: Path) -> BinaryIO:
    """Open a regular file for reading; OSError for anything else (never blocks)."""
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return os.fdopen(fd, "rb")


def _scan_wal_file(wal: Path) -> WalDamage | None:
    """:func:`scan_wal` over a memory map (a WAL is never read whole)."""
    with _open_regular(wal) as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return scan_wal(data)
