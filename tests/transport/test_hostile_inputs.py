"""Garbage, truncated, impostor, oversized and replayed input to a validator's ports."""

from __future__ import annotations

import time

import grpc
from test_grpc_committee import CLIENT, Cluster, cluster  # noqa: F401 (fixture)

from pot_flower.consensus.messages import Request
from pot_flower.sim.fuzzinputs import hostile_inputs, impostor_corpus
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.transport.limits import Limits


def test_hostile_inputs_are_dropped_and_the_validator_stays_up(
    cluster: Cluster,  # noqa: F811
) -> None:
    client = cluster.client()
    try:
        client.call(b"before", timeout=10)
        node = cluster.nodes[1]
        time.sleep(0.5)
        view, executed = node.replica.view, node.replica.last_executed
        dropped_before = sum(node.stats.dropped.values())
        channel = open_channel(cluster.addresses[1])
        stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
        frames = [d for _, d in hostile_inputs(impostor_corpus(4), 600, seed=3)]
        for i, data in enumerate(frames):
            call = stub.Deliver if i % 2 else stub.Submit
            assert call(pot_pb2.Frame(data=data), timeout=5).accepted
        try:
            oversized = b"x" * (Limits().max_message_bytes + 1)
            stub.Deliver(pot_pb2.Frame(data=oversized), timeout=30)
            raise AssertionError("an oversized frame was accepted")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        deadline = time.monotonic() + 20
        while sum(node.stats.dropped.values()) - dropped_before < len(frames):
            assert time.monotonic() < deadline, node.stats.dropped
            time.sleep(0.1)
        assert node.replica.view == view
        assert node.replica.last_executed == executed
        assert stub.Health(pot_pb2.HealthRequest(), timeout=5).status == "serving"
        assert client.call(b"after", timeout=10)  # the committee still commits
        # f + 1 replies answer the client: this node may execute it just after.
        deadline = time.monotonic() + 10
        while node.replica.last_executed < executed + 1:
            assert time.monotonic() < deadline, node.replica.last_executed
            time.sleep(0.05)
        # A validly signed request replayed: executed once, then only answered.
        executed = node.replica.last_executed
        replay = Request("coordinator", time.time_ns(), b"replayed").signed(CLIENT)
        for _ in range(3):
            for address in cluster.addresses.values():
                ch = open_channel(address)
                pot_pb2_grpc.ValidatorStub(ch).Submit(  # type: ignore[no-untyped-call]
                    pot_pb2.Frame(data=replay.to_bytes()), timeout=5
                )
                ch.close()
            time.sleep(0.3)
        assert node.replica.last_executed == executed + 1
        channel.close()
    finally:
        client.close()
