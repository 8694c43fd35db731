"""Influence diagnostics, leave-one-out analysis and outlier screening, as metafor 3.8-1.

Every diagnostic compares the model fitted to all k studies with the same model refitted without
study i (tau2 re-estimated by the same method, or kept at its value when it was fixed):

- externally studentized residual (metafor's ``rstudent``): y_i minus the prediction of the fit
  without i, over sqrt(s2w_(i) (v_i + tau2_(i)) + x_i' Vb_(i) x_i), where s2w is the
  Knapp-Hartung scale factor (1 under the z test) and Vb the covariance of the coefficients;
- DFFITS: the change in the fitted value, (x_i'b - x_i'b_(i)) / sqrt(s2w_(i) h_i (tau2_(i) + v_i));
- DFBETAS: (b - b_(i)) / sqrt(s2w_(i) diag((X'W_(i)X)^-1)), W_(i) = diag(1/(v + tau2_(i))) over all
  k studies;
- Cook's distance: (b - b_(i))' Vb^-1 (b - b_(i));
- covariance ratio: det(Vb_(i)) / det(Vb);
- hat values: diag(X (X'WX)^-1 X'W); weights in percent, 100 w_i / sum(w);
- tau2 and QE of the fit without i.

A study is *influential* by metafor's rules (``influence.rma.uni``, the ``inf`` column) when at
least one holds: |DFFITS| > 3 sqrt(p / (k - p)); Cook's distance above the median of a chi-square
with p degrees of freedom; hat > 3p/k; any |DFBETAS| > 1. metafor 3.8-1 does not use the
covariance ratio (its rule 1 +/- 3p/(k - p) is commented out in the source), and neither do we.

References: Viechtbauer & Cheung (2010), doi:10.1002/jrsm.11; Belsley, Kuh & Welsch (1980),
Regression Diagnostics, Wiley; Cook (1977), doi:10.1080/00401706.1977.10489493.

Every column equals metafor 3.8-1's tight-convergence values to 1e-6 relative and the flags agree
exactly (tests/test_influence_reference.py). Against metafor run with its default control, each
refit carries metafor's stopping error in tau2: up to ~3.5e-3 relative in ``tau2_del`` and the
leave-one-out tau2/I2, ~1e-3 or less elsewhere.

The k refits reuse the full fit's arrays and design directly (no validation or result object
per refit): a refit is one tau2 estimate and one weighted least-squares fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..config import DEFAULTS
from ..errors import InputError, Problem
from .core import Core, fit_at
from .estimators import Tau2Estimate, estimate_tau2
from .heterogeneity import CochranQ, i2_h2
from .rma import RmaResult

CORRECTIONS = ("bonferroni", "none")
# metafor sets residuals below this to exactly zero (its lm.influence-style guard)
_ZERO_RESIDUAL = 100.0 * np.finfo(float).eps


def _check_fit(fit: object, what: str) -> RmaResult:
    if not isinstance(fit, RmaResult):
        raise InputError(Problem(f"{what} needs a fitted model from rma() (a single model, not "
                                 "a subgroup analysis)", column="fit",
                                 value=type(fit).__name__))
    return fit


def _check_size(fit: RmaResult, what: str) -> None:
    # each fit without one study must keep a residual degree of freedom, or its tau2, QE and
    # Knapp-Hartung scale do not exist (metafor returns tau2 = 0 and NA there)
    if fit.k < fit.p + 2:
        raise InputError(Problem(
            f"{what} needs at least p + 2 = {fit.p + 2} studies (k = {fit.k}, p = {fit.p} "
            "coefficient(s)), so that the model without any one study can still estimate tau2 "
            "and QE", column="yi", value=fit.k))


@dataclass(frozen=True)
class _Deletion:
    """The model without one study: its tau2 estimate and the fit at that tau2."""

    estimate: Tau2Estimate
    core: Core


def _deletion_fits(fit: RmaResult) -> tuple[list[_Deletion | None], list[str]]:
    """Refit without each study in turn; ``None`` where the moderators become collinear."""
    k, p = fit.X.shape
    pooled = fit.intercept_only
    intercept = fit.design.intercept
    fixed = fit.tau2 if fit.tau2_fixed else None
    out: list[_Deletion | None] = []
    notes: list[str] = []
    for i in range(k):
        keep = np.arange(k) != i
        y, v, X = fit.yi[keep], fit.vi[keep], fit.X[keep]
        if not pooled and np.linalg.matrix_rank(X) < p:
            out.append(None)
            notes.append(f"{fit.labels[i]}: without this study the moderators are collinear "
                         "(a coefficient cannot be estimated), so its deletion diagnostics do "
                         "not exist (metafor reports NA)")
            continue
        if fixed is not None:
            est = Tau2Estimate(fixed, None, fit.method, "fixed")
        else:
            est = estimate_tau2(y, v, X, fit.method, fit.control)
        notes.extend(f"{fit.labels[i]} left out: {w}" for w in est.warnings)
        out.append(_Deletion(est, fit_at(y, v, X, est.tau2, fit.test, fit.level, pooled,
                                         intercept)))
    return out, notes


def _frame(columns: dict[str, Any], fit: RmaResult, index_name: str = "study") -> pd.DataFrame:
    """A table indexed by study label with the studies' table rows (``row``, nullable Int64:
    <NA> for an imputed study) first, then float64 columns; a float column with values that do
    not exist or are infinite (NaN or +/-inf inside this module only; the callers' notes say
    which) becomes pandas' Float64 with <NA> there. Bool columns pass through."""
    rows = fit.data_rows or tuple(int(r) + 1 for r in fit.design.rows)
    data: dict[str, Any] = {"row": pd.array(list(rows), dtype="Int64")}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype == bool:
            data[name] = values
            continue
        missing = ~np.isfinite(values)
        data[name] = (pd.arrays.FloatingArray(np.where(missing, 0.0, values), missing)
                      if missing.any() else values.astype(float))
    return pd.DataFrame(data, index=pd.Index(list(fit.labels), name=index_name))


