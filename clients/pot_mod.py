"""``pot_mod``: a Flower client mod that turns any train reply into a PoT submission.

Put it first (outermost) in the mod list so it sees the final update. It leaves the
reply's ArrayRecord and MetricRecord untouched (what Flower's DP mods and wrappers
expect) and adds a ``"pot"`` ConfigRecord with the signed envelope. Messages that do
not carry a PoT ticket (another strategy, evaluate, query) pass through unchanged.
On commit-reveal chains it answers the two steps itself (:mod:`.sealing`): the
reply is kept and sealed, then revealed once the committee closed the seals.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ConfigRecord, Context, Message, MetricRecord

from pot_flower.clients.privacy import DELTA_METRIC, EPSILON_METRIC
from pot_flower.clients.sealing import (
    SealStore,
    kept_seal,
    refusal,
    reveal_reply,
    seal_reply,
    sealing,
)
from pot_flower.keystore import Keystore, miner_name
from pot_flower.protocol.commitments import BLINDING_SIZE
from pot_flower.protocol.envelope import LocalDp
from pot_flower.protocol.records import (
    KEYSTORE_KEY,
    MINER_NAME_KEY,
    SUBMISSION_RECORD,
    TICKET_RECORD,
    SignedReply,
    TicketRecord,
    arrays_of,
    in_order,
)
from pot_flower.protocol.submission import (
    SubmissionError,
    build_submission,
    sign_without_update,
)
from pot_flower.zk.signatures import SigningKey

ClientAppCallable = Callable[[Message, Context], Message]


def _local_dp(metrics: MetricRecord) -> LocalDp | None:
    """The reply's ``dp-epsilon`` and ``dp-delta`` metrics, if both are sensible.

    What :class:`pot_flower.clients.DpSgd` reports; anything else (absent, not a
    number, out of range) signs no local DP rather than failing the reply.
    """
    epsilon, delta = metrics.get(EPSILON_METRIC), metrics.get(DELTA_METRIC)
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        for v in (epsilon, delta)
    ):
        return None
    try:
        return LocalDp.of(float(epsilon), float(delta))  # type: ignore[arg-type]
    except ValueError:
        return None


def pot_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Sign the train reply's update for the PoT committee (a Flower client mod)."""
    record = msg.content.config_records.get(TICKET_RECORD)
    train = msg.metadata.message_type.split(".")[0] == "train"
    ticket = None if record is None else TicketRecord.from_value(record)
    if train and sealing(ctxt) and (ticket is None or not ticket.commit_reveal):
        # No update in the clear once this node seals: a relay could hand it to
        # a copycat before the seals close.
        return refusal(msg, "this node runs commit-reveal rounds only")
    if not train or record is None:
        return call_next(msg, ctxt)
    if ticket is not None and ticket.reveal is not None:
        # Commit-reveal: the update was trained and kept at the commit step.
        return reveal_reply(msg, ctxt, ticket, _miner_key(ctxt), _seal_store(ctxt))
    received_records = list(msg.content.array_records.values())
    received = arrays_of(received_records[0]) if len(received_records) == 1 else None
    if ticket is not None and ticket.commit_reveal:
        if received is None:
            return refusal(msg, "a train message carries exactly one ArrayRecord")
        again = kept_seal(msg, ctxt, ticket, _seal_store(ctxt))
        if again is not None:
            return again
    reply = call_next(msg, ctxt)
    if reply.has_error() or received is None:
        return reply
    returned_records = list(reply.content.array_records.values())
    metrics = list(reply.content.metric_records.values())
    claimed = metrics[0].get("num-examples", 0) if len(metrics) == 1 else 0
    num_examples = 0
    if isinstance(claimed, int):
        num_examples = claimed
    elif isinstance(claimed, float) and claimed.is_integer():
        num_examples = int(claimed)
    local_dp = _local_dp(metrics[0]) if len(metrics) == 1 else None
    key = _miner_key(ctxt)
    if ticket is None:
        return reply  # not a ticket this mod understands: leave the reply as it is
    run, round_, nonce = ticket.run, ticket.round, ticket.nonce
    node = msg.metadata.dst_node_id
    blinding: bytes | None = None
    try:
        if len(returned_records) != 1:
            raise SubmissionError("the reply must carry exactly one ArrayRecord")
        submission = build_submission(
            key,
            run=run,
            round_=round_,
            node=node,
            nonce=nonce,
            received=received,
            returned=in_order(arrays_of(returned_records[0]), list(received)),
            num_examples=num_examples,
            local_dp=local_dp,
            commitment=ticket.commitment,
        )
        envelope_bytes, signature = submission.envelope_bytes, submission.signature
        if submission.blinding is not None:
            blinding = submission.blinding.to_bytes(BLINDING_SIZE, "big")
    except SubmissionError:
        # Nothing sensible to commit to (NaN, wrong layout): still sign, so the
        # committee records the miner's verdict and reason rather than a gap.
        envelope_bytes, signature = sign_without_update(
            key,
            run=run,
            round_=round_,
            node=node,
            nonce=nonce,
            received=received,
            num_examples=num_examples,
            local_dp=local_dp,
        )
    signed = SignedReply(envelope_bytes, signature, blinding)
    if ticket.commit_reveal:
        return seal_reply(msg, ctxt, ticket, key, reply, signed, _seal_store(ctxt))
    reply.content[SUBMISSION_RECORD] = ConfigRecord(signed.to_value())
    return reply


def _keystore(ctxt: Context) -> Keystore:
    return Keystore(str(ctxt.run_config.get(KEYSTORE_KEY, "")) or None)


def _miner_name(ctxt: Context) -> str:
    how = str(ctxt.run_config.get(MINER_NAME_KEY, "") or "node-id")
    return miner_name(how, ctxt.node_id, dict(ctxt.node_config))


def _miner_key(ctxt: Context) -> SigningKey:
    return _keystore(ctxt).miner_key(_miner_name(ctxt))


def _seal_store(ctxt: Context) -> SealStore:
    return SealStore(_keystore(ctxt).directory, _miner_name(ctxt))
