"""Small-study effects: Egger's regression test, Begg and Mazumdar's rank test, trim and fill.

All three follow metafor 3.8-1 (``regtest``, ``ranktest``, ``trimfill``) and equal its values
computed with tight convergence to 1e-6 relative (tests/test_bias_reference.py). Against metafor
run with its default control (Fisher scoring stops at |delta tau2| < 1e-5) the mixed-effects
Egger test and trim and fill differ by up to ~4e-4 relative (metafor's stopping error in tau2);
the weighted regression and the rank test do not iterate and agree to rounding.

- :func:`egger_test`: the effects regressed on their standard error (or variance) added to the
  fitted model's design. ``model="rma"``: the mixed-effects meta-regression with the fit's tau2
  method and test (a z test of the slope; t with k - p - 1 df under Knapp-Hartung).
  ``model="lm"``: the classical weighted regression with weights 1/v_i and a
  residual-variance-scaled covariance (a t test with k - p - 1 df; Egger et al. 1997,
  doi:10.1136/bmj.315.7109.629). For a pooled model the intercept is the *limit estimate*:
  the predicted effect of a study with standard error 0 (Rücker et al. 2011,
  doi:10.1093/biostatistics/kxq046).
- :func:`rank_test`: Kendall's tau between the standardized deviates from the equal-effects
  estimate, (y_i - theta) / sqrt(v_i - 1/sum(w)), and the variances v_i (Begg & Mazumdar 1994,
  doi:10.2307/2533446), with R's ``cor.test(..., method="kendall", exact=TRUE)`` p-value: the
  exact null distribution when there are no ties, the tie-corrected normal approximation
  otherwise.
- :func:`trimfill`: Duval & Tweedie's (2000, doi:10.1111/j.0006-341X.2000.00455.x) iterative
  trim and fill with the L0 (default), R0 or Q0 estimator of the number of missing studies, as
  metafor iterates it; the side to fill is chosen, unless given, from the sign of the slope of
  the mixed-effects regression on the standard error: a negative slope (small studies with
  small effects) means studies are missing on the right, otherwise on the left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..config import DEFAULTS
from ..design import intercept_only
from ..errors import InputError, Problem
from .core import fit_at
from .estimators import Tau2Estimate, estimate_tau2
from .inference import critical_value, two_sided_p
from .linalg import weighted_fit
from .rma import RmaResult, fit_arrays

EGGER_MODELS = ("rma", "lm")
EGGER_PREDICTORS = ("sei", "vi")
TRIMFILL_ESTIMATORS = ("L0", "R0", "Q0")
SIDES = ("left", "right")
# effects within this relative distance of the trimmed estimate count as equal to it
_TIE = 1e-12


def _check_fit(fit: object, what: str) -> RmaResult:
    if not isinstance(fit, RmaResult):
        raise InputError(Problem(f"{what} needs a fitted model from rma() (a single model, not "
                                 "a subgroup analysis)", column="fit",
                                 value=type(fit).__name__))
    return fit


def _choice(value: Any, allowed: tuple[str, ...], column: str) -> str:
    if value not in allowed:
        raise InputError(Problem(f"expected one of {', '.join(allowed)}", column=column,
                                 value=value))
    return value


def _full_rank(X: np.ndarray) -> bool:
    return int(np.linalg.matrix_rank(X)) == X.shape[1]


# ---------------------------------------------------------------------------------------------
# Egger's regression test


@dataclass(frozen=True)
class EggerTest:
    """Egger's regression test for funnel-plot asymmetry (metafor's ``regtest``).

    Attributes
    ----------
    model
        ``"rma"`` (mixed-effects meta-regression) or ``"lm"`` (weighted regression).
    predictor
        ``"sei"`` (standard error) or ``"vi"`` (sampling variance).
    statistic, df, pval
        Test of the predictor's slope: z (``df`` is ``None``) or t with ``df`` = k - p - 1
        degrees of freedom (``model="lm"``, or ``"rma"`` under Knapp-Hartung).
    slope, slope_se
        The predictor's coefficient and its standard error.
    limit_estimate, limit_ci_low, limit_ci_high
        The intercept (the effect expected of a study with standard error 0) and its
        confidence interval at ``level``; ``None`` for a meta-regression (as metafor).
    terms, coefficients, se
        The regression's full coefficient table (the fit's terms, then the predictor).
    tau2
        Residual tau2 of the ``"rma"`` regression (``None`` for ``"lm"``).
    method, test, level, k
        The fit's tau2 method and test, the confidence level, the number of studies.
    warnings
        Messages from estimating tau2 in the regression.
    none_reasons
        Why a quantity is ``None``.
    """

    model: str
    predictor: str
    statistic: float
    df: int | None
    pval: float
    slope: float
    slope_se: float
    limit_estimate: float | None
    limit_ci_low: float | None
    limit_ci_high: float | None
    terms: tuple[str, ...]
    coefficients: tuple[float, ...]
    se: tuple[float, ...]
    tau2: float | None
    method: str
    test: str
    level: float
    k: int
    warnings: tuple[str, ...] = ()
    none_reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def stat_name(self) -> str:
        """``"zval"`` or ``"tval"``."""
        return "zval" if self.df is None else "tval"

    def to_dict(self) -> dict[str, Any]:
        """Stable keys: ``model, predictor, zval`` (or ``tval`` and ``df``), ``pval, slope,
        slope_se, limit_estimate, limit_ci_low, limit_ci_high, tau2, method, test, level, k,
        warnings, none_reasons``."""
        out: dict[str, Any] = {"model": self.model, "predictor": self.predictor,
                               self.stat_name: self.statistic}
        if self.df is not None:
            out["df"] = self.df
        out.update({"pval": self.pval, "slope": self.slope, "slope_se": self.slope_se,
                    "limit_estimate": self.limit_estimate, "limit_ci_low": self.limit_ci_low,
                    "limit_ci_high": self.limit_ci_high, "tau2": self.tau2,
                    "method": self.method, "test": self.test, "level": self.level, "k": self.k,
                    "warnings": list(self.warnings), "none_reasons": dict(self.none_reasons)})
        return out


def egger_test(fit: RmaResult, model: str = "rma", predictor: str = "sei") -> EggerTest:
    """Egger's regression test for funnel-plot asymmetry (metafor's ``regtest``).

    Parameters
    ----------
    fit
        A model from :func:`~bayesmeta.rma` (pooled or with moderators; the predictor is added
        to its design).
    model
        ``"rma"`` (default): mixed-effects meta-regression with the fit's tau2 method, test,
        level and control (tau2 kept when it was fixed); ``"lm"``: the classical weighted
        least-squares regression with weights 1/v_i and a t test with k - p - 1 df.
    predictor
        ``"sei"`` (default, the standard error) or ``"vi"`` (the sampling variance).

    Returns
    -------
    EggerTest

    Raises
    ------
    InputError
        With fewer than p + 2 studies (k >= 3 for a pooled model: the slope needs a residual
        degree of freedom), when the predictor is collinear with the design (e.g. all standard
        errors equal), or when the regression fits the data exactly under ``model="lm"`` or
        the Knapp-Hartung test (the residual variance, or scale factor, is 0).

    References
    ----------
    Egger et al. (1997), doi:10.1136/bmj.315.7109.629; Sterne & Egger (2005), in Publication
    Bias in Meta-Analysis, doi:10.1002/0470870168.ch6; Viechtbauer (2010),
    doi:10.18637/jss.v036.i03.
    """
    fit = _check_fit(fit, "Egger's test")
    model = _choice(model, EGGER_MODELS, "model")
    predictor = _choice(predictor, EGGER_PREDICTORS, "predictor")
    k, p = fit.k, fit.p
    if k < p + 2:
        raise InputError(Problem(
            f"Egger's test needs at least {p + 2} studies (k = {k}; the regression on the "
            f"standard error has {p + 1} coefficient(s) and needs a residual degree of freedom)",
            column="yi", value=k))
    y, v = fit.yi, fit.vi
    x = np.sqrt(v) if predictor == "sei" else v
    X = np.column_stack([fit.X, x])
    terms = (*fit.terms, predictor)
    if not _full_rank(X):
        raise InputError(Problem(
            f"Egger's test: the predictor {predictor} is collinear with the model's design "
            "(e.g. every study has the same standard error), so its slope cannot be estimated",
            column=predictor))
    reasons: dict[str, str] = {}
    warns: tuple[str, ...] = ()
    intercept = fit.design.intercept
    if model == "rma":
        if fit.tau2_fixed:
            est = Tau2Estimate(fit.tau2, None, fit.method, "fixed")
        else:
            est = estimate_tau2(y, v, X, fit.method, fit.control)
        warns = est.warnings
        c = fit_at(y, v, X, est.tau2, fit.test, fit.level, False, intercept)
        if c.s2w == 0.0:
            raise InputError(Problem(
                "Egger's test (test='knha'): the regression fits every study exactly, so the "
                "Knapp-Hartung scale factor and the slope's standard error are 0 and the t "
                "statistic does not exist (metafor reports an infinite one); refit with "
                "test='z'", column="yi"))
        beta, se, stat, pval = c.beta, c.se, c.stat, c.pval
        ci_low, ci_high, df = c.ci_low, c.ci_high, c.df
        tau2: float | None = est.tau2
        test = fit.test
    else:
        wf = weighted_fit(y, 1.0 / v, X)
        df = k - p - 1
        if wf.rss <= np.finfo(float).eps * float(np.sum(y * y / v)):
            raise InputError(Problem(
                "Egger's test (model='lm'): the weighted regression fits every study exactly, "
                "so the residual variance is 0 and the t statistic does not exist",
                column="yi"))
        beta = wf.beta
        se = np.sqrt(np.diag(wf.cov) * wf.rss / df)
        stat = beta / se
        pval = two_sided_p(stat, df)
        crit = critical_value(fit.level, df)
        ci_low, ci_high = beta - crit * se, beta + crit * se
        tau2 = None
        reasons["tau2"] = "the weighted regression (model='lm') has no tau2"
        test = "t"
    limit = limit_low = limit_high = None
    if fit.intercept_only:
        limit, limit_low, limit_high = float(beta[0]), float(ci_low[0]), float(ci_high[0])
    else:
        for key in ("limit_estimate", "limit_ci_low", "limit_ci_high"):
            reasons[key] = ("meta-regression: the limit estimate is only defined for a pooled "
                            "model (as metafor)")
    return EggerTest(model, predictor, float(stat[p]), df, float(pval[p]), float(beta[p]),
                     float(se[p]), limit, limit_low, limit_high, terms,
                     tuple(map(float, beta)), tuple(map(float, se)), tau2, fit.method, test,
                     fit.level, k, tuple(warns), reasons)


# ---------------------------------------------------------------------------------------------
# rank correlation test


@dataclass(frozen=True)
class RankTest:
    """Begg and Mazumdar's rank correlation test (metafor's ``ranktest``).

    Attributes
    ----------
    tau
        Kendall's tau (tau-b) between the standardized deviates and the variances.
    pval
        Two-sided p-value.
    exact
        Whether ``pval`` comes from the exact null distribution (no ties); otherwise from the
        tie-corrected normal approximation.
    k
        Number of studies.
    notes
        Why the normal approximation was used, when it was.
    """

    tau: float
    pval: float
    exact: bool
    k: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Stable keys: ``tau, pval, exact, k, notes``."""
        return {"tau": self.tau, "pval": self.pval, "exact": self.exact, "k": self.k,
                "notes": list(self.notes)}


