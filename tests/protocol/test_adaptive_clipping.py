"""Adaptive DP clipping (Andrew et al. 2021) as the committee runs it."""

from __future__ import annotations

import decimal
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pot_support import RoundBuilder, chain, trained

from pot_flower.audit.content import check_clipping
from pot_flower.audit.report import BadBlock, Failure
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import SCALE
from pot_flower.protocol.privacy.accountant import spent
from pot_flower.protocol.privacy.adaptive import (
    ClipStep,
    next_clip_norm,
    noisy_count,
    unclipped_votes,
)
from pot_flower.protocol.privacy.config import (
    CLIP_LATTICE,
    AdaptiveClipping,
    PrivacyConfig,
    privacy_settings,
)
from pot_flower.protocol.privacy.mechanism import to_lattice
from pot_flower.protocol.robust import RobustConfig
from pot_flower.protocol.robust.geometry import sq_norm, sq_norms

KEY = bytes(range(32))
MINERS = 20


def adaptive(**overrides: object) -> PrivacyConfig:
    kwargs: dict[str, object] = {
        "dp": "central",
        "noise_multiplier": 1.0,
        "clip_norm": 2.0,
        "expected_participants": MINERS,
        "adaptive_clipping": True,
        "clip_learning_rate": 1.0,
        "clipped_count_stddev": 1.0,
    }
    kwargs.update(overrides)
    return privacy_settings(**kwargs)  # type: ignore[arg-type]


def adaptive_chain(config: PrivacyConfig | None = None) -> ChainState:
    return chain(
        privacy=config or adaptive(), robust=RobustConfig(copy_tolerance_ppm=0)
    )


def scales() -> list[float]:
    """Update sizes spread over a factor of 20: norms from ~0.02 to ~0.4."""
    return [0.001 * (1 + i) for i in range(MINERS)]


def run_round(state: ChainState) -> tuple[ChainState, RoundBlock]:
    b = RoundBuilder(state)
    for i, scale in enumerate(scales()):
        b.add(b.sign(i, trained(state.model, i, scale)), node=1000 + i)
    claim = spent(state.params.privacy, state.height + 1)
    outcome = execute_round(state, b.batch(privacy=claim), b.payloads, noise_key=KEY)
    block = parse_block(outcome.body)
    assert isinstance(block, RoundBlock)
    return outcome.state, block


# ------------------------------------------------------------------ settings
def test_the_noise_multiplier_is_split_between_model_and_count() -> None:
    config = adaptive(noise_multiplier=1.0, clipped_count_stddev=1.0)
    assert config.adaptive is not None
    # Count: 2 sigma_b = 2; model: (1 - 1/4) ** -1/2, both rounded up to 1/2048.
    assert config.adaptive.count_noise_multiplier == 2.0
    assert config.noise_units == math.ceil((1 - 0.25) ** -0.5 * CLIP_LATTICE)
    assert 1.0 <= config.effective_noise_multiplier < 1.0 + 1e-3


def test_the_default_count_noise_is_a_twentieth_of_the_participants() -> None:
    config = adaptive(clipped_count_stddev=None, expected_participants=100)
    assert config.adaptive is not None
    assert config.adaptive.count_noise_units == 10 * CLIP_LATTICE  # 2 * 100 / 20


def test_too_little_count_noise_for_the_noise_multiplier_is_refused() -> None:
    with pytest.raises(ValueError, match="clipped count's stddev"):
        adaptive(
            noise_multiplier=1.0, clipped_count_stddev=None, expected_participants=10
        )
    with pytest.raises(ValueError, match="model's share"):
        adaptive(noise_multiplier=1.0, clipped_count_stddev=0.5005)
    with pytest.raises(ValueError, match="must be positive"):
        adaptive(clipped_count_stddev=0.0)


