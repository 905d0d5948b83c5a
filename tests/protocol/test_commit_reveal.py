"""Commit-reveal rounds: seals closed by a quorum, then reveals checked against them."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pot_support import VALIDATOR_KEYS, RoundBuilder, chain, miner, trained

from pot_flower.audit.content import check_seals
from pot_flower.audit.report import BadBlock
from pot_flower.encoding import encode
from pot_flower.protocol.batch import BatchError, SubmissionRef
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.params import Params
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.sealing import (
    ClosedSeals,
    Seal,
    SealSet,
    intersecting,
    seal_of,
    sign_seal_set,
)
from pot_flower.protocol.submission import Submission
from pot_flower.validator.application import (
    PoTApplication,
    Signer,
    close_seals_request,
    parse_close_seals,
    parse_closed,
)


def sealing_chain() -> ChainState:
    return chain(commit_reveal=True)


class Round:
    """One commit-reveal round: miners seal, validators close, miners reveal."""

    def __init__(self, state: ChainState) -> None:
        self.b = RoundBuilder(state)
        self.seals: list[Seal] = []
        self.salts: dict[int, bytes] = {}

    def seal(self, i: int, sub: Submission, *, node: int | None = None) -> Seal:
        node = 1000 + i if node is None else node
        salt = os.urandom(32)
        self.salts[node] = salt
        seal = Seal.signed(
            miner(i),
            run=self.b.state.params.run,
            round_=self.b.state.height + 1,
            node=node,
            seal=seal_of(salt, sub.envelope_bytes),
        )
        self.seals.append(seal)
        return seal

    def closed(self, signers: Sequence[int] = (0, 1, 2)) -> ClosedSeals:
        state = self.b.state
        seals = SealSet.close(state.params.run, state.height + 1, self.seals)
        sigs = tuple((i, sign_seal_set(VALIDATOR_KEYS[i], seals)) for i in signers)
        return ClosedSeals(seals, sigs)

    def reveal(self, sub: Submission, node: int, salt: bytes | None = None) -> None:
        self.b.add(sub, node=node)
        ref = self.b.refs[-1]
        self.b.refs[-1] = SubmissionRef(
            ref.node,
            ref.envelope,
            ref.signature,
            ref.payload,
            self.salts[node] if salt is None else salt,
        )

    def execute(self, **batch: object) -> tuple[RoundBlock, dict[int, Reason | None]]:
        batch.setdefault("sealed", self.closed())
        outcome = execute_round(self.b.state, self.b.batch(**batch), self.b.payloads)
        block = parse_block(outcome.body)
        assert isinstance(block, RoundBlock)
        check_seals(block, self.b.state.params)  # what pot ledger verify checks
        return block, {s.node: s.reason for s in block.submissions}


def of_node(block: RoundBlock, node: int) -> set[Reason | None]:
    return {s.reason for s in block.submissions if s.node == node}


def honest(r: Round, i: int) -> Submission:
    sub = r.b.sign(i, trained(r.b.state.model, i))
    r.seal(i, sub)
    return sub


def test_genesis_records_commit_reveal_only_when_on() -> None:
    params = sealing_chain().params
    assert params.to_value()["commit-reveal"] is True
    assert Params.from_value(params.to_value()) == params
    assert "commit-reveal" not in chain().params.to_value()
    with pytest.raises(ValueError):
        Params.from_value({**params.to_value(), "commit-reveal": False})


def test_sealed_and_revealed_updates_are_accepted_and_the_seals_recorded() -> None:
    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(4)]
    for i, sub in enumerate(subs):
        r.reveal(sub, 1000 + i)
    block, reasons = r.execute()
    assert set(reasons.values()) == {None}
    assert block.sealed == r.closed()
    assert all(s.reward > 0 for s in block.submissions)


def test_a_sealed_update_never_revealed_is_recorded_and_earns_nothing() -> None:
    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(4)]
    for i, sub in enumerate(subs[:3]):
        r.reveal(sub, 1000 + i)
    block, reasons = r.execute()
    assert reasons[1003] == Reason.NOT_REVEALED
    silent = next(s for s in block.submissions if s.node == 1003)
    assert silent.miner == miner(3).verify_key.raw
    assert silent.commitment == r.seals[3].seal
    assert (silent.reward, silent.examples) == (0, 0)
    assert miner(3).verify_key.raw not in block.registrations
    assert all(reasons[1000 + i] is None for i in range(3))


def test_a_copycat_cannot_get_the_honest_miner_rejected() -> None:
    """The copycat sees the victim's seal and then its reveal; it gets nowhere."""
    r = Round(sealing_chain())
    victim = honest(r, 0)
    honest_others = [honest(r, i) for i in (1, 2)]
    # At the commit step it can only copy the victim's seal, under its own key.
    copied = r.seals[0]
    r.seals.append(Seal.signed(miner(9), run=77, round_=1, node=1009, seal=copied.seal))
    r.salts[1009] = b""
    r.reveal(victim, 1000)
    for i, sub in zip((1, 2), honest_others, strict=True):
        r.reveal(sub, 1000 + i)
    # Having seen the reveal: the victim's update under its own envelope and the
    # victim's salt (its seal cannot open), and the same from a node that never
    # sealed (too late).
    stolen = trained(r.b.state.model, 0)
    for node, salt in ((1009, r.salts[1000]), (1010, r.salts[1000])):
        r.salts.setdefault(node, salt)
        r.reveal(r.b.sign(9, stolen, node=node), node, salt)
    block, reasons = r.execute()
    assert reasons[1000] is None, reasons  # the honest miner is paid
    # The copycat's reveal does not open its seal, which is on record unopened.
    assert of_node(block, 1009) == {Reason.SEAL_MISMATCH, Reason.NOT_REVEALED}
    assert reasons[1010] == Reason.NOT_SEALED
    paid = {s.node for s in block.submissions if s.reward}
    assert paid == {1000, 1001, 1002}


