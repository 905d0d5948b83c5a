"""Unit tests for every message handler of the PBFT replica.

Committee of n = 4 (f = 1, quorum 3), checkpoint every 2, window 4. Messages are
crafted and signed by hand and fed to one replica; the effects are the assertions.
"""

from __future__ import annotations

from dataclasses import replace

from support import Committee, of_type, sent

from pot_flower.consensus.application import HashChainApp
from pot_flower.consensus.effects import (
    Drop,
    Dropped,
    Executed,
    Persist,
    SendToClient,
    SetTimer,
    StateRestored,
    ViewInstalled,
)
from pot_flower.consensus.messages import (
    Checkpoint,
    Commit,
    CommitCertificate,
    Committed,
    FetchState,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Reply,
    Request,
    StateTransfer,
    Status,
    Superseded,
    ViewChange,
    sha256,
)
from pot_flower.consensus.replica import (
    REQUEST_TIMER,
    STATUS_TIMER,
    VIEW_CHANGE_TIMER,
    Replica,
)


def reasons(effects: list) -> list[str]:
    return [e.detail for e in of_type(effects, Dropped)]


def commit_seq(
    c: Committee, replica: Replica, seq: int, *requests: Request, view: int = 0
) -> list:
    """Drive ``replica`` through pre-prepare, prepares and commits for ``seq``."""
    pp = c.pre_prepare(view, seq, *requests)
    effects = replica.handle(pp) if replica.id != pp.sender else []
    for i in range(c.n):
        if i not in (replica.id, pp.sender):
            effects += replica.handle(c.prepare(view, seq, pp.digest, i))
    for i in range(c.n):
        if i != replica.id:
            effects += replica.handle(c.commit(view, seq, pp.digest, i))
    return effects


# --------------------------------------------------------------------- requests
def test_primary_turns_a_request_into_a_pre_prepare(committee: Committee) -> None:
    primary = committee.replica(0)
    effects = primary.handle(committee.request())
    [pp] = sent(effects, PrePrepare)
    assert (pp.view, pp.seq, len(pp.requests)) == (0, 1, 1)
    assert isinstance(effects[0], Persist)  # persisted before anything is sent


def test_backup_arms_its_request_timer(committee: Committee) -> None:
    effects = committee.replica(1).handle(committee.request())
    assert SetTimer(REQUEST_TIMER, committee.config.request_timeout_ms) in effects
    assert not sent(effects, PrePrepare)


def test_request_from_unknown_client_or_bad_signature_is_dropped(
    committee: Committee,
) -> None:
    primary = committee.replica(0)
    stranger = Request("mallory", 1, b"x").signed(committee.keys[1])
    forged = replace(committee.request(), operation=b"other", _payload=b"")
    for request in (stranger, forged):
        effects = primary.handle(request)
        assert reasons(effects) == ["request from unknown client or with bad signature"]
        assert not sent(effects, PrePrepare)


def test_executed_request_gets_its_cached_reply_and_stale_one_is_dropped(
    committee: Committee,
) -> None:
    replica = committee.replica(1)
    commit_seq(committee, replica, 1, committee.request(ts=5))
    again = replica.handle(committee.request(ts=5))
    [reply] = sent(again, Reply)
    assert reply.timestamp == 5
    replica.on_timer(STATUS_TIMER)
    stale = replica.handle(committee.request(ts=4))
    assert reasons(stale) == ["stale request timestamp"]
    # Its client shares an id with one that got further: it is told, signed.
    [notice] = sent(stale, Superseded)
    assert (notice.client, notice.timestamp, notice.executed) == ("alice", 4, 5)
    assert notice.verify(committee.config.replicas[1])


