"""``pot_mod``: a Flower client mod that turns any train reply into a PoT submission.

Put it first (outermost) in the mod list so it sees the final update. It leaves the
reply's ArrayRecord and MetricRecord untouched (what Flower's DP mods and wrappers
expect) and adds a ``"pot"`` ConfigRecord with the signed envelope. Messages that do
not carry a PoT ticket (another strategy, evaluate, query) pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from pot_flower.clients.keystore import Keystore

from pot_flower.protocol.model import Arrays, canonical
from pot_flower.protocol.submission import (
    SubmissionError,
    build_submission,
    sign_without_update,
)

TICKET_RECORD = "pot.ticket"
SUBMISSION_RECORD = "pot"
KEYSTORE_KEY = "pot-keystore"

ClientAppCallable = Callable[[Message, Context], Message]


def arrays_of(record: ArrayRecord) -> Arrays:
    """An ArrayRecord as canonical numpy arrays, in the record's key order."""
    return {name: canonical(array.numpy()) for name, array in record.items()}


def in_order(arrays: Arrays, keys: list[str]) -> Arrays:
    """``arrays`` in the model's key order when they hold exactly its keys.

    Key order carries no meaning in a reply; fixing it here (miner and coordinator
    alike) keeps a reordered but complete reply from being rejected as wrong-keys.
    """
    if set(arrays) == set(keys) and len(arrays) == len(keys):
        return {k: arrays[k] for k in keys}
    return arrays


def pot_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Sign the train reply's update for the PoT committee (a Flower client mod)."""
    ticket = msg.content.config_records.get(TICKET_RECORD)
    if msg.metadata.message_type.split(".")[0] != "train" or ticket is None:
        return call_next(msg, ctxt)
    received_records = list(msg.content.array_records.values())
    received = arrays_of(received_records[0]) if len(received_records) == 1 else None
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
    keystore = Keystore(str(ctxt.run_config.get(KEYSTORE_KEY, "")) or None)
    key = keystore.miner_key(str(ctxt.node_id))
    run, round_, nonce = ticket.get("run"), ticket.get("round"), ticket.get("nonce")
    if not (
        isinstance(run, int) and isinstance(round_, int) and isinstance(nonce, bytes)
    ):
        return reply  # not a ticket this mod understands: leave the reply as it is
    node = msg.metadata.dst_node_id
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
        )
        envelope_bytes, signature = submission.envelope_bytes, submission.signature
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
        )
    reply.content[SUBMISSION_RECORD] = ConfigRecord(
        {"envelope": envelope_bytes, "signature": signature}
    )
    return reply
