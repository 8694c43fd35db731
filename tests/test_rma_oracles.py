"""Exact identities the fit must satisfy, computed here independently of the engine.

- The REML (and every other) estimate is weighted least squares with weights 1/(vi + tau2).
- The DL tau2 is (Q - (k - 1)) / (sum w - sum w^2 / sum w), truncated at 0.
- QE is the weighted residual sum of squares at the equal-effects estimate.
- The REML/ML score is zero at an interior estimate and <= 0 at a boundary one (tau2 = 0).
- The PM/EB estimate solves Q(tau2) = k - p.
- The pooled fast path and the general design-matrix path give the same fit.
- The REML estimate is the global maximum of an independently coded likelihood on a fine grid.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from refdata import REFERENCE, reference_document, reference_documents

from bayesmeta import rma
from bayesmeta.frequentist.core import fit_at

ANALYSES = [pytest.param(np.asarray(analysis["yi"], dtype=float),
                         np.asarray(analysis["vi"], dtype=float), id=f"{name}-{key}")
            for name, doc in reference_documents() for key, analysis in doc["analyses"].items()]


def wls(y, v, X):
    """Weighted least squares by numpy's lstsq on the whitened system (independent code)."""
    s = 1.0 / np.sqrt(v)
    beta, *_ = np.linalg.lstsq(X * s[:, None], y * s, rcond=None)
    cov = np.linalg.inv((X * (1.0 / v)[:, None]).T @ X)
    return beta, cov


def reml_loglik(t, y, v, X):
    """The restricted log-likelihood, coded from its textbook form (up to a constant)."""
    V = v + t
    beta, cov = wls(y, V, X)
    r = y - X @ beta
    return -0.5 * (np.sum(np.log(V)) + np.linalg.slogdet(np.linalg.inv(cov))[1]
                   + np.sum(r * r / V))


def ml_loglik(t, y, v, X):
    V = v + t
    beta, _ = wls(y, V, X)
    r = y - X @ beta
    return -0.5 * (np.sum(np.log(V)) + np.sum(r * r / V))


@pytest.mark.parametrize(("y", "v"), ANALYSES)
@pytest.mark.parametrize("method", ["REML", "ML", "DL", "PM", "EE"])
def test_estimate_is_weighted_least_squares_at_tau2(y, v, method):
    fit = rma(y, v, method=method)
    beta, cov = wls(y, v + fit.tau2, np.ones((y.size, 1)))
    assert fit.beta[0] == pytest.approx(beta[0], rel=1e-12, abs=1e-14)
    assert fit.se[0] == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-12)


