"""What a replica must remember across a crash, as records of a key/value store.

A replica's durable state is split into records (``meta``, ``stable``, ``new-view``
and one ``slot/<seq>`` per sequence number above the stable checkpoint) so that
each protocol step writes only the few records it changed; a driver applies the
writes of a :class:`~pot_flower.consensus.effects.Persist` effect atomically (a
dict here, one SQLite transaction in a validator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pot_flower.consensus.messages import (
    Checkpoint,
    Commit,
    CommitCertificate,
    MessageError,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    decode_message,
)
from pot_flower.encoding import DecodeError, decode, encode

FORMAT = "pot-flower/replica-state/v1"


@dataclass(frozen=True)
class SlotRecord:
    """One sequence number's protocol state above the stable checkpoint."""

    seq: int
    pre_prepare: PrePrepare | None
    prepares: tuple[Prepare, ...]
    commits: tuple[Commit, ...]
    prepared: PreparedCertificate | None
    committed: CommitCertificate | None


@dataclass(frozen=True)
class DurableState:
    """A replica's recoverable state: view, stable checkpoint and the log above it.

    The application state is not stored separately: it is the stable snapshot plus
    the committed batches in ``(stable_seq, last_executed]``, replayed on restore.
    """

    replica_id: int
    view: int
    in_view_change: bool
    stable_seq: int
    stable_proof: tuple[Checkpoint, ...]
    stable_snapshot: bytes
    last_executed: int
    slots: tuple[SlotRecord, ...]
    new_view: NewView | None

    def to_records(self) -> dict[str, bytes]:
        """The whole state as store records (a replica writes only the changed ones)."""
        records = {
            META_KEY: meta_value(self),
            STABLE_KEY: stable_value(self),
            NEW_VIEW_KEY: new_view_value(self),
        }
        for slot in self.slots:
            records[slot_key(slot.seq)] = encode_slot(slot)
        return records

    @classmethod
    def from_records(cls, records: Mapping[str, bytes]) -> DurableState:
        """Rebuild from store records; raises ``ValueError`` on corrupt input."""
        try:
            meta = decode(records[META_KEY])
            stable = decode(records[STABLE_KEY])
            nv = decode(records[NEW_VIEW_KEY])
            if not isinstance(meta, list) or len(meta) != 5 or meta[0] != FORMAT:
                raise ValueError("not a pot-flower replica state")
            _, rid, view, in_vc, last = meta
            stable_seq, proof, snapshot = _list(stable)
            slots = tuple(
                _slot_from(decode(records[k]))
                for k in sorted(records)
                if k.startswith(SLOT_PREFIX)
            )
            return cls(
                replica_id=_int(rid),
                view=_int(view),
                in_view_change=bool(in_vc),
                stable_seq=_int(stable_seq),
                stable_proof=tuple(
                    decode_message(_bytes(c), Checkpoint) for c in _list(proof)
                ),
                stable_snapshot=_bytes(snapshot),
                last_executed=_int(last),
                slots=slots,
                new_view=None if nv is None else decode_message(_bytes(nv), NewView),
            )
        except KeyError as exc:
            raise ValueError(f"corrupt replica state: missing record {exc}") from exc
        except (DecodeError, MessageError, TypeError, ValueError) as exc:
            raise ValueError(f"corrupt replica state: {exc}") from exc


META_KEY = "meta"
STABLE_KEY = "stable"
NEW_VIEW_KEY = "new-view"
SLOT_PREFIX = "slot/"


def slot_key(seq: int) -> str:
    """Store key of a slot; zero-padded so keys sort by sequence number."""
    return f"{SLOT_PREFIX}{seq:020d}"


def apply_writes(store: dict[str, bytes], writes: Mapping[str, bytes | None]) -> None:
    """Apply a Persist effect's writes to an in-memory store."""
    for key, value in writes.items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def meta_value(state: DurableState) -> bytes:
    """The small record that changes on most steps."""
    return encode(
        [
            FORMAT,
            state.replica_id,
            state.view,
            state.in_view_change,
            state.last_executed,
        ]
    )


def new_view_value(state: DurableState) -> bytes:
    """The new-view message that installed the current view (forwarded to laggards)."""
    return encode(None if state.new_view is None else state.new_view.to_bytes())


def stable_value(state: DurableState) -> bytes:
    """The stable checkpoint: its proof and the state snapshot it certifies."""
    proof = [c.to_bytes() for c in state.stable_proof]
    return encode([state.stable_seq, proof, state.stable_snapshot])


def encode_slot(slot: SlotRecord) -> bytes:
    """Canonical bytes of one slot record."""
    return encode(_slot_value(slot))


def _slot_value(slot: SlotRecord) -> list[Any]:
    return [
        slot.seq,
        None if slot.pre_prepare is None else slot.pre_prepare.to_bytes(),
        [p.to_bytes() for p in slot.prepares],
        [c.to_bytes() for c in slot.commits],
        None if slot.prepared is None else slot.prepared.to_value(),
        None if slot.committed is None else slot.committed.to_value(),
    ]


def _slot_from(value: Any) -> SlotRecord:
    seq, pp, prepares, commits, prepared, committed = _list(value)
    return SlotRecord(
        seq=_int(seq),
        pre_prepare=None if pp is None else decode_message(_bytes(pp), PrePrepare),
        prepares=tuple(decode_message(_bytes(p), Prepare) for p in _list(prepares)),
        commits=tuple(decode_message(_bytes(c), Commit) for c in _list(commits)),
        prepared=None
        if prepared is None
        else PreparedCertificate.from_value(_list(prepared)),
        committed=None
        if committed is None
        else CommitCertificate.from_value(_list(committed)),
    )


def _int(v: Any) -> int:
    if type(v) is not int:
        raise TypeError("expected int")
    return v


def _bytes(v: Any) -> bytes:
    if not isinstance(v, bytes):
        raise TypeError("expected bytes")
    return v


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise TypeError("expected list")
    return v