def rank_test(fit: RmaResult, exact: bool | None = None) -> RankTest:
    """Begg and Mazumdar's rank correlation test for funnel-plot asymmetry (metafor's
    ``ranktest``).

    Kendall's tau between (y_i - theta) / sqrt(v_i - 1/sum(w)) and v_i, theta the
    equal-effects estimate with weights w = 1/v (whatever tau2 method ``fit`` used, as
    metafor).

    Parameters
    ----------
    fit
        A pooled model from :func:`~bayesmeta.rma` (metafor refuses moderators too); k >= 3.
    exact
        Use the exact null distribution of tau. ``None`` (default): exact when there are no
        ties and k <= ``DEFAULTS.rank_test_exact_max_k``, as metafor's
        ``cor.test(..., exact=TRUE)`` for the sizes it can compute. With ties the normal
        approximation is always used (R does the same, with a warning).

    Returns
    -------
    RankTest

    Raises
    ------
    InputError
        With fewer than 3 studies, or when every effect or every sampling variance is the same
        (Kendall's tau is undefined).

    References
    ----------
    Begg & Mazumdar (1994), doi:10.2307/2533446.
    """
    fit = _check_fit(fit, "the rank test")
    if not fit.intercept_only:
        raise InputError(Problem("the rank test is for pooled models without moderators (as "
                                 "metafor's ranktest)", column="mods",
                                 value=fit.design.formula))
    k = fit.k
    if k < 3:
        raise InputError(Problem(
            f"the rank test needs at least 3 studies (k = {k}; with 2 studies Kendall's tau is "
            "+/-1 and the exact p-value is always 1)", column="yi", value=k))
    y, v = fit.yi, fit.vi
    w = 1.0 / v
    sw = float(w.sum())
    theta = float(w @ y) / sw
    deviates = (y - theta) / np.sqrt(v - 1.0 / sw)
    # Kendall's tau divides by the number of untied pairs of each variable. Equal effects are
    # tested on y itself: their deviates are 0 only up to rounding, and ranking rounding noise
    # would give an arbitrary tau
    for values, column, what in ((y, "yi", "every study has the same effect, so every "
                                            "standardized deviate is 0"),
                                 (v, "vi", "every study has the same sampling variance")):
        if np.ptp(values) == 0.0:
            raise InputError(Problem(f"the rank test does not exist for these data: {what}, "
                                     "and Kendall's tau with a constant variable is undefined "
                                     "(R's cor.test returns NA)", column=column,
                                     value=float(values[0])))
    ties = min(np.unique(deviates).size, np.unique(v).size) < k
    notes: list[str] = []
    if ties:
        use_exact = False
        notes.append("tied values: the p-value uses the tie-corrected normal approximation "
                     "(R's cor.test cannot compute the exact p-value with ties either)")
    elif exact is None:
        use_exact = k <= DEFAULTS.rank_test_exact_max_k
        if not use_exact:
            notes.append(f"k = {k} > {DEFAULTS.rank_test_exact_max_k}: the p-value uses the "
                         "normal approximation (the exact distribution is costly at this size "
                         "and agrees to ~1e-3)")
    else:
        use_exact = bool(exact)
    res = stats.kendalltau(deviates, v, method="exact" if use_exact else "asymptotic")
    return RankTest(float(res.statistic), float(res.pvalue), use_exact, k, tuple(notes))