@pytest.mark.parametrize(
    "overrides",
    [{"target_quantile": 1.5}, {"clip_learning_rate": 0.0}, {"clip_learning_rate": 11}],
)
def test_out_of_range_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        adaptive(**overrides)


def test_genesis_records_the_adaptive_settings_and_reads_them_back() -> None:
    config = adaptive()
    assert PrivacyConfig.from_value(config.to_value()) == config
    fixed = replace(config, adaptive=None)
    assert "adaptive-clipping" not in fixed.to_value()
    bad = dict(config.to_value())
    bad["adaptive-clipping"] = {"target-quantile-ppm": 1}
    with pytest.raises(ValueError):
        PrivacyConfig.from_value(bad)


# ---------------------------------------------------------------- accounting
def test_epsilon_is_the_accountant_s_for_model_and_count_composed() -> None:
    import dp_accounting
    from dp_accounting import rdp

    config = adaptive()
    assert config.adaptive is not None
    z_v, z_c = config.noise_multiplier, config.adaptive.count_noise_multiplier
    for rounds in (1, 7, 30):
        accountant = rdp.RdpAccountant()
        accountant.compose(
            dp_accounting.ComposedDpEvent(
                [dp_accounting.GaussianDpEvent(z_v), dp_accounting.GaussianDpEvent(z_c)]
            ),
            rounds,
        )
        expected = accountant.get_epsilon(config.delta_value)
        assert spent(config, rounds).epsilon == pytest.approx(expected, rel=1e-6)


def test_the_count_costs_privacy() -> None:
    config = adaptive()
    model_only = replace(config, adaptive=None)
    assert spent(config, 10).epsilon > spent(model_only, 10).epsilon


# ------------------------------------------------------------------- count
def test_an_update_at_exactly_the_clip_norm_counts_as_unclipped() -> None:
    assert unclipped_votes([4, 9, 10], 3) == CLIP_LATTICE * (1 + 1 - 1)
    assert unclipped_votes([], 3) == 0


def test_an_all_zero_update_casts_no_vote() -> None:
    assert unclipped_votes([0, 4, 100], 3) == CLIP_LATTICE * (0 + 1 - 1)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.integers(-(2**20), 2**20), min_size=4, max_size=4),
        min_size=1,
        max_size=6,
    ),
    clip=st.integers(1, 2**21),
    who=st.integers(0, 5),
)
def test_zeroing_one_update_moves_sum_and_count_by_at_most_their_bounds(
    rows: list[list[int]], clip: int, who: int
) -> None:
    """Zero-out neighbours, the unit the accountant is given: replacing one
    miner's update by zeros moves the lattice sum by at most CLIP_LATTICE in L2
    and the count by at most CLIP_LATTICE, so the round's release has the
    sensitivity its effective noise multiplier assumes."""
    a = np.array(rows, dtype=np.int64)
    b = a.copy()
    b[who % len(rows)] = 0
    moved = to_lattice(a, clip).sum(axis=0) - to_lattice(b, clip).sum(axis=0)
    assert sq_norm(moved) <= CLIP_LATTICE**2
    votes = unclipped_votes(sq_norms(a), clip) - unclipped_votes(sq_norms(b), clip)
    assert abs(votes) <= CLIP_LATTICE


def test_the_count_noise_has_its_sigma_and_no_bias() -> None:
    config = adaptive()
    assert config.adaptive is not None
    sigma = config.adaptive.count_noise_units
    draws = np.array(
        [noisy_count(i.to_bytes(32, "big"), 0, config) for i in range(4000)]
    )
    assert abs(draws.mean()) < 4 * sigma / math.sqrt(4000)
    assert abs(draws.std() / sigma - 1) < 0.05


def test_the_count_noise_is_not_the_model_noise_s_stream() -> None:
    config = adaptive()
    seed = b"\x01" * 32
    assert noisy_count(seed, 0, config) == noisy_count(seed, 0, config)
    assert noisy_count(seed, 0, config) != noisy_count(b"\x02" * 32, 0, config)


