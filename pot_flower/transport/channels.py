"""gRPC channel and server options: message sizes, keepalive, retries.

Keepalive policies must agree on both ends: a client that pings more often than
the server permits (by default every 5 minutes, and never without a call in
flight) is sent GOAWAY "too_many_pings" and its next call fails. Clients here ping
every 10 s, with or without calls; servers permit pings every 5 s without calls,
and ping idle clients every 30 s themselves (dead coordinators' streams end).
Idempotent calls (health, blocks, payload reads and receipts, certificates) are
retried by gRPC on ``UNAVAILABLE``.
"""

from __future__ import annotations

import json

import grpc

from pot_flower.transport.limits import Limits

CLIENT_PING_MS = 10_000
SERVER_MIN_PING_MS = 5_000
SERVER_PING_MS = 30_000
PING_TIMEOUT_MS = 10_000
SERVICE = "pot.v1.Validator"
IDEMPOTENT = ("Health", "GetBlock", "GetPayload", "Holds", "Certify")

_RETRIES = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": m} for m in IDEMPOTENT],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def client_options(limits: Limits | None = None) -> list[tuple[str, int | str]]:
    """Options of every channel to a validator."""
    size = (limits or Limits()).max_message_bytes
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", CLIENT_PING_MS),
        ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Peers come and go: retry connections quickly, and do not share
        # subchannels (and their back-off) between channels of one process.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _RETRIES),
    ]


def server_options(limits: Limits) -> list[tuple[str, int]]:
    """Options of a validator's server (its keepalive policy admits the clients')."""
    size = limits.max_message_bytes
    return [
        # Two processes must never serve one validator's address (gRPC lets them
        # share the port by default): the second one fails to bind instead.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", SERVER_PING_MS),
        ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", SERVER_MIN_PING_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_MS),
        ("grpc.http2.max_ping_strikes", 2),
    ]


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None = None,
    limits: Limits | None = None,
) -> grpc.Channel:
    """A channel to ``address``: mTLS with ``credentials``, else plaintext."""
    options = client_options(limits)
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)
