"""Tampered copies of a genuine ledger: what ``pot ledger verify`` must reject.

:func:`build_genuine` runs a small embedded committee (real replicas, real
signatures, every kind of verdict) and keeps one validator's ledger twice:
checkpointed into ``ledger.sqlite``, and with the last rounds still in the WAL.
:func:`tamper_kinds` enumerates ways to damage a copy of it:

* **field** — every field of a genesis, round, submission and fee entry, by a
  mutation (delete, null, wrong type, negative, huge, off by one, truncated,
  swapped with another block's value...), by how far the forger goes: body only;
  re-hashed; re-hashed and re-chained (later blocks' ``previous`` and ``nonce``);
  re-signed by an attacker's keys; or, for mutations the content checks alone
  must catch, re-signed by the genuine committee (an insider).
* **committee** — genesis naming an attacker's keys, every block re-signed.
* **row** — blocks dropped, duplicated, renumbered, columns of other storage
  classes; **certificate** — signatures dropped, duplicated, foreign, replayed;
  **file** — the SQLite file cut or flipped, models deleted or corrupted, the
  WAL damaged, cut or deleted.

Every kind says which block verification must name first (None: any failure,
e.g. a file SQLite cannot read). :func:`run_suite` applies each kind to a fresh
copy and audits it with the committee and the height pinned.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from pot_flower.audit import (
    AuditReport,
    CommitteePin,
    Failure,
    Pins,
    audit_ledger,
)
from pot_flower.committee.base import Committee
from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.block import SUBMISSION_FIELDS, BlockFormatError, GenesisBlock
from pot_flower.protocol.certificate import (
    Certificate,
    CertificateError,
    CertificateKind,
    Certifiers,
    block_hash,
    sign_block,
)
from pot_flower.protocol.envelope import round_nonce
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import Arrays
from pot_flower.protocol.params import MAX_EXAMPLES
from pot_flower.protocol.rewards import PPM
from pot_flower.protocol.robust.config import MAX_MOMENTUM_PPM
from pot_flower.protocol.submission import build_submission
from pot_flower.validator.ledger import LEDGER_FILE, MODELS_DIR, Ledger
from pot_flower.zk.signatures import SigningKey

RUN = 5
ROUNDS = 3
WAL_ROUNDS = 2  # the last rounds the WAL copy keeps uncheckpointed
ATTACKER = tuple(SigningKey.from_seed(b"pot/tamper/attacker/%d" % i) for i in range(4))
WAL_FILE = LEDGER_FILE + "-wal"
COLUMNS = ("height", "hash", "body", "certificate")


# -------------------------------------------------------------- the genuine one
@dataclass(frozen=True)
class Transaction:
    """A WAL transaction of the genuine WAL copy: its block and frame range."""

    height: int
    first_frame: int
    end_frame: int  # exclusive


@dataclass(frozen=True)
class Genuine:
    """A genuine ledger to tamper with, and what forging it takes.

    Parameters
    ----------
    directory : Path
        A checkpointed validator ledger (``ledger.sqlite`` and ``models/``).
    wal_directory : Path
        The same blocks, the last :data:`WAL_ROUNDS` rounds only in the WAL.
    transactions : tuple[Transaction, ...]
        The WAL copy's transactions in order (appends and certifications).
    committee : tuple[SigningKey, ...]
        The genuine committee's keys (for insider kinds only).
    bodies : tuple[bytes, ...]
        Every block body by height.

    """

    directory: Path
    wal_directory: Path
    transactions: tuple[Transaction, ...]
    committee: tuple[SigningKey, ...]
    bodies: tuple[bytes, ...]
    page_size: int

    @property
    def head(self) -> int:
        return len(self.bodies) - 1

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(k.verify_key.raw for k in self.committee)

    @property
    def quorum(self) -> int:
        params = self.value(0)["params"]
        assert isinstance(params, dict) and isinstance(params["quorum"], int)
        return params["quorum"]

    def value(self, height: int) -> dict[str, Decoded]:
        body = decode(self.bodies[height])
        assert isinstance(body, dict)
        return body

    def hash(self, height: int) -> bytes:
        return block_hash(self.bodies[height])

    def pins(self) -> Pins:
        """The committee (its genesis keys) and the height pinned."""
        return Pins(committee=CommitteePin(keys=self.keys), expect_height=self.head)


def initial_model(seed: int = 0) -> Arrays:
    """The small model every genuine chain starts from."""
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((6, 4)).astype(np.float32),
        "b": np.zeros(4, np.float32),
    }


def _trained(base: Arrays, seed: int) -> Arrays:
    rng = np.random.default_rng(1000 + seed)
    return {
        k: (v.astype(np.float64) + 0.01 * rng.standard_normal(v.shape)).astype(v.dtype)
        for k, v in base.items()
    }


def _miner(i: int) -> SigningKey:
    return SigningKey.from_seed(b"pot/tamper/miner/%d" % i)


def round_submissions(
    committee: Committee, base: Arrays, *, unavailable: bool = True
) -> tuple[list[SubmissionRef], dict[bytes, bytes]]:
    """The next round's batch, with every kind of verdict (accepted, copied...).

    ``base`` is the committee's current global model; the chain's run is
    :data:`RUN`. ``unavailable`` adds a submission whose payload is missing (a
    remote committee refuses a batch naming payloads it cannot get).
    """
    ticket = committee.ticket()
    refs: list[SubmissionRef] = []
    payloads: dict[bytes, bytes] = {}

    def add(
        i: int, node: int, returned: Arrays, *, examples: int = 10, **kw: int
    ) -> None:
        sub = build_submission(
            _miner(i),
            run=RUN,
            round_=kw.get("round_", ticket.round),
            node=node,
            nonce=ticket.nonce,
            received=base,
            returned=returned,
            num_examples=examples,
        )
        digest = hashlib.sha256(sub.payload).digest()
        signature = bytes(64) if kw.get("bad_signature") else sub.signature
        if not kw.get("no_payload"):
            payloads[digest] = sub.payload
        refs.append(SubmissionRef(node, sub.envelope_bytes, signature, digest))

    seed = 10 * ticket.round
    for i in range(4):
        add(i, 100 + i, _trained(base, seed + i), examples=10 + i)
    add(0, 110, _trained(base, seed + 50))  # duplicate-submission
    copied = _trained(base, seed + 60)
    add(4, 104, copied)  # copied-update (both)
    add(5, 105, copied)
    add(6, 106, _trained(base, seed + 6), examples=0)  # bad-num-examples
    add(7, 107, _trained(base, seed + 7), round_=ticket.round + 7)  # wrong-round
    add(8, 108, _trained(base, seed + 8), bad_signature=1)  # bad-signature
    if unavailable:
        add(9, 109, _trained(base, seed + 9), no_payload=1)  # malformed-update
    refs.append(SubmissionRef(998, None, None, None))  # missing-signature
    refs.append(SubmissionRef(999, b"junk", b"junk", None))  # malformed-envelope
    return refs, payloads


def build_genuine(
    directory: Path,
    rounds: int = ROUNDS,
    certificate: CertificateKind = CertificateKind.ED25519,
) -> Genuine:
    """Run an embedded committee for ``rounds`` rounds; keep validator 0's ledger.

    ``directory`` receives ``committee/`` (every validator's ledger), ``wal/`` (the
    WAL copy) and ``wal-build/`` (scratch).
    """
    committee = EmbeddedCommittee(
        directory / "committee",
        run=RUN,
        model=initial_model(),
        norm_bound_units=max_norm_units(10.0),
        certificate=certificate,
    )
    keys = tuple(v.key for v in committee.validators)
    current = committee.model
    for _ in range(rounds):
        refs, payloads = round_submissions(committee, current)
        current = committee.certify_round(refs, payloads).model
    committee.close()
    source = directory / "committee" / "validator-0"
    with Ledger(source) as ledger:
        blocks = list(ledger.blocks())
    bodies = tuple(b.body for b in blocks)
    wal_dir = directory / "wal"
    transactions, page_size = wal_copy(source, directory / "wal-build", wal_dir)
    return Genuine(source, wal_dir, transactions, keys, bodies, page_size)


def _wal_frames(path: Path, page_size: int) -> int:
    wal = path.with_name(path.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, (size - 32) // (page_size + 24))


def wal_copy(
    source: Path, build: Path, target: Path
) -> tuple[tuple[Transaction, ...], int]:
    """Rewrite ``source``'s blocks through :class:`Ledger`, leaving rounds in the WAL.

    The files are copied while the writer is still open (as a crash would leave
    them); the writer then closes and checkpoints its own copy.
    """
    with Ledger(source) as ledger:
        blocks = list(ledger.blocks())
    first_in_wal = len(blocks) - WAL_ROUNDS
    writer = Ledger(build)
    file = build / LEDGER_FILE
    side = sqlite3.connect(file)
    page_size = int(side.execute("PRAGMA page_size").fetchone()[0])
    transactions: list[Transaction] = []
    try:
        for block in blocks:
            if block.height == first_in_wal:
                side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for step in ("append", "certify"):
                before = _wal_frames(file, page_size)
                if step == "append":
                    writer.append(block.height, block.hash, block.body)
                else:
                    assert block.certificate is not None
                    writer.certify(block.height, block.certificate)
                if block.height >= first_in_wal:
                    after = _wal_frames(file, page_size)
                    transactions.append(Transaction(block.height, before, after))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target / LEDGER_FILE)
        shutil.copyfile(build / WAL_FILE, target / WAL_FILE)
    finally:
        side.close()
        writer.close()
    shutil.copytree(source / MODELS_DIR, target / MODELS_DIR, dirs_exist_ok=True)
    return tuple(transactions), page_size


def copy_ledger(source: Path, target: Path) -> Path:
    """A byte copy of a ledger directory (database, WAL if any, models)."""
    target.mkdir(parents=True)
    for name in (LEDGER_FILE, WAL_FILE):
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    shutil.copytree(source / MODELS_DIR, target / MODELS_DIR)
    return target


# ------------------------------------------------------------------ the kinds
class Variant(StrEnum):
    """How far a forger goes after changing a block's body."""

    TAMPER = "tamper"  # the body only
    REHASH = "rehash"  # and its stored hash
    RECHAIN = "rechain"  # and every later block's previous/nonce/hash
    RESIGN = "resign"  # and certificates from an attacker's keys
    INSIDER = "insider"  # re-chained and re-signed by the genuine committee


