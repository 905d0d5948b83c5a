"""The miner's side of commit-reveal rounds, for ``pot_mod``.

Commit step: the trained reply is kept on the miner's disk (:class:`SealStore`)
and only a signed seal of its envelope goes back (:func:`seal_reply`). Reveal
step: once a quorum of the pinned committee has closed the seals, and the
miner's own seal is among them, the kept reply goes back with its envelope and
salt (:func:`reveal_reply`); otherwise nothing is revealed and the reply says
why.

The committee is pinned once per node and run (``Context.state``): by the
node's operator, with ``pot-committee-fingerprint`` in the node config
(:func:`committee_fingerprint` of the validators' keys and quorum; in the run
config it is only the coordinator's word), or else trust-on-first-use, from the
first commit ticket. A node that seals never sends an update in the clear again
in that run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)

from pot_flower.encoding import DecodeError, decode, encode
from pot_flower.protocol.model import decode_arrays, encode_arrays
from pot_flower.protocol.records import (
    FINGERPRINT_KEY,
    REFUSED,
    SUBMISSION_RECORD,
    ConfigValue,
    SignedReply,
    TicketRecord,
    arrays_of,
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
    if not intersecting(len(keys), quorum) or any(len(k) != 32 for k in keys):
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


@dataclass(frozen=True)
class Kept:
    """A sealed round's reply, kept by the miner until it reveals it.

    ``record`` holds the signed envelope, blinding, salt and seal; ``arrays`` the
    reply's ArrayRecords (canonical bytes) and ``metrics`` its MetricRecords
    (JSON), each under its record name.
    """

    run: int
    round: int
    record: dict[str, bytes]
    arrays: dict[str, bytes]
    metrics: dict[str, str]

    def reply(self) -> RecordDict:
        """The reply to reveal: the kept records and the envelope with its salt."""
        content = RecordDict()
        for name, data in self.arrays.items():
            arrays = decode_arrays(data)
            content[name] = ArrayRecord({k: Array(v) for k, v in arrays.items()})
        for name, text in self.metrics.items():
            content[name] = MetricRecord(json.loads(text))
        signed = SignedReply.from_value(self.record)
        content[SUBMISSION_RECORD] = ConfigRecord(signed.to_value())
        return content


class SealStore:
    """The round a miner sealed last, on its own disk beside its key.

    Not in ``Context.state``: a coordinator resumed after a crash starts a new
    Flower run, whose nodes get a fresh Context, and must still be able to
    collect the reveals of seals closed before it stopped.
    """

    def __init__(self, keystore: Path, name: str) -> None:
        self.path = keystore / "sealed" / f"miner-{name}.bin"

    def load(self, run: int, round_: int) -> Kept | None:
        """The reply sealed for ``run`` and ``round_``, if it is the kept one."""
        try:
            value = decode(self.path.read_bytes())
            kept = Kept(**value) if isinstance(value, dict) else None  # type: ignore[arg-type]
        except (OSError, DecodeError, TypeError):
            return None
        if kept is None:
            return None
        return kept if (kept.run, kept.round) == (run, round_) else None

    def save(self, kept: Kept) -> None:
        """Keep ``kept`` instead of any earlier round (atomic, owner-only)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(encode(asdict(kept)))
        os.replace(tmp, self.path)


def seal_reply(
    msg: Message,
    ctxt: Context,
    ticket: TicketRecord,
    key: SigningKey,
    reply: Message,
    signed: SignedReply,
    store: SealStore,
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
    record = {**replace(signed, salt=salt).to_value(), **seal_record(seal)}
    store.save(
        Kept(
            ticket.run,
            ticket.round,
            {k: v for k, v in record.items() if isinstance(v, bytes)},
            {
                name: encode_arrays(arrays_of(r))
                for name, r in reply.content.array_records.items()
            },
            {
                name: json.dumps(dict(r))
                for name, r in reply.content.metric_records.items()
            },
        )
    )
    content = RecordDict({SUBMISSION_RECORD: ConfigRecord(seal_record(seal))})
    return Message(content, reply_to=msg)


def kept_seal(
    msg: Message, ctxt: Context, ticket: TicketRecord, store: SealStore
) -> Message | None:
    """The seal already sent for ``ticket``'s round, again (None: none kept).

    A coordinator that stopped after the seals closed asks again when it
    resumes: the node answers with the same seal, so it can still reveal the
    update the closed seals name; it never seals a round twice.
    """
    kept = store.load(ticket.run, ticket.round)
    if kept is None:
        return None
    if _pin(ctxt, ticket) is not None:
        return refusal(msg, "the ticket names another run or committee")
    record: dict[str, ConfigValue] = {
        k: kept.record[k] for k in ("miner", "seal", "seal-signature")
    }
    return Message(RecordDict({SUBMISSION_RECORD: ConfigRecord(record)}), reply_to=msg)


def _reveal_problem(
    ctxt: Context,
    ticket: TicketRecord,
    kept: Kept | None,
    key: SigningKey,
    node: int,
) -> str | None:
    """Why the kept reply must not be revealed for ``ticket`` (None: reveal it)."""
    if kept is None:
        return "this node sealed nothing for the round"
    pinned = ctxt.state.config_records.get(PINNED)
    if pinned is None or pinned.get("run") != ticket.run:
        return "no committee pinned for the run"
    keys, quorum = pinned.get("keys"), pinned.get("quorum")
    assert isinstance(keys, list) and isinstance(quorum, int)  # written by _pin
    try:
        closed = ClosedSeals.from_value(decode(ticket.reveal or b""))
        seals = closed.seals
        if (seals.run, seals.round) != (ticket.run, ticket.round):
            return "the seals were closed for another round"
        problem = closed.closed_by(keys, quorum)  # type: ignore[arg-type]
    except (DecodeError, ValueError) as exc:  # a malformed set or pinned key
        return f"the closed seals cannot be checked: {exc}"
    if problem is not None:
        return f"the seals are not closed by the pinned committee: {problem}"
    mine = seals.of_node(node)
    sealed = (key.verify_key.raw, kept.record.get("seal"))
    if mine is None or (mine.miner, mine.seal) != sealed:
        return "this node's seal is not among the closed seals"
    return None


def reveal_reply(
    msg: Message, ctxt: Context, ticket: TicketRecord, key: SigningKey, store: SealStore
) -> Message:
    """The kept reply with its envelope and salt, if the seals closed with ours.

    Kept until the next round's seal: asked again (a lost reply, a resumed
    coordinator), the node reveals the same update to the same closed seals.
    """
    kept = store.load(ticket.run, ticket.round)
    problem = _reveal_problem(ctxt, ticket, kept, key, msg.metadata.dst_node_id)
    if problem is not None:
        return refusal(msg, problem)
    assert kept is not None
    return Message(kept.reply(), reply_to=msg)
