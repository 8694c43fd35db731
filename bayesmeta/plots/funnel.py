"""Funnel plot: observed effects against their standard errors, with the pooled estimate and the
pseudo-confidence region, and optionally the small-study tests' results (metafor: ``funnel``;
Sterne & Egger 2001, doi:10.1016/S0895-4356(01)00377-8)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from scipy import stats

from ..errors import InputError, Problem
from ..frequentist.rma import RmaResult
from ..results import BayesResult
from . import _style as S


def _pooled_fit(result: Any) -> RmaResult:
    fit = result.frequentist if isinstance(result, BayesResult) else result
    if not isinstance(fit, RmaResult):
        raise InputError(Problem("expected an RmaResult (rma) or a BayesResult with its REML "
                                 "twin", column="result", value=type(result).__name__))
    if not fit.intercept_only:
        raise InputError(Problem(
            "the funnel plot is drawn around a pooled (intercept-only) estimate; this fit has "
            f"moderators ({', '.join(fit.terms[1:])})", column="result", value=fit.model))
    return fit


def _test_line(name: str, test: Any, keys: tuple[tuple[str, str], ...]) -> str:
    """One annotation line from a test result's ``to_dict()`` (the only interface used, so the
    funnel plot works with any result that exposes these keys)."""
    d = test.to_dict()
    parts = [f"{shown} = {d[key]:.3g}" for key, shown in keys if d.get(key) is not None]
    if d.get("pval") is None:
        raise InputError(Problem(f"the {name} result has no 'pval' in to_dict()",
                                 column=name, value=sorted(d)))
    return f"{name}: " + ", ".join([*parts, f"p = {d['pval']:.3g}"])


def plot_funnel(result: RmaResult | BayesResult, *, egger: Any = None, rank: Any = None,
                ax: Axes | None = None) -> Axes:
    """Funnel plot of a pooled model (metafor: ``funnel(fit)``).

    Parameters
    ----------
    result
        A pooled :class:`~bayesmeta.frequentist.rma.RmaResult`, or a BayesResult whose REML twin
        is used.
    egger, rank
        Optional results of Egger's regression test and the rank correlation test; their
        ``to_dict()`` values (Egger ``zval`` or ``tval``, ``pval``; rank ``tau``, ``pval``) are
        printed in the corner.
    ax
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The standard error axis points down (0 at the top), as metafor draws it. The dashed
        triangle is estimate +/- z * SE at the fit's level.
    """
    fit = _pooled_fit(result)
    ax = S.new_axes(ax, (5.5, 5.2))
    yi, se = np.asarray(fit.yi, float), np.sqrt(np.asarray(fit.vi, float))
    d = fit.to_dict()
    est = d["estimate"]
    z = float(stats.norm.ppf((1 + fit.level) / 2))
    top = 1.05 * float(se.max())
    grid = np.array([0.0, top])
    ax.fill_betweenx(grid, est - z * grid, est + z * grid, color=S.REML, alpha=0.07, lw=0)
    ax.plot(est - z * grid, grid, color=S.REML, ls="--", lw=0.9, gid="region")
    ax.plot(est + z * grid, grid, color=S.REML, ls="--", lw=0.9,
            label=f"pseudo {S.percent(fit.level)} confidence region")
    ax.axvline(est, color=S.REML, lw=1.2, gid="estimate",
               label=f"pooled estimate ({fit.method_used}) {est:.2f}")
    ax.axvline(0.0, color=S.NULL_LINE, lw=0.8, zorder=0)
    ax.plot(yi, se, "o", color=S.OBSERVED, mfc="white", ms=5, label="studies", gid="studies")
    ax.set_ylim(top, 0.0)
    ax.set_xlabel(S.effect_label(fit.measure))
    ax.set_ylabel("Standard error")
    lines = []
    if egger is not None:
        lines.append(_test_line("Egger's test", egger, (("zval", "z"), ("tval", "t"))))
    if rank is not None:
        lines.append(_test_line("Rank correlation", rank, (("tau", "Kendall's tau"),)))
    if lines:
        ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, fontsize="x-small",
                va="top", ha="left", gid="tests",
                bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})
    ax.set_title(f"k = {fit.k}", fontsize="medium", loc="left")
    S.legend_below(ax, ncol=2)
    return ax
