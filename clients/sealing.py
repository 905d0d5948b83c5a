"""The miner's side of commit-reveal rounds, for ``pot_mod``.

Commit step: the trained reply is kept in the node's ``Context.state`` and only a
signed seal of its envelope goes back (:func:`seal_reply`). Reveal step: once a
quorum of the committee pinned at the run's first sealed round has closed the
seals, and the miner's own seal is among them, the kept reply goes back with its
envelope and salt (:func:`reveal_reply`); otherwise nothing is revealed and the
reply says why.

The committee is pinned once per node and run (``Context.state``): by the
operator, with ``pot-committee-fingerprint`` in the node's or the run's config
(:func:`committee_fingerprint` of the validators' keys and quorum), or else
trust-on-first-use, from the first commit ticket. A node that seals never sends
an update in the clear again in that run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import replace

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)

from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.protocol.records import (
    FINGERPRINT_KEY,
    REFUSED,
    SUBMISSION_RECORD,
    SignedReply,
    TicketRecord,
    seal_record,
)
from pot_flower.protocol.sealing import (
    SALT_SIZE,
    ClosedSeals,
    Seal,
    intersecting,
    seal_of,
)
from pot_flower.zk.signatures import SigningKey

KEPT = "pot.sealed"
"""``Context.state`` prefix of the reply kept between commit and reveal."""
PINNED = "pot.committee"
"""``Context.state`` record of the committee pinned for the run."""


def refusal(msg: Message, reason: str) -> Message:
    """A reply with no update, saying why (the committee records the gap)."""
    record = ConfigRecord({REFUSED: reason})
    return Message(RecordDict({SUBMISSION_RECORD: record}), reply_to=msg)


def committee_fingerprint(keys: Sequence[bytes], quorum: int) -> str:
    """What ``pot-committee-fingerprint`` pins: SHA-256 of keys and quorum, hex."""
    return hashlib.sha256(encode([list(keys), quorum])).hexdigest()


def _configured(ctxt: Context) -> str | None:
    """The operator's ``pot-committee-fingerprint`` (node config first), if any."""
    for config in (ctxt.node_config, ctxt.run_config):
        value = config.get(FINGERPRINT_KEY)
        if isinstance(value, str) and value:
            return value.lower()
    return None


def sealing(ctxt: Context) -> bool:
    """Whether this node seals in this run (pinned, or told to by its operator)."""
    return PINNED in ctxt.state.config_records or _configured(ctxt) is not None


def _pin(ctxt: Context, ticket: TicketRecord) -> str | None:
    """Pin the ticket's committee, once; why not, if it is not the pinned one."""
    keys, quorum = list(ticket.committee), ticket.quorum
    if not intersecting(len(keys), quorum):
        return "the ticket names no committee with a Byzantine quorum"
    configured = _configured(ctxt)
    if configured is not None and committee_fingerprint(keys, quorum) != configured:
        return f"the ticket's committee is not the one {FINGERPRINT_KEY} names"
    pinned = ctxt.state.config_records.get(PINNED)
    if pinned is not None:  # one run, one committee, whatever a ticket says
        same = (pinned.get("run"), pinned.get("keys"), pinned.get("quorum"))
        if same != (ticket.run, keys, quorum):
            return "the ticket names another run or committee than the pinned one"
        return None
    pin = {"run": ticket.run, "keys": keys, "quorum": quorum}
    ctxt.state[PINNED] = ConfigRecord(pin)  # type: ignore[arg-type]
    return None


def _forget(ctxt: Context) -> None:
    for name in [k for k in ctxt.state if k.startswith(KEPT)]:
        del ctxt.state[name]