# ---------------------------------------------------------------------------------------------
# trim and fill


@dataclass(frozen=True)
class TrimFill:
    """Trim-and-fill analysis (metafor's ``trimfill``).

    Attributes
    ----------
    k0, se_k0
        Estimated number of missing studies and its standard error (metafor's ``k0``,
        ``se.k0``).
    p_k0
        For the R0 estimator, the p-value of the test that no studies are missing
        (``None`` otherwise, as metafor's ``NA``).
    side
        ``"left"`` or ``"right"``: where studies are estimated to be missing and filled in.
    estimator
        ``"L0"``, ``"R0"`` or ``"Q0"``.
    iterations
        Iterations of the trim-and-fill algorithm.
    estimate, se, statistic, df, pval, ci_low, ci_high
        The pooled estimate from the filled-in data (the original fit's when k0 = 0);
        ``statistic`` is infinite when ``se`` is 0 (Knapp-Hartung with every residual zero;
        ``None`` with a reason in ``to_dict()``).
    tau2, i2, qe, qe_p
        Heterogeneity of the filled-in data (I2 in percent).
    filled_yi, filled_vi
        The imputed studies (mirror images of the k0 most extreme ones), in metafor's order.
    fit
        The model fitted to the original and the imputed studies (the original fit when
        k0 = 0).
    k
        Number of observed studies.
    none_reasons
        Why a quantity is ``None``.
    """

    k0: int
    se_k0: float | None
    p_k0: float | None
    side: str
    estimator: str
    iterations: int
    estimate: float
    se: float
    statistic: float
    df: int | None
    pval: float
    ci_low: float
    ci_high: float
    tau2: float
    i2: float | None
    qe: float | None
    qe_p: float | None
    filled_yi: tuple[float, ...]
    filled_vi: tuple[float, ...]
    fit: RmaResult
    k: int
    none_reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def stat_name(self) -> str:
        return "zval" if self.df is None else "tval"

    def to_dict(self) -> dict[str, Any]:
        """Stable keys: ``k0, se_k0, p_k0, side, estimator, iterations, k, k_total, estimate,
        se, zval`` (or ``tval`` and ``df``), ``pval, ci_low, ci_high, tau2, i2, qe, qe_p,
        filled_yi, filled_vi, none_reasons``."""
        reasons = dict(self.none_reasons)
        statistic: float | None = self.statistic
        if not math.isfinite(self.statistic):
            statistic = None
            reasons[self.stat_name] = ("the standard error is 0 (every residual is zero, so the "
                                       "Knapp-Hartung scale factor is 0): the statistic is "
                                       "infinite")
        out: dict[str, Any] = {
            "k0": self.k0, "se_k0": self.se_k0, "p_k0": self.p_k0, "side": self.side,
            "estimator": self.estimator, "iterations": self.iterations, "k": self.k,
            "k_total": self.k + self.k0, "estimate": self.estimate, "se": self.se,
            self.stat_name: statistic}
        if self.df is not None:
            out["df"] = self.df
        out.update({"pval": self.pval, "ci_low": self.ci_low, "ci_high": self.ci_high,
                    "tau2": self.tau2, "i2": self.i2, "qe": self.qe, "qe_p": self.qe_p,
                    "filled_yi": list(self.filled_yi), "filled_vi": list(self.filled_vi),
                    "none_reasons": reasons})
        return out


