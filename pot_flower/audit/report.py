"""Outcomes and pins: failure codes, what a verifier trusts, what the audit found."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pot_flower.consensus.quorum import quorum as bft_quorum

if TYPE_CHECKING:
    from pot_flower.ops.committee_file import CommitteeFile

from pot_flower.protocol.block import HASH_SIZE, KEY_SIZE


# ------------------------------------------------------------------- outcomes
class Failure(StrEnum):
    """Why a ledger does not verify (stable codes; the detail line says more)."""

    UNREADABLE = "unreadable"  # not a readable SQLite ledger
    EMPTY = "empty"  # no blocks at all
    WAL_DAMAGED = "wal-damaged"  # committed WAL frames SQLite would ignore
    MALFORMED_ROW = "malformed-row"  # a column of the wrong storage class
    MISSING = "missing"  # a height absent (gap or truncation)
    DUPLICATE = "duplicate"  # a height stored more than once
    HASH_MISMATCH = "hash-mismatch"  # stored hash is not the body's hash
    UNCERTIFIED = "uncertified"  # no certificate
    BAD_CERTIFICATE = "bad-certificate"  # certificate does not certify the block
    COMMITTEE_MISMATCH = "committee-mismatch"  # genesis is not the pinned one
    NOT_CANONICAL = "not-canonical"  # body is not a canonical encoding
    BAD_CONTENT = "bad-content"  # a field missing, mistyped or out of range
    BROKEN_LINK = "broken-link"  # height, previous, base, nonce or run link
    BAD_VERDICTS = "bad-verdicts"  # verdicts, order, duplicates, registrations
    BAD_REWARDS = "bad-rewards"  # rewards, fees or minted do not recompute
    BAD_PRIVACY = "bad-privacy"  # privacy spent missing, misplaced or understated
    MODEL_MISSING = "model-missing"
    MODEL_CORRUPT = "model-corrupt"
    BEYOND_EXPECTED = "beyond-expected"  # blocks after the pinned height
    FORK = "fork"  # another block than the one live validators certify
    LIVE_HEAD_UNKNOWN = "live-head-unknown"  # no quorum of validators vouched
    UNEXPECTED = "unexpected"  # a check raised: a bug, reported instead


class CommitteeTrust(StrEnum):
    """Where the committee that certificates must verify under comes from."""

    GENESIS_TRUSTED = "genesis-trusted"  # whatever keys genesis names
    KEYS_PINNED = "keys-pinned"  # genesis must name the pinned keys
    GENESIS_PINNED = "genesis-pinned"  # genesis must hash to the pinned hash


class Completeness(StrEnum):
    """What establishes that the ledger's last block is the chain's head."""

    NOT_CHECKED = "not-checked"
    EXPECTED_HEIGHT = "expected-height"  # the head is the pinned height
    LIVE_QUORUM = "live-quorum"  # reaches the head a live quorum vouches for
    EXPECTED_AND_LIVE = "expected-height+live-quorum"


class BadBlock(Exception):
    """Raised inside the audit with the reason a block fails."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


class LedgerReadError(Exception):
    """The file cannot be read as a ledger (the audit reports it as UNREADABLE)."""


