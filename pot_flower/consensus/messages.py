"""PBFT messages: frozen dataclasses with one canonical, signed wire form.

Wire form of every message::

    encode([payload, signature])      payload = encode([TAG, field..., sender])

The signature covers ``payload`` under the ``pbft`` domain. Nested messages (requests
in a pre-prepare, votes inside certificates) are embedded as their own wire bytes, so
a certificate can be re-verified by anyone, signature by signature.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import (
    Any,
    ClassVar,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    overload,
)

from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.zk.signatures import SIGNATURE_SIZE, SigningKey, VerifyKey

DOMAIN = b"pbft/v1"
DIGEST_SIZE = 32
#: Digest of the empty batch: the "null request" a new primary uses to fill gaps.
NULL_DIGEST = hashlib.sha256(encode([])).digest()


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (the only hash in the consensus layer)."""
    return hashlib.sha256(data).digest()


class MessageError(ValueError):
    """Raised when bytes are not a well-formed message."""


M = TypeVar("M", bound="Message")

_REGISTRY: dict[str, type[Message]] = {}


@dataclass(frozen=True)
class Message:
    """Base class: a signed message. ``sender`` is a replica index or a client id."""

    TAG: ClassVar[str] = ""

    signature: bytes = field(default=b"", kw_only=True, repr=False)
    # Cached canonical payload, filled on signing or decoding.
    _payload: bytes = field(default=b"", kw_only=True, repr=False, compare=False)
    _wire: bytes = field(default=b"", kw_only=True, repr=False, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TAG:
            _REGISTRY[cls.TAG] = cls

    # -- encoding -----------------------------------------------------------------
    def body(self) -> list[Any]:
        """Field values in declaration order, nested messages as wire bytes."""
        return [_to_value(getattr(self, f.name)) for f in _data_fields(type(self))]

    @property
    def payload(self) -> bytes:
        """The canonical bytes the signature covers."""
        if not self._payload:
            object.__setattr__(self, "_payload", encode([self.TAG, *self.body()]))
        return self._payload

    def to_bytes(self) -> bytes:
        """The wire form (payload and signature)."""
        if not self._wire:
            object.__setattr__(self, "_wire", encode([self.payload, self.signature]))
        return self._wire

    def payload_digest(self) -> bytes:
        """SHA-256 of the signed payload: the message's identity."""
        return sha256(self.payload)

    def validate(self) -> None:
        """Structural checks that need no keys; raise :class:`MessageError`.

        Every integer field (views, sequence numbers, timestamps, replica ids) is
        non-negative; subclasses add their own rules.
        """
        for name, kind in _field_types(type(self)):
            if kind is int and getattr(self, name) < 0:
                raise MessageError(f"{name} must be non-negative")

    # -- signatures ---------------------------------------------------------------
    def signed(self: M, key: SigningKey) -> M:
        """Return a copy signed with ``key``."""
        unsigned = replace(self, signature=b"", _payload=b"", _wire=b"")
        payload = unsigned.payload
        return replace(unsigned, signature=key.sign(DOMAIN, payload), _payload=payload)

    def verify(self, key: VerifyKey) -> bool:
        """Whether the signature is valid under ``key``."""
        return key.verify(DOMAIN, self.payload, self.signature)


def _data_fields(cls: type[Message]) -> list[Any]:
    return [f for f in fields(cls) if f.name not in ("signature", "_payload", "_wire")]


def _to_value(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_bytes()
    if isinstance(value, Certificate):
        return value.to_value()
    if isinstance(value, tuple):
        return [_to_value(v) for v in value]
    return value


# -- decoding ---------------------------------------------------------------------
@overload
def decode_message(data: bytes) -> Message: ...
@overload
def decode_message(data: bytes, expected: type[M]) -> M: ...
def decode_message(data: bytes, expected: type[Message] | None = None) -> Message:
    """Parse wire bytes into a message (signature not yet checked).

    Raises :class:`MessageError` for anything malformed, including a message of
    another type than ``expected``. Parsing is a pure function of the bytes and
    messages are immutable, so recent results are cached: retransmissions and the
    votes nested in certificates are parsed once.
    """
    if expected is not None and not expected.TAG:
        raise TypeError("expected must be a concrete message class")
    return _CACHE.decode(bytes(data), expected.TAG if expected else "")


class _DecodeCache:
    """Recently parsed messages by wire bytes, bounded in bytes, not entries.

    Anyone can send large messages that parse (and then fail their signature
    check): only small ones are kept, and only as many as fit the budget.
    """

    MAX_ENTRY = 64 * 1024
    MAX_BYTES = 32 * 1024 * 1024

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[bytes, str], Message] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def decode(self, data: bytes, expected_tag: str) -> Message:
        if len(data) > self.MAX_ENTRY:
            return _decode(data, expected_tag)
        key = (data, expected_tag)
        with self._lock:
            message = self._entries.get(key)
            if message is not None:
                self._entries.move_to_end(key)
                return message
        message = _decode(data, expected_tag)  # MessageError: not cached
        with self._lock:
            if key not in self._entries:
                self._entries[key] = message
                self._bytes += 2 * len(data)  # the key and the message's payload
            while self._bytes > self.MAX_BYTES:
                (old, _), _ = self._entries.popitem(last=False)
                self._bytes -= 2 * len(old)
        return message


_CACHE = _DecodeCache()


def _decode(data: bytes, expected_tag: str) -> Message:
    expected = _REGISTRY[expected_tag] if expected_tag else None
    try:
        outer = decode(data)
    except DecodeError as exc:
        raise MessageError(f"not canonical: {exc}") from exc
    if not (isinstance(outer, list) and len(outer) == 2):
        raise MessageError("wire form must be [payload, signature]")
    payload, signature = outer
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise MessageError("payload and signature must be bytes")
    if len(signature) != SIGNATURE_SIZE:
        raise MessageError("bad signature length")
    try:
        body = decode(payload)
    except DecodeError as exc:
        raise MessageError(f"payload not canonical: {exc}") from exc
    if not isinstance(body, list) or not body or not isinstance(body[0], str):
        raise MessageError("payload must start with a tag")
    cls = _REGISTRY.get(body[0])
    if cls is None:
        raise MessageError(f"unknown message tag {body[0]!r}")
    if expected is not None and not issubclass(cls, expected):
        raise MessageError(f"expected {expected.TAG}, got {cls.TAG}")
    specs = _field_types(cls)
    values = body[1:]
    if len(values) != len(specs):
        raise MessageError(
            f"{cls.TAG}: expected {len(specs)} fields, got {len(values)}"
        )
    kwargs = {
        name: _from_value(v, t, name)
        for (name, t), v in zip(specs, values, strict=True)
    }
    message = cls(**kwargs, signature=signature, _payload=payload)
    message.validate()
    return message


_TYPE_CACHE: dict[type[Message], list[tuple[str, Any]]] = {}


def _field_types(cls: type[Message]) -> list[tuple[str, Any]]:
    if cls not in _TYPE_CACHE:
        hints = get_type_hints(cls)
        _TYPE_CACHE[cls] = [(f.name, hints[f.name]) for f in _data_fields(cls)]
    return _TYPE_CACHE[cls]


def _from_value(value: Any, kind: Any, name: str) -> Any:
    if kind is int:
        if type(value) is not int:
            raise MessageError(f"{name}: expected int")
        return value
    if kind is bytes:
        if not isinstance(value, bytes):
            raise MessageError(f"{name}: expected bytes")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise MessageError(f"{name}: expected str")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise MessageError(f"{name}: expected bool")
        return value
    if get_origin(kind) is Union:  # X | None
        inner = next(a for a in get_args(kind) if a is not type(None))
        return None if value is None else _from_value(value, inner, name)
    if get_origin(kind) is tuple:
        inner = get_args(kind)[0]
        if not isinstance(value, list):
            raise MessageError(f"{name}: expected list")
        return tuple(_from_value(v, inner, name) for v in value)
    if isinstance(kind, type) and issubclass(kind, Message):
        if not isinstance(value, bytes):
            raise MessageError(f"{name}: expected nested message bytes")
        return decode_message(value, kind)
    if isinstance(kind, type) and issubclass(kind, Certificate):
        if not isinstance(value, list) or len(value) != 2:
            raise MessageError(f"{name}: expected certificate")
        return kind.from_value(value)
    raise TypeError(f"unsupported field type {kind!r}")


# -- the messages -----------------------------------------------------------------
def _check_digest(value: bytes, what: str) -> None:
    if len(value) != DIGEST_SIZE:
        raise MessageError(f"{what} must be {DIGEST_SIZE} bytes")


@dataclass(frozen=True)
class Request(Message):
    """A client's operation; ``(client, timestamp)`` identifies it for deduplication."""

    TAG: ClassVar[str] = "request"
    client: str
    timestamp: int
    operation: bytes

    def validate(self) -> None:
        super().validate()
        if not self.client or len(self.client) > 256:
            raise MessageError("client id must be 1..256 characters")


def batch_digest(requests: Sequence[Request]) -> bytes:
    """Digest of an ordered batch of requests (NULL_DIGEST for the empty batch)."""
    return sha256(encode([r.payload_digest() for r in requests]))


@dataclass(frozen=True)
class PrePrepare(Message):
    """The primary assigns ``seq`` to a batch in ``view``."""

    TAG: ClassVar[str] = "pre-prepare"
    view: int
    seq: int
    digest: bytes
    requests: tuple[Request, ...]
    sender: int

    def validate(self) -> None:
        super().validate()
        if self.seq < 1:
            raise MessageError("seq must be >= 1")
        _check_digest(self.digest, "batch digest")
        if batch_digest(self.requests) != self.digest:
            raise MessageError("batch digest does not match the requests")
        ids = [(r.client, r.timestamp) for r in self.requests]
        if len(set(ids)) != len(ids):
            raise MessageError("batch repeats a request")


@dataclass(frozen=True)
class Vote(Message):
    """Common shape of prepares and commits."""

    view: int
    seq: int
    digest: bytes
    sender: int

    def validate(self) -> None:
        super().validate()
        if self.seq < 1:
            raise MessageError("seq must be >= 1")
        _check_digest(self.digest, "batch digest")


@dataclass(frozen=True)
class Prepare(Vote):
    """A backup accepted the pre-prepare for ``(view, seq, digest)``."""

    TAG: ClassVar[str] = "prepare"


@dataclass(frozen=True)
class Commit(Vote):
    """The sender holds a prepared certificate for ``(view, seq, digest)``."""

    TAG: ClassVar[str] = "commit"


@dataclass(frozen=True)
class Votes(Message):
    """Prepares and commits relayed by ``sender``, each still signed by its author.

    With ``relay_votes`` a backup sends its votes to the primary only and the
    primary relays the quorum it gathered in one message: O(n) messages per
    decision instead of O(n²). Receivers check every inner vote as if it had
    arrived on its own, so a relay is trusted for nothing but delivery.
    """

    TAG: ClassVar[str] = "votes"
    prepares: tuple[Prepare, ...]
    commits: tuple[Commit, ...]
    sender: int

    def validate(self) -> None:
        super().validate()
        if not self.prepares and not self.commits:
            raise MessageError("empty vote bundle")
        for group in (self.prepares, self.commits):
            senders = [v.sender for v in group]
            if len(set(senders)) != len(senders):
                raise MessageError("vote bundle repeats a voter")


@dataclass(frozen=True)
class Reply(Message):
    """A replica's result for a client's request."""

    TAG: ClassVar[str] = "reply"
    view: int
    client: str
    timestamp: int
    result: bytes
    sender: int


@dataclass(frozen=True)
class Superseded(Message):
    """A replica's word that ``client``'s request ``timestamp`` will never execute.

    The replica has already executed the newer request ``executed`` of that
    client (timestamps only grow): two coordinators are using one client id.
    """

    TAG: ClassVar[str] = "superseded"
    client: str
    timestamp: int
    executed: int
    sender: int

    def validate(self) -> None:
        super().validate()
        if self.executed <= self.timestamp:
            raise MessageError("a request is superseded only by a newer one")


@dataclass(frozen=True)
class Checkpoint(Message):
    """The sender's state digest after executing ``seq``."""

    TAG: ClassVar[str] = "checkpoint"
    seq: int
    state_digest: bytes
    sender: int

    def validate(self) -> None:
        super().validate()
        _check_digest(self.state_digest, "state digest")


@dataclass(frozen=True)
class Certificate:
    """A pre-prepare plus a quorum of matching votes (not itself signed)."""

    VOTE: ClassVar[type[Vote]]
    pre_prepare: PrePrepare
    votes: tuple[Vote, ...]

    def to_value(self) -> list[Any]:
        """Encodable form."""
        return [self.pre_prepare.to_bytes(), [v.to_bytes() for v in self.votes]]

    @classmethod
    def from_value(cls, value: list[Any]) -> Self:
        """Inverse of :meth:`to_value`."""
        pp, votes = value
        if not isinstance(pp, bytes) or not isinstance(votes, list):
            raise MessageError("malformed certificate")
        vote_type = cls.VOTE
        parsed = []
        for v in votes:
            if not isinstance(v, bytes):
                raise MessageError("malformed certificate vote")
            vote = decode_message(v, vote_type)
            if type(vote) is not vote_type:
                raise MessageError("certificate vote of the wrong type")
            parsed.append(vote)
        return cls(decode_message(pp, PrePrepare), tuple(parsed))


@dataclass(frozen=True)
class PreparedCertificate(Certificate):
    """Pre-prepare + quorum-1 prepares from distinct backups."""

    VOTE: ClassVar[type[Vote]] = Prepare


@dataclass(frozen=True)
class CommitCertificate(Certificate):
    """Pre-prepare + a quorum of commits: proof that ``seq`` is committed."""

    VOTE: ClassVar[type[Vote]] = Commit


@dataclass(frozen=True)
class ViewChange(Message):
    """The sender moves to ``new_view``, carrying its checkpoint and prepared set."""

    TAG: ClassVar[str] = "view-change"
    new_view: int
    stable_seq: int
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCertificate, ...]
    sender: int

    def validate(self) -> None:
        super().validate()
        if self.new_view < 1:
            raise MessageError("new_view must be >= 1")
        seqs = [p.pre_prepare.seq for p in self.prepared]
        if len(set(seqs)) != len(seqs):
            raise MessageError("prepared set repeats a sequence number")


