"""Verify a ledger from its bytes alone: chain, certificates, rewards, models.

Trust has to start somewhere, and a verifier says where with :class:`Pins`:

* **committee** — the validators' public keys (from a committee file or given
  directly) or the genesis block's hash. Genesis must name exactly the pinned
  keys (and a quorum of at least 2f + 1), so a chain re-signed throughout under
  other keys fails at block 0. Without this pin the genesis keys are trusted.
* **completeness** — the height the ledger must end at, or the head that a quorum
  of live validators vouches for (:func:`live_head`). Without it a ledger cut
  after any block verifies as a shorter history: SQLite drops whatever follows a
  damaged WAL frame silently, so the WAL is scanned too (:func:`check_wal`).

Every block is checked in a fixed order: its row (storage classes, height), its
hash, its certificate under the pinned or genesis committee, then its content
(canonical body, links, verdicts, rewards, fees) and its model file. The first
failing block is reported with a :class:`Failure` and one line of detail;
nothing stored in the file can make the audit raise.

Modules
-------
* :mod:`~pot_flower.audit.report` — failure codes, pins (:class:`CommitteePin`,
  :class:`Pins`), :class:`AuditReport`, :class:`LiveHead`, :class:`WalDamage`;
* :mod:`~pot_flower.audit.rows` — raw rows from SQLite (:func:`read_rows`,
  :func:`read_blocks`) and their text for ``pot ledger show`` (:func:`summarize`);
* :mod:`~pot_flower.audit.wal` — the WAL scanner (:func:`scan_wal`, :func:`check_wal`);
* :mod:`~pot_flower.audit.content` — a block body's fields, typed and checked;
* :mod:`~pot_flower.audit.chain` — the per-block checks and :func:`audit_ledger`;
* :mod:`~pot_flower.audit.completeness` — stray rows, completeness pins, WAL damage
  after the last verified block;
* :mod:`~pot_flower.audit.live` — :func:`live_head`, asking validators over gRPC.
"""

from pot_flower.audit.chain import audit_ledger
from pot_flower.audit.live import live_head
from pot_flower.audit.report import (
    AuditReport,
    BadBlock,
    CommitteePin,
    CommitteeTrust,
    Completeness,
    Failure,
    HeadSource,
    LedgerReadError,
    LiveHead,
    Pins,
    WalDamage,
)
from pot_flower.audit.rows import (
    RawRow,
    RowSummary,
    read_blocks,
    read_rows,
    sorted_rows,
    storage_class,
    summarize,
)
from pot_flower.audit.wal import (
    WAL_FRAME_HEADER,
    WAL_HEADER,
    WAL_VERSION,
    check_wal,
    scan_wal,
)
from pot_flower.protocol.block import GENESIS_VERSION, HASH_SIZE, KEY_SIZE
from pot_flower.validator.reads import LATEST

__all__ = [
    "GENESIS_VERSION",
    "HASH_SIZE",
    "KEY_SIZE",
    "LATEST",
    "WAL_FRAME_HEADER",
    "WAL_HEADER",
    "WAL_VERSION",
    "AuditReport",
    "BadBlock",
    "CommitteePin",
    "CommitteeTrust",
    "Completeness",
    "Failure",
    "HeadSource",
    "LedgerReadError",
    "LiveHead",
    "Pins",
    "RawRow",
    "RowSummary",
    "WalDamage",
    "audit_ledger",
    "check_wal",
    "live_head",
    "read_blocks",
    "read_rows",
    "scan_wal",
    "sorted_rows",
    "storage_class",
    "summarize",
]