def test_a_replayed_request_is_answered_once_per_status_period(
    committee: Committee,
) -> None:
    # A captured request replayed 140,000 times a second made every replica sign
    # and send as many replies: the client's stream drowned and it timed out.
    replica = committee.replica(1)
    commit_seq(committee, replica, 1, committee.request(ts=5))
    for _period in range(3):
        answers = [
            sent(replica.handle(committee.request(ts=ts)), Reply)
            + sent(replica.handle(committee.request(ts=ts)), Superseded)
            for ts in (5, 5, 4, 5, 3)
            for _ in range(20)
        ]
        assert sum(len(a) for a in answers) == 1
        replica.on_timer(STATUS_TIMER)


def test_primary_batches_requests_beyond_the_in_flight_limit() -> None:
    c = Committee(overrides={"max_in_flight": 1, "max_batch": 8})
    c.config = replace(
        c.config, clients={**c.config.clients, "bob": c.keys[3].verify_key}
    )
    primary = c.replica(0)
    assert len(sent(primary.handle(c.request(ts=1)), PrePrepare)) == 1
    bob = Request("bob", 1, b"b").signed(c.keys[3])
    assert not sent(primary.handle(bob), PrePrepare)  # waits: one slot in flight


# ------------------------------------------------------------------ pre-prepare
def test_backup_accepts_pre_prepare_and_broadcasts_prepare(
    committee: Committee,
) -> None:
    backup = committee.replica(1)
    pp = committee.pre_prepare(0, 1, committee.request())
    [prepare] = sent(backup.handle(pp), Prepare)
    assert (prepare.view, prepare.seq, prepare.digest, prepare.sender) == (
        0,
        1,
        pp.digest,
        1,
    )


def test_pre_prepare_rejections(committee: Committee) -> None:
    backup = committee.replica(2)
    req = committee.request()
    not_primary = PrePrepare(
        0, 1, committee.pre_prepare(0, 1, req).digest, (req,), 3
    ).signed(committee.keys[3])
    cases = {
        "pre-prepare: for view 1, not 0": committee.pre_prepare(1, 1, req),
        "pre-prepare: seq 5 outside watermarks (0, 4]": committee.pre_prepare(
            0, 5, req
        ),
        "pre-prepare: pre-prepare not from the primary": not_primary,
    }
    for reason, message in cases.items():
        effects = backup.handle(message)
        assert reasons(effects) == [reason]
        assert not sent(effects, Prepare)


def test_pre_prepare_with_an_unsigned_request_is_rejected(committee: Committee) -> None:
    bad_request = Request("alice", 1, b"op")  # no client signature
    effects = committee.replica(1).handle(committee.pre_prepare(0, 1, bad_request))
    assert reasons(effects) == ["pre-prepare: pre-prepare carries an invalid request"]


def test_equivocating_primary_is_caught(committee: Committee) -> None:
    backup = committee.replica(1)
    backup.handle(committee.pre_prepare(0, 1, committee.request(op=b"a")))
    effects = backup.handle(committee.pre_prepare(0, 1, committee.request(op=b"b")))
    assert reasons(effects) == ["conflicting pre-prepare (equivocating primary)"]
    assert not sent(effects, Prepare)


# ---------------------------------------------------------- prepare and commit
def test_quorum_of_prepares_yields_a_commit(committee: Committee) -> None:
    backup = committee.replica(1)
    pp = committee.pre_prepare(0, 1, committee.request())
    assert not sent(backup.handle(pp), Commit)  # own prepare alone: 1 < quorum - 1
    # own prepare + replica 2's = 2 = quorum - 1: prepared, so it commits
    [commit] = sent(backup.handle(committee.prepare(0, 1, pp.digest, 2)), Commit)
    assert (commit.view, commit.seq, commit.digest, commit.sender) == (
        0,
        1,
        pp.digest,
        1,
    )


def test_prepared_needs_quorum_minus_one_matching_prepares(
    committee: Committee,
) -> None:
    backup = committee.replica(1)
    pp = committee.pre_prepare(0, 1, committee.request())
    backup.handle(pp)
    effects = backup.handle(committee.prepare(0, 1, sha256(b"other"), 2))
    assert not sent(effects, Commit)
    effects = backup.handle(committee.prepare(0, 1, pp.digest, 3))
    [commit] = sent(effects, Commit)
    assert commit.digest == pp.digest