def dfbetas_column(term: str) -> str:
    """The column holding the DFBETAS of coefficient ``term`` (e.g. ``dfbetas_intercept``)."""
    return f"dfbetas_{term}"


@dataclass(frozen=True)
class _Diagnostics:
    """The influence columns as arrays (NaN only internally, where ``exists`` is False), each
    rule's flags, the rules' cut-offs and notes."""

    columns: dict[str, np.ndarray]
    exists: np.ndarray
    flags: dict[str, np.ndarray]
    thresholds: dict[str, float]
    notes: list[str]

    @property
    def influential(self) -> np.ndarray:
        return np.logical_or.reduce(list(self.flags.values()))


def _thresholds(k: int, p: int) -> dict[str, float]:
    """metafor's cut-offs for its influence rules."""
    return {"cooks_d": float(special.chdtri(p, 0.5)),  # the median of chi-square(p)
            "hat": 3.0 * p / k,
            "dffits": 3.0 * math.sqrt(p / (k - p)),
            "dfbetas": 1.0}


def _diagnostics(fit: RmaResult) -> _Diagnostics:
    k, p = fit.X.shape
    X, y, v = fit.X, fit.yi, fit.vi
    w = fit.weights
    unscaled = np.linalg.inv((X * w[:, None]).T @ X)  # (X'WX)^-1 without the knha factor
    hat = w * np.einsum("ij,jk,ik->i", X, unscaled, X)
    weight = 100.0 * w / float(w.sum())
    deletions, notes = _deletion_fits(fit)
    exists = np.array([d is not None for d in deletions])
    fitted = [d for d in deletions if d is not None]
    # the deleted fits stacked: tau2, s2w (1 under the z test), coefficients, covariances
    t2 = np.array([d.estimate.tau2 for d in fitted])
    s2w = np.array([1.0 if d.core.s2w is None else d.core.s2w for d in fitted])
    beta = np.array([d.core.beta for d in fitted]).reshape(-1, p)
    cov = np.array([d.core.cov for d in fitted]).reshape(-1, p, p)
    qe = np.array([d.core.qe for d in fitted], dtype=float)
    Xo, yo, vo, ho = X[exists], y[exists], v[exists], hat[exists]

    delpred = np.einsum("ij,ij->i", Xo, beta)
    vdelpred = np.einsum("ij,ijk,ik->i", Xo, cov, Xo)
    resid = yo - delpred
    resid[np.abs(resid) < _ZERO_RESIDUAL] = 0.0
    # (X'W_(i)X)^-1 over all k studies at each deleted tau2
    w_del = 1.0 / (v[None, :] + t2[:, None])
    vb_del = np.linalg.inv(np.einsum("ij,jk,jl->ikl", w_del, X, X))
    change = fit.beta[None, :] - beta
    # Knapp-Hartung with every residual zero has s2w = 0 (metafor's rule): a ratio over it is
    # infinite or 0/0; those values are NaN/inf here and <NA> in the tables (see the notes)
    with np.errstate(divide="ignore", invalid="ignore"):
        rstudent = resid / np.sqrt(vo * s2w + vdelpred + t2 * s2w)
        dffits = (Xo @ fit.beta - delpred) / np.sqrt(s2w * ho * (t2 + vo))
        dfbetas = change / np.sqrt(s2w[:, None] * np.diagonal(vb_del, axis1=1, axis2=2))
    if fit.s2w == 0.0:
        rstudent = np.full(len(fitted), np.nan)
        dffits, cooks, cov_r = rstudent.copy(), rstudent.copy(), rstudent.copy()
        dfbetas[:] = np.nan
        notes.append("every residual of the model is zero, so its Knapp-Hartung scale factor "
                     "and the covariance of its coefficients are 0: rstudent, Cook's distance, "
                     "DFFITS, the covariance ratio and DFBETAS do not exist (metafor stops with "
                     "an error); hat, weight, tau2_del and qe_del are reported, and test='z' "
                     "gives every diagnostic")
    else:
        cooks = np.einsum("ij,jk,ik->i", change, np.linalg.inv(fit.cov), change)
        cov_r = np.linalg.det(cov) / float(np.linalg.det(fit.cov))
        # without study i the others fit exactly: a change in a fitted value or coefficient
        # over a zero scale has no meaningful size (rounding decides its sign and whether it
        # is 0), while study i's own residual is real and its rstudent infinite, as metafor's
        dffits[s2w == 0.0] = np.nan
        dfbetas[s2w == 0.0] = np.nan
        labels = np.asarray(fit.labels, dtype=object)[exists]
        for i in np.flatnonzero(s2w == 0.0):
            outcome = ("its rstudent is infinite (<NA> in the table; it counts as an outlier, "
                       "as metafor's Inf)" if np.isinf(rstudent[i]) else
                       "its rstudent does not exist")
            notes.append(f"{labels[i]}: without this study every residual is zero (the other "
                         "studies fit the model exactly), so the Knapp-Hartung scale factor is "
                         f"0: {outcome}, and its DFFITS and DFBETAS do not exist")

    def full(values: np.ndarray) -> np.ndarray:
        out = np.full(k, np.nan)
        out[exists] = values
        return out

    columns = {"rstudent": full(rstudent), "cooks_d": full(cooks), "hat": hat,
               "dffits": full(dffits), "cov_r": full(cov_r), "tau2_del": full(t2),
               "qe_del": full(qe), "weight": weight}
    dfbetas_full = np.full((k, p), np.nan)
    dfbetas_full[exists] = dfbetas
    for j, term in enumerate(fit.terms):
        columns[dfbetas_column(term)] = dfbetas_full[:, j]
    thresholds = _thresholds(k, p)
    # NaN compares False: a value that does not exist never flags (metafor's
    # is.infl & !is.na(is.infl))
    with np.errstate(invalid="ignore"):
        flags = {"dffits": np.abs(columns["dffits"]) > thresholds["dffits"],
                 "cooks_d": columns["cooks_d"] > thresholds["cooks_d"],
                 "hat": hat > thresholds["hat"],
                 "dfbetas": np.any(np.abs(dfbetas_full) > thresholds["dfbetas"], axis=1)}
    return _Diagnostics(columns, exists, flags, thresholds, notes)