Apply = Callable[[Path], None]


@dataclass(frozen=True)
class TamperKind:
    """One way to damage a copy of the genuine ledger.

    ``expect`` is the block verification must name first (None: any failure);
    ``wal`` whether it applies to the WAL copy.
    """

    name: str
    family: str
    expect: int | None
    apply: Apply = field(repr=False)
    wal: bool = False


class _Delete:
    """Marks a field or list item to remove."""


DELETE = _Delete()
Mutated = Decoded | _Delete


def _value_mutations(
    value: Decoded, others: list[Decoded]
) -> Iterator[tuple[str, Mutated]]:
    """Named mutations of one decoded value (some may equal it; callers skip those)."""
    yield "delete", DELETE
    yield "null", None
    yield from _wrong_types(value)
    if isinstance(value, int) and not isinstance(value, bool):
        yield "negative", -value if value > 0 else -1
        yield "huge", (1 << 70) + value
        yield "plus-one", value + 1
        yield "minus-one", value - 1
    elif isinstance(value, bytes):
        yield "truncated", value[:-1]
        yield "extended", value + b"\0"
        yield "flipped", value[:-1] + bytes([value[-1] ^ 1]) if value else b"\1"
        yield "huge", (value or b"\0") * 4096
    elif isinstance(value, str):
        yield "other", value + "x"
        yield "empty", ""
        yield "huge", (value or "x") * 4096
    elif isinstance(value, list):
        yield "drop-last", value[:-1]
        yield "duplicate-last", value + value[-1:]
        yield "reversed", value[::-1]
        yield "append-junk", [*value, b"junk"]
    elif isinstance(value, dict):
        yield "extra-key", {**value, "zz-extra": 1}
    for other in others:
        if other != value:
            yield "swapped", other
            break


