"""Heterogeneity: Cochran's Q (QE), I2, H2 and Q-profile confidence intervals, as metafor 3.8-1.

- QE is the weighted residual sum of squares of the equal-effects (weights 1/v) fit, with
  k - p degrees of freedom (Cochran 1954, doi:10.2307/3001666).
- For random-effects methods I2 = 100 tau2 / (vt + tau2) and H2 = tau2 / vt + 1, where
  vt = (k - p) / tr(P) is metafor's "typical" sampling variance (Higgins & Thompson 2002,
  doi:10.1002/sim.1186); with moderators these are the residual I2 and H2. For the EE model
  I2 = max(0, 100 (QE - (k - p)) / QE) and H2 = QE / (k - p).
- Q-profile interval for tau2 (Viechtbauer 2007, doi:10.1002/sim.2514): the tau2 values at which
  the generalised Q statistic equals the chi-square quantiles with k - p df; the I2 and H2 bounds
  follow from the tau2 bounds. A bound only known to lie outside the search range [0, tau2_max]
  is reported with metafor's ``lb.sign``/``ub.sign`` (``"<"`` or ``">"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from .estimators import DEFAULT_CONTROL, FitControl
from .linalg import score_terms, weighted_fit


@dataclass(frozen=True)
class CochranQ:
    """QE, its degrees of freedom and p-value, and the typical sampling variance vt."""

    qe: float
    df: int
    pval: float
    vt: float


def cochran_q(y: np.ndarray, v: np.ndarray, X: np.ndarray, pooled: bool | None = None
              ) -> CochranQ:
    """Test for (residual) heterogeneity, metafor's QE/QEp, and vt = (k - p) / tr(P)."""
    k, p = X.shape
    ypy, _, trp, _, _, _ = score_terms(y, v, X, 0.0, pooled)
    qe = max(0.0, ypy)
    return CochranQ(qe, k - p, float(special.chdtrc(k - p, qe)), (k - p) / trp)


def i2_h2(method: str, tau2: float, q: CochranQ) -> tuple[float, float]:
    """I2 (percent) and H2 as metafor computes them for ``method``."""
    if method == "EE":
        i2 = 0.0 if q.qe <= 0.0 else max(0.0, 100.0 * (q.qe - q.df) / q.qe)
        return i2, q.qe / q.df
    return 100.0 * tau2 / (q.vt + tau2), tau2 / q.vt + 1.0


@dataclass(frozen=True)
class QProfileInterval:
    """Q-profile confidence limits of tau2 and where they stand relative to the search range.

    Attributes
    ----------
    tau2_low, tau2_high
        The limits; a limit outside [0, tau2_max] is clamped to the range end.
    low_sign, high_sign
        metafor's ``lb.sign``/``ub.sign``: ``""`` (found), ``"<"`` (below the range start, only
        possible when the whole interval is the null set at 0) or ``">"`` (beyond tau2_max).
    null_set
        Both limits lie below 0: the Q statistic is smaller than even the lower chi-square
        quantile at tau2 = 0 (metafor's ``ci.null``).
    converged
        Whether root finding converged for both limits.
    tau2_max
        The upper end of the search range used.
    """

    tau2_low: float
    tau2_high: float
    low_sign: str
    high_sign: str
    null_set: bool
    converged: bool
    tau2_max: float


def q_profile(y: np.ndarray, v: np.ndarray, X: np.ndarray, level: float, tau2_hat: float,
              control: FitControl = DEFAULT_CONTROL) -> QProfileInterval:
    """Q-profile confidence interval of tau2 (metafor's ``confint(type="QP")``)."""
    k, p = X.shape
    df = k - p
    alpha = 1.0 - level
    crit_u = float(special.chdtri(df, alpha / 2.0))  # upper chi-square quantile
    crit_l = float(special.chdtri(df, 1.0 - alpha / 2.0))  # lower chi-square quantile
    lo, hi = 0.0, max(control.tau2_max, 10.0 * tau2_hat)

    def q(t: float) -> float:
        return weighted_fit(y, 1.0 / (v + t), X).rss

    q_lo, q_hi = q(lo), q(hi)
    converged = True

    def root(target: float) -> float:
        nonlocal converged
        r, info = optimize.brentq(lambda t: q(t) - target, lo, hi, xtol=control.root_tol,
                                  maxiter=control.search_maxiter, full_output=True,
                                  disp=False)
        converged = converged and bool(info.converged)
        return float(r)

    low_sign = high_sign = ""
    null_set = False
    # upper limit: where Q(tau2) falls to the lower quantile
    if q_lo < crit_l:
        tau2_low = tau2_high = lo
        low_sign = high_sign = "<"
        null_set = True
    else:
        if q_hi > crit_l:
            tau2_high, high_sign = hi, ">"
        else:
            tau2_high = root(crit_l)
        # lower limit: where Q(tau2) falls to the upper quantile
        if q_hi > crit_u:
            tau2_low = tau2_high = hi
            low_sign = high_sign = ">"
        elif q_lo < crit_u:
            tau2_low = lo
        else:
            tau2_low = root(crit_u)
    return QProfileInterval(tau2_low, tau2_high, low_sign, high_sign, null_set, converged, hi)
