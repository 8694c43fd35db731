"""Simulation-based calibration of the exact engine (Talts et al. 2018, arXiv:1804.06788).

Draw (mu, tau) from a proper prior, then theta_i and y_i from the model, and compute the
posterior CDF of the engine at the true values (the continuous analogue of SBC ranks: the
probability integral transform). If the engine is the exact posterior these PIT values are
Uniform(0, 1). 200 replicates at a fixed seed; uniformity is tested by Kolmogorov-Smirnov and
by a chi-square test on 10 equal bins, at level 0.001 (the seed is fixed, so the outcome is
deterministic; the level only says how surprising a failure would be). A negative control, the
same data analysed with a wrong tau prior, must be rejected: the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesmeta
from bayesmeta.bayes.exact import exact_posterior
from bayesmeta.inputs import as_effect_data

P = bayesmeta.priors
N_REPLICATES = 200
LEVEL = 1e-3
TAU_PRIOR = P.HalfNormal(0.5)
MU_PRIOR = P.Normal(0.0, 1.0)


def simulate(rng: np.random.Generator) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    k = int(rng.integers(2, 13))
    mu = float(MU_PRIOR.sample(rng, 1)[0])
    tau = float(TAU_PRIOR.sample(rng, 1)[0])
    vi = rng.uniform(0.01, 0.4, k)
    theta = mu + tau * rng.standard_normal(k)
    yi = theta + np.sqrt(vi) * rng.standard_normal(k)
    truth = {"mu": mu, "tau": tau, "theta_new": mu + tau * rng.standard_normal(),
             "study 1": float(theta[0])}
    return truth, yi, vi


@pytest.fixture(scope="module")
def replicates():
    rng = np.random.default_rng(20261125)
    return [simulate(rng) for _ in range(N_REPLICATES)]


def pit_values(replicates, tau_prior) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {"mu": [], "tau": [], "theta_new": [], "study 1": []}
    for truth, yi, vi in replicates:
        post = exact_posterior(as_effect_data(yi, vi), tau_prior, MU_PRIOR)
        for param, value in truth.items():
            out[param].append(float(post.cdf(param, value)))
    return {p: np.asarray(v) for p, v in out.items()}


def uniformity_pvalues(u: np.ndarray) -> tuple[float, float]:
    ks = stats.kstest(u, "uniform").pvalue
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    chi2 = stats.chisquare(counts).pvalue
    return float(ks), float(chi2)


def test_pit_of_true_parameters_is_uniform(replicates):
    pits = pit_values(replicates, TAU_PRIOR)
    for param, u in pits.items():
        assert u.size == N_REPLICATES and np.all((u >= 0) & (u <= 1))
        ks, chi2 = uniformity_pvalues(u)
        assert ks > LEVEL and chi2 > LEVEL, (param, ks, chi2)
        # and the posterior is informative: PIT values are not all squeezed in the middle
        assert np.mean(np.abs(u - 0.5) > 0.4) > 0.1, param


def test_a_wrong_prior_is_detected(replicates):
    """Negative control: analysing the same data with HN(0.05) instead of the generating
    HN(0.5) puts the true tau in the upper tail of its posterior far too often."""
    pits = pit_values(replicates[:100], P.HalfNormal(0.05))
    ks, chi2 = uniformity_pvalues(pits["tau"])
    assert ks < LEVEL and chi2 < LEVEL, (ks, chi2)
