"""The discrete Gaussian sampler against its exact pmf, and its building blocks.

Significance levels are 1e-6 per test: a correct sampler fails one of these about
once in a hundred thousand CI runs; a wrong one (off by a few percent in any bin)
fails every time at a million samples.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from pot_flower.protocol.privacy.discrete_gaussian import (
    MAX_SIGMA,
    WordStream,
    bernoulli_exp,
    sample,
    sample_one,
    uniform_below,
)

ALPHA = 1e-6
SEED = bytes(range(32))


def exact_pmf(sigma_sq: float, support: np.ndarray) -> np.ndarray:
    """P(x) of N_Z(0, sigma_sq) on ``support`` (normalised over +-50 sigma)."""
    half = math.ceil(50 * math.sqrt(sigma_sq)) + 1
    xs = np.arange(-half, half + 1, dtype=np.float64)
    log_w = -(xs**2) / (2 * sigma_sq)
    z = np.exp(log_w - log_w.max()).sum()
    return np.exp(-(support.astype(np.float64) ** 2) / (2 * sigma_sq)) / z


def chi2_pvalue(draws: np.ndarray, sigma_sq: float, bins: int = 40) -> float:
    """Chi-squared of ``draws`` against the exact pmf, on near-equiprobable bins."""
    sigma = math.sqrt(sigma_sq)
    support = np.arange(-math.ceil(12 * sigma), math.ceil(12 * sigma) + 1)
    pmf = exact_pmf(sigma_sq, support)
    cdf = np.cumsum(pmf)
    # Bin edges at the exact quantiles (tails folded into the end bins).
    edges = np.searchsorted(cdf, np.linspace(0, 1, bins + 1)[1:-1])
    groups = np.split(np.arange(support.size), np.unique(edges))
    expected = np.array([pmf[g].sum() for g in groups])
    expected[0] += (1 - pmf.sum()) / 2
    expected[-1] += (1 - pmf.sum()) / 2
    index = np.clip(draws - support[0], 0, support.size - 1)
    per_value = np.bincount(index, minlength=support.size)
    observed = np.array([per_value[g].sum() for g in groups])
    expected = expected / expected.sum() * draws.size
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("sigma", [1, 3, 50, 2048, MAX_SIGMA])
def test_a_million_draws_match_the_exact_pmf(sigma: int) -> None:
    draws = sample(SEED, sigma, 1_000_000)
    assert chi2_pvalue(draws, float(sigma * sigma)) > ALPHA
    support = np.arange(-12 * sigma, 12 * sigma + 1)
    pmf = exact_pmf(float(sigma * sigma), support)
    variance = float((pmf * support.astype(np.float64) ** 2).sum())
    se_mean = math.sqrt(variance / draws.size)
    assert abs(draws.mean()) < 5.5 * se_mean
    # Var of the sample variance ~ 2 var^2 / n for a near-Gaussian.
    assert abs(draws.var() - variance) < 5.5 * variance * math.sqrt(2 / draws.size)


def test_the_same_seed_draws_the_same_noise_and_another_seed_other_noise() -> None:
    a = sample(SEED, 2048, 10_000)
    assert np.array_equal(a, sample(SEED, 2048, 10_000))
    assert not np.array_equal(a, sample(bytes(32), 2048, 10_000))


def test_a_shorter_draw_is_not_a_prefix_attack_surface() -> None:
    # Vector draws consume the stream in rounds over all coordinates, so a
    # prefix of n draws is not the first n of 2n: nothing to splice.
    assert sample(SEED, 3, 0).size == 0
    assert sample(SEED, 3, 1).size == 1


@pytest.mark.parametrize("sigma_sq", [Fraction(9), Fraction(5, 2)])
def test_the_scalar_reference_matches_the_exact_pmf(sigma_sq: Fraction) -> None:
    stream = WordStream(SEED)
    draws = np.array([sample_one(stream, sigma_sq) for _ in range(40_000)])
    assert chi2_pvalue(draws, float(sigma_sq), bins=12) > ALPHA


def test_vector_and_reference_samplers_draw_the_same_distribution() -> None:
    stream = WordStream(bytes(32))
    ref = np.array([sample_one(stream, Fraction(16)) for _ in range(30_000)])
    vec = sample(SEED, 4, 300_000)
    values = np.arange(-20, 21)
    a = np.array([(np.clip(ref, -20, 20) == v).sum() for v in values])
    b = np.array([(np.clip(vec, -20, 20) == v).sum() for v in values])
    keep = (a + b) > 20
    table = np.vstack([a[keep], b[keep]])
    assert stats.chi2_contingency(table).pvalue > ALPHA


@pytest.mark.parametrize("m", [1, 2, 3, 7, 1000, 2**40 + 3])
def test_uniform_below_is_uniform(m: int) -> None:
    stream = WordStream(SEED)
    draws = uniform_below(stream, np.full(200_000, m, dtype=np.int64))
    assert draws.min() >= 0 and draws.max() < m
    bins = min(m, 50)
    counts = np.bincount((draws * bins // m).astype(np.int64), minlength=bins)
    if bins > 1:
        edges = [(-(-(k * m) // bins)) for k in range(bins + 1)]  # ceil(k m / bins)
        expected = np.diff(edges) / m * draws.size
        assert stats.chisquare(counts, expected).pvalue > ALPHA


@pytest.mark.parametrize("num,den", [(0, 1), (1, 3), (1, 1), (5, 2), (7, 1)])
def test_bernoulli_exp_has_probability_exp_minus_gamma(num: int, den: int) -> None:
    stream = WordStream(SEED)
    n = 400_000
    hits = bernoulli_exp(
        stream, np.full(n, num, dtype=np.int64), np.full(n, den, dtype=np.int64)
    ).sum()
    p = math.exp(-num / den)
    assert abs(hits - n * p) <= 5.5 * math.sqrt(n * p * (1 - p)) + 1e-9


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        sample(SEED, 0, 10)
    with pytest.raises(ValueError):
        sample(SEED, MAX_SIGMA + 1, 10)
    with pytest.raises(ValueError):
        sample(b"short", 3, 10)
    with pytest.raises(ValueError):
        uniform_below(WordStream(SEED), np.array([0], dtype=np.int64))
