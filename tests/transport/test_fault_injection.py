"""The test-only fault layer between validators (tests/fault_transport.py).

It drops and delays the stated shares of messages, deterministically from its seed,
fails peer calls the way a broken link does, and a committee behind it still
certifies rounds with identical, verified ledgers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from fault_transport import (
    DELAY,
    DROP,
    PASS,
    FaultInjector,
    FaultPlan,
    Faults,
    InjectedUnavailable,
    install,
    read_stats,
    start,
)
from process_support import honest_batch

from pot_flower.audit import audit_ledger
from pot_flower.committee.remote import RemoteCommittee
from pot_flower.ops import daemon
from pot_flower.ops.committee_file import load_committee, read_key
from pot_flower.ops.local import COORDINATOR, prepare, stop_all, wait_healthy
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.transport import node
from pot_flower.transport.node import NodeStats
from pot_flower.validator.ledger import Ledger
from pot_flower.zk.signatures import SigningKey

RUN = 31


def test_a_plan_draws_the_stated_shares_deterministically_from_its_seed() -> None:
    faults = Faults(drop=0.05, delay=0.07, seed=3, delay_min_s=0.01, delay_max_s=0.2)
    fates = FaultPlan(faults, "v1/i0/link").fates(20_000)
    kinds = Counter(fate for fate, _ in fates)
    # 20,000 draws: a standard deviation of 0.15 % at 5 %; 0.6 % is four of them.
    assert abs(kinds[DROP] / 20_000 - 0.05) < 0.006
    assert abs(kinds[DELAY] / 20_000 - 0.07) < 0.007
    assert kinds[PASS] + kinds[DROP] + kinds[DELAY] == 20_000
    pauses = [pause for fate, pause in fates if fate == DELAY]
    assert min(pauses) >= 0.01 and max(pauses) <= 0.2
    assert all(pause == 0 for fate, pause in fates if fate != DELAY)
    # The same seed and stream: the same fates; another seed or stream: others.
    assert FaultPlan(faults, "v1/i0/link").fates(20_000) == fates
    other_seed = Faults(
        drop=0.05, delay=0.07, seed=4, delay_min_s=0.01, delay_max_s=0.2
    )
    assert FaultPlan(other_seed, "v1/i0/link").fates(20_000) != fates
    assert FaultPlan(faults, "v1/i1/link").fates(20_000) != fates


def test_faults_refuse_impossible_shares() -> None:
    with pytest.raises(ValueError):
        Faults(drop=0.7, delay=0.4)
    with pytest.raises(ValueError):
        Faults(drop=-0.1)
    with pytest.raises(ValueError):
        Faults(delay=0.1, delay_min_s=0.5, delay_max_s=0.1)


def test_the_injector_drops_delays_and_delivers_late() -> None:
    faults = Faults(drop=0.2, delay=0.3, seed=9, delay_min_s=0.02, delay_max_s=0.05)
    injector = FaultInjector(faults, "v0/i0")
    expected = FaultPlan(faults, "v0/i0/link").fates(1000)
    arrivals: dict[int, float] = {}
    lock = threading.Lock()
    sent_at: dict[int, float] = {}

    def deliver(i: int) -> None:
        with lock:
            arrivals[i] = time.monotonic()

    fates = []
    for i in range(1000):
        sent_at[i] = time.monotonic()
        fates.append(injector.send(lambda i=i: deliver(i)))  # type: ignore[misc]
    assert fates == [fate for fate, _ in expected]
    deadline = time.monotonic() + 5
    while injector.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    counts = injector.snapshot()
    assert counts["messages"] == 1000
    assert counts["messages_dropped"] == fates.count(DROP)
    assert counts["messages_delayed"] == fates.count(DELAY)
    assert sorted(arrivals) == [i for i, f in enumerate(fates) if f != DROP]
    for i, fate in enumerate(fates):
        if fate == PASS:
            assert arrivals[i] - sent_at[i] < 0.02
        elif fate == DELAY:
            assert arrivals[i] - sent_at[i] >= 0.02
    # Delayed messages are overtaken: they arrive out of order.
    order = sorted(arrivals, key=arrivals.__getitem__)
    assert order != sorted(order)


def test_peer_calls_fail_as_unavailable_or_wait() -> None:
    always = FaultInjector(Faults(drop=1.0, seed=1), "v2/i0")
    with pytest.raises(grpc.RpcError) as failed:
        always.before_call("/pot.v1.Validator/GetBlock")
    assert isinstance(failed.value, InjectedUnavailable)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    slow = FaultInjector(
        Faults(delay=1.0, seed=1, delay_min_s=0.05, delay_max_s=0.05), "v2/i0"
    )
    began = time.monotonic()
    slow.before_call("/pot.v1.Validator/GetPayload")
    assert time.monotonic() - began >= 0.05
    off = FaultInjector(Faults(drop=1.0, seed=1, rpc=False), "v2/i0")
    off.before_call("/pot.v1.Validator/GetBlock")  # calls untouched
    assert off.snapshot()["calls"] == 0
    counts = always.snapshot()
    assert (counts["calls"], counts["calls_failed"]) == (1, 1)


def test_install_wraps_the_peer_links_of_this_process_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Restored after the test: install patches the module it is given.
    monkeypatch.setattr(node._Peer, "offer", node._Peer.offer)
    monkeypatch.setattr(node, "open_channel", getattr(node, "open_channel"))  # noqa: B009
    monkeypatch.setattr(daemon, "_exit_now", daemon._exit_now)
    injector = install(Faults(drop=0.5, seed=2), "v3/i0")
    peer = node._Peer("127.0.0.1:1", NodeStats(), lambda address: None)
    for _ in range(400):
        peer.offer(b"frame")
    counts = injector.snapshot()
    assert counts["messages"] == 400
    assert peer.queue.qsize() == 400 - counts["messages_dropped"]
    assert 120 < counts["messages_dropped"] < 280


def _round(remote: RemoteCommittee) -> int:
    refs, payloads = honest_batch(remote, range(4))
    return remote.certify_round(refs, payloads).height


def test_a_committee_behind_the_fault_layer_still_certifies_rounds(
    tmp_path: Path,
) -> None:
    path = prepare(4, tmp_path / "committee")
    faults = Faults(drop=0.1, delay=0.1, seed=5, delay_max_s=0.3)
    processes = start(path, list(range(4)), faults)
    remote = None
    try:
        assert wait_healthy(path, timeout=60)
        committee = load_committee(path)
        remote = RemoteCommittee(
            committee.config,
            committee.addresses,
            COORDINATOR,
            read_key(path.parent / f"{COORDINATOR}.key"),
            run=RUN,
            model={"w": np.zeros(100, np.float32)},
            norm_bound_units=max_norm_units(10.0),
            timeout=60,
        )
        assert [_round(remote) for _ in range(3)] == [1, 2, 3]
        dirs = [
            path.parent / f"validator-{v}" / "chains" / f"run-{RUN}" for v in range(4)
        ]
        deadline = time.monotonic() + 60
        while True:  # the last certificate reaches a non-voter a moment later
            reports = [audit_ledger(d) for d in dirs]
            heads = [Ledger(d).head_height() for d in dirs]
            if all(r.ok for r in reports) and heads == [3] * 4:
                break
            assert time.monotonic() < deadline, (heads, [r.problem for r in reports])
            time.sleep(0.3)
        bodies = []
        for d in dirs:
            with Ledger(d) as ledger:
                bodies.append([b.body for b in ledger.blocks()])
        assert all(b == bodies[0] for b in bodies)
    finally:
        if remote is not None:
            remote.close()
        stop_all(processes, timeout=15)
    assert {p.returncode for p in processes.values()} == {0}
    for vid in range(4):
        # Each validator's counts are exactly the first fates its seed dictates.
        counts = read_stats(path.parent / f"validator-{vid}")
        for kind, plan in (("messages", "link"), ("calls", "rpc")):
            fates = FaultPlan(faults, f"v{vid}/i0/{plan}").fates(counts[kind])
            failed = "messages_dropped" if kind == "messages" else "calls_failed"
            assert counts[failed] == sum(f == DROP for f, _ in fates)
            assert counts[f"{kind}_delayed"] == sum(f == DELAY for f, _ in fates)
    totals = Counter[str]()
    for vid in range(4):
        totals.update(read_stats(path.parent / f"validator-{vid}"))
    assert totals["messages"] > 50
    assert totals["messages_dropped"] > 0 and totals["messages_delayed"] > 0
    log = (path.parent / "validator-0" / "validator.log").read_text()
    assert "FAULT INJECTION (tests only)" in log


def test_a_caller_that_gives_up_does_not_take_the_validator_down(
    tmp_path: Path,
) -> None:
    """A call cancelled before the replica's thread reaches it is skipped.

    The gRPC edge cancels its call onto the replica's thread when the caller goes
    away or the call waits longer than its timeout (a coordinator killed while its
    Certify calls wait behind a catch-up). The soak found a validator exiting with
    status 3 on it (``InvalidStateError`` setting a cancelled future's result).
    """
    from concurrent import futures

    from pot_flower.consensus.application import HashChainApp
    from pot_flower.consensus.config import CommitteeConfig
    from pot_flower.ops.superlink import free_port
    from pot_flower.transport.node import ValidatorNode

    key = SigningKey.from_seed(b"lonely-validator")
    config = CommitteeConfig(replicas=(key.verify_key,))
    v = ValidatorNode(config, 0, key, HashChainApp(), {0: f"127.0.0.1:{free_port()}"})
    v.start()
    try:
        busy = v.call_future(lambda: time.sleep(0.3))  # holds the replica's thread
        ran: list[str] = []
        abandoned = v.call_future(lambda: ran.append("abandoned"))
        assert abandoned.cancel()  # what asyncio.wait_for does to it on timeout
        assert v.call(lambda: "still serving", timeout=5) == "still serving"
        busy.result(timeout=5)
        assert ran == [] and v.failure is None
        assert v.health().status == "serving"
        with pytest.raises(futures.CancelledError):
            abandoned.result()
    finally:
        v.stop(grace=0.1)
