"""What a replica must remember across a crash, and its canonical byte form."""

from __future__ import annotations

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

    def to_bytes(self) -> bytes:
        """Canonical encoding, stable across processes and versions of Python."""
        return encode(
            [
                FORMAT,
                self.replica_id,
                self.view,
                self.in_view_change,
                self.stable_seq,
                [c.to_bytes() for c in self.stable_proof],
                self.stable_snapshot,
                self.last_executed,
                [_slot_value(s) for s in self.slots],
                None if self.new_view is None else self.new_view.to_bytes(),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DurableState:
        """Inverse of :meth:`to_bytes`; raises ``ValueError`` on corrupt input."""
        try:
            value = decode(data)
            if not isinstance(value, list) or len(value) != 10 or value[0] != FORMAT:
                raise ValueError("not a pot-flower replica state")
            (_, rid, view, in_vc, stable_seq, proof, snap, last, slots, nv) = value
            return cls(
                replica_id=_int(rid),
                view=_int(view),
                in_view_change=bool(in_vc),
                stable_seq=_int(stable_seq),
                stable_proof=tuple(
                    decode_message(_bytes(c), Checkpoint) for c in _list(proof)
                ),
                stable_snapshot=_bytes(snap),
                last_executed=_int(last),
                slots=tuple(_slot_from(s) for s in _list(slots)),
                new_view=None if nv is None else decode_message(_bytes(nv), NewView),
            )
        except (DecodeError, MessageError, TypeError) as exc:
            raise ValueError(f"corrupt replica state: {exc}") from exc


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
