"""The model fit at a given tau2: coefficients, their tests, QE, vt and the log-likelihoods.

Two paths give the same numbers: a general one for any design matrix (weighted least squares,
:mod:`.inference`, :mod:`.heterogeneity`) and a scalar one for the pooled model, which is what
nearly every call is and which should cost a few dozen microseconds (the benchmark compares a
full ``rma`` call with metafor's). ``tests/test_rma_oracles.py`` checks that they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .heterogeneity import cochran_q
from .inference import coefficient_tests, critical_value, knha_scale, log_likelihoods
from .linalg import weighted_fit

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Core:
    """Everything about a fit that follows from tau2 (see :class:`~.rma.RmaResult`)."""

    beta: np.ndarray
    cov: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    df: int | None
    s2w: float | None
    weights: np.ndarray
    rss: float
    qe: float | None
    qe_p: float | None
    vt: float | None
    loglik: float
    loglik_reml: float


def fit_at(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float, test: str, level: float,
           pooled: bool, intercept: bool) -> Core:
    """The fit at ``tau2`` (metafor's "model fitting, test statistics" and "heterogeneity test"
    sections). ``pooled``: X is a column of ones; ``intercept``: its first column is one."""
    if pooled:
        return _pooled(y, v, tau2, test, level)
    return _general(y, v, X, tau2, test, level, intercept)


def _general(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float, test: str,
             level: float, intercept: bool) -> Core:
    k, p = X.shape
    w = 1.0 / (v + tau2)
    wf = weighted_fit(y, w, X)
    cov = wf.cov
    df = s2w = None
    if test == "knha":
        df = k - p
        s2w = knha_scale(wf.rss, k, p)
        cov = cov * s2w
    tests = coefficient_tests(wf.beta, cov, df, level)
    qe = qe_p = vt = None
    if k > p:
        cq = cochran_q(y - y.sum() / k if intercept else y, v, X, False)
        qe, qe_p, vt = cq.qe, cq.pval, cq.vt
    ll_ml, ll_reml = log_likelihoods(y, v, X, tau2, wf.rss, wf.cov)
    return Core(wf.beta, cov, tests.se, tests.stat, tests.pval, tests.ci_low, tests.ci_high,
                df, s2w, w, wf.rss, qe, qe_p, vt, ll_ml, ll_reml)


def _pooled(y: np.ndarray, v: np.ndarray, tau2: float, test: str, level: float) -> Core:
    k = y.size
    ybar = float(y.sum()) / k
    yc = y - ybar
    w = 1.0 / (v + tau2)
    sw = float(w.sum())
    b = float(w @ yc) / sw
    r = yc - b
    rss = float((w * r) @ r)
    var = 1.0 / sw
    df = s2w = None
    if test == "knha":
        df = k - 1
        s2w = knha_scale(rss, k, 1)
        var *= s2w
    beta = b + ybar
    se = math.sqrt(var)
    if se > 0.0:
        stat = beta / se
    else:  # Knapp-Hartung with all residuals zero (metafor's s2w = 0)
        stat = 0.0 if beta == 0.0 else math.copysign(math.inf, beta)
    if df is None:
        pval = 2.0 * float(special.ndtr(-abs(stat)))
    else:
        pval = 2.0 * float(special.stdtr(df, -abs(stat)))
    crit = critical_value(level, df)
    qe = qe_p = vt = None
    if k > 1:
        w0 = 1.0 / v
        sw0 = float(w0.sum())
        r0 = yc - float(w0 @ yc) / sw0
        qe = max(0.0, float((w0 * r0) @ r0))
        qe_p = float(special.chdtrc(k - 1, qe))
        vt = (k - 1) / (sw0 - float(w0 @ w0) / sw0)
    sumlog = float(np.log(v + tau2).sum())
    ll_ml = -0.5 * k * _LOG_2PI - 0.5 * sumlog - 0.5 * rss
    ll_reml = (-0.5 * (k - 1) * _LOG_2PI + 0.5 * math.log(k) - 0.5 * sumlog
               - 0.5 * math.log(sw) - 0.5 * rss)
    return Core(np.array([beta]), np.array([[var]]), np.array([se]), np.array([stat]),
                np.array([pval]), np.array([beta - crit * se]), np.array([beta + crit * se]),
                df, s2w, w, rss, qe, qe_p, vt, ll_ml, ll_reml)