def seal_reply(
    msg: Message,
    ctxt: Context,
    ticket: TicketRecord,
    key: SigningKey,
    reply: Message,
    signed: SignedReply,
) -> Message:
    """Keep ``reply`` and its signed envelope; answer with a signed seal only."""
    problem = _pin(ctxt, ticket)
    if problem is not None or signed.envelope is None:
        return refusal(msg, problem or "nothing signed")
    salt = os.urandom(SALT_SIZE)
    seal = Seal.signed(
        key,
        run=ticket.run,
        round_=ticket.round,
        node=msg.metadata.dst_node_id,
        seal=seal_of(salt, signed.envelope),
    )
    _forget(ctxt)  # one sealed round at a time
    kept = replace(signed, salt=salt).to_value()
    ctxt.state[KEPT] = ConfigRecord(
        {
            **kept,
            **seal_record(seal),
            "run": ticket.run,
            "round": ticket.round,
        }
    )
    for name, record in reply.content.items():
        if isinstance(record, (ArrayRecord, MetricRecord)):
            ctxt.state[f"{KEPT}/{name}"] = record
    content = RecordDict({SUBMISSION_RECORD: ConfigRecord(seal_record(seal))})
    return Message(content, reply_to=msg)


def kept_seal(msg: Message, ctxt: Context, ticket: TicketRecord) -> Message | None:
    """The seal already sent for ``ticket``'s round, again (None: none kept).

    A coordinator that stopped after the seals closed asks again when it
    resumes: the node answers with the same seal, so it can still reveal the
    update the closed seals name; it never seals a round twice.
    """
    kept = ctxt.state.config_records.get(KEPT)
    if kept is None or (kept.get("run"), kept.get("round")) != (
        ticket.run,
        ticket.round,
    ):
        return None
    if _pin(ctxt, ticket) is not None:
        return refusal(msg, "the ticket names another run or committee")
    record = {k: kept[k] for k in ("miner", "seal", "seal-signature")}
    return Message(RecordDict({SUBMISSION_RECORD: ConfigRecord(record)}), reply_to=msg)


def _reveal_problem(
    ctxt: Context,
    ticket: TicketRecord,
    kept: ConfigRecord | None,
    key: SigningKey,
    node: int,
) -> str | None:
    """Why the kept reply must not be revealed for ``ticket`` (None: reveal it)."""
    if kept is None or (kept.get("run"), kept.get("round")) != (
        ticket.run,
        ticket.round,
    ):
        return "this node sealed nothing for the round"
    pinned = ctxt.state.config_records.get(PINNED)
    if pinned is None or pinned.get("run") != ticket.run:
        return "no committee pinned for the run"
    keys, quorum = pinned.get("keys"), pinned.get("quorum")
    assert isinstance(keys, list) and isinstance(quorum, int)  # written by _pin
    try:
        closed = ClosedSeals.from_value(decode(ticket.reveal or b""))
    except (DecodeError, ValueError) as exc:
        return f"the closed seals are malformed: {exc}"
    seals = closed.seals
    if (seals.run, seals.round) != (ticket.run, ticket.round):
        return "the seals were closed for another round"
    problem = closed.closed_by(keys, quorum)  # type: ignore[arg-type]
    if problem is not None:
        return f"the seals are not closed by the pinned committee: {problem}"
    mine = seals.of_node(node)
    if mine is None or (mine.miner, mine.seal) != (key.verify_key.raw, kept["seal"]):
        return "this node's seal is not among the closed seals"
    return None


def reveal_reply(
    msg: Message, ctxt: Context, ticket: TicketRecord, key: SigningKey
) -> Message:
    """The kept reply with its envelope and salt, if the seals closed with ours."""
    kept = ctxt.state.config_records.get(KEPT)
    problem = _reveal_problem(ctxt, ticket, kept, key, msg.metadata.dst_node_id)
    if problem is not None:
        return refusal(msg, problem)
    assert kept is not None
    prefix = f"{KEPT}/"
    content = RecordDict(
        {k[len(prefix) :]: v for k, v in ctxt.state.items() if k.startswith(prefix)}
    )
    signed = SignedReply.from_value(kept)
    content[SUBMISSION_RECORD] = ConfigRecord(signed.to_value())
    _forget(ctxt)
    return Message(content, reply_to=msg)
