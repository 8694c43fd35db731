"""The MCID probability curve: P(effect beyond a threshold) for thresholds from 0 to twice the
MCID, in outcome points (bottom axis) and on the analysis scale (top axis)."""

from __future__ import annotations

from matplotlib.axes import Axes

from ..clinical import ClinicalRelevance
from ..errors import InputError, Problem
from . import _style as S


def plot_mcid_curve(relevance: ClinicalRelevance, *, ax: Axes | None = None) -> Axes:
    """Posterior probability of a benefit at least as large as each threshold.

    Parameters
    ----------
    relevance
        The :func:`bayesmeta.clinical_relevance` outcome; its ``curve`` table is drawn as is
        (``threshold_vas``, ``threshold_smd``, ``p_mu`` and, when present, ``p_new``).
    ax
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        Bottom x-axis in outcome points; when the analysis is standardised (``sd_ref`` given)
        a top axis shows the same thresholds on the analysis scale (points / sd_ref). The MCID
        is the dashed vertical line.
    """
    if not isinstance(relevance, ClinicalRelevance):
        raise InputError(Problem("expected the result of bayesmeta.clinical_relevance",
                                 column="relevance", value=type(relevance).__name__))
    curve = relevance.curve
    ax = S.new_axes(ax, (6.0, 3.8))
    t = curve["threshold_vas"].to_numpy(float)
    ax.plot(t, curve["p_mu"].to_numpy(float), color=S.BAYES, lw=1.8, gid="p_mu",
            label=f"mean effect {relevance.param}")
    if "p_new" in curve.columns:
        ax.plot(t, curve["p_new"].to_numpy(float), color=S.PREDICTIVE, lw=1.8, ls="-.",
                gid="p_new", label=f"new study {relevance.new_param}")
    ax.axvline(relevance.mcid, color=S.MCID, lw=1.3, ls="--", gid="mcid",
               label=f"MCID {relevance.mcid:g} points")
    ax.plot([relevance.mcid], [relevance.p_mu_mcid], "o", color=S.BAYES, ms=5)
    if relevance.p_new_mcid is not None:
        ax.plot([relevance.mcid], [relevance.p_new_mcid], "o", color=S.PREDICTIVE, ms=5)
    better = "lower" if relevance.direction == "lower" else "higher"
    ax.set_xlabel(f"Benefit threshold, outcome points ({better} is better)")
    ax.set_ylabel("P(benefit beyond threshold)")
    ax.set_ylim(0, 1)
    ax.set_xlim(t[0], t[-1])
    if relevance.sd_ref is not None:
        sd = relevance.sd_ref
        top = ax.secondary_xaxis("top", functions=(lambda p: p / sd, lambda s: s * sd))
        top.set_xlabel(f"Threshold on the {relevance.scale} scale (sd_ref = {sd:g} points)",
                       fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="x-small", frameon=False)
    return ax
