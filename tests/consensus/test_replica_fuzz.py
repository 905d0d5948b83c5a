"""Bad input is a verdict, not a crash: a replica survives any bytes."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Committee, every_message

from pot_flower.consensus.effects import Dropped
from pot_flower.consensus.replica import REQUEST_TIMER, STATUS_TIMER, Replica


def busy_replica(c: Committee) -> Replica:
    """A backup with a request in flight, so most handlers have state to touch."""
    replica = c.replica(1)
    replica.handle(c.request(ts=1))
    replica.handle(c.pre_prepare(0, 1, c.request(ts=1)))
    return replica


COMMITTEE = Committee()
CORPUS = [m.to_bytes() for m in every_message(COMMITTEE)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_messages_never_crash_a_replica(data: st.DataObject) -> None:
    replica = busy_replica(COMMITTEE)
    for _ in range(data.draw(st.integers(1, 5))):
        wire = bytearray(data.draw(st.sampled_from(CORPUS)))
        action = data.draw(st.sampled_from(["flip", "truncate", "splice", "raw"]))
        if action == "flip":
            pos = data.draw(st.integers(0, len(wire) - 1))
            wire[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "truncate":
            wire = wire[: data.draw(st.integers(0, len(wire)))]
        elif action == "splice":
            wire += data.draw(st.binary(max_size=40))
        else:
            wire = bytearray(data.draw(st.binary(max_size=300)))
        effects = replica.receive(bytes(wire))
        assert isinstance(effects, list)
        if effects and all(isinstance(e, Dropped) for e in effects):
            assert all(e.reason for e in effects)
    # Still alive and still doing its job.
    replica.on_timer(STATUS_TIMER)
    replica.on_timer(REQUEST_TIMER)


def test_valid_messages_in_any_order_never_crash_a_replica() -> None:
    for rid in range(COMMITTEE.n):
        replica = COMMITTEE.replica(rid)
        for wire in CORPUS + CORPUS[::-1]:
            assert isinstance(replica.receive(wire), list)