def _wrong_types(value: Decoded) -> Iterator[tuple[str, Decoded]]:
    if isinstance(value, bool) or value is None:
        yield "wrong-type-bytes", b"\x01"
    elif isinstance(value, int):
        yield "wrong-type-bytes", str(value).encode()
        yield "wrong-type-str", str(value)
    elif isinstance(value, bytes):
        yield "wrong-type-int", int.from_bytes(value[:4] or b"\0", "big")
        yield "wrong-type-str", value.hex()
    elif isinstance(value, str):
        yield "wrong-type-bytes", value.encode()
        yield "wrong-type-int", len(value)
    elif isinstance(value, list):
        yield "wrong-type-bytes", b""
        yield "wrong-type-dict", {"item": value}
    else:
        yield "wrong-type-list", list(value.values())
        yield "wrong-type-bytes", b""


Path_ = tuple[str | int, ...]


def _get(value: Decoded, path: Path_) -> Decoded:
    for step in path:
        value = value[step]  # type: ignore[index]
    return value


def _set(value: Decoded, path: Path_, new: Mutated) -> Decoded:
    """A copy of ``value`` with ``path`` replaced by ``new`` (or deleted)."""
    if not path:
        assert not isinstance(new, _Delete)
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        assert isinstance(head, str)
        copy = dict(value)
        if rest or not isinstance(new, _Delete):
            copy[head] = _set(copy.get(head), rest, new)
        else:
            del copy[head]
        return copy
    assert isinstance(value, list) and isinstance(head, int)
    items = list(value)
    if rest or not isinstance(new, _Delete):
        items[head] = _set(items[head], rest, new)
    else:
        del items[head]
    return items


# ------------------------------------------------------------ SQLite surgery
def _open(target: Path) -> sqlite3.Connection:
    db = sqlite3.connect(target / LEDGER_FILE)
    db.execute("PRAGMA synchronous=OFF")  # scratch copies: no fsync
    for trigger in (
        "blocks_append_only_delete",
        "blocks_append_only_update",
        "blocks_certify_once",
    ):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return db


def _loosen(db: sqlite3.Connection) -> None:
    """Rebuild ``blocks`` without constraints (any storage class, any height)."""
    db.executescript(
        """
        CREATE TABLE loose (height, hash, body, certificate);
        INSERT INTO loose SELECT height, hash, body, certificate FROM blocks;
        DROP TABLE blocks;
        ALTER TABLE loose RENAME TO blocks;
        """
    )


def _update(db: sqlite3.Connection, height: int, column: str, value: object) -> None:
    assert column in COLUMNS
    db.execute(f"UPDATE blocks SET {column} = ? WHERE height = ?", (value, height))


def _certificate(
    keys: tuple[SigningKey, ...],
    quorum: int,
    height: int,
    digest: bytes,
    signers: Sequence[int] = (),
    kind: CertificateKind = CertificateKind.ED25519,
) -> bytes:
    """Signed by ``keys[i]`` for i in ``signers`` (the first ``quorum`` if too few).

    A forger re-signs with the signers the genuine certificate names, so the next
    block's fees (paid to those signers) stay consistent; on a BLS chain it
    aggregates the votes as the committee would.
    """
    chosen = [i for i in signers if i < len(keys)]
    if len(chosen) < quorum:
        chosen = list(range(quorum))
    votes = {i: sign_block(keys[i], height, digest, kind) for i in chosen}
    # The keys only size the bitmap: a forger's keys stand in for the committee's.
    certifiers = Certifiers(kind, tuple(bytes(48) for _ in keys), 1)
    return certifiers.assemble(height, digest, votes).to_bytes()


def _certificate_kind(genesis: object) -> CertificateKind:
    """How the genuine chain certifies its blocks (Ed25519 if its genesis is bad)."""
    try:
        params = GenesisBlock.params_of(decode(genesis))  # type: ignore[arg-type]
    except (BlockFormatError, DecodeError, TypeError):
        return CertificateKind.ED25519
    return params.certifiers.kind


def _signers_of(data: object) -> list[int]:
    try:
        return Certificate.from_bytes(data).signers if isinstance(data, bytes) else []
    except CertificateError:
        return []


def reforge(
    target: Path,
    start: int,
    body: bytes,
    variant: Variant,
    signers: tuple[SigningKey, ...] = ATTACKER,
    quorum: int = 3,
) -> None:
    """Store ``body`` as block ``start`` of the ledger in ``target``; go on forging.

    ``variant`` says how far: the stored hash, every later block re-linked
    (``previous`` and ``nonce``) and re-hashed, certificates from the first
    ``quorum`` of ``signers`` for every changed block.
    """
    db = _open(target)
    try:
        bodies = dict(db.execute("SELECT height, body FROM blocks").fetchall())
        certificates = dict(
            db.execute("SELECT height, certificate FROM blocks").fetchall()
        )
        _update(db, start, "body", body)
        kind = _certificate_kind(bodies.get(0))
        if variant == Variant.TAMPER:
            return
        digests = {start: block_hash(body)}
        _update(db, start, "hash", digests[start])
        last = start
        if variant != Variant.REHASH:
            last = max(bodies)
            for height in range(start + 1, last + 1):
                later = decode(bodies[height])
                assert isinstance(later, dict)
                later["previous"] = digests[height - 1]
                later["nonce"] = round_nonce(RUN, height, digests[height - 1])
                encoded = encode(later)
                digests[height] = block_hash(encoded)
                _update(db, height, "body", encoded)
                _update(db, height, "hash", digests[height])
        if variant in (Variant.RESIGN, Variant.INSIDER):
            count = min(quorum, len(signers))
            for height in range(start, last + 1):
                cert = _certificate(
                    signers,
                    count,
                    height,
                    digests[height],
                    _signers_of(certificates.get(height)),
                    kind,
                )
                _update(db, height, "certificate", cert)
    finally:
        db.commit()
        db.close()


def _forge(
    target: Path,
    genuine: Genuine,
    start: int,
    body: bytes,
    variant: Variant,
    signers: tuple[SigningKey, ...] | None = None,
) -> None:
    """:func:`reforge` with the attacker's keys (the committee's for insiders)."""
    keys = signers or (genuine.committee if variant == Variant.INSIDER else ATTACKER)
    reforge(target, start, body, variant, keys, genuine.quorum)


