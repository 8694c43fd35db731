"""Forest plot: observed effects, REML pooled estimate and prediction interval, Bayesian
shrinkage estimates and the pooled posterior, on one axis.

metafor's ``forest.rma`` draws the frequentist half of this picture; bayesmeta's
``forestplot.bayesmeta`` the Bayesian half (Röver 2020, doi:10.18637/jss.v093.i06). Here both sit
side by side so a reader sees where shrinkage moves each study and how the two pooled readings
compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from scipy import stats

from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..frequentist.rma import RmaResult
from ..results import BayesResult
from . import _style as S

ORDERS = ("data", "effect", "precision")

# Within a study's row the observed CI sits slightly above and the shrinkage interval below.
OFFSET = 0.17


def _check_pooled_fit(fit: RmaResult) -> None:
    if not fit.intercept_only:
        raise InputError(Problem(
            "the forest plot shows a pooled (intercept-only) model; this fit has moderators "
            f"({', '.join(fit.terms[1:])}): use plot_bubble for a meta-regression",
            column="result", value=fit.model))


def _resolve(result: Any) -> tuple[BayesResult | None, RmaResult | None]:
    if isinstance(result, BayesResult):
        if "mu" not in result.params:
            raise InputError(Problem("the forest plot needs a pooled Bayesian result with a "
                                     "parameter 'mu'", column="result", value=result.model))
        fit = result.frequentist if isinstance(result.frequentist, RmaResult) else None
        if fit is not None:
            _check_pooled_fit(fit)
        return result, fit
    if isinstance(result, RmaResult):
        _check_pooled_fit(result)
        return None, result
    raise InputError(Problem("expected a BayesResult (bayes_rma) or an RmaResult (rma)",
                             column="result", value=type(result).__name__))


def _order(order: str | Sequence[str], labels: tuple[str, ...], yi: np.ndarray,
           vi: np.ndarray) -> np.ndarray:
    """Positions of the studies, top row first."""
    if isinstance(order, str):
        S.check_choice(order, ORDERS, "order")
        if order == "data":
            return np.arange(len(labels))
        key = yi if order == "effect" else vi
        return np.argsort(key, kind="stable")
    wanted = list(order)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = [lab for lab in wanted if lab not in index]
    if unknown or len(set(wanted)) != len(wanted) or len(wanted) != len(labels):
        raise InputError(Problem(
            f"order must name each of the {len(labels)} study labels exactly once"
            + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""),
            column="order", value=f"{len(wanted)} label(s)"))
    return np.array([index[lab] for lab in wanted])


def plot_forest(result: BayesResult | RmaResult, *, order: str | Sequence[str] = "data",
                show_prediction: bool = True, show_shrinkage: bool = True,
                kind: str = DEFAULTS.interval_kind, ax: Axes | None = None) -> Axes:
    """Forest plot of a pooled meta-analysis (metafor: ``forest(fit)``; bayesmeta:
    ``forestplot(bma)``).

    Parameters
    ----------
    result
        A pooled :class:`~bayesmeta.results.BayesResult` (its REML twin ``result.frequentist``
        supplies the frequentist rows) or an :class:`~bayesmeta.frequentist.rma.RmaResult`
        alone.
    order
        Study order, top to bottom: ``"data"`` (as given), ``"effect"`` (observed effect,
        ascending), ``"precision"`` (most precise first), or a sequence of all study labels.
    show_prediction
        Add the REML prediction interval and the posterior predictive interval of theta_new
        (the effect in a new study).
    show_shrinkage
        Draw each study's Bayesian shrinkage estimate (posterior median and interval of
        theta_i) under its observed effect.
    kind
        Credible interval kind: ``"eti"`` (equal-tailed) or ``"shortest"``.
    ax
        Axes to draw on; a new figure sized to the number of rows when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        Y tick labels are the study labels (in ``order``) followed by the pooled rows; the
        right-hand axis lists each observed effect and pooled estimate with its interval.
    """
    S.check_choice(kind, ("eti", "shortest"), "kind")
    bayes, fit = _resolve(result)
    source = bayes if bayes is not None else fit
    assert source is not None
    labels = tuple(source.labels)
    yi, vi = np.asarray(source.yi, float), np.asarray(source.vi, float)
    level = bayes.level if bayes is not None else fit.level  # type: ignore[union-attr]
    rows = _order(order, labels, yi, vi)
    cred = S.interval_name(level, kind)

    pooled: list[tuple[str, str]] = []  # (tick label, what)
    if fit is not None:
        pooled.append(("Pooled estimate (REML)", "reml"))
        if show_prediction and fit.pi_low is not None:
            pooled.append(("Prediction interval (REML)", "reml_pi"))
    if bayes is not None:
        pooled.append(("Mean effect mu (Bayes)", "mu"))
        if show_prediction and "theta_new" in bayes.params:
            pooled.append(("New study theta_new (Bayes)", "theta_new"))

    k, n_pooled = len(rows), len(pooled)
    ax = S.new_axes(ax, (S.WIDTH, S.rows_height(k + n_pooled + 2)))
    study_y = n_pooled + 1 + np.arange(k)[::-1]  # top row first, a gap above the pooled rows
    pooled_y = np.arange(n_pooled)[::-1].astype(float)

    # Observed effects: a CI of a single estimate is display arithmetic, not a model.
    z = float(stats.norm.ppf((1 + level) / 2))
    se = np.sqrt(vi)
    lo_obs, hi_obs = yi - z * se, yi + z * se
    weights = fit.weights if fit is not None else 1.0 / vi
    size = 3.5 + 7.0 * np.sqrt(np.asarray(weights) / np.max(weights))
    # One collection per kind of mark (not one artist per study) keeps large k fast to draw.
    order_y = np.empty(k)
    order_y[rows] = study_y
    dy = OFFSET if (bayes is not None and show_shrinkage) else 0.0
    ax.hlines(order_y + dy, lo_obs, hi_obs, color=S.OBSERVED, lw=1.1, gid="observed_ci")
    ax.scatter(yi, order_y + dy, s=size**2, marker="s", color=S.OBSERVED, zorder=3,
               gid="observed")
    right_labels = [f"{yi[i]:.2f} [{lo_obs[i]:.2f}, {hi_obs[i]:.2f}]" for i in rows]
    handles: list[Any] = [Line2D([], [], color=S.OBSERVED, marker="s", ms=6,
                                 label=f"Observed effect, {S.percent(level)} CI"
                                 + (" (size: REML weight)" if fit is not None else ""))]
    if bayes is not None and show_shrinkage:
        bounds = np.array([bayes.interval(lab, kind=kind) for lab in labels])
        medians = np.array([bayes.median(lab) for lab in labels])
        ax.hlines(order_y - OFFSET, bounds[:, 0], bounds[:, 1], color=S.BAYES, lw=1.1,
                  gid="shrinkage_interval")
        ax.scatter(medians, order_y - OFFSET, s=20, marker="o", facecolor="white",
                   edgecolor=S.BAYES, zorder=3, gid="shrinkage")
        handles.append(Line2D([], [], color=S.BAYES, marker="o", mfc="white",
                              label=f"Shrinkage estimate theta_i: median, {cred} interval"))

    for y, (_, what) in zip(pooled_y, pooled, strict=True):
        if what == "reml":
            d = fit.to_dict()  # type: ignore[union-attr]
            est, lo, hi = d["estimate"], d["ci_low"], d["ci_high"]
            ax.fill([lo, est, hi, est], [y, y + 0.3, y, y - 0.3], color=S.REML, gid="reml")
            right_labels.append(f"{est:.2f} [{lo:.2f}, {hi:.2f}]")
            handles.append(Line2D([], [], color=S.REML, marker="D", ls="none",
                                  label=f"REML pooled estimate, {S.percent(fit.level)} CI"))
        elif what == "reml_pi":
            d = fit.to_dict()  # type: ignore[union-attr]
            lo, hi = d["pi_low"], d["pi_high"]
            ax.plot([lo, hi], [y, y], color=S.REML, lw=1.4, ls="--", gid="reml_pi")
            ax.plot([d["estimate"]], [y], marker="|", ms=10, color=S.REML)
            right_labels.append(f"[{lo:.2f}, {hi:.2f}]")
            handles.append(Line2D([], [], color=S.REML, ls="--",
                                  label=f"REML {S.percent(fit.level)} prediction interval"))
        else:
            assert bayes is not None
            lo, hi = bayes.interval(what, kind=kind)
            med = bayes.median(what)
            colour = S.BAYES if what == "mu" else S.PREDICTIVE
            ax.plot([lo, hi], [y, y], color=colour, lw=2.2, gid=what)
            ax.plot([med], [y], marker="D", ms=7, color=colour, ls="none")
            right_labels.append(f"{med:.2f} [{lo:.2f}, {hi:.2f}]")
            name = ("mu: posterior median" if what == "mu"
                    else "theta_new: posterior predictive median")
            handles.append(Line2D([], [], color=colour, marker="D", lw=2.2,
                                  label=f"{name}, {cred} interval"))

    ax.axvline(0.0, color=S.NULL_LINE, lw=0.8, zorder=0)
    ax.axhline(n_pooled, color=S.NULL_LINE, lw=0.5, ls=":")
    ticks = np.concatenate([study_y, pooled_y])
    ax.set_yticks(ticks, [labels[i] for i in rows] + [p[0] for p in pooled])
    ax.set_ylim(-0.8, k + n_pooled + 0.8)
    right = ax.secondary_yaxis("right")
    right.set_yticks(ticks, right_labels)
    right.tick_params(length=0, labelsize="small")
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(S.effect_label(source.measure))
    title = f"k = {k}"
    if fit is not None and fit.i2 is not None:
        title += f"; REML tau = {fit.tau:.3g}, I2 = {fit.i2:.0f}%"
    ax.set_title(title, fontsize="medium", loc="left")
    S.legend_below(ax, handles, ncol=1)
    return ax