def influence(fit: RmaResult) -> pd.DataFrame:
    """Case-deletion diagnostics of every study (metafor's ``influence(fit)``).

    Parameters
    ----------
    fit
        A model from :func:`~bayesmeta.rma` (pooled or with moderators; any tau2 method, z or
        Knapp-Hartung test, estimated or fixed tau2). Needs k >= p + 2.

    Returns
    -------
    pandas.DataFrame
        Indexed by study label, columns ``row`` (the study's 1-based row in the input table,
        see :attr:`~bayesmeta.frequentist.rma.RmaResult.data_rows`; nullable Int64),
        ``rstudent`` (externally studentized residual),
        ``cooks_d``, ``hat``, ``dffits``, ``cov_r`` (covariance ratio), ``tau2_del`` and
        ``qe_del`` (tau2 and QE without the study), ``weight`` (percent), one
        ``dfbetas_<term>`` column per coefficient, and ``influential`` (bool, metafor's ``inf``
        flag: see the module docstring for the rules). metafor's names: ``rstudent, cook.d,
        hat, dffits, cov.r, tau2.del, QE.del, weight, dfbs``.

        Where the model without a study cannot be fitted (its moderators become collinear),
        or a value does not exist or is infinite (Knapp-Hartung with every residual zero: its
        scale factor is 0), the values are ``<NA>`` (the columns are then pandas' Float64) and
        ``attrs["notes"]`` says why; ``attrs`` also holds ``k``, ``p`` and ``thresholds`` (the
        influence rules' cut-offs).

    References
    ----------
    Viechtbauer & Cheung (2010), doi:10.1002/jrsm.11.
    """
    fit = _check_fit(fit, "influence diagnostics")
    _check_size(fit, "influence diagnostics")
    diag = _diagnostics(fit)
    table = _frame({**diag.columns, "influential": diag.influential}, fit)
    table.attrs.update({"k": fit.k, "p": fit.p, "thresholds": diag.thresholds,
                        "notes": diag.notes,
                        "header": f"Influence diagnostics ({fit._header()})"})
    return table