def test_prepare_rejections(committee: Committee) -> None:
    backup = committee.replica(1)
    pp = committee.pre_prepare(0, 1, committee.request())
    backup.handle(pp)
    assert reasons(backup.handle(committee.prepare(0, 1, pp.digest, 0))) == [
        "prepare: the primary does not send prepares"
    ]
    backup.handle(committee.prepare(0, 1, pp.digest, 2))
    assert reasons(backup.handle(committee.prepare(0, 1, sha256(b"x"), 2))) == [
        "conflicting prepare from the same replica"
    ]
    assert reasons(backup.handle(committee.prepare(0, 9, pp.digest, 3))) == [
        "prepare: seq 9 outside watermarks (0, 4]"
    ]


def test_quorum_of_commits_executes_and_replies(committee: Committee) -> None:
    backup = committee.replica(1)
    effects = commit_seq(committee, backup, 1, committee.request(op=b"hello"))
    [executed] = of_type(effects, Executed)
    assert executed.seq == 1 and executed.results[0] is not None
    [reply] = sent(effects, Reply)
    assert reply.result == executed.results[0]
    assert of_type(effects, SendToClient)[0].client == "alice"


def test_two_commits_are_not_enough(committee: Committee) -> None:
    backup = committee.replica(1)
    pp = committee.pre_prepare(0, 1, committee.request())
    backup.handle(pp)
    backup.handle(committee.prepare(0, 1, pp.digest, 2))
    effects = backup.handle(committee.commit(0, 1, pp.digest, 2))  # own + 2 = 2 < 3
    assert not of_type(effects, Executed)
    effects = backup.handle(committee.commit(0, 1, pp.digest, 3))
    assert of_type(effects, Executed)


def test_execution_follows_sequence_order(committee: Committee) -> None:
    backup = committee.replica(1)
    later = commit_seq(committee, backup, 2, committee.request(ts=2))
    assert not of_type(later, Executed)  # seq 1 not committed yet
    earlier = commit_seq(committee, backup, 1, committee.request(ts=1))
    assert [e.seq for e in of_type(earlier, Executed)] == [1, 2]


def test_a_request_committed_twice_executes_once(committee: Committee) -> None:
    backup = committee.replica(1)
    req = committee.request(ts=1)
    commit_seq(committee, backup, 1, req)
    effects = commit_seq(committee, backup, 2, req)
    [executed] = of_type(effects, Executed)
    assert executed.results == (None,)  # deduplicated by (client, timestamp)


# -------------------------------------------------------------- checkpoints
def test_checkpoint_becomes_stable_and_collects_garbage(committee: Committee) -> None:
    backup = committee.replica(1)
    commit_seq(committee, backup, 1, committee.request(ts=1))
    effects = commit_seq(committee, backup, 2, committee.request(ts=2))
    [own] = sent(effects, Checkpoint)
    assert own.seq == 2 and backup.low == 0
    for i in (2, 3):
        backup.handle(Checkpoint(2, own.state_digest, i).signed(committee.keys[i]))
    assert backup.low == 2
    assert not backup._slots  # log below the stable checkpoint is gone
    assert len(backup.stable_proof) == 3


def test_checkpoint_with_a_different_digest_does_not_count(
    committee: Committee,
) -> None:
    backup = committee.replica(1)
    commit_seq(committee, backup, 1, committee.request(ts=1))
    commit_seq(committee, backup, 2, committee.request(ts=2))
    for i in (2, 3):
        backup.handle(Checkpoint(2, sha256(b"lie"), i).signed(committee.keys[i]))
    assert backup.low == 0


# --------------------------------------------------------------- view change
def test_request_timeout_starts_a_view_change(committee: Committee) -> None:
    backup = committee.replica(1)
    backup.handle(committee.request())
    effects = backup.on_timer(REQUEST_TIMER)
    [vc] = sent(effects, ViewChange)
    assert (vc.new_view, vc.stable_seq, vc.prepared) == (1, 0, ())
    assert backup.in_view_change and backup.view == 1