@dataclass(frozen=True)
class NewView(Message):
    """The new primary's proof of a view change and the pre-prepares it reissues."""

    TAG: ClassVar[str] = "new-view"
    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    sender: int

    def validate(self) -> None:
        super().validate()
        if self.view < 1:
            raise MessageError("view must be >= 1")


@dataclass(frozen=True)
class Status(Message):
    """Periodic progress report; peers answer with what the sender is missing."""

    TAG: ClassVar[str] = "status"
    view: int
    in_view_change: bool
    stable_seq: int
    last_executed: int
    sender: int


@dataclass(frozen=True)
class Committed(Message):
    """Forwards a commit certificate so a lagging replica can execute ``seq``."""

    TAG: ClassVar[str] = "committed"
    certificate: CommitCertificate
    sender: int


@dataclass(frozen=True)
class FetchState(Message):
    """Asks for the state snapshot of a stable checkpoint at or above ``seq``."""

    TAG: ClassVar[str] = "fetch-state"
    seq: int
    sender: int


@dataclass(frozen=True)
class StateTransfer(Message):
    """A stable checkpoint: its proof and the state snapshot it certifies."""

    TAG: ClassVar[str] = "state-transfer"
    seq: int
    snapshot: bytes
    proof: tuple[Checkpoint, ...]
    sender: int

    def validate(self) -> None:
        super().validate()
        if self.seq < 1:
            raise MessageError("seq must be >= 1")
