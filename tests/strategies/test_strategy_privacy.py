"""PoTStrategy with central DP: Flower's machinery, the committee's noise."""

from __future__ import annotations

from pathlib import Path

import pytest
from flower_support import LocalGrid, Net, make_plain_app
from flwr.app import ArrayRecord, ConfigRecord
from typer.testing import CliRunner

from pot_flower.audit import audit_ledger, read_blocks
from pot_flower.cli import app
from pot_flower.clients import pot_mod
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.privacy.accountant import spent
from pot_flower.strategies import PoTStrategy, RoundReport


def run(
    tmp_path: Path, rounds: int, nodes: int = 5, **kwargs: object
) -> tuple[PoTStrategy, list[RoundReport]]:
    grid = LocalGrid(
        make_plain_app(mods=[pot_mod]),
        nodes,
        run_config={"pot-keystore": str(tmp_path / "keys")},
    )
    strategy = PoTStrategy(
        ledger_dir=tmp_path / "ledger",
        min_available_nodes=nodes,
        fraction_evaluate=0.0,
        dp="central",
        dp_clip_norm=0.5,
        **kwargs,  # type: ignore[arg-type]
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    return strategy, strategy.history


def blocks(tmp_path: Path, validator: int = 0) -> list[RoundBlock]:
    path = tmp_path / "ledger" / f"validator-{validator}"
    stored = [parse_block(b.body) for b in read_blocks(path)]
    return [b for b in stored if isinstance(b, RoundBlock)]


def test_a_dp_run_records_the_privacy_spent_and_verifies(tmp_path: Path) -> None:
    strategy, reports = run(tmp_path, rounds=3)
    assert [r.accepted for r in reports] == [5, 5, 5]
    recorded = [b.privacy for b in blocks(tmp_path)]
    assert recorded == [spent(strategy.privacy, h) for h in (1, 2, 3)]
    assert strategy.privacy.expected_participants == 5
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
    # Every validator drew the same noise: one model per round on all ledgers.
    models = {tuple(b.model for b in blocks(tmp_path, i)) for i in range(4)}
    assert len(models) == 1


def test_the_run_stops_before_the_budget_is_exceeded(tmp_path: Path) -> None:
    two = spent(
        PoTStrategy(dp="central", dp_clip_norm=0.5, dp_noise_multiplier=2.0).privacy,
        2,
    )
    strategy, reports = run(
        tmp_path,
        rounds=5,
        dp_noise_multiplier=2.0,
        dp_target_epsilon=two.epsilon + 1e-6,
    )
    assert len(reports) == 2
    assert [b.height for b in blocks(tmp_path)] == [1, 2]
    last = blocks(tmp_path)[-1].privacy
    assert last is not None
    assert last.epsilon_micro <= strategy.privacy.target_epsilon_micro
    assert audit_ledger(tmp_path / "ledger" / "validator-0").ok


def test_poisson_sampling_varies_the_sample_and_keeps_the_divisor(
    tmp_path: Path,
) -> None:
    strategy, reports = run(tmp_path, rounds=6, nodes=6, fraction_train=0.5)
    sampled = sum(r.accepted for r in reports)
    assert 0 < sampled < 36  # each of 6 nodes in 6 rounds with probability 1/2
    assert strategy.privacy.expected_participants == 3
    assert strategy.privacy.sampling_ppm == 500_000
    assert audit_ledger(tmp_path / "ledger" / "validator-1").ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"robust": "recommended"},
        {"aggregator": "median"},
        {"pre_aggregators": "adaptive-clip"},
        {"copy_tolerance": 0.1},
    ],
)
def test_dp_refuses_rules_that_void_its_bound(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="central DP composes with the plain mean"):
        PoTStrategy(dp="central", **kwargs)  # type: ignore[arg-type]


def test_dp_settings_from_run_config() -> None:
    strategy = PoTStrategy.from_run_config(
        {
            "pot-dp": "central",
            "pot-dp-noise-multiplier": 1.5,
            "pot-dp-clip-norm": 0.25,
            "pot-dp-delta": 1e-6,
            "pot-dp-target-epsilon": 8.0,
        }
    )
    p = strategy.privacy
    assert p.on and p.noise_multiplier == 1.5 and p.delta_value == 1e-6
    assert p.target_epsilon_micro == 8_000_000
    assert p.clip_norm_units == 2**18
    # Default: the mean with default's server momentum, no pre-aggregators.
    assert strategy.robust.pre_aggregators == ()
    assert strategy.robust.momentum_ppm == 400_000
    with pytest.raises(ValueError):
        PoTStrategy(dp="sometimes")
    with pytest.raises(ValueError, match="noise multiplier"):
        PoTStrategy(dp="central", dp_noise_multiplier=100.0)


