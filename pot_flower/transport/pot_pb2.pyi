from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Frame(_message.Message):
    __slots__ = ("data", "more")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    more: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, data: _Optional[bytes] = ..., more: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: bool = ..., reason: _Optional[str] = ...) -> None: ...

class SealReply(_message.Message):
    __slots__ = ("signature", "reason")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    reason: str
    def __init__(self, signature: _Optional[bytes] = ..., reason: _Optional[str] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("client",)
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    client: str
    def __init__(self, client: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("status", "replica", "view", "last_executed", "stable", "in_view_change", "received", "dropped", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTED_FIELD_NUMBER: _ClassVar[int]
    STABLE_FIELD_NUMBER: _ClassVar[int]
    IN_VIEW_CHANGE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: str
    replica: int
    view: int
    last_executed: int
    stable: int
    in_view_change: bool
    received: int
    dropped: int
    detail: str
    def __init__(self, status: _Optional[str] = ..., replica: _Optional[int] = ..., view: _Optional[int] = ..., last_executed: _Optional[int] = ..., stable: _Optional[int] = ..., in_view_change: bool = ..., received: _Optional[int] = ..., dropped: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("digest", "data", "client", "run", "size", "signature", "round")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    data: bytes
    client: str
    run: int
    size: int
    signature: bytes
    round: int
    def __init__(self, digest: _Optional[bytes] = ..., data: _Optional[bytes] = ..., client: _Optional[str] = ..., run: _Optional[int] = ..., size: _Optional[int] = ..., signature: _Optional[bytes] = ..., round: _Optional[int] = ...) -> None: ...

class PayloadRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    def __init__(self, digest: _Optional[bytes] = ...) -> None: ...

class HoldsRequest(_message.Message):
    __slots__ = ("digests",)
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class HoldsReply(_message.Message):
    __slots__ = ("receipt", "missing")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    receipt: bytes
    missing: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, receipt: _Optional[bytes] = ..., missing: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("run", "batch")
    RUN_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    run: int
    batch: bytes
    def __init__(self, run: _Optional[int] = ..., batch: _Optional[bytes] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ("vector", "pending")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    vector: bytes
    pending: str
    def __init__(self, vector: _Optional[bytes] = ..., pending: _Optional[str] = ...) -> None: ...

class BlockRequest(_message.Message):
    __slots__ = ("run", "height", "with_model")
    RUN_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WITH_MODEL_FIELD_NUMBER: _ClassVar[int]
    run: int
    height: int
    with_model: bool
    def __init__(self, run: _Optional[int] = ..., height: _Optional[int] = ..., with_model: bool = ...) -> None: ...

class BlockReply(_message.Message):
    __slots__ = ("body", "vote", "certificate", "model")
    BODY_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    vote: bytes
    certificate: bytes
    model: bytes
    def __init__(self, body: _Optional[bytes] = ..., vote: _Optional[bytes] = ..., certificate: _Optional[bytes] = ..., model: _Optional[bytes] = ...) -> None: ...