def _pooled_estimate(y: np.ndarray, v: np.ndarray, method: str, fit: RmaResult) -> float:
    """The pooled estimate of (y, v) with the fit's tau2 method (estimated afresh)."""
    ones = np.ones((y.size, 1))
    tau2 = estimate_tau2(y, v, ones, method, fit.control).tau2
    w = 1.0 / (v + tau2)
    return float(w @ y) / float(w.sum())


def _asymmetry_side(fit: RmaResult) -> str:
    """metafor's rule: the slope of rma(yi, vi, mods = sqrt(vi)) with the fit's method;
    negative -> studies missing on the right."""
    X = np.column_stack([np.ones(fit.k), np.sqrt(fit.vi)])
    if not _full_rank(X):
        raise InputError(Problem(
            "trim and fill cannot choose the side to fill: every study has the same standard "
            "error, so there is no funnel-plot slope; give side='left' or side='right'",
            column="side"))
    tau2 = estimate_tau2(fit.yi, fit.vi, X, fit.method, fit.control).tau2
    slope = float(weighted_fit(fit.yi, 1.0 / (fit.vi + tau2), X).beta[1])
    return "right" if slope < 0.0 else "left"


def _missing_count(centred: np.ndarray, estimator: str) -> tuple[float, float | None]:
    """The unrounded estimate of the number of missing studies and its standard error.

    ``centred``: the (flipped, sorted) effects minus the current pooled estimate. Ranks of
    |centred| break ties by position (R's ``ties.method="first"``).
    """
    k = centred.size
    ranks = np.empty(k)
    ranks[np.argsort(np.abs(centred), kind="stable")] = np.arange(1, k + 1)
    signed = np.sign(centred) * ranks
    if estimator == "R0":
        negative = signed[signed < 0]
        # length of the rightmost run of positive ranks, minus one (no negative rank: all of
        # them, where R would take max() of nothing)
        largest_negative = float(-negative.min()) if negative.size else 0.0
        k0 = k - largest_negative - 1.0
        return k0, math.sqrt(2.0 * max(0.0, k0) + 2.0)
    sr = float(signed[signed > 0].sum())
    if estimator == "L0":
        k0 = (4.0 * sr - k * (k + 1)) / (2.0 * k - 1.0)
    else:  # Q0; the root's argument is negative only when every rank is positive
        k0 = k - 0.5 - math.sqrt(max(0.0, 2.0 * k * k - 4.0 * sr + 0.25))
    var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0
              - 18 * k * k0**2 - 18 * k * k0 + 6 * k**2 * k0) / 24.0
    if var_sr < 0.0:
        return k0, None
    if estimator == "L0":
        return k0, max(0.0, 4.0 * math.sqrt(var_sr) / (2.0 * k - 1.0))
    denom = (k - 0.5) ** 2 - k0 * (2.0 * k - k0 - 1.0)
    if denom <= 0.0:
        return k0, None
    return k0, max(0.0, 2.0 * math.sqrt(var_sr) / math.sqrt(denom))


