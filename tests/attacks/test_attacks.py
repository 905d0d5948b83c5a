"""The attack suite does what each attack's paper says it does."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from pot_flower.attacks import SUITE, Context, diversified
from pot_flower.attacks import omniscient as atk

RNG = np.random.default_rng(3)
HONEST = RNG.standard_normal((14, 200)) * 0.01 + 0.02
F = 6


def ctx() -> Context:
    return Context(rng=np.random.default_rng(0), norm_bound=10.0)


@pytest.mark.parametrize("name", [n for n, a in SUITE.items() if a.updates])
def test_every_vector_attack_returns_f_finite_updates(name: str) -> None:
    out = SUITE[name].updates(HONEST, F, ctx())  # type: ignore[misc]
    assert out.shape == (F, HONEST.shape[1])
    assert np.all(np.isfinite(out))


def test_sign_flip_and_ipm_reverse_the_mean() -> None:
    mean = HONEST.mean(axis=0)
    assert np.allclose(atk.sign_flip(HONEST, F, ctx()), -mean)
    assert np.allclose(atk.ipm(100.0)(HONEST, F, ctx()), -100 * mean)


def test_alie_sits_z_deviations_below_the_mean() -> None:
    n = HONEST.shape[0] + F
    z = NormalDist().inv_cdf((n - (n // 2 + 1 - F)) / n)
    expected = HONEST.mean(axis=0) - z * HONEST.std(axis=0)
    assert np.allclose(atk.alie(HONEST, F, ctx()), expected)


def _sq(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).sum())


def test_min_max_stays_within_the_honest_diameter_and_pushes_to_it() -> None:
    v = atk.min_max(HONEST, F, ctx())[0]
    diameter = max(_sq(a, b) for a in HONEST for b in HONEST)
    farthest = max(_sq(v, h) for h in HONEST)
    assert farthest <= diameter * (1 + 1e-9)
    assert farthest >= diameter * 0.999  # the largest gamma, not a timid one


def test_min_sum_matches_the_most_remote_honest_sum() -> None:
    v = atk.min_sum(HONEST, F, ctx())[0]
    limit = max(sum(_sq(a, b) for b in HONEST) for a in HONEST)
    total = sum(_sq(v, h) for h in HONEST)
    assert limit * 0.999 <= total <= limit * (1 + 1e-9)


def test_gaussian_passes_the_norm_bound_and_differs_per_attacker() -> None:
    out = atk.gaussian(HONEST, F, ctx())
    assert np.allclose(np.linalg.norm(out, axis=1), 9.0)
    assert len({row.tobytes() for row in out}) == F


def test_mimic_copies_one_honest_update_and_copycat_several() -> None:
    mimic = atk.mimic(HONEST, F, ctx())
    assert all(any(np.array_equal(m, h) for h in HONEST) for m in mimic)
    assert len({m.tobytes() for m in mimic}) == 1
    copies = atk.copycat(HONEST, F, ctx())
    assert len({c.tobytes() for c in copies}) == F


def test_diversified_copies_are_distinct_yet_close() -> None:
    out = diversified(atk.alie, 0.01)(HONEST, F, ctx())
    base = atk.alie(HONEST, F, ctx())[0]
    assert len({row.tobytes() for row in out}) == F
    relative = np.linalg.norm(out - base, axis=1) / np.linalg.norm(base)
    assert np.all(relative < 0.03) and np.all(relative > 0.001)


def test_within_norm_colluders_sit_just_under_the_bound_against_the_mean() -> None:
    v = atk.within_norm(HONEST, F, ctx())[0]
    assert np.isclose(np.linalg.norm(v), 9.0)
    assert float(v @ HONEST.mean(axis=0)) < 0


def test_claim_and_data_attacks_say_what_else_attackers_do() -> None:
    assert SUITE["examples-inflation"].claimed_examples == 1 << 20
    assert SUITE["label-flip"].flip_labels and SUITE["label-flip"].updates is None
