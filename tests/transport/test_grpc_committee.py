"""PBFT over real gRPC on loopback: commits, a crashed backup, a dead primary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pot_flower.consensus.application import HashChainApp
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.ops.superlink import free_port
from pot_flower.transport.gateway import Gateway
from pot_flower.transport.node import ValidatorNode
from pot_flower.validator.replica_store import RecordStore
from pot_flower.zk.signatures import SigningKey

N = 4
KEYS = [SigningKey.from_seed(b"grpc-validator-%d" % i) for i in range(N)]
CLIENT = SigningKey.from_seed(b"grpc-coordinator")


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.addresses = {i: f"127.0.0.1:{free_port()}" for i in range(N)}
        self.config = CommitteeConfig(
            replicas=tuple(k.verify_key for k in KEYS),
            clients={"coordinator": CLIENT.verify_key},
            request_timeout_ms=500,
            view_change_timeout_ms=500,
        )
        self.apps: dict[int, HashChainApp] = {}
        self.nodes: dict[int, ValidatorNode] = {}

    def start(self, i: int) -> None:
        self.apps[i] = HashChainApp()
        node = ValidatorNode(
            self.config,
            i,
            KEYS[i],
            self.apps[i],
            self.addresses,
            store=RecordStore(self.directory / f"v{i}.sqlite"),
        )
        node.start()
        self.nodes[i] = node

    def stop(self, i: int) -> None:
        self.nodes.pop(i).stop(grace=0.1)

    def client(self) -> Gateway:
        return Gateway(self.config, "coordinator", CLIENT, self.addresses)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    for i in range(N):
        c.start(i)
    yield c
    for i in list(c.nodes):
        c.stop(i)


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_requests_commit_and_every_validator_agrees(cluster: Cluster) -> None:
    client = cluster.client()
    try:
        results = [client.call(b"op-%d" % i, timeout=10) for i in range(20)]
    finally:
        client.close()
    assert len(set(results)) == 20
    assert wait_until(lambda: all(a.count == 20 for a in cluster.apps.values()))
    assert len({a.head for a in cluster.apps.values()}) == 1
    assert results[-1] == cluster.apps[0].head


def test_commits_with_a_crashed_backup_and_then_a_dead_primary(
    cluster: Cluster,
) -> None:
    client = cluster.client()
    try:
        client.call(b"before", timeout=10)
        cluster.stop(3)  # a backup
        client.call(b"without-3", timeout=10)
        cluster.start(3)  # restarts from its records and catches up
        cluster.stop(0)  # the primary of view 0
        started = time.monotonic()
        client.call(b"after-view-change", timeout=20)
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert elapsed < 10  # view-change timeout 0.5 s, doubling on failures

    def converged() -> bool:
        nodes = cluster.nodes
        return (
            all(n.replica.view >= 1 for n in nodes.values())
            and all(cluster.apps[i].count == 3 for i in nodes)
            and len({cluster.apps[i].head for i in nodes}) == 1
        )

    assert wait_until(converged, timeout=20), {
        i: (n.replica.view, cluster.apps[i].count) for i, n in cluster.nodes.items()
    }


def test_health_reports_each_validator(cluster: Cluster) -> None:
    client = cluster.client()
    try:
        client.call(b"x", timeout=10)
        reports = [client.health(i) for i in range(N)]

        def quorum_executed() -> bool:
            # f + 1 replies came first; the rest of the quorum executes soon after.
            return sum(client.health(i).last_executed >= 1 for i in range(N)) >= 3

        executed = wait_until(quorum_executed, timeout=10)
    finally:
        client.close()
    assert [r.replica for r in reports] == list(range(N))
    assert all(r.status == "serving" for r in reports)
    assert executed


def test_two_coordinators_with_one_client_id_are_told_not_left_to_time_out(
    cluster: Cluster,
) -> None:
    from pot_flower.transport.gateway import DuplicateCoordinator

    older = cluster.client()
    time.sleep(0.01)
    newer = cluster.client()  # same id and key, later clock: larger timestamps
    try:
        older.call(b"first", timeout=10)
        newer.call(b"second", timeout=10)
        started = time.monotonic()
        with pytest.raises(DuplicateCoordinator, match="used by another coordinator"):
            older.call(b"third", timeout=30)
        assert time.monotonic() - started < 10  # not the 30 s timeout
        assert newer.call(b"fourth", timeout=10)
    finally:
        older.close()
        newer.close()


class FlakyApp(HashChainApp):
    """Gives up waiting for peers once, the first time it executes."""

    def __init__(self) -> None:
        super().__init__()
        self.gave_up = False

    def execute(self, client: str, timestamp: int, operation: bytes, seq: int) -> bytes:
        from pot_flower.patience import Unavailable

        if not self.gave_up:
            self.gave_up = True
            raise Unavailable("payloads: not obtained from peers in 1 s")
        return super().execute(client, timestamp, operation, seq)


def test_a_step_that_gave_up_waiting_is_retried_from_the_records(
    cluster: Cluster,
) -> None:
    cluster.stop(2)
    cluster.apps[2] = flaky = FlakyApp()
    node = ValidatorNode(
        cluster.config,
        2,
        KEYS[2],
        flaky,
        cluster.addresses,
        store=RecordStore(cluster.directory / "v2.sqlite"),
    )
    node.start()
    cluster.nodes[2] = node
    client = cluster.client()
    try:
        for i in range(5):
            client.call(b"op-%d" % i, timeout=10)
    finally:
        client.close()
    assert wait_until(lambda: flaky.count == 5 and flaky.head == cluster.apps[0].head)
    assert flaky.gave_up and node.stats.rebuilds == 1 and node.failure is None
    assert node.health().status == "serving"
