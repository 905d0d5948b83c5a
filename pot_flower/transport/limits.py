"""What a validator lets callers spend: streams, bytes in flight, stored bytes.

Every input surface of a validator is bounded, whoever calls it; the bounds live in
one frozen dataclass that committee files override in their ``[limits]`` section
(kebab-case keys, see :data:`LIMIT_KEYS`). Without TLS a validator cannot tell
callers apart, so bounds are per surface; with mutual TLS, streams are also tied to
the identity in the caller's certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one validator (defaults suit a 16-validator committee).

    Parameters
    ----------
    max_message_mb : int (default: 64)
        Largest gRPC message accepted or sent; bigger ones are refused by the
        transport before they are parsed (``RESOURCE_EXHAUSTED``).
    max_payload_mb : int (default: 1024)
        Largest payload (a model or an update) one upload may store.
    payload_quota_mb : int (default: 16384)
        Payload bytes one coordinator may have stored and not yet collected.
    payload_store_mb : int (default: 65536)
        Payload bytes the store may hold in all.
    payload_retention_s : int (default: 86400)
        At start-up, payloads older than this that nothing pending names are
        deleted (while running, consumed payloads are collected at checkpoints).
    max_uploads : int (default: 16)
        Concurrent ``PutPayload`` streams.
    max_downloads : int (default: 32)
        Concurrent ``GetPayload`` streams.
    max_reply_streams : int (default: 8)
        ``Replies`` streams per coordinator id; a new one closes the oldest.
    max_peer_streams : int (default: 64)
        Inbound ``Link`` streams in all (and 2 per validator identity with TLS).
    idle_stream_s : int (default: 10)
        A ``Link`` stream silent this long may be closed to admit a new one
        (peers send status messages every second when idle).
    inbox_mb : int (default: 256)
        Bytes of inputs queued for the replica, per surface (peer links, direct
        deliveries, client submissions); inputs beyond it are dropped and counted
        (PBFT retransmits what matters).
    max_concurrent_rpcs : int (default: 1024)
        RPCs in progress at once; further calls are refused at once.
    payload_patience_s : int (default: 30)
        How long an execution waits for payloads it lacks before the step is
        abandoned and retried from the durable records (or overtaken by state
        transfer).

    """

    max_message_mb: int = 64
    max_payload_mb: int = 1024
    payload_quota_mb: int = 16384
    payload_store_mb: int = 65536
    payload_retention_s: int = 86400
    max_uploads: int = 16
    max_downloads: int = 32
    max_reply_streams: int = 8
    max_peer_streams: int = 64
    idle_stream_s: int = 10
    inbox_mb: int = 256
    max_concurrent_rpcs: int = 1024
    payload_patience_s: int = 30

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"[limits] {kebab(f.name)} must be a positive integer")
        if self.max_payload_mb > self.payload_quota_mb:
            raise ValueError("[limits] max-payload-mb exceeds payload-quota-mb")
        if self.payload_quota_mb > self.payload_store_mb:
            raise ValueError("[limits] payload-quota-mb exceeds payload-store-mb")

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * MIB

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * MIB

    @property
    def payload_quota_bytes(self) -> int:
        return self.payload_quota_mb * MIB

    @property
    def payload_store_bytes(self) -> int:
        return self.payload_store_mb * MIB

    @property
    def inbox_bytes(self) -> int:
        return self.inbox_mb * MIB


def kebab(name: str) -> str:
    """A field name as committee files spell it."""
    return name.replace("_", "-")


#: ``[limits]`` keys of committee files.
LIMIT_KEYS = frozenset(kebab(f.name) for f in fields(Limits))


def limits_from_table(table: dict[str, object]) -> Limits:
    """:class:`Limits` from a committee file's ``[limits]`` table (ValueError)."""
    unknown = set(table) - LIMIT_KEYS
    if unknown:
        raise ValueError(f"unknown [limits] keys {sorted(unknown)}")
    values: dict[str, int] = {}
    for key, value in table.items():
        if type(value) is not int:
            raise ValueError(f"[limits] {key} must be an integer")
        values[key.replace("-", "_")] = value
    return Limits(**values)


def shown(name: str | None, limit: int = 48) -> str:
    """A caller-chosen name, quoted and cut short, for messages and logs."""
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