def trimfill(fit: RmaResult, estimator: str = "L0", side: str | None = None) -> TrimFill:
    """Duval and Tweedie's trim-and-fill method (metafor's ``trimfill``).

    Iterates as metafor: sort the effects (flipped when filling on the right); repeatedly fit
    the pooled model (the fit's tau2 method) to all but the k0 most extreme studies,
    re-estimate k0 from the signed ranks of the centred effects, and stop when k0 no longer
    changes; then add the mirror images of the k0 most extreme studies about the trimmed
    estimate and refit.

    Parameters
    ----------
    fit
        A pooled model from :func:`~bayesmeta.rma` (metafor refuses meta-regressions too);
        k >= 2.
    estimator
        ``"L0"`` (default), ``"R0"`` or ``"Q0"``.
    side
        ``"left"`` or ``"right"``; ``None`` (default) chooses as metafor: from the sign of the
        slope of the mixed-effects regression of the effects on their standard errors
        (negative slope: fill on the right).

    Returns
    -------
    TrimFill

    Notes
    -----
    The trimmed fits and the final fit estimate tau2 with the fit's method even if tau2 was
    fixed (metafor does not pass a fixed tau2 on either). The final fit keeps the original
    fit's test and level, where metafor refits with its defaults (z test, 95%); for a z-test
    fit at 95% (the references) the two are identical.

    When the estimated number of missing studies never settles (it can alternate between two
    values for ever) the result is an :class:`InputError` after ``DEFAULTS.trimfill_maxiter``
    iterations, as metafor's ``trimfill`` stops with an error: either end of the cycle would be
    an arbitrary answer.

    Ties in |y_i - estimate| are ranked by position, as metafor's ``rank(ties.method="first")``.
    In a funnel made of exact mirror-image pairs every pair ties, the member on the trimmed side
    always ranks higher, and L0 gives k0 = round(k / (2k - 1)) = 1 although the funnel is
    symmetric (metafor does the same); real data rarely tie exactly.

    References
    ----------
    Duval & Tweedie (2000), doi:10.1111/j.0006-341X.2000.00455.x and
    doi:10.1080/01621459.2000.10473905.
    """
    fit = _check_fit(fit, "trim and fill")
    estimator = _choice(estimator, TRIMFILL_ESTIMATORS, "estimator")
    if not fit.intercept_only:
        raise InputError(Problem("trim and fill is only defined for pooled models without "
                                 "moderators (metafor's trimfill refuses meta-regressions "
                                 "too); fit rma(yi, vi) without mods", column="mods",
                                 value=fit.design.formula))
    k = fit.k
    if k < 2:
        raise InputError(Problem(f"trim and fill needs at least 2 studies (k = {k})",
                                 column="yi", value=k))
    side = _asymmetry_side(fit) if side is None else _choice(side, SIDES, "side")
    flip = -1.0 if side == "right" else 1.0
    order = np.argsort(flip * fit.yi, kind="stable")  # R's sort(): stable
    y = flip * fit.yi[order]
    v = fit.vi[order]
    maxiter = DEFAULTS.trimfill_maxiter
    k0, previous, iterations = 0, -1, 0
    history: list[int] = []
    se_k0: float | None = None
    beta = 0.0
    while k0 != previous:
        previous = k0
        iterations += 1
        if iterations > maxiter:
            # metafor stops with an error here too ("Trim and fill algorithm did not
            # converge."): the last iterate is one arbitrary point of a cycle, not an answer
            last = history[-6:]
            cycling = len(history) >= 3 and history[-1] == history[-3]
            how = (f"keeps alternating between {' and '.join(map(str, sorted(set(last))))}"
                   if cycling else "was still changing")
            raise InputError(Problem(
                f"trim and fill ({estimator}, filling on the {side}) did not converge in "
                f"{maxiter} iterations: the estimated number of missing studies {how} (last "
                f"values {', '.join(map(str, last))}), so there is no single answer (metafor "
                "stops with an error as well); try another estimator or give side",
                column="estimator", value=estimator))
        if k - k0 < 1:
            raise InputError(Problem(
                f"trim and fill ({estimator}) estimates that all {k} studies are missing; the "
                "estimator breaks down for these data", column="estimator", value=estimator))
        beta = _pooled_estimate(y[:k - k0], v[:k - k0], fit.method, fit)
        centred = y - beta
        # an effect equal to the estimate lies on neither side (sign 0); computed, the weighted
        # mean of equal effects can miss them by an ulp, and that rounding would decide their
        # sign and can make k0 cycle for ever
        centred[np.abs(centred) <= _TIE * max(float(np.abs(y).max()), abs(beta))] = 0.0
        raw, se_k0 = _missing_count(centred, estimator)
        k0 = max(0, round(raw))  # R's round(): half to even, as Python's
        history.append(k0)
    reasons: dict[str, str] = {}
    if se_k0 is None:
        reasons["se_k0"] = "the variance formula of the estimator is negative for these data"
    p_k0 = None
    if estimator == "R0":
        p_k0 = 0.5 ** (k0 + 1)  # metafor's 1 - sum_{m=-1}^{k0-1} 0.5^(m+2)
    else:
        reasons["p_k0"] = "only the R0 estimator has a test of k0 (metafor: NA)"
    filled_yi = flip * (2.0 * beta - y[k - k0:])  # mirror images about the trimmed estimate
    filled_vi = v[k - k0:]
    if k0 > 0:
        labels = (*fit.labels, *(f"filled {j + 1}" for j in range(k0)))
        yy = np.concatenate([fit.yi, filled_yi])
        vv = np.concatenate([fit.vi, filled_vi])
        rows = fit.data_rows or tuple(int(r) + 1 for r in fit.design.rows)
        final = fit_arrays(yy, vv, intercept_only(k + k0), labels=labels, method=fit.method,
                           test=fit.test, level=fit.level, control=fit.control,
                           measure=fit.measure,
                           notes=(f"trim and fill: {k0} studies imputed on the {side}",),
                           data_rows=(*rows, *([None] * k0)))
    else:
        final = fit
    for key in ("i2", "qe", "qe_p"):
        if getattr(final, key) is None:
            reasons[key] = final.none_reasons.get(key, "does not exist for this fit")
    return TrimFill(int(k0), se_k0, p_k0, side, estimator, iterations, float(final.beta[0]),
                    float(final.se[0]), float(final.stat[0]), final.df, float(final.pval[0]),
                    float(final.ci_low[0]), float(final.ci_high[0]), final.tau2, final.i2,
                    final.qe, final.qe_p, tuple(map(float, filled_yi)),
                    tuple(map(float, filled_vi)), final, k, reasons)


__all__ = ["EggerTest", "RankTest", "TrimFill", "egger_test", "rank_test", "trimfill"]