# ----------------------------------------------------------------------- pins
@dataclass(frozen=True)
class CommitteePin:
    """The committee a verifier trusts, instead of the one genesis names.

    Parameters
    ----------
    keys : tuple[bytes, ...]
        Validator public keys by index (empty: keys not pinned).
    quorum : int | None
        Least quorum genesis may require (default: 2f + 1 of ``keys``).
    genesis_hash : bytes | None
        The genesis block's hash (pins keys, quorum and every parameter).
    source : str
        Where the pin came from, for messages (a file name, "keys", "hash").

    """

    keys: tuple[bytes, ...] = ()
    quorum: int | None = None
    genesis_hash: bytes | None = None
    source: str = "the given keys"

    def __post_init__(self) -> None:
        if not self.keys and self.genesis_hash is None:
            raise ValueError("a committee pin needs keys or a genesis hash")
        if any(len(k) != KEY_SIZE for k in self.keys):
            raise ValueError(f"validator keys must be {KEY_SIZE} bytes each")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("validator keys must be distinct")
        if self.genesis_hash is not None and len(self.genesis_hash) != HASH_SIZE:
            raise ValueError(f"a genesis hash is {HASH_SIZE} bytes")
        if self.keys and not 1 <= self.min_quorum <= len(self.keys):
            raise ValueError("quorum must be between 1 and the committee size")

    @property
    def min_quorum(self) -> int:
        """The least quorum genesis may name for the pinned keys."""
        if self.quorum is not None:
            return self.quorum
        return bft_quorum(len(self.keys)) if self.keys else 1

    @classmethod
    def from_hex_keys(cls, text: str) -> CommitteePin:
        """Keys given as ``HEX,HEX,...`` (raise ``ValueError`` if malformed)."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise ValueError("no validator keys given")
        keys = tuple(_hex(p, "validator key") for p in parts)
        return cls(keys=keys, source="--validator-keys")

    @classmethod
    def from_genesis_hex(cls, text: str) -> CommitteePin:
        """A genesis hash given in hex (raise ``ValueError`` if malformed)."""
        digest = _hex(text.strip(), "genesis hash")
        return cls(genesis_hash=digest, source="--genesis-hash")

    @classmethod
    def from_committee_file(cls, path: Path) -> CommitteePin:
        """The validators' keys listed in a committee file (TOML).

        Only ``[[validators]]`` ids and public keys are read: pinning needs no
        addresses or TLS files. Raises ``ValueError`` if the file is unusable.
        """
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        entries = data.get("validators")
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: no [[validators]]")
        keys: dict[int, bytes] = {}
        for entry in entries:
            vid = entry.get("id") if isinstance(entry, dict) else None
            key = entry.get("public-key") if isinstance(entry, dict) else None
            if type(vid) is not int or not isinstance(key, str) or vid in keys:
                raise ValueError(f"{path}: a validator needs a unique id and key")
            keys[vid] = _hex(key, f"{path}: validator {vid}'s key")
        if sorted(keys) != list(range(len(keys))):
            raise ValueError(f"{path}: validator ids must be 0..{len(keys) - 1}")
        ordered = tuple(keys[i] for i in range(len(keys)))
        return cls(keys=ordered, source=Path(path).name)

    @classmethod
    def from_committee(cls, committee: CommitteeFile) -> CommitteePin:
        """The keys and quorum of a parsed committee file."""
        return cls(
            keys=tuple(k.raw for k in committee.config.replicas),
            quorum=committee.config.quorum,
            source=committee.path.name,
        )


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{what} {text[:20]!r} is not hexadecimal") from None


@dataclass(frozen=True)
class LiveHead:
    """What a committee's live validators vouch for as a run's head.

    Parameters
    ----------
    answered : int
        Validators that replied (with a block or without one).
    total : int
        Validators in the committee.
    quorum : int
        Replies needed before the head counts.
    height, block : int | None, bytes | None
        The highest block a quorum of valid votes (or a valid certificate)
        vouches for; None if there is none.

    """

    answered: int
    total: int
    quorum: int
    height: int | None = None
    block: bytes | None = None

    @property
    def known(self) -> bool:
        """Whether enough validators answered and some block is vouched for."""
        return self.answered >= self.quorum and self.height is not None


HeadSource = Callable[[int], LiveHead]
"""Asks a committee for the head of a run (the argument is the run id)."""


@dataclass(frozen=True)
class Pins:
    """What a verifier trusts beyond the ledger's own bytes (all optional).

    Parameters
    ----------
    committee : CommitteePin | None
        The committee certificates must verify under.
    expect_height : int | None
        The height of the ledger's last block.
    live_head : HeadSource | None
        Where the head a quorum of live validators vouches for comes from.

    """

    committee: CommitteePin | None = None
    expect_height: int | None = None
    live_head: HeadSource | None = None

    @property
    def committee_trust(self) -> CommitteeTrust:
        if self.committee is None:
            return CommitteeTrust.GENESIS_TRUSTED
        if self.committee.keys:
            return CommitteeTrust.KEYS_PINNED
        return CommitteeTrust.GENESIS_PINNED

    @property
    def completeness(self) -> Completeness:
        if self.expect_height is not None and self.live_head is not None:
            return Completeness.EXPECTED_AND_LIVE
        if self.expect_height is not None:
            return Completeness.EXPECTED_HEIGHT
        if self.live_head is not None:
            return Completeness.LIVE_QUORUM
        return Completeness.NOT_CHECKED


# --------------------------------------------------------------------- report
@dataclass(frozen=True)
class WalDamage:
    """A WAL whose committed frames SQLite would not read.

    ``frame`` is the first frame SQLite stops at (None: the WAL header itself),
    ``frames`` how many whole frames the file holds, ``lost_commits`` how many
    commit frames of the current WAL generation lie at or after the damage, and
    ``tail`` whether only the file's last frame of that generation is damaged
    (what a live writer's half-written frame looks like too).
    """

    frame: int | None
    frames: int
    lost_commits: int
    detail: str
    tail: bool = False


@dataclass
class AuditReport:
    """What :func:`audit_ledger` found."""

    path: Path
    blocks: int = 0
    bad_block: int | None = None
    problem: str | None = None
    failure: Failure | None = None
    committee: CommitteeTrust = CommitteeTrust.GENESIS_TRUSTED
    completeness: Completeness = Completeness.NOT_CHECKED
    pinned_by: str | None = None  # where the committee pin came from
    run: int | None = None
    hashes: list[bytes] = field(default_factory=list)
    wal: WalDamage | None = None
    live: LiveHead | None = None
    miner_balances: dict[bytes, int] = field(default_factory=dict)
    validator_balances: dict[int, int] = field(default_factory=dict)
    validators: tuple[bytes, ...] = ()
    minted: int = 0
    resumed_at: int | None = None
    """The height up to which an earlier audit's checkpoint was re-hashed, not
    recomputed (None: every block recomputed)."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def head(self) -> int:
        """Height of the last verified block (-1 when none verified)."""
        return self.blocks - 1

    def fail(self, failure: Failure, detail: str, block: int | None) -> None:
        """Record the first failure (``block`` None: a ledger-level one)."""
        self.failure = failure
        self.bad_block = block
        where = "ledger" if block is None else f"block {block}"
        self.problem = f"{where}: {_one_line(detail)}"

    def trust(self) -> str:
        """What was pinned and what was taken on trust, in one line."""
        committee = {
            CommitteeTrust.GENESIS_TRUSTED: (
                "committee not pinned: genesis keys trusted"
            ),
            CommitteeTrust.KEYS_PINNED: f"committee pinned by {self.pinned_by} "
            f"(genesis names its {len(self.validators)} keys)",
            CommitteeTrust.GENESIS_PINNED: f"committee pinned by {self.pinned_by}",
        }[self.committee]
        live = "" if self.live is None else f" of {self.live.answered}"
        complete = {
            Completeness.NOT_CHECKED: "completeness not checked",
            Completeness.EXPECTED_HEIGHT: f"complete: head {self.head} is the "
            "expected height",
            Completeness.LIVE_QUORUM: f"complete: reaches the head a quorum{live} "
            "live validators certifies",
            Completeness.EXPECTED_AND_LIVE: f"complete: head {self.head} is the "
            f"expected height and reaches the head a quorum{live} live validators "
            "certifies",
        }[self.completeness]
        return f"{committee}; {complete}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
