"""``rma``: random- and mixed-effects meta-analysis at metafor parity, and its frozen result.

``rma(yi, vi, method="REML")`` is metafor's ``rma.uni`` for the normal-normal model
y_i ~ N(x_i' beta, v_i + tau2): tau2 by one of nine estimators (:mod:`.estimators`), the
coefficients by weighted least squares with weights 1/(v_i + tau2), Wald z or Knapp-Hartung
inference (:mod:`.inference`), heterogeneity statistics and Q-profile intervals
(:mod:`.heterogeneity`), meta-regression with moderators from a formula
(:mod:`bayesmeta.design`) and subgroup analyses.

Agreement with metafor 3.8-1
----------------------------
Every quantity equals metafor's values computed with tight convergence (threshold 1e-13, root
tolerance 1e-12; ``metafor_tight`` in tests/reference/*.json) to 1e-6 relative. Against metafor
run with its *default* control settings (Fisher scoring stops at |delta tau2| < 1e-5, ``uniroot``
tolerance about 1.2e-4) agreement is only about 1e-3 for the iterative estimators (REML, ML, EB,
PM) and the Q-profile bounds: that is metafor's own stopping error, and what a user comparing
with a default metafor run will see. Closed-form estimators (DL, HE, HS, SJ, EE) agree to
rounding either way.

Conventions (and where they differ from metafor's printout)
-----------------------------------------------------------
- I2 is in percent, as metafor prints it. With moderators, I2/H2 are the residual ones.
- ``method="FE"`` is an alias of ``"EE"`` (metafor's name since 3.0).
- k = 1 (more generally k = p): tau2 cannot be estimated and is set to 0 with a note, as metafor
  does; QE, I2, H2 and the prediction interval do not exist and are ``None`` with a reason.
  ``test="knha"`` needs k > p and is an error otherwise (metafor returns NA).
- The EE model has no prediction interval (metafor's ``predict`` gives none either).
- ``test="knha"`` with every residual zero (equal effects, or effects exactly on the regression
  line): the scale factor s2w is 0, as in metafor, so the standard errors are 0, the t
  statistics infinite (``None`` in ``to_dict()``) and QM does not exist (metafor: NA); its df
  are still given.
- A quantity that does not exist is ``None`` in the result and in ``to_dict()``, and
  ``none_reasons`` says why. Nothing is ever NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..config import DEFAULTS
from ..design import (
    INTERCEPT,
    Design,
    Exclusion,
    check_full_rank,
    design_matrix,
    grouping,
    intercept_only,
)
from ..errors import ConvergenceWarning, InputError, Problem, warn
from ..inputs import align_moderators, resolve_effects
from .core import fit_at
from .estimators import ALIASES, DEFAULT_CONTROL, METHODS, FitControl, Tau2Estimate, estimate_tau2
from .heterogeneity import CochranQ, i2_h2, q_profile
from .inference import TESTS, critical_value, omnibus_test, prediction_interval
from .linalg import weighted_fit


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class RmaResult:
    """A fitted random-effects (or equal-effects) model, metafor's ``rma.uni`` object.

    Attributes
    ----------
    yi, vi
        The effects and sampling variances used (read-only arrays).
    X
        The k x p design matrix (``intercept`` column first when there is one).
    terms
        Names of the columns of ``X`` (``intercept``, then formulaic's names, e.g.
        ``comparator[T.passive]``).
    labels
        Study labels.
    measure
        The effect measure, when known.
    method, method_used
        The tau2 estimator asked for (``"FE"`` is recorded as ``"EE"``) and the one that produced
        the estimate (differs only when a fallback took over, or ``"fixed"``).
    test, level
        ``"z"`` or ``"knha"``; the confidence level of every interval (e.g. 0.95).
    tau2, se_tau2
        Between-study variance and its standard error (metafor's ``tau2``, ``se.tau2``).
    tau2_fixed
        True when tau2 was given, not estimated.
    converged, iterations
        Convergence of ``method_used`` and the Fisher scoring iterations.
    beta, cov
        Coefficients and their covariance matrix (metafor's ``beta``, ``vb``; under knha the
        covariance is scaled by ``s2w``).
    se, stat, pval, ci_low, ci_high
        Per coefficient: standard error, z (or t under knha), two-sided p-value, CI.
    df
        k - p under knha (the t and F denominator df); ``None`` for z tests.
    s2w
        The Knapp-Hartung scale factor (``None`` for z tests).
    weights
        Inverse-variance weights 1/(vi + tau2).
    qe, qe_df, qe_p
        Test for (residual) heterogeneity.
    i2, h2, vt
        I2 (percent), H2 and the typical sampling variance metafor uses for them.
    qm, qm_df, qm_p
        Omnibus test of the moderators (all coefficients but the intercept; all of them when
        there is no intercept): chi-square with ``qm_df = (m,)`` or F with ``(m, k - p)``.
        ``qm``/``qm_p`` are ``None`` (with ``qm_df`` still set) when the coefficients'
        covariance is not positive definite, e.g. Knapp-Hartung with every residual zero.
    r2
        Pseudo-R2 in percent: 100 * max(0, (tau2_0 - tau2) / tau2_0), tau2_0 from the
        intercept-only model with the same method on the same studies (metafor's ``R2``).
    pi_low, pi_high, pi_se
        Prediction interval of the true effect in a new study (pooled models).
    loglik, loglik_reml
        metafor's ML and REML log-likelihoods at the estimates (``fit.stats``).
    design
        The :class:`~bayesmeta.design.Design` (formula, excluded studies, levels).
    control
        Convergence settings used.
    warnings, notes
        Messages for the user (warnings were also issued as Python warnings).
    none_reasons
        For each quantity that is ``None``, why it does not exist.
    data_rows
        Each study's 1-based row in the table it came from, counted as error messages and
        :func:`~bayesmeta.read_studies` count them: the table's ``row`` index when it has one
        (a table from read_studies, or escalc of one), else its position (1 = first data row);
        1..k for arrays. ``None`` for a study that is in no table (trim and fill's imputed
        studies). Influence, leave-one-out and outlier tables show it as their ``row`` column.
    """

    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    terms: tuple[str, ...]
    labels: tuple[str, ...]
    measure: str | None
    method: str
    method_used: str
    test: str
    level: float
    tau2: float
    se_tau2: float | None
    tau2_fixed: bool
    converged: bool
    iterations: int
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
    qe: float | None
    qe_df: int
    qe_p: float | None
    i2: float | None
    h2: float | None
    vt: float | None
    qm: float | None
    qm_df: tuple[int, ...] | None
    qm_p: float | None
    r2: float | None
    pi_low: float | None
    pi_high: float | None
    pi_se: float | None
    loglik: float
    loglik_reml: float
    design: Design
    control: FitControl = DEFAULT_CONTROL
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    none_reasons: Mapping[str, str] = field(default_factory=dict)
    data_rows: tuple[int | None, ...] = ()

    # -- basic shape -------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return int(self.yi.size)

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)

    @property
    def intercept_only(self) -> bool:
        return self.design.intercept_only

    @property
    def stat_name(self) -> str:
        """``"zval"`` or ``"tval"`` (knha)."""
        return "tval" if self.test == "knha" else "zval"

    @property
    def excluded(self) -> tuple[Exclusion, ...]:
        """Studies left out for missing moderator values (``missing="exclude"``)."""
        return self.design.excluded

    @property
    def model(self) -> str:
        kind = "Equal-effects" if self.method == "EE" else "Random-effects"
        if not self.intercept_only:
            kind = "Mixed-effects" if self.method != "EE" else "Equal-effects meta-regression"
        return kind

    def _header(self) -> str:
        est = "" if self.method == "EE" else f"; tau2 estimator: {self.method_used}"
        return (f"{self.model} model (k = {self.k}{est}; test: {self.test}; "
                f"{100 * self.level:g}% intervals)")

    # -- tables ------------------------------------------------------------------------------
    @cached_property
    def coefficients(self) -> pd.DataFrame:
        """Coefficient table indexed by term: estimate, se, zval|tval, pval, ci_low, ci_high."""
        df = pd.DataFrame({"estimate": self.beta, "se": self.se, self.stat_name: self.stat,
                           "pval": self.pval, "ci_low": self.ci_low, "ci_high": self.ci_high},
                          index=pd.Index(self.terms, name="term"))
        df.attrs["header"] = self._header()
        return df

    def summary(self) -> pd.DataFrame:
        """One table: the coefficients, then tau2, tau, I2, H2, QE, QM, R2 and the prediction
        interval, with columns estimate, se, ci_low, ci_high, statistic, df, pval.

        Cells that do not apply are ``<NA>`` (pandas' explicit missing marker).
        """
        rows: dict[str, dict[str, Any]] = {}
        for i, term in enumerate(self.terms):
            rows[term] = {"estimate": self.beta[i], "se": self.se[i], "ci_low": self.ci_low[i],
                          "ci_high": self.ci_high[i], "statistic": self.stat[i],
                          "df": self.df, "pval": self.pval[i]}
        rows["tau2"] = {"estimate": self.tau2, "se": self.se_tau2}
        rows["tau"] = {"estimate": self.tau}
        rows["i2"] = {"estimate": self.i2}
        rows["h2"] = {"estimate": self.h2}
        rows["qe"] = {"statistic": self.qe, "df": self.qe_df if self.qe is not None else None,
                      "pval": self.qe_p}
        if self.qm is not None:
            assert self.qm_df is not None
            rows["qm"] = {"statistic": self.qm, "df": self.qm_df[0], "pval": self.qm_p}
        if self.r2 is not None:
            rows["r2"] = {"estimate": self.r2}
        if self.pi_low is not None:
            rows["prediction"] = {"estimate": self.beta[0], "se": self.pi_se,
                                  "ci_low": self.pi_low, "ci_high": self.pi_high}
        cols = ["estimate", "se", "ci_low", "ci_high", "statistic", "df", "pval"]
        table = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
        table = table.astype("Float64")
        table.index.name = "quantity"
        table.attrs["header"] = self._header()
        return table

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict summary with stable keys.

        Pooled models: ``estimate, se, ci_low, ci_high, zval`` (``tval`` and ``df`` under knha),
        ``pval, tau2, tau, se_tau2, i2, h2, qe, qe_df, qe_p, pi_low, pi_high``.
        With moderators the coefficient keys (``estimate`` ... ``pval``) hold
        ``{term: value}`` dicts, and ``qm, qm_df, qm_p, r2`` are added; the prediction interval
        depends on moderator values (``predict``) and ``pi_low``/``pi_high`` are ``None``.
        Always: ``method, method_used, converged, test, level, k, p, terms, loglik,
        loglik_reml, warnings, notes, excluded, none_reasons``.
        """
        pooled = self.intercept_only

        reasons = dict(self.none_reasons)

        def finite(x: float) -> float | None:
            # only a zero Knapp-Hartung scale (all residuals zero) makes a statistic infinite
            if math.isfinite(x):
                return float(x)
            reasons[self.stat_name] = ("the standard error is 0 (every residual is zero, so the "
                                       "Knapp-Hartung scale factor is 0): the statistic is "
                                       "infinite")
            return None

        def coef(a: np.ndarray) -> Any:
            return finite(a[0]) if pooled else {t: finite(x) for t, x in
                                                zip(self.terms, a, strict=True)}

        out: dict[str, Any] = {
            "estimate": coef(self.beta), "se": coef(self.se), "ci_low": coef(self.ci_low),
            "ci_high": coef(self.ci_high), self.stat_name: coef(self.stat),
            "pval": coef(self.pval),
        }
        if self.df is not None:
            out["df"] = self.df
        out.update({
            "tau2": self.tau2, "tau": self.tau, "se_tau2": self.se_tau2, "i2": self.i2,
            "h2": self.h2, "qe": self.qe, "qe_df": self.qe_df, "qe_p": self.qe_p,
            "pi_low": self.pi_low, "pi_high": self.pi_high,
        })
        if not pooled:
            out.update({"qm": self.qm, "qm_df": list(self.qm_df) if self.qm_df else None,
                        "qm_p": self.qm_p, "r2": self.r2})
        out.update({
            "method": self.method, "method_used": self.method_used, "converged": self.converged,
            "test": self.test, "level": self.level, "k": self.k, "p": self.p,
            "terms": list(self.terms), "loglik": self.loglik, "loglik_reml": self.loglik_reml,
            "warnings": list(self.warnings), "notes": list(self.notes),
            "excluded": [str(e) for e in self.excluded],
            "none_reasons": reasons,
        })
        return out

    # -- heterogeneity interval --------------------------------------------------------------
    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Q-profile confidence intervals for tau2, tau, I2 (percent) and H2.

        Returns a DataFrame indexed ``tau2, tau, i2, h2`` with columns ``estimate, ci_low,
        ci_high, note``; ``note`` says when a limit is only known to lie beyond the search range
        (metafor's ``lb.sign``/``ub.sign``: ``"<"``, ``">"``), or that the interval is the null
        set. The signs are also in ``attrs["lb_sign"]``, ``attrs["ub_sign"]``.
        (metafor: ``confint(fit)``; Viechtbauer 2007, doi:10.1002/sim.2514.)
        """
        level = self.level if level is None else _check_level(level)
        if self.method == "EE":
            raise InputError(Problem("the equal-effects model has no between-study variance, so "
                                     "there is no interval for tau2; fit a random-effects method",
                                     column="method", value="EE"))
        if self.tau2_fixed:
            raise InputError(Problem("tau2 was fixed, not estimated; there is no interval for it",
                                     column="tau2", value=self.tau2))
        if self.k <= self.p:
            raise InputError(Problem(f"k = {self.k}: no residual degrees of freedom, so no "
                                     "interval for tau2", column="yi", value=self.k))
        assert self.vt is not None and self.i2 is not None and self.h2 is not None
        qp = q_profile(self.yi, self.vi, self.X, level, self.tau2, self.control)
        vt = self.vt

        def i2(t: float) -> float:
            return 100.0 * t / (vt + t)

        def h2(t: float) -> float:
            return t / vt + 1.0

        note = ""
        if qp.null_set:
            note = ("null set: Q is below the lower chi-square quantile even at tau2 = 0 "
                    "(both limits < 0)")
        elif qp.low_sign == ">":
            note = f"both limits > {qp.tau2_max:g} (the end of the search range)"
        elif qp.high_sign == ">":
            note = f"upper limit > {qp.tau2_max:g} (the end of the search range)"
        table = pd.DataFrame(
            {"estimate": [self.tau2, self.tau, self.i2, self.h2],
             "ci_low": [qp.tau2_low, math.sqrt(qp.tau2_low), i2(qp.tau2_low), h2(qp.tau2_low)],
             "ci_high": [qp.tau2_high, math.sqrt(qp.tau2_high), i2(qp.tau2_high),
                         h2(qp.tau2_high)],
             "note": [note] * 4},
            index=pd.Index(["tau2", "tau", "i2", "h2"], name="parameter"))
        table.attrs.update({"lb_sign": qp.low_sign, "ub_sign": qp.high_sign,
                            "null_set": qp.null_set, "level": level, "tau2_max": qp.tau2_max,
                            "header": f"Q-profile {100 * level:g}% confidence intervals"})
        if not qp.converged:
            warn("root finding for a Q-profile limit did not converge", ConvergenceWarning)
        return table

    # -- predictions -------------------------------------------------------------------------
    def predict(self, newmods: Any = None, level: float | None = None) -> pd.DataFrame:
        """Predicted (average) effects with confidence and prediction intervals.

        Pooled model: one row, the pooled estimate. With moderators: one row per row of
        ``newmods`` (a DataFrame with the moderator columns, or an array of the non-intercept
        columns), or the fitted value of every study when ``newmods`` is ``None``.
        Columns ``pred, se, ci_low, ci_high, pi_low, pi_high`` (no PI for the EE model).
        (metafor: ``predict(fit, newmods=...)``.)
        """
        level = self.level if level is None else _check_level(level)
        if newmods is None:
            rows = self.X[:1] if self.intercept_only else self.X
            index = pd.Index(["pooled"] if self.intercept_only else list(self.labels))
        else:
            rows = self.design.new_rows(newmods)
            index = (newmods.index if isinstance(newmods, pd.DataFrame)
                     else pd.RangeIndex(rows.shape[0]))
        pred = rows @ self.beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", rows, self.cov, rows))
        crit = critical_value(level, self.df)
        out = {"pred": pred, "se": se, "ci_low": pred - crit * se, "ci_high": pred + crit * se}
        if self.method != "EE" and self.k > self.p:
            lo, hi, _ = prediction_interval(pred, se, self.tau2, self.df, level)
            out.update({"pi_low": lo, "pi_high": hi})
        table = pd.DataFrame(out, index=index)
        table.attrs["header"] = self._header()
        return table

    def blup(self, level: float | None = None) -> pd.DataFrame:
        """Best linear unbiased predictions of the study-specific true effects.

        pred_i = l_i y_i + (1 - l_i) x_i'beta with l_i = tau2 / (tau2 + v_i), variance
        l_i v_i + (1 - l_i)^2 x_i' Vb x_i; interval pred +/- crit se (Raudenbush & Bryk 1985,
        doi:10.3102/10769986010002075; metafor's ``blup``). Columns ``pred, se, pi_low,
        pi_high`` indexed by study.
        """
        level = self.level if level is None else _check_level(level)
        li = self.tau2 / (self.tau2 + self.vi)
        fitted = self.X @ self.beta
        pred = li * self.yi + (1.0 - li) * fitted
        xvx = np.einsum("ij,jk,ik->i", self.X, self.cov, self.X)
        se = np.sqrt(li * self.vi + (1.0 - li) ** 2 * xvx)
        crit = critical_value(level, self.df)
        table = pd.DataFrame({"pred": pred, "se": se, "pi_low": pred - crit * se,
                              "pi_high": pred + crit * se},
                             index=pd.Index(self.labels, name="study"))
        table.attrs["header"] = self._header()
        return table

    def refit(self, keep: Any = None, *, tau2: float | None = None, method: str | None = None,
              test: str | None = None, level: float | None = None) -> RmaResult:
        """The same model refitted on the studies ``keep`` (a boolean mask or positions), or
        with tau2 fixed; see :func:`refit`."""
        return refit(self, keep, tau2=tau2, method=method, test=test, level=level)


# ---------------------------------------------------------------------------------------------
# the fit itself


def _check_method(method: Any) -> str:
    name = str(method).upper() if isinstance(method, str) else method
    name = ALIASES.get(name, name)
    if name not in METHODS:
        raise InputError(Problem(f"unknown tau2 estimator; expected one of {', '.join(METHODS)} "
                                 "(FE is an alias of EE)", column="method", value=method))
    return name


def _check_test(test: Any) -> str:
    if test not in TESTS:
        raise InputError(Problem("test must be 'z' (Wald) or 'knha' (Knapp-Hartung)",
                                 column="test", value=test))
    return test


def _check_level(level: Any) -> float:
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise InputError(Problem("level must be a coverage strictly between 0 and 1, e.g. 0.95",
                                 column="level", value=level))
    return value


def _check_tau2(tau2: Any) -> float | None:
    if tau2 is None:
        return None
    try:
        value = float(tau2)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value >= 0.0):
        raise InputError(Problem("a fixed tau2 must be a finite number >= 0", column="tau2",
                                 value=tau2))
    return value


def fit_arrays(yi: np.ndarray, vi: np.ndarray, design: Design, *,
               labels: Sequence[str] | None = None, method: str = "REML", test: str = "z",
               level: float = DEFAULTS.level, tau2: float | None = None,
               control: FitControl = DEFAULT_CONTROL, measure: str | None = None,
               warnings: Sequence[str] = (), notes: Sequence[str] = (),
               data_rows: Sequence[int | None] | None = None) -> RmaResult:
    """Fit the model to clean arrays (the engine under :func:`rma` and :func:`refit`).

    ``yi``/``vi`` must be finite float arrays with vi > 0 and ``design`` must match them; no
    validation beyond the model's own requirements happens here. ``data_rows``: each study's
    1-based table row (default: ``design.rows + 1``).
    """
    method = ALIASES.get(method, method)
    X = design.matrix
    k, p = X.shape
    y = yi
    v = vi
    warns = list(warnings)
    note_list = list(notes)
    reasons: dict[str, str] = {}
    if test == "knha" and k <= p:
        raise InputError(Problem(f"the Knapp-Hartung test needs more studies than coefficients "
                                 f"(k = {k}, p = {p}); use test='z'", column="test",
                                 value="knha"))
    if tau2 is not None and method != "EE":
        est = Tau2Estimate(tau2, None, method, "fixed", notes=(f"tau2 fixed at {tau2:g}",))
    else:
        est = estimate_tau2(y, v, X, method, control)
    t = est.tau2
    warns.extend(est.warnings)
    note_list.extend(est.notes)
    for msg in est.warnings:
        warn(msg, ConvergenceWarning)
    if est.se is None:
        reasons["se_tau2"] = ("equal-effects model: no tau2" if method == "EE" else
                              "tau2 was fixed, not estimated" if est.method_used == "fixed" else
                              est.se_reason if est.se_reason is not None else
                              "tau2 was not estimated (no residual degrees of freedom)")

    c = fit_at(y, v, X, t, test, level, design.intercept_only, design.intercept)
    if test == "knha":
        knha_warnings = []
        if method == "EE":
            knha_warnings.append("the Knapp-Hartung method is not meant for equal-effects "
                                 "models (metafor warns the same)")
        if c.s2w == 0.0:
            knha_warnings.append("every residual is zero, so the Knapp-Hartung scale factor "
                                 "is 0 and the standard errors are 0")
        for msg in knha_warnings:
            warns.append(msg)
            warn(msg)

    qm = qm_p = None
    qm_df: tuple[int, ...] | None = None
    if design.intercept_only:
        reasons["qm"] = reasons["qm_p"] = "intercept-only model: no moderators to test"
    else:
        idx = np.arange(1, p) if design.intercept else np.arange(p)
        qm_df = (idx.size,) if c.df is None else (idx.size, c.df)
        omni = omnibus_test(c.beta, c.cov, idx, c.df)
        if omni is not None:
            qm, qm_p = omni.statistic, omni.pval
        elif c.s2w == 0.0:
            reasons["qm"] = reasons["qm_p"] = (
                "every residual is zero, so the Knapp-Hartung scale factor and with it the "
                "covariance of the coefficients are 0: the omnibus F test does not exist "
                "(metafor: NA); test='z' gives the Wald test")
        else:
            reasons["qm"] = reasons["qm_p"] = (
                "the covariance matrix of the tested coefficients is not positive definite "
                "(rounding with sampling variances this far apart), so the omnibus test does "
                "not exist (metafor: NA)")

    i2 = h2 = None
    if c.qe is not None:
        assert c.vt is not None
        i2, h2 = i2_h2(method, t, CochranQ(c.qe, k - p, c.qe_p, c.vt))
    else:
        for key in ("qe", "qe_p", "i2", "h2"):
            reasons[key] = f"k = {k} with p = {p}: no residual degrees of freedom"

    pi_low = pi_high = pi_se = None
    if not design.intercept_only:
        reasons["pi_low"] = reasons["pi_high"] = (
            "meta-regression: the prediction interval depends on moderator values; use "
            "predict(newmods)")
    elif method == "EE":
        reasons["pi_low"] = reasons["pi_high"] = (
            "equal-effects model: no between-study variance, so no prediction interval "
            "(as metafor)")
    elif k <= p:
        reasons["pi_low"] = reasons["pi_high"] = (
            f"k = {k}: tau2 cannot be estimated, so there is no prediction interval")
    else:
        lo, hi, ps = prediction_interval(float(c.beta[0]), float(c.se[0]), t, c.df, level)
        pi_low, pi_high, pi_se = float(lo), float(hi), float(ps)

    r2 = None
    if design.intercept_only:
        reasons["r2"] = "intercept-only model"
    elif not design.intercept:
        reasons["r2"] = "model without an intercept (metafor reports no R2 either)"
    elif method == "EE":
        reasons["r2"] = "equal-effects model: no tau2 to explain"
    elif est.method_used == "fixed":
        reasons["r2"] = "tau2 was fixed, not estimated"
    elif k <= p:
        reasons["r2"] = f"k = {k} with p = {p}: tau2 was not estimated"
    else:
        ones = np.ones((k, 1))
        tau2_0 = estimate_tau2(y, v, ones, method, control).tau2
        r2 = 0.0 if tau2_0 == 0.0 else max(0.0, 100.0 * (tau2_0 - t) / tau2_0)

    if k > 1:
        ratio = math.sqrt(float(v.max() / v.min()))
        if ratio > DEFAULTS.se_ratio_warn:
            msg = (f"the largest standard error is {ratio:.3g} times the smallest (above "
                   f"{DEFAULTS.se_ratio_warn:g}); results may be numerically fragile")
            warns.append(msg)
            warn(msg)

    if labels is None:
        labels = tuple(f"study {i + 1}" for i in range(k))
    rows = (tuple(int(r) + 1 for r in design.rows) if data_rows is None
            else tuple(None if r is None else int(r) for r in data_rows))
    return RmaResult(
        yi=_readonly(y), vi=_readonly(v), X=X, terms=design.terms, labels=tuple(labels),
        measure=measure, method=method, method_used=est.method_used, test=test, level=level,
        tau2=t, se_tau2=est.se, tau2_fixed=est.method_used == "fixed", converged=est.converged,
        iterations=est.iterations, beta=_readonly(c.beta), cov=_readonly(c.cov),
        se=_readonly(c.se), stat=_readonly(c.stat), pval=_readonly(c.pval),
        ci_low=_readonly(c.ci_low), ci_high=_readonly(c.ci_high), df=c.df, s2w=c.s2w,
        weights=_readonly(c.weights), qe=c.qe, qe_df=k - p, qe_p=c.qe_p, i2=i2, h2=h2,
        vt=c.vt, qm=qm, qm_df=qm_df, qm_p=qm_p, r2=r2, pi_low=pi_low, pi_high=pi_high,
        pi_se=pi_se, loglik=c.loglik, loglik_reml=c.loglik_reml, design=design,
        control=control, warnings=tuple(warns), notes=tuple(note_list), none_reasons=reasons,
        data_rows=rows)


def refit(fit: RmaResult, keep: Any = None, *, tau2: float | None = None,
          method: str | None = None, test: str | None = None, level: float | None = None
          ) -> RmaResult:
    """Refit ``fit``'s model on a subset of its studies and/or with tau2 fixed.

    Parameters
    ----------
    keep
        Boolean mask of length k or integer positions of the studies to keep (``None``: all).
    tau2
        Fix tau2 at this value instead of estimating it (metafor's ``tau2=`` argument).
    method, test, level
        Override the fit's settings.

    The design matrix is subset as is (no re-encoding of categorical levels); a subset in which
    the moderators become collinear is an :class:`InputError` naming the columns.
    Used by leave-one-out, influence diagnostics and trim-and-fill.
    """
    method = fit.method if method is None else _check_method(method)
    test = fit.test if test is None else _check_test(test)
    level = fit.level if level is None else _check_level(level)
    tau2 = _check_tau2(tau2)
    design = fit.design
    y, v, labels = fit.yi, fit.vi, fit.labels
    rows = fit.data_rows or tuple(int(r) + 1 for r in design.rows)
    if keep is not None:
        idx = np.asarray(keep)
        if idx.dtype == bool:
            if idx.size != fit.k:
                raise InputError(Problem(f"a keep mask needs {fit.k} entries", column="keep",
                                         value=idx.size))
            idx = np.flatnonzero(idx)
        idx = idx.astype(int)
        if idx.size == 0:
            raise InputError(Problem("no studies left to fit", column="keep", value=0))
        design = design.subset(idx)
        check_full_rank(design.matrix, design.terms, "the moderators of the refit")
        y, v = y[idx].copy(), v[idx].copy()
        labels = tuple(labels[i] for i in idx)
        rows = tuple(rows[i] for i in idx)
    else:
        y, v = y.copy(), v.copy()
    return fit_arrays(y, v, design, labels=labels, method=method, test=test, level=level,
                      tau2=tau2, control=fit.control, measure=fit.measure, data_rows=rows)


# ---------------------------------------------------------------------------------------------
# subgroups


@dataclass(frozen=True, eq=False)
class SubgroupResult:
    """A subgroup analysis: one model per level, and two tests of subgroup differences.

    Attributes
    ----------
    variable
        The column defining the subgroups.
    levels
        Its levels (reference first).
    fits
        ``{level: RmaResult}``: each level's own model (its own tau2).
    moderator_fit
        The mixed-effects model with the subgroup as moderator (intercept = reference level,
        one common tau2); its ``qm``/``qm_p`` test subgroup differences (metafor:
        ``rma(yi, vi, mods = ~ factor(variable))``).
    q_between, q_between_df, q_between_p
        Q-between from the separate fits: the heterogeneity statistic of the level estimates
        with their standard errors, fitted as an equal-effects model (the review's and
        metafor's ``rma(estimates, sei=ses, method="EE")$QE``), df = levels - 1. ``None``
        when a level's estimate has standard error 0 (Knapp-Hartung with every residual zero
        in that level).
    overall
        The model fitted to all studies together.
    method, test, level
        Settings shared by every fit.
    excluded
        Studies left out because their subgroup is missing (``missing="exclude"``).
    warnings
        Messages from the fits, prefixed by the level.
    none_reasons
        Why ``qm``/``qm_p`` or ``q_between``/``q_between_p`` are ``None``, when they are.
    """

    variable: str
    levels: tuple[Any, ...]
    fits: Mapping[Any, RmaResult]
    moderator_fit: RmaResult
    q_between: float | None
    q_between_df: int
    q_between_p: float | None
    overall: RmaResult
    method: str
    test: str
    level: float
    excluded: tuple[Exclusion, ...] = ()
    warnings: tuple[str, ...] = ()
    none_reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def qm(self) -> float | None:
        """Moderator test of the common-tau2 model (chi-square, or F under knha); ``None``
        when it does not exist (see ``none_reasons``)."""
        return self.moderator_fit.qm

    @property
    def qm_df(self) -> tuple[int, ...]:
        assert self.moderator_fit.qm_df is not None
        return self.moderator_fit.qm_df

    @property
    def qm_p(self) -> float | None:
        return self.moderator_fit.qm_p

    @property
    def k_per_level(self) -> tuple[int, ...]:
        return tuple(self.fits[lv].k for lv in self.levels)

    @cached_property
    def cell_means_fit(self) -> RmaResult:
        """The common-tau2 model without intercept: one coefficient per level (metafor:
        ``mods = ~ factor(variable) - 1``)."""
        m = self.moderator_fit
        # each row of the moderator design has at most one dummy set: its level's position
        codes = (m.X[:, 1:] @ np.arange(1, m.p)).astype(int)
        X = np.zeros((m.k, len(self.levels)))
        X[np.arange(m.k), codes] = 1.0
        X.flags.writeable = False
        terms = tuple(f"{self.variable}[{lv}]" for lv in self.levels)
        design = Design(X, terms, False, m.design.rows)
        return fit_arrays(m.yi.copy(), m.vi.copy(), design, labels=m.labels, method=self.method,
                          test=self.test, level=self.level, control=m.control,
                          measure=m.measure, data_rows=m.data_rows)

    def summary(self) -> pd.DataFrame:
        """One row per level (and ``overall``): k, estimate, se, CI, p, tau2, I2, QE."""
        rows = {}
        for name, fit in [*((lv, self.fits[lv]) for lv in self.levels),
                          ("overall", self.overall)]:
            rows[str(name)] = {"k": fit.k, "estimate": fit.beta[0], "se": fit.se[0],
                               "ci_low": fit.ci_low[0], "ci_high": fit.ci_high[0],
                               "pval": fit.pval[0], "tau2": fit.tau2, "i2": fit.i2,
                               "qe": fit.qe}
        table = pd.DataFrame.from_dict(rows, orient="index").astype(
            {"k": "Int64", "i2": "Float64", "qe": "Float64"})
        table.index.name = self.variable

        def test(name: str, df: str, stat: float | None, pval: float | None) -> str:
            if stat is None or pval is None:
                return f"{name}({df}) does not exist"
            return f"{name}({df}) = {stat:.4g}, p = {pval:.4g}"

        table.attrs["header"] = (
            f"Subgroups by {self.variable} ({self.method}, test {self.test}); "
            + test("QM", ", ".join(map(str, self.qm_df)), self.qm, self.qm_p) + "; "
            + test("Q-between", str(self.q_between_df), self.q_between, self.q_between_p))
        table.attrs["none_reasons"] = dict(self.none_reasons)
        return table

    def to_dict(self) -> dict[str, Any]:
        """Stable keys: ``variable, levels, k_per_level, subgroups`` (level -> the fit's
        ``to_dict()``), ``qm, qm_df, qm_p`` (common-tau2 moderator test), ``q_between,
        q_between_df, q_between_p`` (separate fits), ``overall``, ``method, test, level,
        excluded, warnings, none_reasons`` (why a test is ``None``)."""
        return {
            "variable": self.variable, "levels": [str(lv) for lv in self.levels],
            "k_per_level": list(self.k_per_level),
            "subgroups": {str(lv): self.fits[lv].to_dict() for lv in self.levels},
            "qm": self.qm, "qm_df": list(self.qm_df), "qm_p": self.qm_p,
            "q_between": self.q_between, "q_between_df": self.q_between_df,
            "q_between_p": self.q_between_p, "overall": self.overall.to_dict(),
            "method": self.method, "test": self.test, "level": self.level,
            "excluded": [str(e) for e in self.excluded], "warnings": list(self.warnings),
            "none_reasons": dict(self.none_reasons),
        }


def _subgroup_analysis(y: np.ndarray, v: np.ndarray, labels: tuple[str, ...],
                       data: pd.DataFrame | None, variable: Any, *, method: str, test: str,
                       level: float, reference: Any, missing: str, tau2: float | None,
                       control: FitControl, measure: str | None,
                       dropped: Sequence[str] = ()) -> SubgroupResult:
    ref = reference.get(variable) if isinstance(reference, Mapping) else reference
    g = grouping(data, variable, labels=labels, reference=ref, missing=missing)
    if len(g.levels) < 2:
        raise InputError(Problem(f"a subgroup analysis needs at least two levels; {variable} "
                                 f"only has {', '.join(map(str, g.levels))}", column=variable))
    rows = _table_rows(data, y.size)[g.rows]
    y, v = y[g.rows], v[g.rows]
    labels = tuple(labels[i] for i in g.rows)
    warns = [str(e) for e in g.excluded]
    for msg in warns:
        warn(msg)
    warns = [*dropped, *warns]
    fits: dict[Any, RmaResult] = {}
    for code, lv in enumerate(g.levels):
        mask = g.codes == code
        sub_labels = tuple(lab for lab, m in zip(labels, mask, strict=True) if m)
        try:
            fit = fit_arrays(y[mask], v[mask], intercept_only(int(mask.sum())),
                             labels=sub_labels, method=method, test=test, level=level,
                             tau2=tau2, control=control, measure=measure,
                             data_rows=rows[mask].tolist())
        except InputError as exc:
            raise InputError(Problem(f"subgroup {variable} = {lv}: {exc}",
                                     column=variable)) from exc
        fits[lv] = fit
        warns.extend(f"{variable} = {lv}: {w}" for w in fit.warnings)
    k = y.size
    X = np.zeros((k, len(g.levels)))
    X[:, 0] = 1.0
    for code in range(1, len(g.levels)):
        X[g.codes == code, code] = 1.0
    X.flags.writeable = False
    terms = (INTERCEPT, *(f"{variable}[T.{lv}]" for lv in g.levels[1:]))
    design = Design(X, terms, True, g.rows, g.excluded, f"~ {variable}",
                    {variable: tuple(g.levels)})
    moderator_fit = fit_arrays(y.copy(), v.copy(), design, labels=labels, method=method,
                               test=test, level=level, tau2=tau2, control=control,
                               measure=measure, data_rows=rows.tolist())
    est = np.array([fits[lv].beta[0] for lv in g.levels])
    se = np.array([fits[lv].se[0] for lv in g.levels])
    qb_df = len(g.levels) - 1
    qb = qb_p = None
    reasons: dict[str, str] = {}
    if se.min() > 0.0:
        qb = float(weighted_fit(est, 1.0 / se**2, np.ones((est.size, 1))).rss)
        qb_p = float(special.chdtrc(qb_df, qb))
    else:
        zero = [str(lv) for lv, s in zip(g.levels, se, strict=True) if s == 0.0]
        which = (f"the estimate of {variable} = {zero[0]} has" if len(zero) == 1 else
                 f"the estimates of {variable} = {', '.join(zero)} have")
        reasons["q_between"] = reasons["q_between_p"] = (
            f"{which} standard error 0 (Knapp-Hartung with every residual zero within the "
            "subgroup), so the weight in Q-between is infinite and the test does not exist; "
            "test='z' gives it")
    if moderator_fit.qm is None:
        reasons["qm"] = reasons["qm_p"] = moderator_fit.none_reasons["qm"]
    overall = fit_arrays(y.copy(), v.copy(), intercept_only(k), labels=labels, method=method,
                         test=test, level=level, tau2=tau2, control=control, measure=measure,
                         data_rows=rows.tolist())
    return SubgroupResult(variable, tuple(g.levels), fits, moderator_fit, qb, qb_df, qb_p,
                          overall, method, test, level, g.excluded, tuple(warns), reasons)


# ---------------------------------------------------------------------------------------------
# the API


def _table_rows(data: pd.DataFrame | None, n: int) -> np.ndarray:
    """The 1-based row number of each of the n rows of ``data``: read_studies' ``row`` index
    (the source file's data rows) when the table carries it, else the position, as the input
    layer's error messages count rows."""
    if (data is not None and data.index.name == "row"
            and pd.api.types.is_integer_dtype(data.index.dtype)):
        return np.asarray(data.index, dtype=np.int64)
    return np.arange(1, n + 1)


def _fast_arrays(yi: Any, vi: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Clean float arrays skip the table machinery (the common case inside loops); anything
    else, or any bad value, goes through :func:`resolve_effects` for its error messages."""
    if not (isinstance(yi, np.ndarray) and isinstance(vi, np.ndarray)):
        return None
    if yi.ndim != 1 or vi.shape != yi.shape or yi.size == 0:
        return None
    if yi.dtype.kind not in "fiu" or vi.dtype.kind not in "fiu":
        return None
    y = np.array(yi, dtype=float)
    v = np.array(vi, dtype=float)
    # a sum is finite only if every term is (an overflowing sum just takes the slow path)
    if not (math.isfinite(float(y.sum())) and math.isfinite(float(v.sum()))
            and float(v.min()) > 0.0):
        return None
    return y, v


def rma(yi: Any, vi: Any, *, data: pd.DataFrame | None = None, method: str = "REML",
        mods: Any = None, test: str = "z", level: float = DEFAULTS.level,
        subgroup: str | None = None, labels: Any = None,
        reference: Mapping[str, Any] | Any = None, missing: str = "error",
        tau2: float | None = None, control: FitControl | None = None
        ) -> RmaResult | SubgroupResult:
    """Random-effects meta-analysis, meta-regression or subgroup analysis (metafor's ``rma``).

    Parameters
    ----------
    yi, vi
        Effect sizes and their sampling variances: arrays, or column names of ``data``.
    data
        The study table (validated: every bad value is reported with its row and study).
    method
        tau2 estimator: ``"REML"`` (default), ``"ML"``, ``"DL"``, ``"PM"``, ``"SJ"``, ``"HS"``,
        ``"HE"``, ``"EB"``, or ``"EE"`` (equal effects; ``"FE"`` is an alias).
    mods
        Moderators: a formula's right-hand side such as ``"~ weeks + comparator"`` evaluated
        in ``data`` (formulaic), or a DataFrame of moderator columns (an intercept is added).
    test
        ``"z"`` (Wald) or ``"knha"`` (Knapp-Hartung: t with k - p df, F omnibus test).
    level
        Confidence level of every interval (default ``DEFAULTS.level``).
    subgroup
        A column of ``data``: fit each level separately and test the differences; returns a
        :class:`SubgroupResult`.
    labels
        Study labels (or a column name); by default from ``data`` (study_id, label) or
        ``study 1..k``.
    reference
        Reference levels: ``{"column": "level"}`` for categorical moderators; for ``subgroup``
        a level (or the same mapping).
    missing
        ``"error"`` (default): a missing moderator or subgroup value is an error naming the
        row, study and column; ``"exclude"``: such studies are left out, and the result lists
        them (``excluded``) and warns.
    tau2
        Fix tau2 at this value instead of estimating it (metafor's ``tau2=``).
    control
        Convergence settings (:class:`~bayesmeta.frequentist.estimators.FitControl`); the
        defaults come from :data:`bayesmeta.DEFAULTS`.

    Returns
    -------
    RmaResult, or SubgroupResult when ``subgroup`` is given.

    Notes
    -----
    Equals metafor 3.8-1 run with tight convergence to 1e-6 relative; against metafor's default
    control settings expect ~1e-3 for iterative estimators (metafor's own stopping error).
    References: Viechtbauer (2010), doi:10.18637/jss.v036.i03; Knapp & Hartung (2003),
    doi:10.1002/sim.1482; Viechtbauer (2007), doi:10.1002/sim.2514.
    """
    method = _check_method(method)
    test = _check_test(test)
    level = _check_level(level)
    tau2 = _check_tau2(tau2)
    control = DEFAULT_CONTROL if control is None else control
    if subgroup is not None and mods is not None:
        raise InputError(Problem("give either mods= or subgroup=, not both (a subgroup is a "
                                 "categorical moderator: add it to the formula instead)",
                                 column="subgroup", value=subgroup))
    fast = _fast_arrays(yi, vi) if data is None and labels is None else None
    if fast is not None:
        y, v = fast
        labs: tuple[str, ...] | None = None
        measure = None
        dropped: list[str] = []
    else:
        effects = resolve_effects(yi, vi, data=data, labels=labels, context="rma")
        y, v, labs, measure = effects.yi, effects.vi, effects.labels, effects.measure
        # without the rows escalc dropped (drop00=True); resolve_effects has warned already
        data = effects.data
        dropped = [str(e) for e in effects.excluded]
        mods = align_moderators(mods, effects)
    if subgroup is not None:
        if labs is None:
            labs = tuple(f"study {i + 1}" for i in range(y.size))
        return _subgroup_analysis(y, v, labs, data, subgroup, method=method, test=test,
                                  level=level, reference=reference, missing=missing, tau2=tau2,
                                  control=control, measure=measure, dropped=dropped)
    warns: list[str] = list(dropped)
    table_rows = _table_rows(data, y.size)
    if mods is None:
        design = intercept_only(y.size)
    else:
        if isinstance(mods, pd.DataFrame) and len(mods) != y.size:
            raise InputError(Problem(f"the moderator table has {len(mods)} rows for {y.size} "
                                     "studies", column="mods", value=len(mods)))
        if labs is None:
            labs = tuple(f"study {i + 1}" for i in range(y.size))
        ref = reference if isinstance(reference, Mapping) or reference is None else None
        if reference is not None and ref is None:
            raise InputError(Problem("with mods=, reference must map moderator columns to "
                                     "levels, e.g. {'comparator': 'active'}",
                                     column="reference", value=reference))
        design = design_matrix(mods, data, labels=labs, reference=ref, missing=missing)
        if design.excluded:
            y, v = y[design.rows], v[design.rows]
            labs = tuple(labs[i] for i in design.rows)
            for exc in design.excluded:
                warns.append(str(exc))
                warn(str(exc))
    return fit_arrays(y, v, design, labels=labs, method=method, test=test, level=level,
                      tau2=tau2, control=control, measure=measure, warnings=warns,
                      data_rows=table_rows[design.rows].tolist())
