"""The same batch executed in different OS processes yields the same block hash."""

from __future__ import annotations

import hashlib
import multiprocessing as mp

import pytest
from pot_support import RoundBuilder, chain, trained

from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.privacy.accountant import spent
from pot_flower.protocol.privacy.config import privacy_settings
from pot_flower.protocol.robust import (
    PRESETS,
    Aggregator,
    PreAggregator,
    RobustConfig,
)

# Every aggregator alone, and every pre-aggregator in front of one.
RULES = (
    [RobustConfig(aggregator=a, byzantine_ppm=200_000) for a in Aggregator]
    + [
        RobustConfig(
            aggregator=Aggregator.MULTI_KRUM,
            pre_aggregators=(p,),
            byzantine_ppm=200_000,
            clip_norm_units=max_norm_units(0.05),
        )
        for p in PreAggregator
    ]
    + [PRESETS["default"], PRESETS["recommended"]]
)  # with server momentum
KEY = bytes(range(32))  # the committee's noise key


def _execute(
    args: tuple[bytes, bytes, dict[bytes, bytes]],
) -> tuple[bytes, bytes, bytes]:
    state_bytes, batch, payloads = args
    outcome = execute_round(ChainState.from_bytes(state_bytes), batch, payloads)
    return (
        outcome.hash,
        hashlib.sha256(outcome.body).digest(),
        outcome.state.model_digest,
    )


def test_two_processes_produce_identical_blocks() -> None:
    builder = RoundBuilder(chain())
    for i in range(8):
        builder.honest(i, examples=50 + 13 * i)
    builder.add(builder.sign(20, builder.state.model), node=1020)  # lazy miner
    args = (builder.state.to_bytes(), builder.batch(), builder.payloads)
    here = _execute(args)
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_execute, [args, args])
    assert results[0] == results[1] == here


def test_state_round_trips_through_bytes() -> None:
    state = chain()
    again = ChainState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes()
    assert again.model_digest == state.model_digest


def _attacked_round(builder: RoundBuilder) -> None:
    for i in range(9):
        builder.honest(i, examples=50 + 13 * i)
    far = trained(builder.state.model, 30, scale=0.05)
    builder.add(builder.sign(30, far, examples=10**6), node=1030)  # far, inflated
    builder.add(builder.sign(31, trained(builder.state.model, 2)), node=1031)  # copy


def test_every_robust_rule_is_identical_across_processes() -> None:
    jobs, expected = [], []
    for config in RULES:
        state = chain(robust=config)
        for _ in range(2):  # round 2 starts from round 1's kept aggregate
            builder = RoundBuilder(state)
            _attacked_round(builder)
            args = (state.to_bytes(), builder.batch(), builder.payloads)
            jobs.append(args)
            expected.append(_execute(args))
            state = execute_round(state, args[1], args[2]).state
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_execute, jobs)
    assert results == expected
    assert len({r[0] for r in results}) == len(results)  # the rules differ


def _execute_private(
    args: tuple[bytes, bytes, dict[bytes, bytes], bytes],
) -> tuple[bytes, bytes, bytes]:
    state_bytes, batch, payloads, key = args
    state = ChainState.from_bytes(state_bytes)
    outcome = execute_round(state, batch, payloads, noise_key=key)
    after = hashlib.sha256(outcome.state.to_bytes()).digest()
    return outcome.hash, outcome.state.model_digest, after


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
def test_noised_aggregates_are_identical_across_processes(adaptive: bool) -> None:
    config = privacy_settings(
        dp="central",
        noise_multiplier=1.1,
        clip_norm=0.05,
        expected_participants=9,
        adaptive_clipping=adaptive,
        clipped_count_stddev=2.0,
    )
    state = chain(privacy=config, robust=RobustConfig(copy_tolerance_ppm=0))
    jobs, expected = [], []
    for _ in range(2):
        builder = RoundBuilder(state)
        _attacked_round(builder)
        claim = spent(config, state.height + 1)
        args = (state.to_bytes(), builder.batch(privacy=claim), builder.payloads, KEY)
        jobs.append(args)
        expected.append(_execute_private(args))
        state = execute_round(state, args[1], args[2], noise_key=KEY).state
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_execute_private, jobs)
    assert results == expected
    assert results[0][1] != results[1][1]
