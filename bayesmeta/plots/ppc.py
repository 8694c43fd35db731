"""Posterior predictive check plots: study-level predictive p-values and LOO-PIT, the Q
discrepancy against its replicated distribution, and PSIS Pareto k per study.

Everything drawn is read from a :class:`bayesmeta.ppc.PPCResult`; see
:func:`bayesmeta.ppc.posterior_predictive_check` for the definitions (Marshall & Spiegelhalter
2007, doi:10.1214/07-BA211; Vehtari, Gelman & Gabry 2017, doi:10.1007/s11222-016-9696-4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..ppc import PPCResult
from . import _style as S

# column -> (legend text, marker, face colour)
_PVALUE_COLUMNS = {
    "ppp_mixed": ("mixed predictive p-value", "o", S.BAYES),
    "ppp_conditional": ("conditional predictive p-value (conservative)", "o", "white"),
    "loo_pit": ("LOO-PIT", "x", S.REML),
}


def _check(ppc: Any) -> PPCResult:
    if not isinstance(ppc, PPCResult):
        raise InputError(Problem("expected the result of bayesmeta.ppc."
                                 "posterior_predictive_check", column="ppc",
                                 value=type(ppc).__name__))
    return ppc


def _study_rows(ax: Axes, labels: list[str]) -> np.ndarray:
    y = np.arange(len(labels))[::-1].astype(float)
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.tick_params(axis="y", length=0)
    return y


def plot_study_pvalues(ppc: PPCResult, *, ax: Axes | None = None) -> Axes:
    """Each study's posterior predictive p-values P(y_rep <= y) and its LOO-PIT.

    Values in the shaded tails (outside the central ``DEFAULTS.level`` of [0, 1]) flag studies
    the model predicts poorly.

    Returns
    -------
    matplotlib.axes.Axes
        One row per study (in the result's order), x from 0 to 1.
    """
    ppc = _check(ppc)
    studies = ppc.studies
    labels = [str(s) for s in studies.index]
    ax = S.new_axes(ax, (6.5, S.rows_height(len(labels) + 2)))
    y = _study_rows(ax, labels)
    tail = (1 - DEFAULTS.level) / 2
    ax.axvspan(0, tail, color=S.BAYES, alpha=S.BAND_ALPHA, lw=0, gid="tails",
               label=f"outside the central {S.percent(DEFAULTS.level)}")
    ax.axvspan(1 - tail, 1, color=S.BAYES, alpha=S.BAND_ALPHA, lw=0)
    ax.axvline(0.5, color=S.NULL_LINE, lw=0.8, zorder=0)
    for column, (text, marker, face) in _PVALUE_COLUMNS.items():
        if column in studies.columns:
            edge = S.BAYES if column != "loo_pit" else S.REML
            ax.plot(studies[column].to_numpy(float), y, marker, mfc=face, mec=edge, ms=5.5,
                    ls="none", gid=column, label=text)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(y_rep <= y_observed)")
    S.legend_below(ax, ncol=1)
    return ax


def plot_q_discrepancy(ppc: PPCResult, *, ax: Axes | None = None) -> Axes:
    """Histogram of Cochran's Q of replicated data with the observed Q as a vertical line.

    Returns
    -------
    matplotlib.axes.Axes
        The title gives the posterior predictive p-value P(Q_rep >= Q_obs).
    """
    ppc = _check(ppc)
    ax = S.new_axes(ax, (5.5, S.PANEL_HEIGHT))
    q_rep = np.asarray(ppc.q_rep, float)
    ax.hist(q_rep, bins=min(60, max(10, q_rep.size // 50)), color=S.BAYES, alpha=0.45,
            edgecolor="white", lw=0.3, label=f"replicated Q ({q_rep.size} draws)")
    ax.axvline(ppc.q_obs, color=S.OBSERVED, lw=1.8, gid="q_obs",
               label=f"observed Q = {ppc.q_obs:.3g}")
    ax.set_xlabel("Cochran's Q")
    ax.set_ylabel("Draws")
    ax.set_title(f"P(Q_rep >= Q_obs) = {ppc.ppp_q:.3f}", fontsize="medium", loc="left")
    ax.legend(loc="upper right", fontsize="x-small", frameon=False)
    return ax


def plot_pareto_k(ppc: PPCResult, *, ax: Axes | None = None) -> Axes:
    """PSIS-LOO Pareto k of each study; above the dashed line LOO is unreliable for it.

    Returns
    -------
    matplotlib.axes.Axes
        One row per study.
    """
    ppc = _check(ppc)
    if "pareto_k" not in ppc.studies.columns:
        raise InputError(Problem("this check has no PSIS-LOO (the fit stored no pointwise "
                                 "log-likelihood: use a NUTS fit)", column="ppc",
                                 value="no pareto_k"))
    labels = [str(s) for s in ppc.studies.index]
    ax = S.new_axes(ax, (5.0, S.rows_height(len(labels) + 2)))
    y = _study_rows(ax, labels)
    k = ppc.studies["pareto_k"].to_numpy(float)
    high = k > S.PARETO_K_THRESHOLD
    ax.plot(k[~high], y[~high], "o", color=S.REML, ms=5, ls="none", gid="pareto_k")
    ax.plot(k[high], y[high], "o", color=S.BAYES, ms=6, ls="none", gid="pareto_k_high",
            label=f"k > {S.PARETO_K_THRESHOLD:g}: {int(high.sum())} stud"
            + ("y" if high.sum() == 1 else "ies"))
    ax.axvline(S.PARETO_K_THRESHOLD, color=S.BAYES, lw=1.0, ls="--", gid="threshold")
    ax.axvline(0.0, color=S.NULL_LINE, lw=0.8, zorder=0)
    left, right = ax.get_xlim()
    ax.set_xlim(min(left, -0.1), max(right, S.PARETO_K_THRESHOLD + 0.1))
    ax.set_xlabel("Pareto k (PSIS-LOO)")
    S.legend_below(ax, ncol=1)
    return ax


def plot_ppc(ppc: PPCResult, *, ax: Any = None) -> np.ndarray:
    """The three checks side by side: study p-values, Q discrepancy and (when LOO is available)
    Pareto k.

    Parameters
    ----------
    ax
        A sequence of 3 Axes (2 when the check has no LOO), or ``None`` for a new figure.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
    """
    ppc = _check(ppc)
    has_loo = "pareto_k" in ppc.studies.columns
    n = 3 if has_loo else 2
    height = S.rows_height(len(ppc.studies) + 2)
    axes = S.new_axes_array(ax, n, figsize=(5.0 * n, height))
    plot_study_pvalues(ppc, ax=axes[0])
    plot_q_discrepancy(ppc, ax=axes[1])
    if has_loo:
        plot_pareto_k(ppc, ax=axes[2])
        axes[2].set_yticklabels([])
    return axes
