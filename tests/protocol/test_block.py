"""The typed block owns the body format: round trips, strictness, execution's blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pot_support import RoundBuilder, chain

from pot_flower.encoding import decode, encode
from pot_flower.protocol.block import (
    BlockFormatError,
    GenesisBlock,
    Problem,
    RoundBlock,
    SubmissionRecord,
    ValidatorFee,
    parse_block,
    parse_round,
)
from pot_flower.protocol.chain import genesis
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.reasons import Reason

digests = st.binary(min_size=32, max_size=32)
PRE_ENVELOPE = {
    Reason.MISSING_SIGNATURE,
    Reason.MALFORMED_ENVELOPE,
    Reason.BAD_SIGNATURE,
}
nodes = st.integers(-(2**63), 2**64 - 1)


@st.composite
def records(draw: st.DrawFn) -> SubmissionRecord:
    reason = draw(st.none() | st.sampled_from(list(Reason)))
    if reason in PRE_ENVELOPE:
        return SubmissionRecord(draw(nodes), None, None, 0, reason)
    examples = draw(st.integers(1, 1 << 20))
    if reason == Reason.BAD_NUM_EXAMPLES:
        examples = draw(st.integers(-(2**31), 0) | st.integers((1 << 20) + 1, 2**31))
    accepted = reason is None
    return SubmissionRecord(
        node=draw(nodes),
        miner=draw(digests),
        commitment=draw(digests),
        examples=examples,
        reason=reason,
        quality_ppm=draw(st.integers(0, 10**6)) if accepted else 0,
        reward=draw(st.integers(0, 10**9)) if accepted else 0,
    )


@st.composite
def round_blocks(draw: st.DrawFn) -> RoundBlock:
    subs = sorted(
        draw(st.lists(records(), max_size=8)), key=lambda s: (s.miner or b"", s.node)
    )
    fees = draw(
        st.lists(st.builds(ValidatorFee, st.integers(0, 9), st.integers(0, 10**6)))
    )
    return RoundBlock(
        height=draw(st.integers(1, 2**40)),
        run=draw(st.integers(0, 2**63)),
        previous=draw(digests),
        base=draw(digests),
        nonce=draw(digests),
        model=draw(digests),
        minted=draw(st.integers(0, 10**12)),
        registrations=tuple(draw(st.lists(digests, max_size=3))),
        submissions=tuple(subs),
        validator_fees=tuple(fees),
    )


@given(round_blocks())
def test_a_round_block_survives_its_encoding(block: RoundBlock) -> None:
    assert parse_block(block.to_bytes()) == block
    assert parse_round(block.to_bytes()).to_bytes() == block.to_bytes()


def test_what_execution_writes_parses_to_its_verdicts() -> None:
    builder = RoundBuilder(chain())
    for i in range(3):
        builder.honest(i)
    builder.add(None, node=999)  # an unsigned reply
    outcome = execute_round(builder.state, builder.batch(), builder.payloads)
    block = parse_round(outcome.body)
    assert block.to_bytes() == outcome.body
    assert [s.reason for s in block.submissions] == [v.reason for v in outcome.verdicts]
    assert (
        sum(s.reward for s in block.accepted)
        + sum(f.amount for f in block.validator_fees)
        == block.minted
    )


def test_genesis_round_trips_with_its_params() -> None:
    builder = RoundBuilder(chain())
    body, state = genesis(builder.state.params, builder.state.model)
    block = parse_block(body)
    assert isinstance(block, GenesisBlock) and block.params == state.params
    assert block.to_bytes() == body and block.height == 0


@pytest.mark.parametrize(
    ("change", "problem", "detail"),
    [
        (lambda v: v.pop("minted"), Problem.CONTENT, "missing ['minted']"),
        (lambda v: v.update(extra=1), Problem.CONTENT, "unknown ['extra']"),
        (lambda v: v.update(model=b"short"), Problem.CONTENT, "not 32 bytes"),
        (lambda v: v.update(kind="genesis"), Problem.CONTENT, "genesis"),
        (
            lambda v: v["submissions"][0].update(
                reward=5, verdict="rejected", reason="copied-update"
            ),
            Problem.REWARDS,
            "rejected, yet scored or paid",
        ),
        (
            lambda v: v["submissions"][0].update(
                reason="no-such-reason", verdict="rejected"
            ),
            Problem.VERDICTS,
            "unknown verdict",
        ),
        (lambda v: v["submissions"].reverse(), Problem.VERDICTS, "canonical order"),
    ],
)
def test_a_malformed_body_is_named_not_parsed(change, problem, detail) -> None:  # type: ignore[no-untyped-def]
    builder = RoundBuilder(chain())
    for i in range(2):
        builder.honest(i)
    body = execute_round(builder.state, builder.batch(), builder.payloads).body
    value = decode(body)
    change(value)
    with pytest.raises(BlockFormatError) as error:
        parse_block(encode(value))
    assert error.value.problem == problem and detail in error.value.detail


def test_a_genesis_param_of_the_wrong_type_is_named_as_such() -> None:
    body, _ = genesis(chain().params, chain().model)
    value = decode(body)
    value["params"]["run"] = None
    with pytest.raises(BlockFormatError) as error:
        parse_block(encode(value))
    assert error.value.detail == "field 'run' is not an integer"
    value["params"]["run"], value["params"]["quorum"] = 1, 99
    with pytest.raises(BlockFormatError, match="genesis params invalid: quorum"):
        parse_block(encode(value))


def test_a_chain_needs_a_model_with_arrays() -> None:
    with pytest.raises(ValueError, match="no arrays"):
        genesis(chain().params, {})