def leave_one_out(fit: RmaResult) -> pd.DataFrame:
    """The pooled model refitted without each study in turn (metafor's ``leave1out(fit)``).

    Parameters
    ----------
    fit
        A pooled (intercept-only) model from :func:`~bayesmeta.rma`; with moderators use
        :func:`influence` (DFBETAS), as metafor, which refuses too. Needs k >= 3.

    Returns
    -------
    pandas.DataFrame
        Indexed by the study left out, columns ``row`` (its 1-based row in the input table),
        ``estimate, se, zval`` (``tval`` under the Knapp-Hartung test; ``<NA>`` where it is
        infinite, see ``attrs["notes"]``), ``pval, ci_low, ci_high, qe, qe_p, tau2, i2, h2`` of
        the model without it (same tau2 method, test and level; tau2 kept when it was fixed; I2
        in percent). metafor's names: ``estimate, se, zval, pval, ci.lb, ci.ub, Q, Qp, tau2, I2,
        H2``.
    """
    fit = _check_fit(fit, "the leave-one-out analysis")
    if not fit.intercept_only:
        raise InputError(Problem("the leave-one-out analysis is for pooled models (metafor's "
                                 "leave1out refuses models with moderators too); for a "
                                 "meta-regression use influence(fit), whose dfbetas_* columns "
                                 "show each coefficient's change", column="mods",
                                 value=fit.design.formula))
    _check_size(fit, "the leave-one-out analysis")
    deletions, notes = _deletion_fits(fit)
    df = fit.k - 2
    rows: dict[str, list[float | None]] = {name: [] for name in
                                           ("estimate", "se", fit.stat_name, "pval", "ci_low",
                                            "ci_high", "qe", "qe_p", "tau2", "i2", "h2")}
    for label, d in zip(fit.labels, deletions, strict=True):
        assert d is not None  # a pooled model never loses rank
        c = d.core
        if not math.isfinite(c.stat[0]):
            notes.append(f"{label} left out: every residual is zero, so the Knapp-Hartung scale "
                         f"factor and standard error are 0 and {fit.stat_name} is infinite "
                         "(<NA> in the table; as in the fit's to_dict())")
        assert c.qe is not None and c.qe_p is not None and c.vt is not None
        i2, h2 = i2_h2(fit.method, d.estimate.tau2, CochranQ(c.qe, df, c.qe_p, c.vt))
        for name, value in (("estimate", c.beta[0]), ("se", c.se[0]),
                            (fit.stat_name, c.stat[0]), ("pval", c.pval[0]),
                            ("ci_low", c.ci_low[0]), ("ci_high", c.ci_high[0]),
                            ("qe", c.qe), ("qe_p", c.qe_p), ("tau2", d.estimate.tau2),
                            ("i2", i2), ("h2", h2)):
            rows[name].append(float(value))
    table = _frame(rows, fit, "left_out")
    table.attrs.update({"notes": notes, "level": fit.level,
                        "header": f"Leave-one-out ({fit._header()})"})
    return table