def test_a_round_nobody_was_sampled_for_is_certified_with_noise(
    tmp_path: Path,
) -> None:
    _, reports = run(tmp_path, rounds=3, nodes=2, fraction_train=1e-6)
    assert [r.accepted + r.rejected for r in reports] == [0, 0, 0]
    models = [b.model for b in blocks(tmp_path)]
    assert len(set(models)) == 3  # the noise moved the model every round
    assert audit_ledger(tmp_path / "ledger" / "validator-2").ok


def test_flower_local_dp_mod_composes_with_pot_mod_placed_first(tmp_path: Path) -> None:
    """``mods=[pot_mod, LocalDpMod(...)]``: the noise is added before pot_mod signs.

    Flower runs the first mod outermost, so the reply passes LocalDpMod (clip and
    noise) on its way out and pot_mod commits to what is actually sent. The other
    order signs the update before the noise: every reply is then rejected.
    """
    from flwr.clientapp.mod import LocalDpMod

    def one_round(mods: list[object], where: str) -> RoundReport:
        grid = LocalGrid(
            make_plain_app(mods=mods),
            4,
            run_config={"pot-keystore": str(tmp_path / where / "keys")},
        )
        strategy = PoTStrategy(
            ledger_dir=tmp_path / where / "ledger",
            min_available_nodes=4,
            fraction_evaluate=0.0,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(Net().state_dict()),
            num_rounds=1,
            train_config=ConfigRecord({"lr": 0.1}),
        )
        assert audit_ledger(tmp_path / where / "ledger" / "validator-0").ok
        return strategy.history[0]

    local_dp = LocalDpMod(clipping_norm=0.5, sensitivity=0.5, epsilon=5.0, delta=1e-5)
    good = one_round([pot_mod, local_dp], "good")
    assert (good.accepted, good.rejected) == (4, 0)
    bad = one_round([local_dp, pot_mod], "bad")
    assert bad.reasons == {"commitment-mismatch": 4}


# ------------------------------------------------------------ adaptive clipping
ADAPTIVE = {
    "dp_adaptive_clipping": True,
    "dp_clipped_count_stddev": 1.0,
    "dp_clip_learning_rate": 1.0,
}


def test_an_adaptive_run_moves_the_clip_norm_and_verifies(tmp_path: Path) -> None:
    strategy, reports = run(tmp_path, rounds=3, **ADAPTIVE)
    assert [r.accepted for r in reports] == [5, 5, 5]
    steps = [b.clipping for b in blocks(tmp_path)]
    assert all(step is not None for step in steps)
    clips = [step.clip_norm_units for step in steps]  # type: ignore[union-attr]
    assert clips[0] == strategy.privacy.clip_norm_units
    assert len(set(clips)) == 3  # it moved every round
    recorded = [b.privacy for b in blocks(tmp_path)]
    assert recorded == [spent(strategy.privacy, h) for h in (1, 2, 3)]
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
    histories = {tuple(b.to_bytes() for b in blocks(tmp_path, i)) for i in range(4)}
    assert len(histories) == 1
    assert [r.clipping for r in reports] == steps
    shown = CliRunner().invoke(
        app,
        ["ledger", "show", str(tmp_path / "ledger" / "validator-0")],
        env={"COLUMNS": "220"},
    )
    assert shown.exit_code == 0 and "DP clip norm" in shown.output
    assert f"{clips[1] / 2**20:.4g}" in shown.output


def test_the_noise_split_is_flower_s(tmp_path: Path) -> None:
    from flwr.supercore.differential_privacy import compute_adaptive_noise_params

    strategy, _ = run(tmp_path, rounds=1, nodes=5, **ADAPTIVE)
    p = strategy.privacy
    assert p.adaptive is not None
    stddev, model_noise = compute_adaptive_noise_params(1.0, 5, 1.0)
    assert p.adaptive.count_noise_multiplier / 2 == pytest.approx(stddev, abs=1e-3)
    assert p.noise_multiplier == pytest.approx(model_noise, abs=1e-3)


def test_too_few_nodes_for_the_default_count_noise_are_refused_at_start(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="clipped count's stddev"):
        run(tmp_path, rounds=1, dp_adaptive_clipping=True)


def test_adaptive_settings_from_run_config() -> None:
    strategy = PoTStrategy.from_run_config(
        {
            "pot-dp": "central",
            "pot-dp-adaptive-clipping": "true",
            "pot-dp-target-quantile": 0.7,
            "pot-dp-clip-learning-rate": 0.5,
            "pot-dp-clipped-count-stddev": 3.0,
        }
    )
    adaptive = strategy.privacy.adaptive
    assert adaptive is not None
    assert adaptive.target_quantile_ppm == 700_000
    assert adaptive.learning_rate_ppm == 500_000
    assert adaptive.count_noise_multiplier == 6.0
    off = PoTStrategy.from_run_config(
        {"pot-dp": "central", "pot-dp-adaptive-clipping": False}
    )
    assert off.privacy.adaptive is None
    with pytest.raises(ValueError, match="true or false"):
        PoTStrategy.from_run_config({"pot-dp-adaptive-clipping": "maybe"})