def test_view_change_carries_prepared_certificates(committee: Committee) -> None:
    backup = committee.replica(2)
    pp = committee.pre_prepare(0, 1, committee.request())
    backup.handle(pp)
    backup.handle(committee.prepare(0, 1, pp.digest, 1))
    [vc] = sent(backup.on_timer(REQUEST_TIMER), ViewChange)
    [cert] = vc.prepared
    assert cert.pre_prepare == pp and len(cert.votes) == 2


def test_f_plus_1_view_changes_make_a_replica_join(committee: Committee) -> None:
    replica = committee.replica(3)
    vcs = [ViewChange(1, 0, (), (), i).signed(committee.keys[i]) for i in (1, 2)]
    assert not sent(replica.handle(vcs[0]), ViewChange)
    [own] = sent(replica.handle(vcs[1]), ViewChange)
    assert own.new_view == 1 and own.sender == 3


def test_new_primary_issues_new_view_that_reissues_prepared_requests(
    committee: Committee,
) -> None:
    new_primary = committee.replica(1)
    req = committee.request()
    pp = committee.pre_prepare(0, 1, req)
    cert = PreparedCertificate(
        pp, tuple(committee.prepare(0, 1, pp.digest, i) for i in (2, 3))
    )
    new_primary.on_timer(REQUEST_TIMER)  # its own view-change (no certificate)
    new_primary.handle(ViewChange(1, 0, (), (cert,), 2).signed(committee.keys[2]))
    effects = new_primary.handle(ViewChange(1, 0, (), (), 3).signed(committee.keys[3]))
    [nv] = sent(effects, NewView)
    [reissued] = nv.pre_prepares
    assert (reissued.view, reissued.seq, reissued.digest) == (1, 1, pp.digest)
    assert ViewInstalled(1) in effects and not new_primary.in_view_change
    assert (
        SetTimer(VIEW_CHANGE_TIMER, committee.config.view_change_timeout_ms) in effects
    )


def build_new_view(c: Committee, *, tamper: bool = False) -> NewView:
    req = c.request()
    pp = c.pre_prepare(0, 1, req)
    cert = PreparedCertificate(pp, tuple(c.prepare(0, 1, pp.digest, i) for i in (2, 3)))
    vcs = (
        ViewChange(1, 0, (), (), 1).signed(c.keys[1]),
        ViewChange(1, 0, (), (cert,), 2).signed(c.keys[2]),
        ViewChange(1, 0, (), (), 3).signed(c.keys[3]),
    )
    requests = () if tamper else (req,)
    reissue = c.pre_prepare(1, 1, *requests)
    return NewView(1, vcs, (reissue,), 1).signed(c.keys[1])


def test_backup_installs_a_valid_new_view_and_prepares_reissued_requests(
    committee: Committee,
) -> None:
    backup = committee.replica(3)
    effects = backup.handle(build_new_view(committee))
    assert ViewInstalled(1) in effects
    [prepare] = sent(effects, Prepare)
    assert (prepare.view, prepare.seq) == (1, 1)


def test_new_view_that_drops_a_prepared_request_is_rejected(
    committee: Committee,
) -> None:
    backup = committee.replica(3)
    effects = backup.handle(build_new_view(committee, tamper=True))
    assert reasons(effects) == [
        "new-view: pre-prepare for seq 1 does not match the view-changes"
    ]
    assert backup.view == 0


def test_view_change_with_a_forged_certificate_is_rejected(
    committee: Committee,
) -> None:
    replica = committee.replica(0)
    pp = committee.pre_prepare(0, 1, committee.request())
    # Two prepares, one signed by the wrong key.
    forged = Prepare(0, 1, pp.digest, 3).signed(committee.keys[2])
    cert = PreparedCertificate(pp, (committee.prepare(0, 1, pp.digest, 2), forged))
    effects = replica.handle(ViewChange(1, 0, (), (cert,), 2).signed(committee.keys[2]))
    assert reasons(effects) == ["view-change: prepared certificate: bad vote signature"]