# ----------------------------------------------------------------- generators
_FORGERS = (Variant.TAMPER, Variant.REHASH, Variant.RECHAIN, Variant.RESIGN)


def _field_kind(
    genuine: Genuine,
    height: int,
    path: Path_,
    label: str,
    new: Mutated,
    variant: Variant,
) -> TamperKind | None:
    original = genuine.value(height)
    changed = _set(original, path, new)
    body = encode(changed)
    if body == genuine.bodies[height]:
        return None

    def apply(target: Path) -> None:
        _forge(target, genuine, height, body, variant)

    where = ".".join(str(p) for p in path)
    name = f"field/{height}/{where}/{label}/{variant}"
    return TamperKind(name, f"field-{variant}", height, apply)


def _paths(genuine: Genuine) -> Iterator[tuple[int, Path_]]:
    """The fields mutated: genesis, params, a round, two submissions, a fee."""
    genesis = genuine.value(0)
    for key in sorted(genesis):
        yield 0, (key,)
    params = genesis["params"]
    assert isinstance(params, dict)
    for key in sorted(params):
        yield 0, ("params", key)
    yield 0, ("layout", 0)
    target = 2 if genuine.head >= 2 else genuine.head
    body = genuine.value(target)
    for key in sorted(body):
        yield target, (key,)
    subs = body["submissions"]
    assert isinstance(subs, list)
    for index in _interesting_submissions(subs):
        sub = subs[index]
        assert isinstance(sub, dict)
        for key in sorted(sub):
            yield target, ("submissions", index, key)
    yield target, ("validator-fees", 0, 0)
    yield target, ("validator-fees", 0, 1)


def _interesting_submissions(subs: list[Decoded]) -> list[int]:
    """An accepted, a rejected-after-signature and a rejected-before one."""
    chosen: dict[str, int] = {}
    for i, sub in enumerate(subs):
        assert isinstance(sub, dict)
        kind = (
            "accepted"
            if sub["verdict"] == "accepted"
            else ("unsigned" if sub["miner"] is None else "rejected")
        )
        chosen.setdefault(kind, i)
    return [chosen["accepted"], chosen["rejected"], chosen["unsigned"]]


def field_kinds(genuine: Genuine) -> list[TamperKind]:
    """Every field, mutation and forger variant (outsiders: they lack the keys)."""
    kinds: list[TamperKind] = []
    for height, path in _paths(genuine):
        others = [
            _get(genuine.value(h), path)
            for h in range(genuine.head + 1)
            if h != height and _has(genuine.value(h), path)
        ]
        value = _get(genuine.value(height), path)
        for label, new in _value_mutations(value, others):
            for variant in _FORGERS:
                kind = _field_kind(genuine, height, path, label, new, variant)
                if kind is not None:
                    kinds.append(kind)
    return kinds


