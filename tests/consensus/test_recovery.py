"""Crash, restart from persisted bytes, catch up: same execution as everyone else."""

import pytest

from pot_flower.consensus.durable import DurableState, slot_key
from pot_flower.consensus.effects import Persist
from pot_flower.consensus.memory import MemoryDriver
from pot_flower.consensus.replica import STATUS_TIMER


def run_requests(committee: MemoryDriver, first: int, count: int) -> None:
    for i in range(first, first + count):
        committee.submit("client-0", b"op-%d" % i)
        committee.run()
        assert not committee.clients["client-0"].busy


def executed_batches(committee: MemoryDriver, rid: int) -> dict[int, bytes]:
    return {e.seq: e.digest for e in committee.logs[rid].executed}


def test_restarted_replica_replays_its_log_and_catches_up_by_state_transfer() -> None:
    committee = MemoryDriver(4, checkpoint_interval=2, window=4)
    run_requests(committee, 0, 3)
    committee.crash(3)
    run_requests(committee, 3, 6)  # the others move well past replica 3's window
    assert committee.replicas[0].low >= 8

    committee.restart(3)
    restarted = committee.replicas[3]
    assert restarted.last_executed == 3  # replayed from its own persisted log
    for _ in range(
        3
    ):  # status rounds: peers send the stable checkpoint, then certificates
        for rid in range(4):
            committee.fire(rid, STATUS_TIMER)
        committee.run()

    digests = {r.state_digest() for r in committee.replicas.values()}
    assert len(digests) == 1
    assert restarted.last_executed == committee.replicas[0].last_executed == 9
    # Whatever replica 3 executed itself, it executed exactly what the others did.
    reference = executed_batches(committee, 0)
    for seq, digest in executed_batches(committee, 3).items():
        assert reference[seq] == digest


def test_restarted_replica_catches_up_from_commit_certificates_within_the_window() -> (
    None
):
    committee = MemoryDriver(4, checkpoint_interval=8, window=16)
    run_requests(committee, 0, 2)
    committee.crash(2)
    run_requests(committee, 2, 3)  # below the first checkpoint: no state transfer
    committee.restart(2)
    committee.fire(2, STATUS_TIMER)
    committee.run()
    assert committee.replicas[2].last_executed == 5
    assert [e.seq for e in committee.logs[2].executed] == [1, 2, 3, 4, 5]
    assert committee.replicas[2].state_digest() == committee.replicas[0].state_digest()


def test_incremental_writes_add_up_to_the_full_state() -> None:
    committee = MemoryDriver(4, checkpoint_interval=2, window=4)
    run_requests(committee, 0, 5)
    store = committee.logs[1].store
    state = DurableState.from_records(store)
    assert state == committee.replicas[1].durable_state()
    assert state.to_records() == store
    assert state.last_executed == 5 and state.stable_seq == 4
    assert sorted(k for k in store if k.startswith("slot/")) == [
        slot_key(5)
    ]  # GC'd below 4


def test_a_step_writes_only_the_records_it_changed() -> None:
    committee = MemoryDriver(4, checkpoint_interval=8, window=32)
    run_requests(committee, 0, 3)
    replica = committee.replicas[1]
    effects = replica.on_timer(
        STATUS_TIMER
    )  # a status broadcast changes nothing durable
    assert not [e for e in effects if isinstance(e, Persist)]


@pytest.mark.parametrize(
    "corrupt",
    [{}, {"meta": b"garbage", "stable": b"", "new-view": b"n"}, {"meta": b"l5:helloe"}],
)
def test_corrupt_persisted_state_is_refused_with_a_clear_error(
    corrupt: dict[str, bytes],
) -> None:
    with pytest.raises(ValueError, match="replica state"):
        DurableState.from_records(corrupt)


def test_state_of_another_replica_is_refused() -> None:
    committee = MemoryDriver(4)
    run_requests(committee, 0, 1)
    committee.logs[3].store = dict(committee.logs[1].store)
    with pytest.raises(ValueError, match="another replica"):
        committee.restart(3)