def test_view_change_with_a_short_checkpoint_proof_is_rejected(
    committee: Committee,
) -> None:
    proof = (Checkpoint(2, sha256(b"s"), 2).signed(committee.keys[2]),)
    effects = committee.replica(0).handle(
        ViewChange(1, 2, proof, (), 2).signed(committee.keys[2])
    )
    assert reasons(effects) == ["view-change: checkpoint proof below quorum"]


def test_view_change_timer_moves_to_the_next_view(committee: Committee) -> None:
    replica = committee.replica(3)
    replica.handle(committee.request())
    replica.on_timer(REQUEST_TIMER)
    [vc] = sent(replica.on_timer(VIEW_CHANGE_TIMER), ViewChange)
    assert vc.new_view == 2


# ------------------------------------------------------- status and catch-up
def test_status_from_a_lagging_peer_is_answered_with_commit_certificates(
    committee: Committee,
) -> None:
    replica = committee.replica(1)
    commit_seq(committee, replica, 1, committee.request())
    effects = replica.handle(Status(0, False, 0, 0, 2).signed(committee.keys[2]))
    [committed] = sent(effects, Committed)
    assert committed.certificate.pre_prepare.seq == 1


def test_commit_certificate_lets_a_replica_execute(committee: Committee) -> None:
    pp = committee.pre_prepare(0, 1, committee.request())
    commits = tuple(committee.commit(0, 1, pp.digest, i) for i in range(3))
    message = Committed(CommitCertificate(pp, commits), 2).signed(committee.keys[2])
    [executed] = of_type(committee.replica(3).handle(message), Executed)
    assert executed.seq == 1


def test_commit_certificate_below_quorum_is_rejected(committee: Committee) -> None:
    pp = committee.pre_prepare(0, 1, committee.request())
    commits = tuple(committee.commit(0, 1, pp.digest, i) for i in range(2))
    message = Committed(CommitCertificate(pp, commits), 2).signed(committee.keys[2])
    effects = committee.replica(3).handle(message)
    assert reasons(effects) == ["commit certificate: 2 votes, 3 needed"]


def stable_source(c: Committee) -> Replica:
    source = c.replica(1)
    commit_seq(c, source, 1, c.request(ts=1))
    own = sent(commit_seq(c, source, 2, c.request(ts=2)), Checkpoint)[0]
    for i in (2, 3):
        source.handle(Checkpoint(2, own.state_digest, i).signed(c.keys[i]))
    assert source.low == 2
    return source


def test_state_transfer_brings_a_lagging_replica_to_the_checkpoint(
    committee: Committee,
) -> None:
    source = stable_source(committee)
    [transfer] = sent(
        source.handle(FetchState(2, 3).signed(committee.keys[3])), StateTransfer
    )
    lagging = committee.replica(3)
    effects = lagging.handle(transfer)
    assert StateRestored(2, sha256(transfer.snapshot)) in effects
    assert (
        lagging.last_executed == 2 and lagging.state_digest() == source.state_digest()
    )


def test_state_transfer_with_a_snapshot_not_matching_the_proof_is_rejected(
    committee: Committee,
) -> None:
    source = stable_source(committee)
    [transfer] = sent(
        source.handle(FetchState(2, 3).signed(committee.keys[3])), StateTransfer
    )
    forged = replace(transfer, snapshot=transfer.snapshot + b"!", _payload=b"").signed(
        committee.keys[1]
    )
    lagging = committee.replica(3)
    assert reasons(lagging.handle(forged)) == [
        "state transfer: checkpoint proof entries disagree"
    ]
    assert lagging.last_executed == 0