def _has(value: Decoded, path: Path_) -> bool:
    try:
        _get(value, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def insider_kinds(genuine: Genuine) -> list[TamperKind]:
    """Mutations the content checks must catch even under genuine signatures."""
    target = 2 if genuine.head >= 2 else genuine.head
    body = genuine.value(target)
    subs = body["submissions"]
    assert isinstance(subs, list)
    accepted, rejected, unsigned = _interesting_submissions(subs)
    cases: list[tuple[int, Path_, str, Mutated]] = []
    for key in sorted(body):
        cases.append((target, (key,), "delete", DELETE))
        cases += [(target, (key,), label, v) for label, v in _wrong_types(body[key])]
    cases += [
        (target, ("zz-extra",), "extra-key", 1),
        (target, ("minted",), "plus-one", _int_at(body, ("minted",)) + 1),
        (target, ("minted",), "negative", -1),
        (target, ("height",), "plus-one", target + 1),
        (target, ("run",), "plus-one", RUN + 1),
        (target, ("kind",), "genesis", "genesis"),
        (target, ("base",), "flipped", _flip(body["base"])),
        (target, ("nonce",), "flipped", _flip(body["nonce"])),
        (target, ("previous",), "flipped", _flip(body["previous"])),
        (target, ("model",), "flipped", _flip(body["model"])),
        (target, ("registrations",), "append-junk", [b"\x07" * 32]),
        (target, ("submissions",), "reversed", subs[::-1]),
        (
            target,
            ("validator-fees", 0, 1),
            "plus-one",
            _int_at(body, ("validator-fees", 0, 1)) + 1,
        ),
        (target, ("validator-fees", 0, 0), "other-signer", 3),
        (
            target,
            ("validator-fees",),
            "drop-last",
            _list_at(body, ("validator-fees",))[:-1],
        ),
    ]
    sub_fields = sorted(SUBMISSION_FIELDS)
    for index in (accepted, rejected, unsigned):
        sub = subs[index]
        assert isinstance(sub, dict)
        for key in sub_fields:
            path: Path_ = ("submissions", index, key)
            cases.append((target, path, "delete", DELETE))
        for key in (
            "examples",
            "quality-ppm",
            "reputation-ppm",
            "reward",
            "verdict",
            "reason",
        ):
            path = ("submissions", index, key)
            cases += [(target, path, label, v) for label, v in _wrong_types(sub[key])]
    a = ("submissions", accepted)
    r = ("submissions", rejected)
    u = ("submissions", unsigned)
    cases += [
        (target, (*a, "examples"), "negative", -5),
        (target, (*a, "examples"), "zero", 0),
        (target, (*a, "examples"), "above-max", MAX_EXAMPLES + 1),
        (target, (*a, "quality-ppm"), "negative", -1),
        (target, (*a, "quality-ppm"), "above-max", PPM + 1),
        (target, (*a, "reputation-ppm"), "above-max", PPM + 1),
        (
            target,
            (*a, "reputation-ppm"),
            "plus-one",
            _int_at(body, (*a, "reputation-ppm")) + 1,
        ),
        (target, (*r, "reputation-ppm"), "reputed", 1),
        (target, (*a, "reward"), "negative", -1),
        (target, (*a, "reward"), "plus-one", _int_at(body, (*a, "reward")) + 1),
        (target, (*a, "verdict"), "rejected", "rejected"),
        (target, (*a, "reason"), "bogus", "bogus"),
        (target, (*a, "miner"), "null", None),
        (target, (*a, "miner"), "truncated", _flip(_get(body, (*a, "miner")))[:-1]),
        (target, (*a, "commitment"), "null", None),
        (target, (*a, "node"), "wrong-type-str", "100"),
        (target, (*r, "reward"), "paid", 1),
        (target, (*r, "quality-ppm"), "scored", 1),
        (target, (*r, "verdict"), "accepted", "accepted"),
        (target, (*r, "reason"), "bogus", "bogus"),
        (target, (*u, "examples"), "counted", 1),
        (target, (*u, "miner"), "named", b"\x05" * 32),
        (target, (*u, "reason"), "accepted-reason", ""),
    ]
    genesis = genuine.value(0)
    cases += [
        (0, ("version",), "plus-one", 2),
        (0, ("kind",), "round", "round"),
        (0, ("height",), "plus-one", 1),
        (0, ("previous",), "flipped", _flip(genesis["previous"])),
        (0, ("layout",), "wrong-type-bytes", b""),
        (0, ("layout", 0), "wrong-type-str", "w"),
        (0, ("params", "quorum"), "zero", 0),
        (0, ("params", "quorum"), "above-committee", 5),
        (0, ("params", "emission"), "negative", -1),
        (0, ("params", "validator-fee-ppm"), "above-max", PPM + 1),
        (0, ("params", "norm-bound-units"), "zero", 0),
        (0, ("params", "registration"), "unknown", "closed"),
        (0, ("params", "allowed-miners"), "unsorted", [b"\x02" * 32, b"\x01" * 32]),
        (0, ("params", "run"), "wrong-type-str", str(RUN)),
        (0, ("params", "robust", "reputation-rate-ppm"), "above-max", PPM + 1),
        (0, ("params", "robust", "momentum-ppm"), "above-max", MAX_MOMENTUM_PPM + 1),
    ]
    kinds = []
    for height, path, label, new in cases:
        kind = _field_kind(genuine, height, path, label, new, Variant.INSIDER)
        if kind is not None:
            kinds.append(kind)
    return kinds


def _flip(value: Decoded) -> bytes:
    assert isinstance(value, bytes) and value
    return value[:-1] + bytes([value[-1] ^ 1])


def _int_at(value: Decoded, path: Path_) -> int:
    found = _get(value, path)
    assert isinstance(found, int)
    return found


def _list_at(value: Decoded, path: Path_) -> list[Decoded]:
    found = _get(value, path)
    assert isinstance(found, list)
    return found


def encoding_kinds(genuine: Genuine) -> list[TamperKind]:
    """Bodies that are not canonical encodings (each re-hashed, then re-signed)."""
    kinds = []
    for height in (0, min(2, genuine.head)):
        body = genuine.bodies[height]
        raw_cases = {
            "trailing-byte": body + b"e",
            "truncated": body[:-1],
            "not-a-dict": b"l" + body + b"e",
            "leading-zero": body.replace(b"u6:heighti", b"u6:heighti0", 1),
            "garbage": b"\xff" * 64,
            "empty": b"",
            "other-block": genuine.bodies[(height + 1) % len(genuine.bodies)],
        }
        for label, raw in raw_cases.items():
            if raw == body:
                continue
            for variant in (Variant.REHASH, Variant.RESIGN, Variant.INSIDER):
                kinds.append(_raw_kind(genuine, height, label, raw, variant))
    return kinds


def _raw_kind(
    genuine: Genuine, height: int, label: str, raw: bytes, variant: Variant
) -> TamperKind:
    def apply(target: Path) -> None:
        db = _open(target)
        try:
            _loosen(db)
            _update(db, height, "body", raw)
            if variant == Variant.REHASH:
                _update(db, height, "hash", block_hash(raw))
            elif variant in (Variant.RESIGN, Variant.INSIDER):
                keys = genuine.committee if variant == Variant.INSIDER else ATTACKER
                digest = block_hash(raw)
                _update(db, height, "hash", digest)
                cert = _certificate(keys, genuine.quorum, height, digest)
                _update(db, height, "certificate", cert)
        finally:
            db.commit()
            db.close()

    return TamperKind(f"encoding/{height}/{label}/{variant}", "encoding", height, apply)


def committee_kinds(genuine: Genuine) -> list[TamperKind]:
    """Genesis naming other keys (or another quorum), every block re-signed."""
    genesis = genuine.value(0)
    params = genesis["params"]
    assert isinstance(params, dict)
    keys = list(genuine.keys)
    attacker = [k.verify_key.raw for k in ATTACKER]
    cases: dict[str, tuple[list[bytes], int]] = {
        "all-keys": (attacker, genuine.quorum),
        "quorum-of-keys": ([*attacker[:3], *keys[3:]], genuine.quorum),
        "one-key": (attacker[:1], 1),
        "one-key-replaced": ([attacker[0], *keys[1:]], genuine.quorum),
        "keys-reordered": ([keys[1], keys[0], *keys[2:]], genuine.quorum),
        "extra-key": ([*keys, attacker[0]], genuine.quorum),
        "lower-quorum": (keys, 1),
        "attacker-keys-low-quorum": (attacker, 1),
    }
    kinds = []
    for label, (validators, quorum) in cases.items():
        forged: dict[str, Decoded] = {**params, "quorum": quorum}
        forged["validators"] = list[Decoded](validators)
        body = encode({**genesis, "params": forged})
        signers = ATTACKER[: len(validators)]
        kinds.append(
            TamperKind(
                f"committee/{label}",
                "committee",
                0,
                _forged_committee(genuine, body, signers),
            )
        )
    kinds.append(
        TamperKind(
            "committee/append-forged-block",
            "committee",
            genuine.head + 1,
            _append_forged(genuine),
        )
    )
    kinds.append(
        TamperKind(
            "committee/replace-last-block",
            "committee",
            genuine.head,
            _replace_last(genuine),
        )
    )
    return kinds


def _forged_committee(
    genuine: Genuine, genesis: bytes, signers: tuple[SigningKey, ...]
) -> Apply:
    def apply(target: Path) -> None:
        _forge(target, genuine, 0, genesis, Variant.RESIGN, signers)

    return apply


def _append_forged(genuine: Genuine) -> Apply:
    def apply(target: Path) -> None:
        height = genuine.head + 1
        last = genuine.value(genuine.head)
        last["height"] = height
        last["previous"] = genuine.hash(genuine.head)
        last["nonce"] = round_nonce(RUN, height, genuine.hash(genuine.head))
        last["base"] = last["model"]
        body = encode(last)
        digest = block_hash(body)
        db = _open(target)
        try:
            db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?)",
                (
                    height,
                    digest,
                    body,
                    _certificate(ATTACKER, genuine.quorum, height, digest),
                ),
            )
        finally:
            db.commit()
            db.close()

    return apply