# ------------------------------------------------------------ geometric step
def test_at_the_target_share_the_clip_norm_stays() -> None:
    config = adaptive()
    assert next_clip_norm(ClipStep(SCALE, 0), config) == SCALE


@settings(max_examples=200, deadline=None)
@given(
    clip=st.integers(1, 2**31 - 1),
    count=st.integers(-(2**40), 2**40),
    target=st.integers(0, 1_000_000),
    rate=st.integers(1, 10_000_000),
)
def test_the_step_is_andrew_et_al_s_geometric_update(
    clip: int, count: int, target: int, rate: int
) -> None:
    config = replace(
        adaptive(),
        adaptive=AdaptiveClipping(
            target_quantile_ppm=target, learning_rate_ppm=rate, count_noise_units=2048
        ),
    )
    half = MINERS * CLIP_LATTICE
    share = min(max((count + half) / (2 * half), 0.0), 1.0)
    want = clip * math.exp(-(rate / 1e6) * (share - target / 1e6))
    got = next_clip_norm(ClipStep(clip, count), config)
    assert 1 <= got <= 2**31 - 1
    assert abs(got - min(max(want, 1), 2**31 - 1)) <= 1 + want * 1e-12
    # More unclipped updates never raise the clip norm.
    assert next_clip_norm(ClipStep(clip, count + 1), config) <= got


def test_the_noised_share_is_held_to_zero_and_one() -> None:
    config = adaptive()  # learning rate 1, target 0.5
    far = 10**9
    low = next_clip_norm(ClipStep(SCALE, far), config)
    high = next_clip_norm(ClipStep(SCALE, -far), config)
    assert low == math.floor(SCALE * math.exp(-0.5))
    assert high == math.ceil(SCALE * math.exp(0.5))


def test_a_small_clip_norm_can_grow_again() -> None:
    config = adaptive(clip_learning_rate=0.2)  # at most e**0.1 a round
    assert next_clip_norm(ClipStep(1, -(10**9)), config) == 2
    assert next_clip_norm(ClipStep(9, -(10**9)), config) == 10
    assert next_clip_norm(ClipStep(10, 10**9), config) == 9


def test_the_clip_norm_never_passes_the_chain_s_norm_bound() -> None:
    config = adaptive()
    assert next_clip_norm(ClipStep(SCALE, -(10**9)), config, SCALE + 5) == SCALE + 5
    state = adaptive_chain(adaptive(clip_norm=20.0))  # the chain's bound is 10
    after, block = run_round(state)
    assert block.clipping is not None and block.clipping.clip_norm_units == 20 * SCALE
    assert after.dp_clip_units == state.params.norm_bound_units


def test_the_step_ignores_the_process_s_decimal_settings() -> None:
    config = adaptive()
    want = next_clip_norm(ClipStep(SCALE, 12345), config)
    saved = decimal.getcontext().copy(), decimal.DefaultContext.copy()
    try:
        for context in (decimal.getcontext(), decimal.DefaultContext):
            context.prec, context.rounding = 3, decimal.ROUND_UP
            context.traps[decimal.Inexact] = True
        assert next_clip_norm(ClipStep(SCALE, 12345), config) == want
    finally:
        decimal.setcontext(saved[0])
        decimal.DefaultContext.prec = saved[1].prec
        decimal.DefaultContext.rounding = saved[1].rounding
        decimal.DefaultContext.traps[decimal.Inexact] = False


def test_a_fixed_clip_norm_has_no_step() -> None:
    with pytest.raises(ValueError):
        next_clip_norm(ClipStep(SCALE, 0), replace(adaptive(), adaptive=None))


