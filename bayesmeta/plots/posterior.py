"""Posterior densities: mu and theta_new with the MCID marked, and the prior against the
posterior of tau (bayesmeta: ``plot(bma, which=2..4)``; Röver 2020, doi:10.18637/jss.v093.i06).

Densities are read from the engine, never estimated here: the exact and analytic posteriors
evaluate their own density (``posterior.pdf``); for MCMC draws arviz's kernel density estimate is
used (with its boundary correction for tau >= 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes

from ..bayes import priors as P
from ..bayes.analytic import NormalPosterior
from ..bayes.exact import ExactPosterior
from ..bayes.exact_regression import ExactRegressionPosterior
from ..clinical import ClinicalRelevance
from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..frequentist.rma import RmaResult
from ..results import BayesResult, DrawsPosterior
from . import _style as S

GRID_POINTS = 400
# The plotted range covers the central 99.8% of each posterior.
TAIL = 0.001


def posterior_density(result: BayesResult, param: str, x: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(x, density) of ``param``: the engine's own density on ``x``, or arviz's KDE of the
    draws (on arviz's grid)."""
    post = result.posterior
    if isinstance(post, ExactPosterior | NormalPosterior | ExactRegressionPosterior):
        return x, np.asarray(post.pdf(param, x), float)
    if isinstance(post, DrawsPosterior):
        import arviz as az

        grid, density = az.kde(post.flat(param))
        return np.asarray(grid), np.asarray(density)
    raise InputError(Problem("no density available for this posterior type",
                             column="result.posterior", value=type(post).__name__))


def _check_result(result: object) -> BayesResult:
    if not isinstance(result, BayesResult):
        raise InputError(Problem("expected a BayesResult (bayes_rma, reanalyse)",
                                 column="result", value=type(result).__name__))
    return result


def _threshold(relevance: ClinicalRelevance) -> float:
    """The MCID on the analysis scale, signed towards benefit."""
    return -relevance.mcid_smd if relevance.direction == "lower" else relevance.mcid_smd


def _mcid_text(relevance: ClinicalRelevance) -> str:
    if relevance.sd_ref is None:
        return f"MCID {relevance.mcid:g} points"
    return (f"MCID {relevance.mcid:g} points = {relevance.mcid_smd:.3g} {relevance.scale} "
            f"(sd_ref {relevance.sd_ref:g})")


