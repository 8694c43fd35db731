"""Bubble plot of a meta-regression: effects against a continuous moderator, bubble area by
weight, with the fitted line and its confidence and prediction bands (metafor: ``regplot``)."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from ..design import INTERCEPT
from ..errors import InputError, Problem
from ..frequentist.rma import RmaResult
from . import _style as S

LINE_POINTS = 100


def plot_bubble(fit: RmaResult, *, moderator: str, show_prediction: bool = True,
                ax: Axes | None = None) -> Axes:
    """Observed effects against one continuous moderator of a meta-regression.

    Parameters
    ----------
    fit
        A mixed-effects :class:`~bayesmeta.frequentist.rma.RmaResult` (``rma(..., mods=...)``).
    moderator
        The term (a column of ``fit.X``, as in ``fit.terms``) on the x-axis.
    show_prediction
        Draw the prediction band (the range of true effects in a new study) beside the
        confidence band of the fitted line.
    ax
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        Bubble areas are proportional to the model's weights 1/(v_i + tau2). The line and
        bands are ``fit.predict`` along the moderator with every other column of the design
        held at its mean over the studies (as metafor's ``regplot``), so with several
        moderators they show the partial effect of this one.
    """
    if not isinstance(fit, RmaResult):
        raise InputError(Problem("expected an RmaResult from rma(..., mods=...)", column="fit",
                                 value=type(fit).__name__))
    terms = [t for t in fit.terms if t != INTERCEPT]
    if moderator not in terms:
        raise InputError(Problem(f"not a moderator of this fit; its terms are "
                                 f"{', '.join(terms) or 'none (intercept-only model)'}",
                                 column="moderator", value=moderator))
    j = fit.terms.index(moderator)
    x = np.asarray(fit.X[:, j], float)
    if np.unique(x).size < 3:
        raise InputError(Problem("a bubble plot needs a continuous moderator; this column "
                                 "takes two values (a categorical level): compare subgroups "
                                 "with a forest plot instead", column="moderator",
                                 value=moderator))
    ax = S.new_axes(ax, (6.0, 4.5))
    yi = np.asarray(fit.yi, float)
    w = np.asarray(fit.weights, float)
    grid = np.linspace(x.min(), x.max(), LINE_POINTS)
    rows = np.tile(np.asarray(fit.X, float).mean(axis=0), (LINE_POINTS, 1))
    rows[:, j] = grid
    pred = fit.predict(rows)
    level = S.percent(fit.level)
    if show_prediction and "pi_low" in pred.columns:
        ax.plot(grid, pred["pi_low"].to_numpy(float), color=S.REML, ls="--", lw=0.9,
                gid="pi", label=f"{level} prediction interval")
        ax.plot(grid, pred["pi_high"].to_numpy(float), color=S.REML, ls="--", lw=0.9)
    ax.fill_between(grid, pred["ci_low"].to_numpy(float), pred["ci_high"].to_numpy(float),
                    color=S.REML, alpha=0.18, lw=0, label=f"{level} confidence band")
    ax.plot(grid, pred["pred"].to_numpy(float), color=S.REML, lw=1.6, gid="line",
            label="fitted line")
    ax.scatter(x, yi, s=20 + 380 * w / w.max(), facecolor="white", edgecolor=S.OBSERVED,
               lw=0.9, alpha=0.9, zorder=3, gid="studies", label="studies (area: weight)")
    ax.axhline(0.0, color=S.NULL_LINE, lw=0.8, zorder=0)
    coef = fit.coefficients.loc[moderator]
    title = f"slope {coef['estimate']:.3g} [{coef['ci_low']:.3g}, {coef['ci_high']:.3g}], " \
            f"p = {coef['pval']:.3g}; k = {fit.k}"
    if len(terms) > 1:
        title += "; other moderators at their means"
    ax.set_title(title, fontsize="small", loc="left")
    ax.set_xlabel(moderator)
    ax.set_ylabel(S.effect_label(fit.measure))
    S.legend_below(ax, ncol=2)
    return ax