def test_a_copied_seal_cannot_be_revealed_by_the_copycat() -> None:
    r = Round(sealing_chain())
    victim = honest(r, 0)
    r.seals.append(
        Seal.signed(miner(9), run=77, round_=1, node=1009, seal=r.seals[0].seal)
    )
    r.reveal(victim, 1000)
    # The victim's own envelope and salt from the copycat's node.
    r.salts[1009] = r.salts[1000]
    r.reveal(victim, 1009)
    block, reasons = r.execute()
    assert reasons[1000] is None
    # The envelope names the victim's node; the copied seal stays unopened.
    assert of_node(block, 1009) == {Reason.WRONG_NODE, Reason.NOT_REVEALED}


def test_miners_who_share_an_update_before_sealing_are_colluders() -> None:
    r = Round(sealing_chain())
    shared = trained(r.b.state.model, 5)
    subs = [r.b.sign(i, shared) for i in (0, 1)] + [honest(r, 2), honest(r, 3)]
    for i in (0, 1):
        r.seal(i, subs[i])
    for i, sub in enumerate(subs):
        r.reveal(sub, 1000 + i)
    _, reasons = r.execute()
    assert reasons[1000] == reasons[1001] == Reason.COPIED_UPDATE
    assert reasons[1002] is reasons[1003] is None


def test_a_reveal_that_does_not_open_its_seal_is_rejected_with_the_reason() -> None:
    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(3)]
    r.reveal(subs[0], 1000, salt=os.urandom(32))  # wrong salt
    r.reveal(subs[1], 1001, salt=b"short")
    # Another envelope than the one sealed (a retrained update).
    r.reveal(r.b.sign(2, trained(r.b.state.model, 77)), 1002)
    _, reasons = r.execute()
    assert set(reasons.values()) == {Reason.SEAL_MISMATCH}


def closed_by(seals: SealSet, keys: Sequence[object]) -> ClosedSeals:
    return ClosedSeals(
        seals,
        tuple((i, sign_seal_set(k, seals)) for i, k in enumerate(keys)),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "change",
    ["missing", "below-quorum", "other-round", "forged-signer", "no-chain-seals"],
)
def test_batches_with_seals_not_closed_by_a_quorum_are_refused(change: str) -> None:
    r = Round(sealing_chain() if change != "no-chain-seals" else chain())
    sub = honest(r, 0)
    r.reveal(sub, 1000)
    closed = r.closed()
    later = SealSet(77, 2, closed.seals.seals)
    forger = (*VALIDATOR_KEYS[:2], miner(3))  # two validators and an outsider
    sealed = {
        "missing": None,
        "below-quorum": r.closed((0, 1)),
        "other-round": closed_by(later, VALIDATOR_KEYS[:3]),
        "forged-signer": closed_by(closed.seals, forger),
        "no-chain-seals": closed,
    }[change]
    with pytest.raises(BatchError):
        execute_round(r.b.state, r.b.batch(sealed=sealed), r.b.payloads)


def test_a_salt_is_refused_on_a_chain_without_commit_reveal() -> None:
    b = RoundBuilder(chain())
    b.honest(0)
    ref = b.refs[0]
    b.refs[0] = SubmissionRef(ref.node, ref.envelope, ref.signature, ref.payload, b"s")
    with pytest.raises(BatchError):
        execute_round(b.state, b.batch(), b.payloads)


