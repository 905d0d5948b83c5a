"""Central DP as the committee executes it: clip, sum, discrete Gaussian, divide."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pot_support import RoundBuilder, chain

from pot_flower.protocol.batch import BatchError, SubmissionRef
from pot_flower.protocol.block import parse_block
from pot_flower.protocol.chain import ChainState
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import SCALE
from pot_flower.protocol.params import Params
from pot_flower.protocol.privacy.accountant import (
    Spent,
    budget_rounds,
    spent,
    within_tolerance,
)
from pot_flower.protocol.privacy.config import (
    CLIP_LATTICE,
    DpMode,
    PrivacyConfig,
    privacy_settings,
)
from pot_flower.protocol.privacy.mechanism import (
    blind_commitment,
    noise_seed,
    private_mean,
    to_lattice,
)
from pot_flower.protocol.robust import RobustConfig, robust_settings
from pot_flower.protocol.robust.geometry import sq_norm

KEY = bytes(range(32))
DP = privacy_settings(
    dp="central", noise_multiplier=1.0, clip_norm=0.05, expected_participants=5
)
DP_CHAIN_ROBUST = RobustConfig(copy_tolerance_ppm=0)


def dp_chain(privacy: PrivacyConfig = DP, **params: object) -> ChainState:
    return chain(privacy=privacy, robust=DP_CHAIN_ROBUST, **params)


def dp_round(
    state: ChainState, miners: int = 5, claim: Spent | str | None = "own"
) -> tuple[bytes, dict[bytes, bytes]]:
    b = RoundBuilder(state)
    for i in range(miners):
        b.honest(i)
    if claim == "own":
        claim = spent(state.params.privacy, state.height + 1)
    return b.batch(privacy=claim), b.payloads


# ------------------------------------------------------------------ lattice
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(-(2**31) + 1, 2**31 - 1), min_size=3, max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.integers(1, 2**31 - 1),
)
def test_every_lattice_row_has_norm_at_most_the_lattice_bound(rows, clip) -> None:
    lattice = to_lattice(np.array(rows, dtype=np.int64), clip)
    for row in lattice:
        assert sq_norm(row) <= CLIP_LATTICE**2


def test_an_update_inside_the_clip_norm_keeps_its_direction_on_the_lattice() -> None:
    row = np.array([[3 * SCALE // 100, -4 * SCALE // 100]], dtype=np.int64)  # 0.05
    lattice = to_lattice(row, SCALE // 10)  # C = 0.1: half the norm
    assert lattice.tolist() == [[614, -819]]  # 0.03 and -0.04 of 2048 per 0.1


def test_the_noised_mean_is_the_mean_plus_noise_of_sigma_c_over_m() -> None:
    config = privacy_settings(
        dp="central", noise_multiplier=2.0, clip_norm=1.0, expected_participants=4
    )
    rows = np.zeros((4, 200_000), dtype=np.int64)
    mean, step = private_mean(rows, config, b"\x07" * 32, 200_000)
    assert step is None
    # sigma * C / m in model units: 2 * 2**20 / 4.
    assert abs(mean.std() / (2 * SCALE / 4) - 1) < 0.01
    assert abs(mean.mean()) < 0.01 * SCALE


# ----------------------------------------------------------------- rounds
def test_same_batch_same_key_same_block() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state)
    a = execute_round(state, batch, payloads, noise_key=KEY)
    b = execute_round(state, batch, payloads, noise_key=KEY)
    assert a.body == b.body and a.state.model_digest == b.state.model_digest


def test_another_key_gives_other_noise() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state)
    a = execute_round(state, batch, payloads, noise_key=KEY)
    b = execute_round(state, batch, payloads, noise_key=bytes(32))
    assert a.state.model_digest != b.state.model_digest


def test_the_block_records_the_privacy_spent() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state)
    outcome = execute_round(state, batch, payloads, noise_key=KEY)
    block = parse_block(outcome.body)
    assert block.privacy == spent(DP, 1)  # type: ignore[union-attr]
    assert block.privacy.epsilon_micro > 0  # type: ignore[union-attr]


def test_accepted_updates_share_the_pool_equally_and_record_no_quality() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state)
    outcome = execute_round(state, batch, payloads, noise_key=KEY)
    accepted = [v for v in outcome.verdicts if v.accepted]
    assert len(accepted) == 5
    assert {v.quality_ppm for v in accepted} == {1_000_000}
    assert len({v.reward for v in accepted}) <= 2  # largest remainder: +-1 unit
    assert not any(v.clipped for v in outcome.verdicts)


def test_a_round_without_updates_still_adds_noise() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state, miners=0)
    outcome = execute_round(state, batch, payloads, noise_key=KEY)
    assert outcome.state.model_digest != state.model_digest


def test_without_the_noise_key_a_dp_round_is_refused() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state)
    with pytest.raises(BatchError, match="noise key"):
        execute_round(state, batch, payloads)


@pytest.mark.parametrize("claim", [None, Spent(1, 0, 0), Spent(2, 10**9, 10**9)])
def test_a_wrong_or_missing_claim_is_refused(claim) -> None:
    state = dp_chain()
    batch, payloads = dp_round(state, claim=claim)
    with pytest.raises(BatchError, match="privacy claim"):
        execute_round(state, batch, payloads, noise_key=KEY)


def test_a_claim_on_a_chain_without_dp_is_refused() -> None:
    state = chain()
    b = RoundBuilder(state)
    b.honest(0)
    with pytest.raises(BatchError, match="without DP"):
        execute_round(state, b.batch(privacy=Spent(1, 1, 1)), b.payloads)


def test_a_claim_may_overstate_a_little_never_understate() -> None:
    own = spent(DP, 3)
    up = Spent(3, own.epsilon_micro + 900, own.epsilon_sampled_micro)
    down = Spent(3, own.epsilon_micro - 2, own.epsilon_sampled_micro)
    assert within_tolerance(own, own) and within_tolerance(up, own)
    assert not within_tolerance(down, own)


def test_the_committee_refuses_the_round_past_the_budget() -> None:
    first = spent(DP, 1).epsilon
    budget = privacy_settings(
        dp="central",
        noise_multiplier=1.0,
        clip_norm=0.05,
        expected_participants=5,
        target_epsilon=first * 1.01,
    )
    assert budget_rounds(budget, 10) == 1
    state = dp_chain(budget)
    batch, payloads = dp_round(state)
    state = execute_round(state, batch, payloads, noise_key=KEY).state
    batch, payloads = dp_round(state)
    with pytest.raises(BatchError, match="budget exhausted"):
        execute_round(state, batch, payloads, noise_key=KEY)


# -------------------------------------------------------------- accounting
def test_epsilon_grows_with_rounds_and_sampling_spends_less() -> None:
    config = privacy_settings(dp="central", sampling_rate=0.1)
    a, b = spent(config, 10), spent(config, 20)
    assert 0 < a.epsilon_micro < b.epsilon_micro
    assert a.epsilon_sampled_micro < a.epsilon_micro


def test_epsilon_is_the_accountant_s_for_the_recorded_parameters() -> None:
    import dp_accounting
    from dp_accounting import rdp

    config = privacy_settings(dp="central", noise_multiplier=1.0, sampling_rate=0.005)
    acc = rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(0.005, dp_accounting.GaussianDpEvent(1))
    acc.compose(dp_accounting.SelfComposedDpEvent(event, 200))
    got = spent(config, 200)
    assert got.epsilon_sampled_micro == -(-acc.get_epsilon(1e-5) * 1e6 // 1)
    assert abs(got.epsilon_sampled - 0.9685) < 1e-4  # Opacus's figure, too


def test_budget_rounds_is_the_largest_count_within_the_target() -> None:
    config = privacy_settings(dp="central", noise_multiplier=2.0, target_epsilon=5.0)
    n = budget_rounds(config, 1000)
    assert spent(config, n).epsilon <= 5.0 < spent(config, n + 1).epsilon


# -------------------------------------------------------------- the format
def test_genesis_records_privacy_only_when_on() -> None:
    assert "privacy" not in chain().params.to_value()
    value = dp_chain().params.to_value()
    assert value["privacy"]["mode"] == "central"  # type: ignore[index]
    again = Params.from_value(value)
    assert again.privacy == DP


@pytest.mark.parametrize(
    "robust",
    [
        robust_settings(preset="recommended"),
        robust_settings(pre_aggregators="adaptive-clip", copy_tolerance=0),
        robust_settings(scored=True, copy_tolerance=0),
        RobustConfig(),  # near-copy detection on (tolerance 0.1)
    ],
)
def test_dp_refuses_rules_that_void_its_sensitivity(robust) -> None:
    with pytest.raises(ValueError, match="central DP composes with the plain mean"):
        chain(privacy=DP, robust=robust)


def test_momentum_composes_with_dp() -> None:
    dp_chain().params  # noqa: B018
    chain(privacy=DP, robust=RobustConfig(copy_tolerance_ppm=0, momentum_ppm=400_000))


def test_the_noise_seed_binds_key_run_round_and_the_submissions_alone() -> None:
    refs = [SubmissionRef(i, b"e%d" % i, b"s", None) for i in range(3)]
    base = noise_seed(KEY, 1, 1, refs)
    assert noise_seed(KEY, 1, 1, refs[::-1]) == base  # order re-rolls nothing
    for other in (
        noise_seed(bytes(32), 1, 1, refs),
        noise_seed(KEY, 2, 1, refs),
        noise_seed(KEY, 1, 2, refs),
        noise_seed(KEY, 1, 1, refs[:2]),
    ):
        assert other != base


def test_reordering_the_batch_or_nudging_the_claim_does_not_reroll_the_noise() -> None:
    state = dp_chain()
    b = RoundBuilder(state)
    for i in range(5):
        b.honest(i)
    own = spent(DP, 1)
    nudged = Spent(1, own.epsilon_micro + 7, own.epsilon_sampled_micro + 7)
    first = execute_round(state, b.batch(privacy=own), b.payloads, noise_key=KEY)
    b.refs.reverse()
    second = execute_round(state, b.batch(privacy=nudged), b.payloads, noise_key=KEY)
    assert first.state.model_digest == second.state.model_digest


def test_a_dp_block_records_blinded_commitments() -> None:
    state = dp_chain()
    batch, payloads = dp_round(state)
    outcome = execute_round(state, batch, payloads, noise_key=KEY)
    block = parse_block(outcome.body)
    recorded = {s.commitment for s in block.submissions}  # type: ignore[union-attr]
    signed = {v.commitment for v in outcome.verdicts}
    assert recorded.isdisjoint(signed)  # the update's hash is not published
    assert recorded == {blind_commitment(KEY, c) for c in signed if c}


def test_budget_refuses_when_the_validator_s_own_figure_passes_it() -> None:
    own = spent(DP, 1)
    budget = replace(DP, target_epsilon_micro=own.epsilon_micro - 1)
    state = dp_chain(budget)
    short = Spent(1, own.epsilon_micro - 1, own.epsilon_sampled_micro)
    batch, payloads = dp_round(state, claim=short)
    with pytest.raises(BatchError, match="budget exhausted"):
        execute_round(state, batch, payloads, noise_key=KEY)


def test_privacy_recorded_while_off_is_refused_everywhere() -> None:
    value = chain().params.to_value()
    value["privacy"] = PrivacyConfig().to_value()
    with pytest.raises(ValueError, match="only when it is on"):
        Params.from_value(value)


def test_config_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        PrivacyConfig(mode=DpMode.CENTRAL, noise_units=0)
    with pytest.raises(ValueError):
        privacy_settings(dp="central", noise_multiplier=9.0)
    with pytest.raises(ValueError):
        privacy_settings(dp="central", delta=0.0)
    with pytest.raises(ValueError):
        privacy_settings(dp="central", clip_norm=float("nan"))


@pytest.mark.parametrize("q", [1.0, 0.1, 0.005])
def test_scaled_one_round_curve_is_the_accountant_s_composition(q: float) -> None:
    import dp_accounting
    from dp_accounting import rdp

    config = privacy_settings(dp="central", noise_multiplier=1.3, sampling_rate=q)
    for rounds in (1, 7, 250):
        event = dp_accounting.GaussianDpEvent(config.noise_multiplier)
        if q < 1:
            event = dp_accounting.PoissonSampledDpEvent(q, event)
        acc = rdp.RdpAccountant()
        acc.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
        want = -(-acc.get_epsilon(1e-5) * 1e6 // 1)
        assert spent(config, rounds).epsilon_sampled_micro == want


def test_the_audit_refuses_a_dp_block_that_publishes_a_quality() -> None:
    from pot_flower.audit.content import check_privacy
    from pot_flower.audit.report import BadBlock

    state = dp_chain()
    batch, payloads = dp_round(state)
    block = parse_block(execute_round(state, batch, payloads, noise_key=KEY).body)
    check_privacy(block, state.params)  # type: ignore[arg-type]
    subs = list(block.submissions)  # type: ignore[union-attr]
    subs[0] = replace(subs[0], quality_ppm=912_345)
    with pytest.raises(BadBlock, match="per-update quality"):
        check_privacy(replace(block, submissions=tuple(subs)), state.params)  # type: ignore[arg-type]