def _replace_last(genuine: Genuine) -> Apply:
    def apply(target: Path) -> None:
        last = genuine.value(genuine.head)
        last["minted"] = 0
        _forge(target, genuine, genuine.head, encode(last), Variant.RESIGN)

    return apply


def _row_surgery(
    sql: str, params: tuple[object, ...] = (), *, loose: bool = True
) -> Apply:
    def apply(target: Path) -> None:
        db = _open(target)
        try:
            if loose:
                _loosen(db)
            db.execute(sql, params)
        finally:
            db.commit()
            db.close()

    return apply


def _confused(height: int, column: str, value: object) -> Apply:
    def apply(target: Path) -> None:
        db = _open(target)
        try:
            _loosen(db)
            _update(db, height, column, value)
        finally:
            db.commit()
            db.close()

    return apply


def row_kinds(genuine: Genuine) -> list[TamperKind]:
    """Rows dropped, duplicated, renumbered; columns of other storage classes."""
    head = genuine.head
    kinds = [
        TamperKind("row/drop-all", "row", 0, _row_surgery("DELETE FROM blocks")),
        TamperKind(
            "row/no-table", "row", None, _row_surgery("DROP TABLE blocks", loose=False)
        ),
        TamperKind(
            "row/view-instead-of-table",
            "row",
            None,
            _view_instead(),
        ),
        TamperKind(
            "row/missing-certificate-column",
            "row",
            None,
            _row_surgery("ALTER TABLE blocks DROP COLUMN certificate"),
        ),
    ]
    for h in range(head + 1):
        kinds += [
            TamperKind(
                f"row/drop/{h}",
                "row",
                h,
                _row_surgery("DELETE FROM blocks WHERE height = ?", (h,)),
            ),
            TamperKind(
                f"row/duplicate/{h}",
                "row",
                h,
                _row_surgery(
                    "INSERT INTO blocks SELECT * FROM blocks WHERE height = ?", (h,)
                ),
            ),
            TamperKind(
                f"row/renumber-far/{h}",
                "row",
                h,
                _row_surgery("UPDATE blocks SET height = 1000 WHERE height = ?", (h,)),
            ),
        ]
        if h < head:
            kinds.append(
                TamperKind(
                    f"row/swap-heights/{h}-{h + 1}",
                    "row",
                    h,
                    _row_surgery(
                        "UPDATE blocks SET height = "
                        "CASE height WHEN ? THEN ? ELSE ? END WHERE height IN (?, ?)",
                        (h, h + 1, h, h, h + 1),
                    ),
                )
            )
        if h > 0:
            kinds.append(
                TamperKind(
                    f"row/truncate-from/{h}",
                    "row",
                    h,
                    _row_surgery(
                        "DELETE FROM blocks WHERE height >= ?", (h,), loose=False
                    ),
                )
            )
    for h in sorted({0, min(2, head), head}):
        for column in COLUMNS:
            for label, value in _confusions(genuine, h, column):
                kinds.append(
                    TamperKind(
                        f"row/{column}-{label}/{h}",
                        "row",
                        h,
                        _confused(h, column, value),
                    )
                )
    return kinds


def _view_instead() -> Apply:
    def apply(target: Path) -> None:
        db = _open(target)
        try:
            db.executescript(
                "ALTER TABLE blocks RENAME TO real;"
                "CREATE VIEW blocks AS SELECT * FROM real WHERE height < 2;"
            )
        finally:
            db.commit()
            db.close()

    return apply


def _confusions(genuine: Genuine, height: int, column: str) -> list[tuple[str, object]]:
    """Values of other storage classes (and wrong values) for one column."""
    body = genuine.bodies[height]
    stored: object = {
        "height": height,
        "hash": genuine.hash(height),
        "body": body,
        "certificate": _stored_certificate(genuine, height).to_bytes(),
    }[column]
    text = stored.hex() if isinstance(stored, bytes) else str(stored)
    cases: list[tuple[str, object]] = [
        ("text", text),
        ("text-latin1", body.decode("latin-1") if column == "body" else text + " "),
        ("real", float(height) + (0.0 if column == "height" else 0.5)),
        ("integer", 7 if column != "height" else height + 10),
        ("null", None),
        ("negative", -1 - height),
        ("huge", (1 << 63) - 1),
        ("empty-blob", b""),
        ("zero-blob", bytes(32)),
    ]
    return cases


def certificate_kinds(genuine: Genuine) -> list[TamperKind]:
    """Certificates that do not certify their block under the committee."""
    kinds = []
    for height in sorted({0, min(2, genuine.head)}):
        for label, cert in _bad_certificates(genuine, height):
            kinds.append(
                TamperKind(
                    f"certificate/{label}/{height}",
                    "certificate",
                    height,
                    _confused(height, "certificate", cert),
                )
            )
    return kinds


def _stored_certificate(genuine: Genuine, height: int) -> Certificate:
    with Ledger(genuine.directory) as ledger:
        block = ledger.block(height)
    assert block is not None and block.certificate is not None
    return Certificate.from_bytes(block.certificate)