def outliers(fit: RmaResult, alpha: float = DEFAULTS.outlier_alpha,
             correction: str = "bonferroni") -> pd.DataFrame:
    """Flag outlying and influential studies.

    A study is an *outlier* when its externally studentized residual exceeds the two-sided
    bound |rstudent| > Phi^-1(1 - alpha / (2k)) (``correction="bonferroni"``, the review's rule;
    ``"none"``: Phi^-1(1 - alpha / 2)). Separately, it is *influential* by metafor's rules
    (``influence.rma.uni``'s ``inf`` flag): Cook's distance above the median of chi-square(p),
    hat above 3p/k, |DFFITS| above 3 sqrt(p / (k - p)) or any |DFBETAS| above 1. metafor 3.8-1
    does not flag on the covariance ratio (its rule is commented out in the source), so
    ``cov_r`` is reported but flags nothing.

    Parameters
    ----------
    fit
        A model from :func:`~bayesmeta.rma` (k >= p + 2).
    alpha
        Family-wise (Bonferroni) or per-study error rate of the outlier screen (default
        ``DEFAULTS.outlier_alpha``).
    correction
        ``"bonferroni"`` (default) or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by study: ``row`` (its 1-based row in the input table), ``rstudent, outlier,
        cooks_d, flag_cooks_d, hat, flag_hat, dffits, flag_dffits, max_abs_dfbetas,
        flag_dfbetas, cov_r, influential`` (``<NA>`` and ``attrs["notes"]`` as in
        :func:`influence`; an infinite rstudent is <NA> but still an outlier). ``attrs`` records
        ``thresholds`` (``rstudent``, ``cooks_d``, ``hat``, ``dffits``, ``dfbetas``; ``cov_r``
        is ``None``: no rule), ``alpha``, ``correction``, ``k``, ``p`` and ``rules`` (each rule
        in words).

    References
    ----------
    Viechtbauer & Cheung (2010), doi:10.1002/jrsm.11.
    """
    fit = _check_fit(fit, "the outlier screen")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = float("nan")
    if not 0.0 < a < 1.0:
        raise InputError(Problem("alpha must be an error rate strictly between 0 and 1, e.g. "
                                 "0.05", column="alpha", value=alpha))
    if correction not in CORRECTIONS:
        raise InputError(Problem(f"correction must be one of {', '.join(CORRECTIONS)}",
                                 column="correction", value=correction))
    _check_size(fit, "the outlier screen")
    diag = _diagnostics(fit)
    k, p = fit.k, fit.p
    tail = a / (2.0 * k) if correction == "bonferroni" else a / 2.0
    z_crit = float(-special.ndtri(tail))
    thresholds: dict[str, float | None] = {"rstudent": z_crit, **diag.thresholds,
                                           "cov_r": None}
    cols = diag.columns
    dfb = np.abs(np.column_stack([cols[dfbetas_column(t)] for t in fit.terms])).max(axis=1)
    with np.errstate(invalid="ignore"):
        outlier = np.abs(cols["rstudent"]) > z_crit
    out = _frame({
        "rstudent": cols["rstudent"], "outlier": outlier,
        "cooks_d": cols["cooks_d"], "flag_cooks_d": diag.flags["cooks_d"],
        "hat": cols["hat"], "flag_hat": diag.flags["hat"],
        "dffits": cols["dffits"], "flag_dffits": diag.flags["dffits"],
        "max_abs_dfbetas": dfb, "flag_dfbetas": diag.flags["dfbetas"],
        "cov_r": cols["cov_r"], "influential": diag.influential,
    }, fit)
    bound = "Phi^-1(1 - alpha/(2k))" if correction == "bonferroni" else "Phi^-1(1 - alpha/2)"
    out.attrs.update({
        "thresholds": thresholds, "alpha": a, "correction": correction, "k": k, "p": p,
        "notes": diag.notes,
        "rules": {
            "outlier": f"|rstudent| > {bound} = {z_crit:.6g}",
            "cooks_d": f"Cook's distance > median of chi-square({p}) = "
                       f"{thresholds['cooks_d']:.6g}",
            "hat": f"hat > 3p/k = {thresholds['hat']:.6g}",
            "dffits": f"|DFFITS| > 3 sqrt(p/(k-p)) = {thresholds['dffits']:.6g}",
            "dfbetas": "any |DFBETAS| > 1",
            "cov_r": "no rule (metafor 3.8-1 does not flag on the covariance ratio)",
            "influential": "any of cooks_d, hat, dffits, dfbetas (metafor's inf flag)",
        },
        "header": f"Outliers (alpha = {a:g}, {correction}) and influential studies "
                  f"({fit._header()})",
    })
    return out