def test_each_validator_closes_the_first_set_ordered_for_a_round() -> None:
    state = sealing_chain()
    app = PoTApplication(state, {})
    signer = Signer(0, VALIDATOR_KEYS[0], app)
    r = Round(state)
    honest(r, 0)
    first = r.closed().seals
    assert signer.sign_closed(1) is None  # nothing closed yet
    assert parse_closed(app.execute("c", 1, close_seals_request(first), 1)) == first
    signature = signer.sign_closed(1)
    assert signature == sign_seal_set(VALIDATOR_KEYS[0], first)
    honest(r, 1)
    other = r.closed().seals
    # A later request (a resumed coordinator's) gets the first set back.
    assert parse_closed(app.execute("c", 2, close_seals_request(other), 2)) == first
    assert signer.sign_closed(1) == signature
    for refused in (SealSet(77, 2, ()), SealSet(78, 1, ())):  # a later round, a run
        with pytest.raises(ValueError):
            parse_closed(app.execute("c", 3, close_seals_request(refused), 3))
    forged = SealSet(
        77, 1, (Seal(1003, miner(3).verify_key.raw, bytes(32), bytes(64)),)
    )
    fresh = PoTApplication(state, {})  # a forged set is refused before any closes
    with pytest.raises(ValueError, match="not its miner"):
        parse_closed(fresh.execute("c", 4, close_seals_request(forged), 4))
    assert fresh.closed_for(1) is None
    with pytest.raises(ValueError, match="malformed close request"):
        parse_closed(app.execute("c", 5, encode({"kind": "close-seals"}), 5))
    plain = PoTApplication(chain(), {})
    with pytest.raises(ValueError, match="no commit-reveal"):
        parse_closed(plain.execute("c", 1, close_seals_request(first), 1))


def test_closing_keeps_only_valid_seals_one_per_node() -> None:
    r = Round(sealing_chain())
    for i in range(3):
        honest(r, i)
    forged = Seal(1003, miner(3).verify_key.raw, bytes(32), bytes(64))
    twice = Seal.signed(miner(4), run=77, round_=1, node=1002, seal=bytes(32))
    seals = SealSet.close(77, 1, [*r.seals, forged, twice])
    assert [s.node for s in seals.seals] == [1000, 1001]
    assert seals.problem() is None
    assert SealSet(77, 1, tuple(reversed(seals.seals))).problem() is not None


def test_the_audit_refuses_a_dropped_not_revealed_record() -> None:
    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(3)]
    r.reveal(subs[0], 1000)
    r.reveal(subs[1], 1001)
    block, _ = r.execute()
    kept = tuple(s for s in block.submissions if s.reason != Reason.NOT_REVEALED)
    from dataclasses import replace

    with pytest.raises(BadBlock, match="not exactly the seals no reveal opened"):
        check_seals(replace(block, submissions=kept), r.b.state.params)
    assert block.sealed is not None  # altering the signed set voids the signatures
    altered = ClosedSeals(
        SealSet(77, 1, block.sealed.seals.seals[:1]), block.sealed.signatures
    )
    with pytest.raises(BadBlock, match="did not close"):
        check_seals(replace(block, sealed=altered), r.b.state.params)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 200))
def test_closing_quorums_intersect_exactly_from_the_pbft_quorum(n: int) -> None:
    from pot_flower.consensus.quorum import quorum

    assert intersecting(n, quorum(n))
    assert not intersecting(n, quorum(n) - 1)
    assert not intersecting(n, n + 1)


def test_reveals_record_their_salt_and_the_audit_rehashes_them() -> None:
    from dataclasses import replace

    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(3)]
    for i, sub in enumerate(subs):
        r.reveal(sub, 1000 + i)
    block, _ = r.execute()
    assert [s.salt for s in block.submissions] == [
        r.salts[s.node] for s in block.submissions
    ]
    for change in ({"salt": os.urandom(32)}, {"salt": None}, {"examples": 7}):
        forged = tuple(
            replace(s, **change) if s.node == 1001 else s  # type: ignore[arg-type]
            for s in block.submissions
        )
        with pytest.raises(BadBlock, match="seal"):
            check_seals(replace(block, submissions=forged), r.b.state.params)