# ------------------------------------------------------------------ rounds
def norms(state: ChainState) -> list[float]:
    """The update norms the miners of :func:`run_round` send (float weights)."""
    out = []
    for i, scale in enumerate(scales()):
        update = trained(state.model, i, scale)
        diffs = [
            (update[k].astype(np.float64) - v).ravel()
            for k, v in state.model.items()
            if v.dtype.kind == "f"
        ]
        out.append(float(np.linalg.norm(np.concatenate(diffs))))
    return sorted(out)


def test_the_clip_norm_moves_to_the_target_quantile_of_update_norms() -> None:
    state = adaptive_chain()
    used = []
    for _ in range(15):
        state, block = run_round(state)
        assert block.clipping is not None
        used.append(block.clipping.clip_norm_units / SCALE)
    assert used[0] == 2.0  # genesis's clip norm
    spread = norms(state)
    # Settled between the 30th and the 70th percentile of the update norms.
    assert spread[6] <= used[-1] <= spread[13], (used, spread)


def test_the_block_records_the_step_and_the_state_carries_the_next_norm() -> None:
    state = adaptive_chain()
    after, block = run_round(state)
    assert block.clipping is not None
    assert block.clipping.clip_norm_units == state.params.privacy.clip_norm_units
    assert after.dp_clip_units == next_clip_norm(
        block.clipping, state.params.privacy, state.params.norm_bound_units
    )
    assert after.dp_clip_units < block.clipping.clip_norm_units  # all unclipped
    again = ChainState.from_bytes(after.to_bytes())
    assert again.dp_clip_units == after.dp_clip_units
    _, second = run_round(again)
    assert second.clipping is not None
    assert second.clipping.clip_norm_units == after.dp_clip_units


def test_a_fixed_clip_chain_records_no_step() -> None:
    state = adaptive_chain(replace(adaptive(), adaptive=None))
    assert state.dp_clip_units is None
    _, block = run_round(state)
    assert block.clipping is None


def test_the_state_holds_a_clip_norm_exactly_on_adaptive_chains() -> None:
    state = adaptive_chain()
    assert state.dp_clip_units == state.params.privacy.clip_norm_units
    for broken in (replace(state, dp_clip_units=None), replace(state, dp_clip_units=0)):
        with pytest.raises(ValueError):
            ChainState.from_bytes(broken.to_bytes())
    fixed = adaptive_chain(replace(adaptive(), adaptive=None))
    with pytest.raises(ValueError):
        ChainState.from_bytes(replace(fixed, dp_clip_units=SCALE).to_bytes())


# ------------------------------------------------------------------- audit
def test_the_audit_follows_the_trajectory_from_genesis() -> None:
    state = adaptive_chain()
    params = state.params
    expected = params.privacy.clip_norm_units
    for _ in range(3):
        state, block = run_round(state)
        expected = check_clipping(block, params, expected)  # type: ignore[assignment]
        assert expected == state.dp_clip_units


@pytest.mark.parametrize("change", ["clip", "missing"])
def test_the_audit_refuses_a_clip_norm_off_the_trajectory(change: str) -> None:
    state = adaptive_chain()
    _, block = run_round(state)
    assert block.clipping is not None
    step = block.clipping
    forged = replace(
        block,
        clipping=(
            replace(step, clip_norm_units=step.clip_norm_units + 1)
            if change == "clip"
            else None
        ),
    )
    with pytest.raises(BadBlock) as caught:
        check_clipping(forged, state.params, state.params.privacy.clip_norm_units)
    assert caught.value.failure == Failure.BAD_PRIVACY


def test_the_audit_refuses_a_clip_step_on_a_fixed_chain() -> None:
    state = adaptive_chain()
    _, block = run_round(state)
    with pytest.raises(BadBlock):
        check_clipping(block, state.params, None)


def test_a_block_with_a_clip_step_but_no_privacy_does_not_parse() -> None:
    state = adaptive_chain()
    _, block = run_round(state)
    value = block.to_value()
    del value["privacy"]
    with pytest.raises(ValueError, match="dp-clipping"):
        RoundBlock.from_value(value)