def _bad_certificates(genuine: Genuine, height: int) -> list[tuple[str, bytes]]:
    cert = _stored_certificate(genuine, height)
    sigs = list(cert.signatures)
    digest = cert.block
    other = (height + 1) % (genuine.head + 1)
    other_cert = _stored_certificate(genuine, other)
    q = genuine.quorum

    def made(
        signatures: list[tuple[int, bytes]], h: int = height, block: bytes = digest
    ) -> bytes:
        return Certificate(h, block, tuple(signatures)).to_bytes()

    value = decode(cert.to_bytes())
    assert isinstance(value, dict)
    return [
        ("below-quorum", made(sigs[: q - 1])),
        ("no-signatures", made([])),
        ("duplicate-signer", made([sigs[0], sigs[0], *sigs[1 : q - 1]])),
        (
            "foreign-key",
            made([(0, sign_block(ATTACKER[0], height, digest)), *sigs[1:]]),
        ),
        ("index-out-of-range", made([*sigs[:-1], (len(genuine.keys), sigs[-1][1])])),
        ("negative-index", made([(-1, sigs[0][1]), *sigs[1:]])),
        ("unsorted", made([sigs[1], sigs[0], *sigs[2:]])),
        ("signature-truncated", made([(sigs[0][0], sigs[0][1][:-1]), *sigs[1:]])),
        ("signature-extended", made([(sigs[0][0], sigs[0][1] + b"\0"), *sigs[1:]])),
        ("signature-zeroed", made([(sigs[0][0], bytes(64)), *sigs[1:]])),
        ("signature-flipped", made([(sigs[0][0], _flip(sigs[0][1])), *sigs[1:]])),
        ("wrong-height", made(sigs, h=height + 1)),
        ("negative-height", made(sigs, h=-1)),
        ("wrong-block", made(sigs, block=genuine.hash(other))),
        ("other-blocks-certificate", other_cert.to_bytes()),
        ("replayed-signatures", made(list(other_cert.signatures))),
        ("attacker-committee", _certificate(ATTACKER, q, height, digest)),
        ("attacker-quorum-of-one", _certificate(ATTACKER, 1, height, digest)),
        ("trailing-byte", cert.to_bytes() + b"e"),
        ("extra-key", encode({**value, "zz": 1})),
        ("missing-key", encode({k: v for k, v in value.items() if k != "signatures"})),
        ("garbage", b"\x00garbage"),
        ("signatures-not-pairs", encode({**value, "signatures": [b"x"]})),
        ("height-as-bytes", encode({**value, "height": b"\x02"})),
    ]


def _flip_file(relative: str, offset: int | Callable[[bytes], int]) -> Apply:
    def apply(target: Path) -> None:
        file = target / relative
        data = bytearray(file.read_bytes())
        at = offset(bytes(data)) if callable(offset) else offset
        data[at] ^= 0x01
        file.write_bytes(bytes(data))

    return apply


def _cut_file(relative: str, size: Callable[[int], int]) -> Apply:
    def apply(target: Path) -> None:
        file = target / relative
        data = file.read_bytes()
        file.write_bytes(data[: size(len(data))])

    return apply


def _replace_file(relative: str, data: bytes | None, directory: bool = False) -> Apply:
    def apply(target: Path) -> None:
        file = target / relative
        if file.is_dir():
            shutil.rmtree(file)
        elif file.exists():
            file.unlink()
        if directory:
            file.mkdir()
        elif data is not None:
            file.write_bytes(data)

    return apply