@pytest.mark.parametrize(("y", "v"), ANALYSES)
def test_dersimonian_laird_closed_form(y, v):
    w = 1.0 / v
    mu = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mu) ** 2)
    tau2 = max(0.0, (q - (y.size - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    assert rma(y, v, method="DL").tau2 == pytest.approx(tau2, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("y", "v"), ANALYSES)
def test_qe_is_weighted_ss_at_the_equal_effects_estimate(y, v):
    w = 1.0 / v
    mu = np.sum(w * y) / np.sum(w)
    fit = rma(y, v, method="REML")
    assert fit.qe == pytest.approx(np.sum(w * (y - mu) ** 2), rel=1e-12)
    assert rma(y, v, method="EE").beta[0] == pytest.approx(mu, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("y", "v"), ANALYSES)
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_score_equation_holds_at_the_estimate(y, v, method):
    X = np.ones((y.size, 1))
    loglik = reml_loglik if method == "REML" else ml_loglik
    fit = rma(y, v, method=method)
    t = fit.tau2
    h = 1e-5 * max(t, np.mean(v))
    if t > 0.0:
        score = (loglik(t + h, y, v, X) - loglik(t - h, y, v, X)) / (2 * h)
        curvature = (loglik(t + h, y, v, X) - 2 * loglik(t, y, v, X)
                     + loglik(t - h, y, v, X)) / h**2
        # |score| small against the curvature: the estimate is within 1e-7 of the root
        assert abs(score) <= 1e-7 * max(t, 1e-3) * abs(curvature) + 1e-9
        assert curvature < 0
    else:  # boundary maximum: the likelihood falls as tau2 leaves 0
        assert loglik(h, y, v, X) < loglik(0.0, y, v, X)


@pytest.mark.parametrize(("y", "v"), ANALYSES)
@pytest.mark.parametrize("method", ["PM", "EB"])
def test_paule_mandel_and_eb_solve_generalised_q_equals_k_minus_1(y, v, method):
    fit = rma(y, v, method=method)
    w = 1.0 / (v + fit.tau2)
    mu = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mu) ** 2)
    if fit.tau2 > 0:
        assert q == pytest.approx(y.size - 1, rel=1e-9)
    else:
        assert q <= y.size - 1


@pytest.mark.parametrize(("y", "v"), ANALYSES)
def test_reml_is_the_global_maximum_on_a_fine_grid(y, v):
    X = np.ones((y.size, 1))
    fit = rma(y, v)
    scale = max(np.var(y, ddof=1), np.mean(v))
    grid = np.concatenate(([0.0], scale * np.logspace(-8, 4, 1201)))
    best = max(reml_loglik(t, y, v, X) for t in grid)
    assert reml_loglik(fit.tau2, y, v, X) >= best - 1e-9


@pytest.mark.parametrize(("y", "v"), ANALYSES)
@pytest.mark.parametrize("test", ["z", "knha"])
def test_pooled_fast_path_equals_general_path(y, v, test):
    X = np.ones((y.size, 1))
    tau2 = rma(y, v).tau2
    fast = fit_at(y, v, X, tau2, test, 0.95, pooled=True, intercept=True)
    general = fit_at(y, v, X, tau2, test, 0.95, pooled=False, intercept=True)
    for name in ("beta", "cov", "se", "stat", "pval", "ci_low", "ci_high"):
        np.testing.assert_allclose(getattr(fast, name), getattr(general, name), rtol=1e-10)
    for name in ("rss", "qe", "qe_p", "vt", "loglik", "loglik_reml"):
        assert getattr(fast, name) == pytest.approx(getattr(general, name), rel=1e-10)
    assert fast.df == general.df


def test_meta_regression_is_weighted_least_squares_at_tau2():
    doc = reference_document("dat.bcg")
    data = pd.read_csv(REFERENCE / doc["data_csv"])
    fit = rma("yi", "vi", data=data, mods="~ ablat + year")
    beta, cov = wls(fit.yi, fit.vi + fit.tau2, fit.X)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(fit.cov, cov, rtol=1e-10)
    # and the REML score is zero there (p = 3 coefficients)
    t, h = fit.tau2, 1e-6
    score = (reml_loglik(t + h, fit.yi, fit.vi, fit.X)
             - reml_loglik(t - h, fit.yi, fit.vi, fit.X)) / (2 * h)
    assert abs(score) < 1e-5


def test_knha_scale_and_prediction_interval_by_hand():
    doc = reference_document("dat.bcg")
    analysis = doc["analyses"]["RR"]
    y, v = np.asarray(analysis["yi"]), np.asarray(analysis["vi"])
    z = rma(y, v)
    t = rma(y, v, test="knha")
    w = 1.0 / (v + z.tau2)
    s2w = np.sum(w * (y - z.beta[0]) ** 2) / (y.size - 1)
    assert t.s2w == pytest.approx(s2w, rel=1e-12)
    assert t.se[0] == pytest.approx(z.se[0] * math.sqrt(s2w), rel=1e-12)
    from scipy import stats

    crit = stats.t.ppf(0.975, y.size - 1)
    assert t.pi_high == pytest.approx(t.beta[0] + crit * math.sqrt(t.se[0] ** 2 + t.tau2),
                                      rel=1e-12)
    assert z.pi_high == pytest.approx(
        z.beta[0] + stats.norm.ppf(0.975) * math.sqrt(z.se[0] ** 2 + z.tau2), rel=1e-12)
