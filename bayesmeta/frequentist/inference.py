"""Wald-type and Knapp-Hartung inference on the model coefficients, and prediction intervals.

``test="z"``: standard normal statistics, chi-square omnibus test (metafor's default).
``test="knha"``: Knapp & Hartung (2003, doi:10.1002/sim.1482): the covariance is scaled by
s2w = sum(w r^2) / (k - p) (metafor 3.8-1 does not truncate s2w at 1), t statistics with
k - p degrees of freedom and an F omnibus test with (m, k - p) degrees of freedom; the prediction
interval then uses the t quantile with k - p degrees of freedom, as metafor's ``predict``.
When every residual is zero (RSS at rounding level) s2w is 0, as in metafor: the standard errors
are 0, the t statistics infinite and the omnibus test does not exist (metafor's QM is NA).

scipy.special's distribution functions are used directly (the scipy.stats objects cost ~50 us a
call, which matters for a fit that should take well under a millisecond).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, special

TESTS: tuple[str, ...] = ("z", "knha")


def critical_value(level: float, df: int | None) -> float:
    """Two-sided critical value: the normal quantile, or Student's t with ``df`` df."""
    upper = 1.0 - (1.0 - level) / 2.0
    if df is None:
        return float(special.ndtri(upper))
    return float(special.stdtrit(df, upper))


def two_sided_p(stat: np.ndarray, df: int | None) -> np.ndarray:
    """Two-sided p-values of z (``df=None``) or t statistics."""
    a = -np.abs(stat)
    if df is None:
        return 2.0 * special.ndtr(a)
    return 2.0 * special.stdtr(df, a)


def knha_scale(rss: float, k: int, p: int) -> float:
    """Knapp-Hartung scale factor s2w = RSS / (k - p); 0 when RSS is at rounding level (all
    residuals zero), as metafor."""
    if rss <= np.finfo(float).eps:
        return 0.0
    return rss / (k - p)


@dataclass(frozen=True)
class CoefficientTests:
    """Standard errors, statistics, p-values and confidence limits of the coefficients."""

    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def coefficient_tests(beta: np.ndarray, cov: np.ndarray, df: int | None, level: float
                      ) -> CoefficientTests:
    """Wald-type z (``df=None``) or t tests and confidence intervals of each coefficient."""
    se = np.sqrt(np.diag(cov))
    if se.min() > 0.0:
        stat = beta / se
    else:  # Knapp-Hartung with all residuals zero: se = 0 (metafor's s2w = 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = np.where(se > 0, beta / np.where(se > 0, se, 1.0),
                            np.where(beta == 0, 0.0, np.sign(beta) * np.inf))
    crit = critical_value(level, df)
    return CoefficientTests(se, stat, two_sided_p(stat, df), beta - crit * se, beta + crit * se)


@dataclass(frozen=True)
class OmnibusTest:
    """metafor's QM: the Wald test that the selected coefficients are all 0.

    ``statistic`` is chi-square with ``df[0]`` df (z) or F with ``df`` = (m, k - p) (knha).
    """

    statistic: float
    df: tuple[int, ...]
    pval: float


def omnibus_test(beta: np.ndarray, cov: np.ndarray, indices: np.ndarray, df: int | None
                 ) -> OmnibusTest | None:
    """QM for the coefficients ``indices`` (metafor's ``btt``).

    ``None`` when their covariance matrix is not positive definite (under Knapp-Hartung with
    every residual zero it is 0): the Wald statistic does not exist, and metafor's QM is NA
    (its Cholesky factorisation fails there too).
    """
    b = beta[indices]
    V = cov[np.ix_(indices, indices)]
    m = int(b.size)
    try:
        chol = linalg.cho_factor(V, lower=True)
    except linalg.LinAlgError:
        return None
    qm = float(b @ linalg.cho_solve(chol, b))
    if not math.isfinite(qm):
        return None
    if df is None:
        return OmnibusTest(qm, (m,), float(special.chdtrc(m, qm)))
    f = qm / m
    return OmnibusTest(f, (m, df), float(special.fdtrc(m, df, f)))


def prediction_interval(pred: np.ndarray | float, se: np.ndarray | float, tau2: float,
                        df: int | None, level: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction interval for the true effect of a new study: pred +/- crit sqrt(se^2 + tau2).

    Returns
    -------
    (pi_low, pi_high, pi_se), as metafor's ``predict`` (pi.lb, pi.ub, and the se it uses).
    """
    pi_se = np.sqrt(np.asarray(se) ** 2 + tau2)
    crit = critical_value(level, df)
    return pred - crit * pi_se, pred + crit * pi_se, pi_se


def log_likelihoods(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float, rss: float,
                    cov_unscaled: np.ndarray) -> tuple[float, float]:
    """metafor's ML and REML log-likelihoods at the fitted tau2 (``fit.stats`` column ``ll``).

    REML includes the 1/2 log|X'X| term (metafor's ``REMLf=TRUE``).
    """
    k, p = X.shape
    sumlog = float(np.sum(np.log(v + tau2)))
    ll_ml = -0.5 * k * math.log(2.0 * math.pi) - 0.5 * sumlog - 0.5 * rss
    if p == 1:
        logdet_xwx = -math.log(float(cov_unscaled[0, 0]))
        logdet_xx = math.log(float(X[:, 0] @ X[:, 0]))
    else:
        logdet_xwx = -float(np.linalg.slogdet(cov_unscaled)[1])
        logdet_xx = float(np.linalg.slogdet(X.T @ X)[1])
    ll_reml = (-0.5 * (k - p) * math.log(2.0 * math.pi) + 0.5 * logdet_xx - 0.5 * sumlog
               - 0.5 * logdet_xwx - 0.5 * rss)
    return ll_ml, ll_reml