def file_kinds(genuine: Genuine) -> list[TamperKind]:
    """The database file cut, flipped or replaced; model files damaged."""
    db = LEDGER_FILE
    kinds = [
        TamperKind("file/cut-to-zero", "file", None, _cut_file(db, lambda n: 0)),
        TamperKind("file/cut-to-100", "file", None, _cut_file(db, lambda n: 100)),
        TamperKind(
            "file/cut-to-one-page",
            "file",
            None,
            _cut_file(db, lambda n: genuine.page_size),
        ),
        TamperKind("file/cut-in-half", "file", None, _cut_file(db, lambda n: n // 2)),
        TamperKind("file/header-flipped", "file", None, _flip_file(db, 0)),
        TamperKind(
            "file/garbage", "file", None, _replace_file(db, b"not a database" * 300)
        ),
        TamperKind("file/empty", "file", None, _replace_file(db, b"")),
        TamperKind(
            "file/is-a-directory", "file", None, _replace_file(db, None, directory=True)
        ),
        TamperKind("file/absent", "file", None, _replace_file(db, None)),
    ]
    for height in sorted({0, min(2, genuine.head), genuine.head}):
        for label, needle in _stored_pieces(genuine, height):
            kinds.append(
                TamperKind(
                    f"file/flip-in-{label}/{height}",
                    "file",
                    height,
                    _flip_file(db, _finder(needle)),
                )
            )
    kinds += _model_kinds(genuine)
    return kinds


def _stored_pieces(genuine: Genuine, height: int) -> list[tuple[str, bytes]]:
    """Byte strings found once in the database file: part of a body, hash, cert."""
    data = (genuine.directory / LEDGER_FILE).read_bytes()
    cert = _stored_certificate(genuine, height).to_bytes()
    pieces = [
        ("body", genuine.bodies[height][40:104]),
        ("hash", genuine.hash(height)),
        ("certificate", cert[-64:]),
    ]
    return [(label, piece) for label, piece in pieces if data.count(piece) == 1]


def _finder(needle: bytes) -> Callable[[bytes], int]:
    def find(data: bytes) -> int:
        at = data.find(needle)
        assert at >= 0, "the piece moved"
        return at + len(needle) // 2

    return find


def _model_kinds(genuine: Genuine) -> list[TamperKind]:
    first_naming: dict[bytes, int] = {}
    for height in range(genuine.head + 1):
        model = genuine.value(height)["model"]
        assert isinstance(model, bytes)
        first_naming.setdefault(model, height)
    kinds = [
        TamperKind("model/dir-deleted", "model", 0, _replace_file(MODELS_DIR, None)),
        TamperKind("model/dir-is-a-file", "model", 0, _replace_file(MODELS_DIR, b"x")),
    ]
    digests = list(first_naming)
    for index, (digest, height) in enumerate(first_naming.items()):
        relative = f"{MODELS_DIR}/{digest.hex()}"
        swap = digests[(index + 1) % len(digests)]
        cases: dict[str, Apply] = {
            "deleted": _replace_file(relative, None),
            "flipped": _flip_file(relative, 8),
            "cut": _cut_file(relative, lambda n: n - 1),
            "emptied": _replace_file(relative, b""),
            "directory": _replace_file(relative, None, directory=True),
            "other-model": _copy_model(swap, digest),
        }
        for label, apply in cases.items():
            kinds.append(TamperKind(f"model/{label}/{height}", "model", height, apply))
    return kinds


def _copy_model(source: bytes, target: bytes) -> Apply:
    def apply(directory: Path) -> None:
        models = directory / MODELS_DIR
        (models / target.hex()).write_bytes((models / source.hex()).read_bytes())

    return apply


def wal_kinds(genuine: Genuine) -> list[TamperKind]:
    """The WAL copy with frames damaged, cut, zeroed, or the WAL deleted."""
    frame = genuine.page_size + 24
    frames = genuine.transactions[-1].end_frame

    def height_of(index: int) -> int:
        for txn in genuine.transactions:
            if txn.first_frame <= index < txn.end_frame:
                return txn.height
        return genuine.head + 1

    kinds = []
    header_fields = (
        "magic",
        "version",
        "page-size",
        "checkpoint",
        "salt-1",
        "salt-2",
        "checksum-1",
        "checksum-2",
    )
    for i, label in enumerate(header_fields):
        kinds.append(
            TamperKind(
                f"wal/header-{label}",
                "wal",
                None,
                _flip_file(WAL_FILE, 4 * i + 3),
                wal=True,
            )
        )
    frame_fields = (
        "page-number",
        "commit-size",
        "salt-1",
        "salt-2",
        "checksum-1",
        "checksum-2",
    )
    for k in range(frames):
        start = 32 + k * frame
        expect = height_of(k)
        for i, label in enumerate(frame_fields):
            kinds.append(
                TamperKind(
                    f"wal/frame-{k}-{label}",
                    "wal",
                    expect,
                    _flip_file(WAL_FILE, start + 4 * i + 3),
                    wal=True,
                )
            )
        kinds.append(
            TamperKind(
                f"wal/frame-{k}-page",
                "wal",
                expect,
                _flip_file(WAL_FILE, start + 24 + genuine.page_size // 2),
                wal=True,
            )
        )
        kinds.append(
            TamperKind(
                f"wal/cut-at-frame-{k}",
                "wal",
                expect,
                _cut_file(WAL_FILE, _const(start)),
                wal=True,
            )
        )
        kinds.append(
            TamperKind(
                f"wal/cut-inside-frame-{k}",
                "wal",
                expect,
                _cut_file(WAL_FILE, _const(start + frame // 2)),
                wal=True,
            )
        )
        kinds.append(
            TamperKind(
                f"wal/zeroed-from-frame-{k}", "wal", expect, _zero_from(start), wal=True
            )
        )
    first = genuine.transactions[0].height
    kinds.append(
        TamperKind("wal/deleted", "wal", first, _replace_file(WAL_FILE, None), wal=True)
    )
    kinds.append(
        TamperKind(
            "wal/header-only", "wal", first, _cut_file(WAL_FILE, _const(32)), wal=True
        )
    )
    return kinds


def _const(size: int) -> Callable[[int], int]:
    def cut(_: int) -> int:
        return size

    return cut


def _zero_from(offset: int) -> Apply:
    def apply(target: Path) -> None:
        file = target / WAL_FILE
        data = file.read_bytes()
        file.write_bytes(data[:offset] + bytes(len(data) - offset))

    return apply


def tamper_kinds(genuine: Genuine) -> list[TamperKind]:
    """Every tamper kind, names unique."""
    kinds = [
        *field_kinds(genuine),
        *insider_kinds(genuine),
        *encoding_kinds(genuine),
        *committee_kinds(genuine),
        *row_kinds(genuine),
        *certificate_kinds(genuine),
        *file_kinds(genuine),
        *wal_kinds(genuine),
    ]
    names = [k.name for k in kinds]
    assert len(names) == len(set(names)), "tamper kind names must be unique"
    return kinds


# --------------------------------------------------------------------- running
@dataclass(frozen=True)
class Outcome:
    """What verification said about one tampered copy."""

    kind: TamperKind
    rejected: bool
    named: bool  # the expected first bad block was named (or none was expected)
    crashed: str | None  # a traceback, or the failure code of a check that raised
    problem: str | None


def run_kind(
    genuine: Genuine,
    kind: TamperKind,
    work: Path,
    verify: Callable[[Path], AuditReport] | None = None,
) -> Outcome:
    """Apply ``kind`` to a fresh copy under ``work`` and verify it."""
    target = copy_ledger(genuine.wal_directory if kind.wal else genuine.directory, work)
    kind.apply(target)
    check = verify or (lambda path: audit_ledger(path, genuine.pins()))
    try:
        report = check(target)
    except Exception:
        return Outcome(kind, False, False, traceback.format_exc(), None)
    crashed = report.problem if report.failure == Failure.UNEXPECTED else None
    named = kind.expect is None or report.bad_block == kind.expect
    return Outcome(kind, not report.ok, named, crashed, report.problem)


@dataclass
class SuiteResult:
    """Figures of one run over every tamper kind."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def accepted(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.rejected]

    @property
    def crashed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.crashed is not None]

    @property
    def misnamed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.rejected and not o.named]

    def summary(self) -> dict[str, object]:
        families: dict[str, int] = {}
        for o in self.outcomes:
            families[o.kind.family] = families.get(o.kind.family, 0) + 1
        expected = [o for o in self.outcomes if o.kind.expect is not None]
        return {
            "kinds": len(self.outcomes),
            "rejected": len(self.outcomes) - len(self.accepted),
            "accepted": len(self.accepted),
            "tracebacks": len(self.crashed),
            "first_bad_block_expected": len(expected),
            "first_bad_block_named": sum(1 for o in expected if o.named),
            "families": dict(sorted(families.items())),
            "accepted_kinds": [o.kind.name for o in self.accepted][:20],
            "misnamed_kinds": [o.kind.name for o in self.misnamed][:20],
        }


def run_suite(
    genuine: Genuine,
    work: Path,
    kinds: list[TamperKind] | None = None,
    verify: Callable[[Path], AuditReport] | None = None,
) -> SuiteResult:
    """Every kind (default: :func:`tamper_kinds`) on its own copy under ``work``."""
    result = SuiteResult()
    for index, kind in enumerate(kinds if kinds is not None else tamper_kinds(genuine)):
        result.outcomes.append(run_kind(genuine, kind, work / f"k{index}", verify))
    return result