def test_fetch_state_without_a_stable_checkpoint_is_refused(
    committee: Committee,
) -> None:
    effects = committee.replica(1).handle(FetchState(2, 3).signed(committee.keys[3]))
    assert reasons(effects) == ["no stable checkpoint that recent to transfer"]


# --------------------------------------------------------------- bad input
def test_garbage_bytes_are_dropped_with_a_reason(committee: Committee) -> None:
    replica = committee.replica(0)
    for data in (b"", b"\x00\xff garbage", b"l5:hello64:" + b"x" * 64 + b"e"):
        [dropped] = replica.receive(data)
        assert isinstance(dropped, Dropped) and dropped.reason == Drop.MALFORMED
        assert dropped.detail.startswith("malformed message")


def test_message_from_outside_the_committee_or_claiming_to_be_us_is_dropped(
    committee: Committee,
) -> None:
    replica = committee.replica(0)
    outsider = Prepare(0, 1, sha256(b"x"), 7).signed(committee.keys[1])
    assert reasons(replica.handle(outsider)) == ["sender is not a committee member"]
    spoof = Prepare(0, 1, sha256(b"x"), 0).signed(committee.keys[1])
    assert reasons(replica.handle(spoof)) == ["message claims to be from this replica"]
    wrong_key = Prepare(0, 1, sha256(b"x"), 2).signed(committee.keys[1])
    assert reasons(replica.handle(wrong_key)) == ["bad signature"]


def test_a_new_view_is_forwarded_to_peers_stuck_before_it_even_mid_view_change(
    committee: Committee,
) -> None:
    # Replica 1 leads view 1, but its new-view is lost on the way; view 1 then
    # times out for it too. Replicas 2 and 3, still changing to view 1, cannot
    # count 1's vote any more (it asks for view 2 now): they need the new-view.
    c = committee
    new_primary = c.replica(1)
    new_primary.on_timer(REQUEST_TIMER)
    new_primary.handle(ViewChange(1, 0, (), (), 2).signed(c.keys[2]))
    [nv] = sent(
        new_primary.handle(ViewChange(1, 0, (), (), 3).signed(c.keys[3])), NewView
    )
    new_primary.handle(c.request())  # proposed in view 1, never executed
    new_primary.on_timer(REQUEST_TIMER)
    assert new_primary.view == 2 and new_primary.in_view_change
    effects = new_primary.handle(Status(1, True, 0, 0, 2).signed(c.keys[2]))
    assert sent(effects, NewView) == [nv]
    # A peer already past view 1 does not need it.
    assert not sent(
        new_primary.handle(Status(2, True, 0, 0, 3).signed(c.keys[3])), NewView
    )


def test_status_from_a_peer_missing_our_checkpoint_vote_is_answered_with_it() -> None:
    # n = 7, f = 2 silent: a checkpoint is stable only with all five honest votes.
    # Each vote is broadcast once, at execution; replica 1's vote to replica 2 is
    # lost, so 2's window stays full unless 1 resends it when 2 reports it stuck.
    c = Committee(n=7)
    voter, stuck = c.replica(1), c.replica(2)
    for replica in (voter, stuck):
        commit_seq(c, replica, 1, c.request(ts=1))
        commit_seq(c, replica, 2, c.request(ts=2))
    digest = stuck.state_digest()
    for i in (4, 5, 6):
        stuck.handle(Checkpoint(2, digest, i).signed(c.keys[i]))
    assert stuck.low == 0  # four votes of the five needed
    status = Status(0, False, 0, 2, 2).signed(c.keys[2])
    [vote] = sent(voter.handle(status), Checkpoint)
    assert (vote.seq, vote.state_digest, vote.sender) == (2, digest, 1)
    stuck.handle(vote)
    assert stuck.low == 2
    # After a restart the vote is not in memory (replay does not vote): re-signed.
    restarted = Replica(c.config, 1, c.keys[1], HashChainApp(), voter.durable_state())
    assert sent(restarted.handle(status), Checkpoint) == [vote]