def plot_posterior(result: BayesResult, *, params: Sequence[str] | None = None,
                   relevance: ClinicalRelevance | None = None,
                   kind: str = DEFAULTS.interval_kind, ax: Axes | None = None) -> Axes:
    """Posterior densities of the mean effect and of a new study's effect, with the MCID.

    Parameters
    ----------
    result
        A Bayesian result (any engine).
    params
        Parameters to draw; default ``("mu", "theta_new")`` (theta_new when the result has it).
    relevance
        The :func:`bayesmeta.clinical_relevance` outcome for this result: its MCID is drawn as a
        line at ``-mcid_smd`` (``+mcid_smd`` when higher is better) with the region of clinically
        important benefit shaded, and its probabilities are printed; its ROPE, if any, is shaded
        too.
    kind
        Credible interval kind shaded under each density: ``"eti"`` or ``"shortest"``.
    ax
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    result = _check_result(result)
    S.check_choice(kind, ("eti", "shortest"), "kind")
    if params is None:
        params = [p for p in ("mu", "theta_new") if p in result.params]
    params = list(params)
    unknown = [p for p in params if p not in result.params]
    if unknown or not params:
        raise InputError(Problem(f"not a parameter of this result; available: "
                                 f"{', '.join(result.params[:12])}", column="params",
                                 value=", ".join(unknown) or "none"))
    if relevance is not None and relevance.scale != (result.measure or "outcome points"):
        raise InputError(Problem(f"the clinical relevance was computed on the {relevance.scale} "
                                 f"scale, this result is on the {result.measure} scale",
                                 column="relevance", value=relevance.scale))
    ax = S.new_axes(ax, (S.WIDTH, 4.6))
    lows = [float(result.quantile(p, TAIL)) for p in params]
    highs = [float(result.quantile(p, 1 - TAIL)) for p in params]
    x = np.linspace(min(lows), max(highs), GRID_POINTS)
    cred = S.interval_name(result.level, kind)
    colours = {"mu": S.BAYES, "theta_new": S.PREDICTIVE}
    for p in params:
        colour = colours.get(p, S.REML)
        gx, dens = posterior_density(result, p, x)
        lo, hi = result.interval(p, kind=kind)
        med = result.median(p)
        ax.plot(gx, dens, color=colour, lw=1.6, gid=f"density_{p}",
                label=f"{p}: median {med:.2f}, {cred} [{lo:.2f}, {hi:.2f}]")
        inside = (gx >= lo) & (gx <= hi)
        ax.fill_between(gx, 0, dens, where=inside, color=colour, alpha=0.2, lw=0)
        ax.vlines(med, 0, np.interp(med, gx, dens), color=colour, lw=1.0, ls=":")
    ax.axvline(0.0, color=S.NULL_LINE, lw=0.8, zorder=0)
    if relevance is not None:
        t = _threshold(relevance)
        left, right = ax.get_xlim()
        left, right = min(left, t - 0.05 * (right - left)), max(right, t + 0.05 * (right - left))
        band = (left, t) if relevance.direction == "lower" else (t, right)
        probs = [f"P({relevance.param} beyond) = {relevance.p_mu_mcid:.2f}"]
        if relevance.new_param is not None and relevance.p_new_mcid is not None:
            probs.append(f"P({relevance.new_param} beyond) = {relevance.p_new_mcid:.2f}")
        ax.axvspan(*band, color=S.MCID, alpha=S.BAND_ALPHA, lw=0, gid="mcid_band",
                   label="clinically important benefit: " + "; ".join(probs))
        ax.axvline(t, color=S.MCID, lw=1.4, ls="--", gid="mcid", label=_mcid_text(relevance))
        if relevance.rope is not None:
            scale = 1.0 if relevance.sd_ref is None else relevance.sd_ref
            share = "" if relevance.p_mu_rope is None else \
                f": P({relevance.param} inside) = {relevance.p_mu_rope:.2f}"
            ax.axvspan(relevance.rope[0] / scale, relevance.rope[1] / scale, color=S.PRIOR,
                       alpha=S.BAND_ALPHA, lw=0, gid="rope",
                       label=f"ROPE {relevance.rope[0]:g} to {relevance.rope[1]:g} points"
                       + share)
        ax.set_xlim(left, right)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(S.effect_label(result.measure))
    ax.set_ylabel("Posterior density")
    ax.set_title(f"{result.engine} engine", fontsize="small", loc="left")
    S.legend_below(ax, ncol=1)
    return ax


def plot_tau(result: BayesResult, *, ax: Axes | None = None) -> Axes:
    """Prior and posterior density of the between-study SD tau, with the REML estimate.

    Parameters
    ----------
    result
        A Bayesian result with a ``"tau"`` parameter (its ``priors["tau"]`` gives the prior).
    ax
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        An improper prior is not drawn (it has no density to compare); the legend says so.
    """
    result = _check_result(result)
    if "tau" not in result.params:
        raise InputError(Problem("this result has no between-study SD 'tau' (e.g. a reanalysis "
                                 "of a published estimate)", column="result",
                                 value=result.model))
    ax = S.new_axes(ax, (S.WIDTH, 4.2))
    top = float(result.quantile("tau", 1 - TAIL))
    x = np.linspace(top * 1e-3, top * 1.15, GRID_POINTS)
    gx, dens = posterior_density(result, "tau", x)
    keep = gx >= 0  # arviz's grid can reach below 0 before its boundary correction
    lo, hi = result.interval("tau")
    ax.plot(gx[keep], dens[keep], color=S.BAYES, lw=1.6, gid="posterior",
            label=f"posterior: median {result.median('tau'):.3g}, "
            f"{S.interval_name(result.level, DEFAULTS.interval_kind)} [{lo:.3g}, {hi:.3g}]")
    prior = P.from_dict(result.priors["tau"])
    if prior.is_proper:
        ax.plot(x, np.asarray(prior.pdf(x), float), color=S.PRIOR, lw=1.3, ls="--",
                gid="prior", label=f"prior: {S.wrap(prior.describe(citation=False))}")
    else:
        ax.plot([], [], color=S.PRIOR, ls="--",
                label=f"prior: {S.wrap(prior.describe(citation=False))} (improper, not drawn)")
    twin = result.frequentist
    if isinstance(twin, RmaResult) and twin.method != "EE":
        ax.axvline(twin.tau, color=S.REML, lw=1.1, ls=":", gid="reml",
                   label=f"{twin.method_used} estimate {twin.tau:.3g}")
    ax.set_xlim(0, x[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Between-study SD tau")
    ax.set_ylabel("Density")
    S.legend_below(ax, ncol=1)
    return ax
