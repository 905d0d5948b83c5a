"""A validator's gRPC edge under hostile callers: bounded, parsed, never UNKNOWN.

Four PoT validators in this process over real gRPC (plaintext loopback, as an
attacker without credentials sees them), with small limits so that floods are
cheap to provoke.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.messages import Request
from pot_flower.encoding import encode
from pot_flower.ops.superlink import free_port
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import client_options, open_channel
from pot_flower.transport.gateway import Gateway
from pot_flower.transport.limits import MIB, Limits
from pot_flower.transport.node import ValidatorNode
from pot_flower.transport.uploads import first_chunk
from pot_flower.validator.chains import Chains
from pot_flower.validator.payloads import PayloadStore, Retention
from pot_flower.validator.replica_store import RecordStore
from pot_flower.zk.signatures import SigningKey

N = 4
KEYS = [SigningKey.from_seed(b"edge-validator-%d" % i) for i in range(N)]
COORDINATOR = SigningKey.from_seed(b"edge-coordinator")
STRANGER = SigningKey.from_seed(b"edge-stranger")
LIMITS = Limits(
    max_payload_mb=1,
    payload_quota_mb=2,
    payload_store_mb=4,
    max_peer_streams=12,
    idle_stream_s=1,
    max_reply_streams=2,
    inbox_mb=16,
)
PING = encode({"kind": "ping", "digest": b"x"})


class Edge:
    def __init__(self, directory: Path) -> None:
        self.config = CommitteeConfig(
            replicas=tuple(k.verify_key for k in KEYS),
            clients={"coordinator": COORDINATOR.verify_key},
            status_interval_ms=250,
        )
        self.addresses = {i: f"127.0.0.1:{free_port()}" for i in range(N)}
        self.nodes: list[ValidatorNode] = []
        for i in range(N):
            home = directory / f"v{i}"
            payloads = PayloadStore(home / "payloads")
            service = Chains(
                home / "chains",
                tuple(k.verify_key.raw for k in KEYS),
                self.config.quorum,
                payloads,
                retention=Retention(
                    payloads, LIMITS.payload_quota_bytes, LIMITS.payload_store_bytes
                ),
            )
            node = ValidatorNode(
                self.config,
                i,
                KEYS[i],
                service,
                self.addresses,
                store=RecordStore(home / "consensus.sqlite"),
                service=service,
                limits=LIMITS,
            )
            node.start()
            self.nodes.append(node)

    def stub(self, i: int) -> pot_pb2_grpc.ValidatorStub:
        return pot_pb2_grpc.ValidatorStub(open_channel(self.addresses[i]))  # type: ignore[no-untyped-call]

    def raw(self, i: int, method: str, kind: str = "unary_unary") -> grpc.Channel:
        channel = grpc.insecure_channel(self.addresses[i])
        return getattr(channel, kind)(
            f"/pot.v1.Validator/{method}",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )

    def client(self) -> Gateway:
        return Gateway(self.config, "coordinator", COORDINATOR, self.addresses)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    e = Edge(tmp_path)
    yield e
    for node in e.nodes:
        assert node.stop(grace=0.2)


def upload(
    stub: pot_pb2_grpc.ValidatorStub, data: bytes, key: SigningKey = COORDINATOR
) -> pot_pb2.Ack:
    digest = hashlib.sha256(data).digest()
    ticket = first_chunk(key, "coordinator", 1, 1, digest, len(data))
    return stub.PutPayload(iter([ticket, pot_pb2.Chunk(data=data)]), timeout=10)


STREAMING = {"Link": "stream_unary", "PutPayload": "stream_unary"}
SERVER_STREAMING = {"Replies": "unary_stream", "GetPayload": "unary_stream"}
UNARY = ["Deliver", "Submit", "Health", "Holds", "GetBlock", "Certify", "SignSeals"]


def call_raw(edge: Edge, method: str, data: bytes) -> grpc.StatusCode:
    kind = STREAMING.get(method) or SERVER_STREAMING.get(method) or "unary_unary"
    call = edge.raw(0, method, kind)
    try:
        if kind == "stream_unary":
            call(iter([data]), timeout=5)
        elif kind == "unary_stream":
            list(call(data, timeout=5))
        else:
            call(data, timeout=5)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_malformed_requests_are_invalid_arguments_on_every_rpc(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    methods = [*UNARY, *STREAMING, *SERVER_STREAMING]
    with caplog.at_level(logging.INFO, logger="pot.validator"):
        for method in methods:
            for _ in range(64):
                assert call_raw(edge, method, b"\xff\xff\xff") in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                ), method
    # Logged with exponential spacing: 64 calls, 7 lines per method at most.
    lines = [r for r in caplog.records if "invalid request" in r.getMessage()]
    assert len(lines) <= 7 * len(methods)
    assert not [r for r in caplog.records if r.exc_info]  # no tracebacks
    assert edge.client().call(PING, timeout=20)


def test_a_malformed_stream_message_does_not_keep_a_validator_from_stopping(
    tmp_path: Path,
) -> None:
    # gRPC's own deserializer left such a call stuck: server.stop().wait() hung.
    e = Edge(tmp_path)
    for method in STREAMING:
        assert call_raw(e, method, b"\xff\xff\xff") == grpc.StatusCode.INVALID_ARGUMENT
    started = time.monotonic()
    assert all(node.stop(grace=1.0) for node in e.nodes)
    assert time.monotonic() - started < 10 * N


def test_block_heights_and_runs_out_of_range_are_invalid_arguments(
    edge: Edge,
) -> None:
    stub = edge.stub(1)
    for run, height in [(0, 1 << 63), (0, (1 << 64) - 2), ((1 << 64) - 1, 1 << 63)]:
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetBlock(pot_pb2.BlockRequest(run=run, height=height), timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "out of range" in str(refused.value.details())
    for run in (7, (1 << 64) - 1):  # Flower's run ids use all 64 bits
        latest = stub.GetBlock(
            pot_pb2.BlockRequest(run=run, height=(1 << 64) - 1), timeout=5
        )
        assert latest.body == b""  # no such chain: an empty answer, not an error


def test_idle_streams_do_not_exhaust_a_validator(edge: Edge) -> None:
    client = edge.client()
    client.call(PING, timeout=20)
    held = []
    for i in range(N):
        stub = edge.stub(i)
        for _ in range(60):  # more than any thread pool or stream limit here
            held.append(stub.Replies(pot_pb2.Subscribe(client="coordinator")))

            def silence() -> Iterator[pot_pb2.Frame]:
                time.sleep(60)
                yield pot_pb2.Frame()

            held.append(stub.Link.future(silence()))
    try:
        time.sleep(1.5)  # the Link streams are now idle ones
        for i in range(N):
            started = time.monotonic()
            assert edge.stub(i).Health(pot_pb2.HealthRequest(), timeout=5).status == (
                "serving"
            )
            assert time.monotonic() - started < 1.0
        assert client.call(PING, timeout=20)  # consensus traffic still flows
        # The flood hit the bound: a newcomer closes the oldest unproven stream;
        # the peers' own streams, vouched for by their signatures, kept theirs.
        bound = LIMITS.max_peer_streams + 2 * N
        assert all(len(n.server._links) <= bound for n in edge.nodes)
        assert all(sum(s.vouched for s in n.server._links) >= N - 1 for n in edge.nodes)
        assert all(
            len(node.server._subscribers.get("coordinator", []))
            <= LIMITS.max_reply_streams
            for node in edge.nodes
        )
    finally:
        for call in held:
            call.cancel()
        client.close()


def test_replies_only_for_clients_of_the_committee(edge: Edge) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        list(edge.stub(0).Replies(pot_pb2.Subscribe(client="mallory"), timeout=5))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_uploads_need_a_coordinator_signature_and_stay_within_quota(
    edge: Edge,
) -> None:
    stub = edge.stub(2)
    store = edge.nodes[2].service.payloads  # type: ignore[union-attr]
    data = b"u" * 1000
    digest = hashlib.sha256(data).digest()
    unsigned = stub.PutPayload(
        iter([pot_pb2.Chunk(digest=digest, data=data)]), timeout=5
    )
    assert not unsigned.accepted and "not a coordinator" in unsigned.reason
    forged = upload(stub, data, key=STRANGER)
    assert not forged.accepted and forged.reason == "bad upload signature"
    assert len(store) == 0  # nothing stored from anyone without the key
    too_big = upload(stub, b"b" * (LIMITS.max_payload_bytes + 1))
    assert not too_big.accepted and "exceeds" in too_big.reason
    assert upload(stub, data).accepted and digest in store
    # The quota (2 MiB per coordinator) is charged until payloads are collected.
    assert upload(stub, b"1" * (MIB - 2000)).accepted
    assert upload(stub, b"2" * (MIB - 2000)).accepted
    over = upload(stub, b"3" * (MIB - 2000))
    assert not over.accepted and over.reason.startswith("quota")
    # A lying size or digest stores nothing and refunds the quota.
    retention = edge.nodes[2].service.retention  # type: ignore[union-attr]
    charged = retention.charged("coordinator")
    named = hashlib.sha256(b"abcde").digest()
    for size, sent in [(5, b"12345"), (5, b"abc"), (3, b"abcde")]:
        lie = first_chunk(COORDINATOR, "coordinator", 1, 1, named, size)
        ack = stub.PutPayload(iter([lie, pot_pb2.Chunk(data=sent)]), timeout=5)
        assert not ack.accepted, (size, sent)
    assert retention.charged("coordinator") == charged
    assert len(store) == 3


def test_a_stalled_upload_is_cut_off(edge: Edge) -> None:
    data = b"s" * 100
    ticket = first_chunk(
        COORDINATOR, "coordinator", 1, 1, hashlib.sha256(data).digest(), len(data)
    )

    def stall() -> Iterator[pot_pb2.Chunk]:
        yield ticket
        time.sleep(5)
        yield pot_pb2.Chunk(data=data)

    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as cut:
        edge.stub(0).PutPayload(stall(), timeout=10)
    assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 4
    deadline = time.monotonic() + 5
    while edge.nodes[0].server.busy.get("uploads") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not edge.nodes[0].server.busy.get("uploads")  # its slot is free again


def test_large_messages_with_bad_signatures_are_not_kept(edge: Edge) -> None:
    from pot_flower.consensus.messages import _CACHE

    channel = open_channel(edge.addresses[1])
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    for i in range(24):
        big = Request("coordinator", 10**16 + i, b"x" * (2 * MIB)).signed(STRANGER)
        stub.Deliver(pot_pb2.Frame(data=big.to_bytes()), timeout=10)
    deadline = time.monotonic() + 10
    node = edge.nodes[1]
    while node.inbox.held_bytes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.inbox.held_bytes == 0
    with _CACHE._lock:  # the replica's thread decodes (and caches) meanwhile
        held = list(_CACHE._entries)
        assert _CACHE._bytes <= _CACHE.MAX_BYTES
    assert all(len(data) <= _CACHE.MAX_ENTRY for data, _tag in held)
    assert edge.client().call(PING, timeout=20)


def test_keepalive_policies_agree(edge: Edge) -> None:
    # The server must accept the clients' pings without calls in flight, at
    # their rate; otherwise it answers GOAWAY "too_many_pings" after two strikes.
    from pot_flower.transport.channels import (
        CLIENT_PING_MS,
        SERVER_MIN_PING_MS,
        server_options,
    )

    client = dict(client_options())
    server = dict(server_options(LIMITS))
    assert client["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.keepalive_permit_without_calls"] == 1
    assert CLIENT_PING_MS >= SERVER_MIN_PING_MS
    assert server["grpc.http2.min_recv_ping_interval_without_data_ms"] <= CLIENT_PING_MS


@pytest.mark.slow
def test_an_idle_coordinator_channel_stays_connected(edge: Edge) -> None:
    # Without aligned policies: GOAWAY "too_many_pings" after ~30 s idle, and the
    # next call failed UNAVAILABLE. Watch the channel, retries off, for 35 s.
    options = [(k, v) for k, v in client_options() if k != "grpc.enable_retries"]
    channel = grpc.insecure_channel(edge.addresses[0], options=options)
    states: list[grpc.ChannelConnectivity] = []
    channel.subscribe(states.append, try_to_connect=True)
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    stub.Health(pot_pb2.HealthRequest(), timeout=5)
    deadline = time.monotonic() + 5  # callbacks arrive on their own thread
    while grpc.ChannelConnectivity.READY not in states and time.monotonic() < deadline:
        time.sleep(0.01)
    connected = states.index(grpc.ChannelConnectivity.READY) + 1
    # As a coordinator between rounds: its reply stream open, nothing on it.
    replies = stub.Replies(pot_pb2.Subscribe(client="coordinator"))
    time.sleep(35)
    assert stub.Health(pot_pb2.HealthRequest(), timeout=5).status == "serving"
    assert states[connected:] == [], states  # never left READY
    assert replies.is_active()  # no GOAWAY ended it
    replies.cancel()
    channel.close()


def test_hostile_calls_on_every_rpc_never_end_unknown(edge: Edge) -> None:
    from pot_flower.sim.fuzzinputs import hostile_rpcs, impostor_corpus, raw_call

    codes: dict[str, int] = {}
    channel = grpc.insecure_channel(edge.addresses[3])
    for method, messages in hostile_rpcs(impostor_corpus(N), 1500, seed=11):
        code = raw_call(channel, method, messages, timeout=0.5)
        codes[code] = codes.get(code, 0) + 1
    assert "UNKNOWN" not in codes and "INTERNAL" not in codes, codes
    assert codes.get("INVALID_ARGUMENT", 0) > 100  # they did reach the parsers
    assert edge.client().call(PING, timeout=20)
    assert edge.nodes[3].health().status == "serving"


def test_a_link_stream_closed_for_a_new_one_ends_with_a_status(edge: Edge) -> None:
    # The peer must see its stream end (and reconnect), not write into a dead one.
    stub = edge.stub(0)

    def slow() -> Iterator[pot_pb2.Frame]:
        for _ in range(200):
            time.sleep(0.05)
            yield pot_pb2.Frame()

    def silent() -> Iterator[pot_pb2.Frame]:
        time.sleep(30)
        yield pot_pb2.Frame()

    oldest = stub.Link.future(silent())
    time.sleep(0.2)  # the oldest of the unproven streams
    fillers = [stub.Link.future(slow()) for _ in range(LIMITS.max_peer_streams)]
    with pytest.raises(grpc.RpcError) as closed:
        oldest.result(timeout=5)
    assert closed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in fillers:
        call.cancel()


def test_a_signed_upload_replayed_after_its_round_is_refused(edge: Edge) -> None:
    import numpy as np

    from pot_flower.committee.remote import RemoteCommittee
    from pot_flower.protocol.fixedpoint import max_norm_units

    remote = RemoteCommittee(
        edge.config,
        edge.addresses,
        "coordinator",
        COORDINATOR,
        run=5,
        model={"w": np.zeros(10, np.float32)},
        norm_bound_units=max_norm_units(10.0),
    )
    try:
        remote.certify_round([], {})  # round 1: the chain is at height 1 now
        stub = edge.stub(0)
        data = b"an update of round 1"
        digest = hashlib.sha256(data).digest()
        for round_, accepted in [(1, False), (0, False), (2, True)]:
            ticket = first_chunk(
                COORDINATOR, "coordinator", 5, round_, digest, len(data)
            )
            ack = stub.PutPayload(iter([ticket, pot_pb2.Chunk(data=data)]), timeout=5)
            assert ack.accepted == accepted, (round_, ack.reason)
            if not accepted:
                assert "has executed" in ack.reason
    finally:
        remote.close()


def test_strangers_busy_links_do_not_keep_a_restarted_validator_out(
    edge: Edge,
) -> None:
    # A stranger holds every Link slot, sending junk so that none looks idle; a
    # backup restarts, then the primary dies: the committee needs the backup.
    stop = False

    def junk() -> Iterator[pot_pb2.Frame]:
        while not stop:
            time.sleep(0.2)
            yield pot_pb2.Frame(data=b"junk")

    held = [
        edge.stub(i).Link.future(junk())
        for i in range(N)
        for _ in range(2 * LIMITS.max_peer_streams)
    ]
    client = edge.client()
    try:
        old = edge.nodes[3]
        old.stop(grace=0.2)
        service = old.service
        assert service is not None
        restarted = ValidatorNode(
            edge.config,
            3,
            KEYS[3],
            service,
            edge.addresses,
            store=RecordStore(old.store.path),  # type: ignore[union-attr]
            service=service,
            limits=LIMITS,
        )
        restarted.start()
        edge.nodes[3] = restarted
        time.sleep(1)
        assert client.call(PING, timeout=20)
        edge.nodes[0].stop(grace=0.2)  # the primary
        assert client.call(PING, timeout=30)  # takes validator 3's votes
    finally:
        stop = True
        for call in held:
            call.cancel()
        client.close()


def test_closed_seals_are_ordered_once_and_signed_on_request(edge: Edge) -> None:
    import numpy as np

    from pot_flower.committee.remote import RemoteCommittee
    from pot_flower.protocol.fixedpoint import max_norm_units
    from pot_flower.protocol.sealing import Seal

    def coordinator() -> RemoteCommittee:
        return RemoteCommittee(
            edge.config,
            edge.addresses,
            "coordinator",
            COORDINATOR,
            run=6,
            model={"w": np.zeros(10, np.float32)},
            norm_bound_units=max_norm_units(10.0),
            commit_reveal=True,
            resume=resumed,
        )

    resumed = False
    remote = coordinator()
    seal = Seal.signed(STRANGER, run=6, round_=1, node=3, seal=bytes(32))
    try:
        closed = remote.close_seals([seal])
        assert [s.node for s in closed.seals.seals] == [3]
        assert len(closed.signatures) >= edge.config.quorum
        assert closed.problem(remote.params.validators, remote.params.quorum) is None
    finally:
        remote.close()
    # A resumed coordinator with other seals gets the set closed before.
    resumed = True
    remote = coordinator()
    try:
        again = remote.close_seals([])
        assert again.seals == closed.seals
    finally:
        remote.close()

    def ask(data: bytes) -> pot_pb2.SealReply:
        return edge.stub(0).SignSeals(pot_pb2.Frame(data=data), timeout=5)

    signed = ask(encode({"run": 6, "round": 1}))
    assert signed.signature == dict(closed.signatures)[0]
    assert "no seals closed" in ask(encode({"run": 6, "round": 2})).reason
    assert "no chain" in ask(encode({"run": 99, "round": 1})).reason
    for bad in (b"not canonical", encode({"run": 6}), encode({"run": 6, "round": -1})):
        with pytest.raises(grpc.RpcError) as info:
            ask(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
