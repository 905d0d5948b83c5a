"""The same batch executed in different OS processes yields the same block hash."""

from __future__ import annotations

import hashlib
import multiprocessing as mp

from pot_support import RoundBuilder, chain

from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round


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
