"""Commit-reveal rounds through PoTStrategy and pot_mod: two messages per round."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from flower_support import RUN_ID, LocalGrid, Net, make_plain_app
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)

from pot_flower.audit import audit_ledger, read_blocks
from pot_flower.clients import pot_mod
from pot_flower.clients.keystore import Keystore
from pot_flower.clients.sealing import (
    SealStore,
    committee_fingerprint,
    reveal_reply,
    seal_reply,
)
from pot_flower.encoding import encode
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.records import (
    REFUSED,
    SUBMISSION_RECORD,
    TICKET_RECORD,
    SignedReply,
    TicketRecord,
    seal_from_record,
    seal_record,
)
from pot_flower.protocol.sealing import ClosedSeals, Seal, SealSet, sign_seal_set
from pot_flower.strategies import PoTStrategy
from pot_flower.zk.signatures import SigningKey


def run(
    tmp_path: Path,
    tamper: object = None,
    rounds: int = 2,
    grid: LocalGrid | None = None,
    **settings: object,
) -> tuple[PoTStrategy, list[RoundBlock]]:
    grid = grid or LocalGrid(
        make_plain_app(mods=[pot_mod]),
        4,
        run_config={"pot-keystore": str(tmp_path / "keys")},
        tamper=tamper,  # type: ignore[arg-type]
    )
    strategy = PoTStrategy(
        commit_reveal=True,
        ledger_dir=tmp_path / "ledger",
        min_available_nodes=4,
        fraction_evaluate=0.0,
        **settings,  # type: ignore[arg-type]
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
    blocks = [parse_block(b.body) for b in read_blocks(tmp_path / "ledger/validator-0")]
    return strategy, [b for b in blocks if isinstance(b, RoundBlock)]


def step(reply: Message) -> str:
    record = reply.content.config_records.get(SUBMISSION_RECORD) or {}
    return "commit" if "seal" in record else "reveal"


@pytest.mark.parametrize("commitment", ["hash", "pedersen"])
def test_every_honest_miner_seals_then_reveals_and_is_paid(
    tmp_path: Path, commitment: str
) -> None:
    seen: list[tuple[str, int]] = []

    def watch(node: int, reply: Message) -> Message:
        seen.append((step(reply), len(reply.content.array_records)))
        return reply

    strategy, blocks = run(tmp_path, watch, commitment=commitment)
    assert [r.accepted for r in strategy.history] == [4, 4]
    # Seals carry no update; reveals carry it: two messages per node per round.
    assert sorted(set(seen)) == [("commit", 0), ("reveal", 1)]
    assert len(seen) == 16
    for block in blocks:
        assert block.sealed is not None and len(block.sealed.seals.seals) == 4
        assert all(s.reward > 0 for s in block.submissions)


def test_a_miner_that_seals_and_never_reveals_is_recorded_and_unpaid(
    tmp_path: Path,
) -> None:
    silent = 1000 + 7 * 2

    def withhold(node: int, reply: Message) -> Message:
        if node == silent and step(reply) == "reveal":
            return Message(RecordDict(), reply_to=reply)
        return reply

    strategy, blocks = run(tmp_path, withhold, rounds=1)
    assert strategy.history[0].accepted == 3
    records = {s.node: s for s in blocks[0].submissions}
    assert records[silent].reason == Reason.NOT_REVEALED
    assert records[silent].reward == 0 and records[silent].miner is not None


class CopycatGrid(LocalGrid):
    """A relay that copies node A's seal under node B's key, then A's reveal as B's."""

    victim, copycat = 1000, 1007

    def __init__(self, keys: Keystore, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.keys = keys

    def send_and_receive(
        self, messages: object, *, timeout: float | None = None
    ) -> list[Message]:
        replies = {
            r.metadata.src_node_id: r
            for r in super().send_and_receive(messages, timeout=timeout)  # type: ignore[arg-type]
        }
        if {self.victim, self.copycat} - set(replies):
            return list(replies.values())  # not a train step (evaluate sends none)
        victim, copycat = replies[self.victim], replies[self.copycat]
        if step(victim) == "commit":
            record = victim.content.config_records[SUBMISSION_RECORD]
            seal = seal_from_record(self.victim, record)
            assert seal is not None
            forged = Seal.signed(
                self.keys.miner_key(str(self.copycat)),
                run=RUN_ID,
                round_=1,
                node=self.copycat,
                seal=seal.seal,
            )
            content = RecordDict({SUBMISSION_RECORD: ConfigRecord(seal_record(forged))})  # type: ignore[arg-type]
            replies[self.copycat] = Message(content, reply_to=copycat)
        else:
            replies[self.copycat] = Message(victim.content, reply_to=copycat)
        for node, reply in replies.items():
            reply.metadata.__dict__["_src_node_id"] = node
        return list(replies.values())


def test_a_copycat_relay_cannot_get_the_victim_rejected(tmp_path: Path) -> None:
    grid = CopycatGrid(
        Keystore(str(tmp_path / "keys")),
        make_plain_app(mods=[pot_mod]),
        4,
        run_config={"pot-keystore": str(tmp_path / "keys")},
    )
    strategy, blocks = run(tmp_path, rounds=1, grid=grid)
    records = {s.node: s for s in blocks[0].submissions}
    victim = records[CopycatGrid.victim]
    assert victim.reason is None and victim.reward > 0
    copycat = {s.reason for s in blocks[0].submissions if s.node == CopycatGrid.copycat}
    # Its reveal names the victim's node; its seal, never opened, is on record.
    assert copycat == {Reason.WRONG_NODE, Reason.NOT_REVEALED}
    assert strategy.history[0].accepted == 3


# ----------------------------------------------------- the miner's two steps
VALIDATORS = [SigningKey.from_seed(b"cr-validator-%d" % i) for i in range(4)]


def ticket(
    reveal: bytes | None = None, keys: list[SigningKey] = VALIDATORS
) -> TicketRecord:
    return TicketRecord(
        RUN_ID,
        1,
        b"n" * 32,
        b"",
        committee=tuple(k.verify_key.raw for k in keys),
        quorum=3,
        reveal=reveal,
    )


def sealed_node(tmp_path: Path) -> tuple[Context, SigningKey, Seal, Message]:
    context = Context(
        run_id=RUN_ID,
        node_id=5,
        node_config={},
        state=RecordDict(),
        run_config={"pot-keystore": str(tmp_path / "keys")},
    )
    key = SigningKey.from_seed(b"cr-miner")
    train = Message(RecordDict(), dst_node_id=5, message_type="train")
    reply = Message(
        RecordDict({"arrays": ArrayRecord(Net().state_dict())}), reply_to=train
    )
    sealed = seal_reply(
        train,
        context,
        ticket(),
        key,
        reply,
        SignedReply(b"envelope", b"sig"),
        store(context),
    )
    seal = seal_from_record(5, sealed.content.config_records[SUBMISSION_RECORD])
    assert seal is not None and not sealed.content.array_records
    return context, key, seal, train


def reveal_with(context: Context, key: SigningKey, closed: ClosedSeals) -> Message:
    msg = Message(RecordDict(), dst_node_id=5, message_type="train")
    reveal = ticket(encode(closed.to_value()))
    return reveal_reply(msg, context, reveal, key, store(context))


def store(context: Context) -> SealStore:
    return SealStore(Path(str(context.run_config["pot-keystore"])), "5")


def refused(reply: Message) -> str | None:
    record = reply.content.config_records.get(SUBMISSION_RECORD) or {}
    reason = record.get(REFUSED)
    return reason if isinstance(reason, str) else None


def close(seals: list[Seal], keys: list[SigningKey]) -> ClosedSeals:
    closing = SealSet.close(RUN_ID, 1, seals)
    return ClosedSeals(
        closing, tuple((i, sign_seal_set(k, closing)) for i, k in enumerate(keys))
    )


def test_the_miner_reveals_only_to_seals_its_pinned_committee_closed(
    tmp_path: Path,
) -> None:
    context, key, seal, _ = sealed_node(tmp_path)
    others = [SigningKey.from_seed(b"other-%d" % i) for i in range(4)]
    # Closed by another committee (a coordinator's own keys): nothing revealed.
    assert "pinned committee" in (
        refused(reveal_with(context, key, close([seal], others))) or ""
    )
    # Closed by two validators only.
    assert "quorum" in (
        refused(reveal_with(context, key, close([seal], VALIDATORS[:2]))) or ""
    )
    # Closed without this node's seal.
    assert "not among" in (
        refused(reveal_with(context, key, close([], VALIDATORS[:3]))) or ""
    )
    # Closed properly: the kept reply comes back with its envelope and salt.
    revealed = reveal_with(context, key, close([seal], VALIDATORS[:3]))
    assert refused(revealed) is None
    signed = SignedReply.from_value(revealed.content.config_records[SUBMISSION_RECORD])
    assert signed.envelope == b"envelope" and signed.salt is not None
    assert len(revealed.content.array_records) == 1
    # Asked again, it reveals the same update to the same seals, nothing else.
    again = reveal_with(context, key, close([seal], VALIDATORS[:3]))
    assert (
        SignedReply.from_value(again.content.config_records[SUBMISSION_RECORD])
        == signed
    )
    assert refused(reveal_with(context, key, close([], VALIDATORS[:3])))


def test_the_pinned_committee_cannot_change_within_a_run(tmp_path: Path) -> None:
    context, key, _, train = sealed_node(tmp_path)
    others = [SigningKey.from_seed(b"other-%d" % i) for i in range(4)]
    reply = Message(RecordDict(), reply_to=train)
    again = seal_reply(
        train,
        context,
        ticket(keys=others),
        key,
        reply,
        SignedReply(b"e", b"s"),
        store(context),
    )
    assert "another run or committee" in (refused(again) or "")
    # Nor by naming another run (a coordinator's made-up one).
    other_run = replace(ticket(keys=others), run=RUN_ID + 1)
    again = seal_reply(
        train, context, other_run, key, reply, SignedReply(b"e", b"s"), store(context)
    )
    assert "another run or committee" in (refused(again) or "")


def pot_mod_on(
    context: Context, record: TicketRecord | None
) -> tuple[Message, list[int]]:
    """pot_mod on a train message with ``record``; its reply, and any training."""
    trained: list[int] = []

    def train_app(msg: Message, ctxt: Context) -> Message:
        trained.append(1)
        content = RecordDict(
            {
                "arrays": ArrayRecord(Net().state_dict()),
                "metrics": MetricRecord({"num-examples": 10}),
            }
        )
        return Message(content, reply_to=msg)

    content = RecordDict({"arrays": ArrayRecord(Net().state_dict())})
    if record is not None:
        content[TICKET_RECORD] = ConfigRecord(record.to_value())  # type: ignore[arg-type]
    msg = Message(content, dst_node_id=5, message_type="train")
    return pot_mod(msg, context, train_app), trained


def test_a_sealing_node_sends_no_update_in_the_clear(tmp_path: Path) -> None:
    context, _, _, _ = sealed_node(tmp_path)
    plain = replace(ticket(), committee=(), quorum=0)
    for record in (plain, None):
        reply, trained = pot_mod_on(context, record)
        assert "commit-reveal rounds only" in (refused(reply) or "")
        assert not reply.content.array_records and not trained


def test_a_round_is_sealed_once_and_resent_to_a_resumed_coordinator(
    tmp_path: Path,
) -> None:
    context = Context(
        run_id=RUN_ID,
        node_id=5,
        node_config={},
        state=RecordDict(),
        run_config={"pot-keystore": str(tmp_path / "keys")},
    )
    first, trained = pot_mod_on(context, ticket())
    again, retrained = pot_mod_on(context, ticket())
    seal = first.content.config_records[SUBMISSION_RECORD]
    assert trained == [1] and retrained == []  # not trained twice
    assert again.content.config_records[SUBMISSION_RECORD] == seal
    assert not first.content.array_records and not again.content.array_records


def test_an_operator_pins_the_committee_by_fingerprint(tmp_path: Path) -> None:
    keys = [k.verify_key.raw for k in VALIDATORS]
    for fingerprint, sealed in (
        (committee_fingerprint(keys, 3), True),
        (committee_fingerprint(keys, 4), False),
        ("00" * 32, False),
    ):
        context = Context(
            run_id=RUN_ID,
            node_id=5,
            node_config={"pot-committee-fingerprint": fingerprint},
            state=RecordDict(),
            run_config={"pot-keystore": str(tmp_path / "keys")},
        )
        reply, _ = pot_mod_on(context, ticket())
        assert (refused(reply) is None) == sealed, refused(reply)
        if not sealed:  # and nothing in the clear either, from the first message
            plain, trained = pot_mod_on(context, None)
            assert refused(plain) and not trained


def test_a_node_in_a_new_flower_run_reveals_what_it_sealed_before(
    tmp_path: Path,
) -> None:
    """A coordinator resumed after the seals closed starts a new Flower run: the
    node's Context is fresh, yet it re-sends its seal and reveals that update."""

    def fresh() -> Context:
        return Context(
            run_id=RUN_ID + 1,
            node_id=5,
            node_config={},
            state=RecordDict(),
            run_config={"pot-keystore": str(tmp_path / "keys")},
        )

    first, trained = pot_mod_on(fresh(), ticket())
    seal = seal_from_record(5, first.content.config_records[SUBMISSION_RECORD])
    assert seal is not None and trained == [1]
    resumed = fresh()
    again, retrained = pot_mod_on(resumed, ticket())
    assert retrained == []
    assert seal_from_record(5, again.content.config_records[SUBMISSION_RECORD]) == seal
    key = Keystore(str(tmp_path / "keys")).miner_key("5")
    revealed = reveal_with(resumed, key, close([seal], VALIDATORS[:3]))
    assert refused(revealed) is None
    assert len(revealed.content.array_records) == 1
    assert len(revealed.content.metric_records) == 1


def test_the_certificate_kind_is_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="pot-certificate must be 'ed25519' or 'bls'"):
        PoTStrategy(certificate="rsa")
