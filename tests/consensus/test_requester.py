"""The client accepts a result only on f + 1 matching replies."""

from dataclasses import replace

from support import Committee, of_type

from pot_flower.consensus.effects import Broadcast, Completed, Dropped, Rejected, Send
from pot_flower.consensus.messages import Reply, Superseded
from pot_flower.consensus.requester import RETRANSMIT_TIMER, Requester


def make_client(c: Committee) -> Requester:
    return Requester("alice", c.client_key, c.config)


def reply(
    c: Committee, sender: int, result: bytes, ts: int = 1, view: int = 0
) -> Reply:
    return Reply(view, "alice", ts, result, sender).signed(c.keys[sender])


def test_f_plus_1_matching_replies_complete_the_request(committee: Committee) -> None:
    client = make_client(committee)
    [request] = [e.message for e in of_type(client.submit(b"op"), Send)]
    assert not client.handle(reply(committee, 0, b"r"))
    [done] = of_type(client.handle(reply(committee, 1, b"r")), Completed)
    assert done == Completed(request.timestamp, b"r") and not client.busy  # type: ignore[attr-defined]


def test_a_lying_minority_cannot_complete_a_request(committee: Committee) -> None:
    client = make_client(committee)
    client.submit(b"op")
    assert not client.handle(reply(committee, 3, b"forged"))
    assert not client.handle(reply(committee, 3, b"forged"))  # repeating does not help
    assert not client.handle(reply(committee, 0, b"honest"))
    assert of_type(client.handle(reply(committee, 1, b"honest")), Completed)


def test_forged_and_foreign_replies_are_ignored(committee: Committee) -> None:
    client = make_client(committee)
    client.submit(b"op")
    forged = replace(reply(committee, 0, b"r"), sender=1, _payload=b"")
    assert of_type(client.handle(forged), Dropped)
    assert client.handle(reply(committee, 0, b"r", ts=99)) == []


def test_timeout_retransmits_to_every_replica(committee: Committee) -> None:
    client = make_client(committee)
    client.submit(b"op")
    effects = client.on_timer(RETRANSMIT_TIMER)
    assert len(of_type(effects, Broadcast)) == 1


def test_abandon_forgets_the_outstanding_request() -> None:
    from support import Committee

    from pot_flower.consensus.effects import CancelTimer
    from pot_flower.consensus.requester import RETRANSMIT_TIMER, Requester

    c = Committee()
    client = Requester("alice", c.client_key, c.config)
    client.submit(b"op")
    assert client.busy
    assert client.abandon() == [CancelTimer(RETRANSMIT_TIMER)]
    assert not client.busy
    client.submit(b"next")  # a new request may go out
    assert client.busy


def test_a_request_goes_to_the_primary_of_the_view_f_plus_1_replies_report(
    committee: Committee,
) -> None:
    client = make_client(committee)
    [first] = of_type(client.submit(b"op"), Send)
    assert first.to == 0  # view 0's primary
    # Two replies (f + 1) from view 1 move the client; its next request goes to 1.
    client.handle(reply(committee, 1, b"r", view=1))
    client.handle(reply(committee, 2, b"r", view=1))
    assert client.view == 1
    [second] = of_type(client.submit(b"op2"), Send)
    assert second.to == 1


def test_one_lying_replica_cannot_redirect_the_client(committee: Committee) -> None:
    client = make_client(committee)
    client.submit(b"op")
    client.handle(reply(committee, 3, b"r", view=7))  # the liar claims view 7
    client.handle(reply(committee, 0, b"r", view=0))
    assert not client.busy and client.view == 0
    [request] = of_type(client.submit(b"op2"), Send)
    assert request.to == 0


def superseded(c: Committee, sender: int, ts: int = 1, newer: int = 9) -> Superseded:
    return Superseded("alice", ts, newer, sender).signed(c.keys[sender])


def test_f_plus_1_superseded_notices_reject_the_request(committee: Committee) -> None:
    client = make_client(committee)
    client.submit(b"op")
    assert not client.handle(superseded(committee, 2, newer=12))
    assert not client.handle(superseded(committee, 2, newer=12))  # one replica
    [rejected] = of_type(client.handle(superseded(committee, 3, newer=9)), Rejected)
    assert rejected == Rejected(1, 9) and not client.busy


def test_f_liars_cannot_make_a_client_give_up(committee: Committee) -> None:
    client = make_client(committee)
    client.submit(b"op")
    forged = replace(superseded(committee, 1), sender=2, _payload=b"")
    assert of_type(client.handle(forged), Dropped)  # signed by another replica
    assert not client.handle(superseded(committee, 3))  # f = 1 honest-looking
    assert not client.handle(superseded(committee, 3, ts=7))  # another request
    assert client.busy
    assert of_type(client.handle(reply(committee, 0, b"r")), Completed) == []
    assert of_type(client.handle(reply(committee, 1, b"r")), Completed)
