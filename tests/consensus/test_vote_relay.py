"""Vote relay (``relay_votes``): votes go to the primary, which relays each quorum.

Committee of n = 4 (f = 1, quorum 3). The relay only changes who carries a vote:
every vote inside a ``Votes`` message is checked against its author's key, so a
relaying primary can delay or withhold votes but never invent or alter one.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import Committee, of_type
from test_replica_handlers import commit_seq

from pot_flower.consensus.effects import Broadcast, Dropped, Executed, Send
from pot_flower.consensus.messages import (
    Commit,
    MessageError,
    Prepare,
    Status,
    Votes,
    decode_message,
    sha256,
)
from pot_flower.consensus.replica import STATUS_TIMER


@pytest.fixture
def relay() -> Committee:
    return Committee(overrides={"relay_votes": True})


def bundle(c: Committee, relayer: int, prepares=(), commits=()) -> Votes:
    return Votes(tuple(prepares), tuple(commits), relayer).signed(c.keys[relayer])


def reasons(effects: list) -> list[str]:
    return [e.detail for e in of_type(effects, Dropped)]


def test_a_backup_sends_its_prepare_to_the_primary_only(relay: Committee) -> None:
    backup = relay.replica(1)
    effects = backup.handle(relay.pre_prepare(0, 1, relay.request()))
    assert not of_type(effects, Broadcast)
    [send] = of_type(effects, Send)
    assert send.to == 0 and isinstance(send.message, Prepare)


def test_the_primary_relays_the_prepares_it_was_prepared_by(relay: Committee) -> None:
    primary = relay.replica(0)
    [pp] = [e.message for e in of_type(primary.handle(relay.request()), Broadcast)]
    effects = primary.handle(relay.prepare(0, 1, pp.digest, 1))
    assert not of_type(effects, Broadcast)  # one prepare: not prepared yet
    effects = primary.handle(relay.prepare(0, 1, pp.digest, 2))
    [out] = [e.message for e in of_type(effects, Broadcast)]
    assert isinstance(out, Votes)
    assert [p.sender for p in out.prepares] == [1, 2]
    assert [c.sender for c in out.commits] == [0]  # its own commit rides along


def test_a_backup_prepares_and_commits_from_relayed_votes(relay: Committee) -> None:
    c = relay
    backup = c.replica(1)
    pp = c.pre_prepare(0, 1, c.request(op=b"hello"))
    backup.handle(pp)
    prepares = [c.prepare(0, 1, pp.digest, i) for i in (1, 2)]
    effects = backup.handle(bundle(c, 0, prepares, [c.commit(0, 1, pp.digest, 0)]))
    [send] = of_type(effects, Send)
    assert send.to == 0 and isinstance(send.message, Commit)
    commits = [c.commit(0, 1, pp.digest, i) for i in (0, 1, 2)]
    [executed] = of_type(backup.handle(bundle(c, 0, (), commits)), Executed)
    assert executed.seq == 1


def test_the_primary_relays_the_commit_quorum_and_executes(relay: Committee) -> None:
    c = relay
    primary = c.replica(0)
    [pp] = [e.message for e in of_type(primary.handle(c.request()), Broadcast)]
    for i in (1, 2):
        primary.handle(c.prepare(0, 1, pp.digest, i))
    primary.handle(c.commit(0, 1, pp.digest, 1))
    effects = primary.handle(c.commit(0, 1, pp.digest, 2))
    [out] = [
        e.message for e in of_type(effects, Broadcast) if isinstance(e.message, Votes)
    ]
    assert [v.sender for v in out.commits] == [0, 1, 2] and not out.prepares
    assert of_type(effects, Executed)
    # The relay goes out before execution effects: backups hear it first.
    kinds = [type(e) for e in effects]
    assert kinds.index(Broadcast) < kinds.index(Executed)


def test_a_forged_vote_inside_a_bundle_is_dropped_and_the_rest_count(
    relay: Committee,
) -> None:
    c = relay
    backup = c.replica(1)
    pp = c.pre_prepare(0, 1, c.request())
    backup.handle(pp)
    forged = replace(c.prepare(0, 1, pp.digest, 3), sender=2, _payload=b"", _wire=b"")
    effects = backup.handle(bundle(c, 0, [forged]))
    assert reasons(effects) == ["relayed prepare with a bad signature"]
    assert not of_type(effects, Send)  # not prepared on a forgery
    effects = backup.handle(bundle(c, 0, [c.prepare(0, 1, pp.digest, 3)]))
    assert [type(e.message) for e in of_type(effects, Send)] == [Commit]


def test_any_replica_may_relay_but_only_signed_votes_count(relay: Committee) -> None:
    c = relay
    backup = c.replica(1)
    pp = c.pre_prepare(0, 1, c.request())
    backup.handle(pp)
    # Replica 3 (not the primary) relays replica 2's prepare: it is 2's vote all
    # the same, so it counts; a relay cannot make it say anything else.
    effects = backup.handle(bundle(c, 3, [c.prepare(0, 1, pp.digest, 2)]))
    assert [type(e.message) for e in of_type(effects, Send)] == [Commit]


def test_bundles_larger_than_the_committee_or_repeating_a_voter_are_refused(
    relay: Committee,
) -> None:
    c = relay
    backup = c.replica(1)
    digest = sha256(b"d")
    with pytest.raises(MessageError, match="repeats a voter"):
        decode_message(bundle(c, 0, [c.prepare(0, 1, digest, 2)] * 2).to_bytes())
    with pytest.raises(MessageError, match="empty"):
        decode_message(bundle(c, 0).to_bytes())
    big = Committee(n=7, overrides={"relay_votes": True})
    many = [big.prepare(0, 1, digest, i) for i in range(1, 6)]
    # Five distinct voters signed under another committee's keys: more than n = 4.
    effects = backup.handle(bundle(c, 0, many))
    assert reasons(effects) == ["vote bundle larger than the committee"]


def test_status_resend_relays_every_vote_held_for_the_slot(relay: Committee) -> None:
    c = relay
    primary = c.replica(0)
    [pp] = [e.message for e in of_type(primary.handle(c.request()), Broadcast)]
    primary.handle(c.prepare(0, 1, pp.digest, 1))
    effects = primary.handle(Status(0, False, 0, 0, 3).signed(c.keys[3]))
    [votes] = [
        e.message for e in of_type(effects, Send) if isinstance(e.message, Votes)
    ]
    assert [p.sender for p in votes.prepares] == [1]
    assert pp in [e.message for e in of_type(effects, Send)]


def test_a_replica_that_executed_since_its_last_status_skips_one(
    committee: Committee,
) -> None:
    c = committee
    backup = c.replica(1)

    def reports(effects: list) -> bool:
        return any(isinstance(e.message, Status) for e in of_type(effects, Broadcast))

    assert reports(backup.on_timer(STATUS_TIMER))  # idle: reports
    commit_seq(c, backup, 1, c.request())
    assert not reports(backup.on_timer(STATUS_TIMER))  # executing: no need
    assert reports(backup.on_timer(STATUS_TIMER))  # stalled again: reports
