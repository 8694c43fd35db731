"""Prior sensitivity: the posterior intervals of mu, tau and theta_new, and the MCID
probabilities, under each tau prior the analysis declares, one row per prior."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..clinical import ClinicalRelevance
from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..frequentist.rma import RmaResult
from ..results import BayesResult
from . import _style as S

_COLOURS = {"mu": S.BAYES, "tau": S.BAYES, "theta_new": S.PREDICTIVE}


def _check_fits(fits: Any, params: Sequence[str]) -> dict[str, BayesResult]:
    if not isinstance(fits, Mapping) or not fits:
        raise InputError(Problem("expected a mapping {prior name: BayesResult} with at least "
                                 "one fit", column="fits", value=type(fits).__name__))
    problems = []
    for name, fit in fits.items():
        if not isinstance(fit, BayesResult):
            problems.append(Problem("expected a BayesResult", column=f"fits[{name!r}]",
                                    value=type(fit).__name__))
            continue
        missing = [p for p in params if p not in fit.params]
        if missing:
            problems.append(Problem(f"has no parameter(s) {', '.join(missing)}",
                                    column=f"fits[{name!r}]", value=fit.model))
    if problems:
        raise InputError(problems)
    return {str(k): v for k, v in fits.items()}


def _probability_table(relevance: ClinicalRelevance, names: list[str]) -> Any:
    table = relevance.prior_sensitivity
    if table is None:
        raise InputError(Problem("this clinical relevance has no prior sensitivity table: pass "
                                 "prior_sensitivity= to clinical_relevance", column="relevance",
                                 value=None, show_value=False))
    table = table.set_index("prior")
    listed = [str(p) for p in table.index]
    if sorted(listed) != sorted(names):
        raise InputError(Problem(f"the relevance table lists priors {', '.join(listed)}, the "
                                 f"fits are {', '.join(names)}; they must be the same",
                                 column="relevance", value=len(listed)))
    return table.loc[names]


def plot_prior_sensitivity(fits: Mapping[str, BayesResult], *,
                           params: Sequence[str] = ("mu", "tau", "theta_new"),
                           relevance: ClinicalRelevance | None = None,
                           kind: str = DEFAULTS.interval_kind, ax: Any = None) -> np.ndarray:
    """One panel per parameter (posterior median and interval under each prior), and, with
    ``relevance``, one panel of P(beyond the MCID) for mu and theta_new.

    Parameters
    ----------
    fits
        ``{prior name: BayesResult}`` fitted to the same data, in the order to draw (top row
        first).
    params
        Parameters to show, one panel each.
    relevance
        The :func:`bayesmeta.clinical_relevance` outcome computed with
        ``prior_sensitivity=fits``; its ``prior_sensitivity`` table supplies the probabilities.
    kind
        Credible interval kind: ``"eti"`` or ``"shortest"``.
    ax
        A sequence of Axes, one per panel, or ``None`` for a new figure.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        Each panel has one row per prior; the REML estimate of the first fit's twin is the
        dotted line in the mu and tau panels.
    """
    S.check_choice(kind, ("eti", "shortest"), "kind")
    params = list(params)
    fits = _check_fits(fits, params)
    names = list(fits)
    table = None if relevance is None else _probability_table(relevance, names)
    n_panels = len(params) + (table is not None)
    axes = S.new_axes_array(ax, n_panels, figsize=(min(3.4 * n_panels + 1.5, 15.0),
                                                   S.rows_height(len(names) + 3)))
    y = np.arange(len(names))[::-1].astype(float)
    first = fits[names[0]]
    level = first.level
    twin = first.frequentist if isinstance(first.frequentist, RmaResult) else None
    for panel, p in zip(axes, params, strict=False):
        colour = _COLOURS.get(p, S.REML)
        for row, name in zip(y, names, strict=True):
            lo, hi = fits[name].interval(p, level, kind)
            panel.plot([lo, hi], [row, row], color=colour, lw=2.0, gid="interval")
            panel.plot([fits[name].median(p)], [row], "D", color=colour, ms=5.5)
        if twin is not None and p in ("mu", "tau"):
            ref = twin.to_dict()["estimate"] if p == "mu" else twin.tau
            panel.axvline(ref, color=S.REML, ls=":", lw=1.2, gid="reml",
                          label=f"{twin.method_used} {ref:.2f}")
            panel.legend(loc="lower right", fontsize="x-small", frameon=False)
        if p != "tau":
            panel.axvline(0.0, color=S.NULL_LINE, lw=0.8, zorder=0)
        panel.set_title(p, fontsize="medium")
        panel.set_xlabel(f"median, {S.interval_name(level, kind)}", fontsize="small")
    if table is not None:
        assert relevance is not None
        panel = axes[-1]
        panel.plot(table["p_mu_mcid"].to_numpy(float), y, "o", color=S.BAYES, ms=6,
                   gid="p_mu_mcid", label=relevance.param)
        if table["p_new_mcid"].notna().all():
            panel.plot(table["p_new_mcid"].to_numpy(float), y, "^", color=S.PREDICTIVE,
                       ms=6, gid="p_new_mcid", label=str(relevance.new_param))
        panel.set_xlim(-0.03, 1.03)
        panel.set_title(f"P(beyond MCID {relevance.mcid:g} points)", fontsize="medium")
        panel.set_xlabel("posterior probability", fontsize="small")
        panel.legend(loc="lower right", fontsize="x-small", frameon=False)
    for i, panel in enumerate(axes):
        panel.set_yticks(y, names if i == 0 else [""] * len(names))
        panel.set_ylim(-0.7, len(names) - 0.3)
        panel.tick_params(axis="y", length=0)
        panel.grid(axis="x", alpha=0.3)
    return axes