def test_a_junk_reveal_still_records_the_seal_as_not_revealed() -> None:
    """A miner that seals, then sends something that is no reveal, is on record."""
    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(3)]
    r.reveal(subs[0], 1000)
    r.reveal(subs[1], 1001)
    r.b.add(None, node=1002, envelope=b"junk", signature=b"junk", payload=b"x")
    block, _ = r.execute()
    of_node = sorted(str(s.reason) for s in block.submissions if s.node == 1002)
    assert of_node == ["malformed-envelope", "not-revealed"]
    silent = next(s for s in block.submissions if s.reason == Reason.NOT_REVEALED)
    assert silent.miner == miner(2).verify_key.raw


@pytest.mark.parametrize(
    "change",
    [
        "not-revealed-examples",
        "not-revealed-twice",
        "late-verdict-without-salt",
        "seal-mismatch-unsealed",
        "salt-on-plain-chain",
    ],
)
def test_the_audit_refuses_inconsistent_commit_reveal_records(change: str) -> None:
    from dataclasses import replace

    r = Round(sealing_chain())
    subs = [honest(r, i) for i in range(3)]
    r.reveal(subs[0], 1000)
    r.reveal(subs[1], 1001)
    block, _ = r.execute()
    params = r.b.state.params
    records = list(block.submissions)
    i = next(k for k, s in enumerate(records) if s.reason == Reason.NOT_REVEALED)
    j = next(k for k, s in enumerate(records) if s.node == 1000)
    if change == "not-revealed-examples":
        records[i] = replace(records[i], examples=10**6)
    elif change == "not-revealed-twice":
        records.append(records[i])
    elif change == "late-verdict-without-salt":
        records[j] = replace(records[j], reason=Reason.NORM_ABOVE_BOUND, salt=None)
    elif change == "seal-mismatch-unsealed":
        records[j] = replace(records[j], node=1077, reason=Reason.SEAL_MISMATCH)
    else:
        params = chain().params
    with pytest.raises(BadBlock):
        check_seals(replace(block, submissions=tuple(records)), params)


@pytest.mark.parametrize("commitment", ["hash", "pedersen"])
def test_dp_rounds_record_no_salt_that_would_unblind_a_hash(commitment: str) -> None:
    """On DP chains the block blinds hash commitments: a salt with the seal would
    let anyone test a guessed update, so reveals record none there; seals never
    revealed keep their (public) seal, and the audit accepts the honest block."""
    from dataclasses import replace

    from pot_flower.protocol.commitments import CommitmentKind
    from pot_flower.protocol.privacy.accountant import spent
    from pot_flower.protocol.privacy.config import privacy_settings
    from pot_flower.protocol.robust import RobustConfig

    dp = privacy_settings(
        dp="central", noise_multiplier=1.0, clip_norm=0.05, expected_participants=5
    )
    kind = CommitmentKind(commitment)
    state = chain(
        commit_reveal=True,
        privacy=dp,
        robust=RobustConfig(copy_tolerance_ppm=0),
        commitment=kind,
    )
    r = Round(state)
    subs = []
    for i in range(4):
        sub = r.b.sign(i, trained(state.model, i), commitment=kind)
        r.seal(i, sub)
        subs.append(sub)
    for i, sub in enumerate(subs[:3]):
        r.b.add(sub, node=1000 + i, payload=sub.validator_payload)
        ref = r.b.refs[-1]
        r.b.refs[-1] = replace(ref, salt=r.salts[1000 + i])
    batch = r.b.batch(sealed=r.closed(), privacy=spent(dp, 1))
    outcome = execute_round(state, batch, r.b.payloads, noise_key=bytes(range(32)))
    block = parse_block(outcome.body)
    assert isinstance(block, RoundBlock)
    check_seals(block, state.params)
    accepted = [s for s in block.submissions if s.accepted]
    assert len(accepted) == 3
    silent = next(s for s in block.submissions if s.reason == Reason.NOT_REVEALED)
    assert silent.commitment == r.seals[3].seal
    if kind == CommitmentKind.HASH:
        assert all(s.salt is None for s in block.submissions)
        leaked = tuple(
            replace(s, salt=r.salts[s.node]) if s.accepted else s
            for s in block.submissions
        )
        with pytest.raises(BadBlock, match="unblind"):
            check_seals(replace(block, submissions=leaked), state.params)
    else:
        assert all(s.salt is not None for s in accepted)


def test_close_requests_are_told_from_batches_by_their_first_bytes() -> None:
    r = Round(sealing_chain())
    honest(r, 0)
    seals = r.closed().seals
    assert parse_close_seals(close_seals_request(seals)) == seals
    assert parse_close_seals(r.b.batch(sealed=r.closed())) is None
    assert parse_close_seals(b"junk") is None
