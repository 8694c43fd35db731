"""Run one analysis of a plan: the REML fit, the Bayesian fits, clinical relevance and checks.

Each function takes the rows an analysis uses (a slice of the escalc table) and returns a
frozen :class:`AnalysisResult`; every warning and every step that could not be computed is in
it (see :mod:`.record`).

What runs for each kind of analysis:

* **main cell**: REML (z-based CI, as the review), Egger's and the rank correlation test,
  outliers and influence; the Bayesian fit with the primary priors (NUTS, with the diagnostics
  gate, plus its exact-engine twin as a check); one fit per sensitivity prior (exact engine);
  clinical relevance with the sd_ref and prior sensitivity tables; posterior predictive checks.
* **subset** (a re-pooled sensitivity analysis) and **reference** (the pooled model of a
  subgroup / meta-regression model's rows): REML, the primary Bayesian fit, clinical
  relevance, PPC.
* **subgroup**: the Bayesian subgroup model with its REML twin (QM, Q-between); clinical
  relevance of each subgroup's mean and predictive effect; PPC.
* **meta-regression**: the Bayesian meta-regression with its REML twin (QM, QE, R2 beside the
  Bayesian R2); P(coefficient < 0) per term; PPC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..clinical import ClinicalRelevance
from ..errors import InputError, Problem
from ..results import BayesResult
from ..spec import OutcomeSpec
from .plan import Analysis
from .record import Recorder


@dataclass(frozen=True)
class FitSettings:
    """Priors and engine settings shared by every analysis of a run.

    ``primary_engine`` is the engine asked for the primary priors (``"nuts"`` or
    ``"exact"``); subgroup and meta-regression models fall back to NUTS when the exact engine
    cannot fit them (recorded). ``capacity`` and ``coef_slots`` size the one compiled NUTS
    sampler all fits share.
    """

    measure: str
    tau_name: str
    tau_prior: Any
    mu_name: str
    mu_prior: Any
    tau_sensitivity: tuple[tuple[str, Any], ...]
    mu_sensitivity: tuple[tuple[str, Any], ...]
    primary_engine: str
    sensitivity_engine: str
    draws: int
    tune: int
    chains: int
    target_accept: float
    retry: bool
    capacity: int
    coef_slots: int
    level: float
    quick: bool = False

    @property
    def primary_label(self) -> str:
        return f"{self.tau_name} + {self.mu_name} (primary)"

    def nuts_settings(self) -> dict[str, Any]:
        return {"draws": self.draws, "tune": self.tune, "chains": self.chains,
                "target_accept": self.target_accept, "retry": self.retry,
                "capacity": self.capacity, "coef_slots": self.coef_slots}


@dataclass(frozen=True)
class AnalysisResult:
    """Everything computed for one analysis.

    Attributes
    ----------
    analysis, k, seed
        The planned analysis, the number of rows it selected and its seed.
    status
        ``"ok"`` or ``"skipped"`` (then ``notes`` says why).
    reml
        The REML fit (``RmaResult``; ``SubgroupResult`` for a subgroup model).
    bayes
        The fit with the primary priors.
    exact_check
        The primary priors by the exact engine when ``bayes`` is a NUTS fit (main cells).
    sensitivity
        ``{label: BayesResult}`` under each sensitivity prior (main cells).
    relevance
        Clinical relevance of the pooled effect (pooled models).
    subgroup_relevance
        ``{level: ClinicalRelevance}`` of each subgroup (subgroup models).
    egger, rank, outliers
        Small-study tests and the outlier / influence table (main cells).
    heterogeneity_ci
        Q-profile confidence intervals of tau², tau, I² and H² (``reml.confint()``).
    ppc
        Posterior predictive checks of ``bayes`` (NUTS fits).
    notes, warnings, timings
        Steps not computed and why; every warning; seconds per step.
    """

    analysis: Analysis
    k: int
    seed: int
    status: str
    reml: Any = None
    bayes: BayesResult | None = None
    exact_check: BayesResult | None = None
    sensitivity: Mapping[str, BayesResult] = field(default_factory=dict)
    relevance: ClinicalRelevance | None = None
    subgroup_relevance: Mapping[str, ClinicalRelevance] = field(default_factory=dict)
    egger: Any = None
    rank: Any = None
    outliers: pd.DataFrame | None = None
    heterogeneity_ci: pd.DataFrame | None = None
    ppc: Any = None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    library_warnings: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.analysis.name

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def bayes_fits(self) -> dict[str, BayesResult]:
        """Every Bayesian fit of this analysis by label (primary first)."""
        out: dict[str, BayesResult] = {}
        if self.bayes is not None:
            out["primary"] = self.bayes
        if self.exact_check is not None:
            out["primary_exact"] = self.exact_check
        out.update(self.sensitivity)
        return out


def skipped(analysis: Analysis, k: int, seed: int, reason: str,
            notes: tuple[str, ...] = ()) -> AnalysisResult:
    return AnalysisResult(analysis=analysis, k=k, seed=seed, status="skipped",
                          notes=(*notes, f"skipped: {reason}"))


def _fit_bayes(settings: FitSettings, rec: Recorder, step: str, rows: pd.DataFrame, seed: int,
               *, tau_prior: Any, mu_prior: Any, engine: str, **model: Any) -> BayesResult:
    from ..bayes import bayes_rma

    common = {"data": rows, "tau_prior": tau_prior, "mu_prior": mu_prior,
              "level": settings.level, "measure": settings.measure, **model}
    if model:
        common["missing"] = "exclude"  # recorded in the result's warnings, never silent
    kind = "subgroup" if "subgroup" in model else ("meta_regression" if "mods" in model
                                                   else "pooled")
    if engine == "exact":
        try:
            with rec.step(step):
                result = bayes_rma("yi", "vi", engine="exact", **common)
            rec.warn(step, result.warnings)
            return result
        except (ImportError, NotImplementedError) as exc:
            if kind == "pooled":
                raise
            rec.note(f"{step}: the exact engine cannot fit this {kind} model ({exc}); NUTS "
                     "was used instead")
    nuts = settings.nuts_settings()
    with rec.step(step):
        result = bayes_rma("yi", "vi", engine="nuts", seed=seed, **nuts, **common)
        if not settings.quick:
            result = _reach_ess(result, rec, step, nuts, lambda draws: bayes_rma(
                "yi", "vi", engine="nuts", seed=seed, **{**nuts, "draws": draws}, **common))
    rec.warn(step, result.warnings)
    return result


def _headline_ess(result: BayesResult) -> tuple[float, str]:
    """The smallest bulk or tail ESS over the headline parameters (the means or coefficients
    and tau), and which parameter it is."""
    from ..bayes.diagnostics import diagnostics_table

    terms = set(result.extras.get("terms", ()))
    names = [p for p in result.params
             if p in terms or p in ("mu", "tau") or p.startswith(("mu[", "tau["))]
    draws = getattr(result.posterior, "draws", {})
    names = [p for p in names if p in draws]
    # the fit's own diagnostics table has these already; compute only what it lacks
    known = getattr(getattr(result, "diagnostics", None), "table", None)
    have = [p for p in names if known is not None and p in known.index]
    missing = [p for p in names if p not in have]
    parts = ([known.loc[have]] if have else []) + \
        ([diagnostics_table({p: draws[p] for p in missing})] if missing else [])
    table = pd.concat(parts) if parts else pd.DataFrame(columns=["ess_bulk", "ess_tail"])
    if table.empty:
        return float("inf"), ""
    ess = table[["ess_bulk", "ess_tail"]].min(axis=1)
    return float(ess.min()), str(ess.idxmin())


def _reach_ess(result: BayesResult, rec: Recorder, step: str, nuts: dict[str, Any],
               refit: Any) -> BayesResult:
    """Redraw a fit whose headline ESS is below ``DEFAULTS.plan_ess_min`` with proportionally
    more draws (recorded). The redraw is kept only when it passes the diagnostics gate and
    has at least the headline ESS of the fit in hand."""
    from ..config import DEFAULTS

    ess, worst = _headline_ess(result)
    if ess >= DEFAULTS.plan_ess_min:
        return result
    # the draws per chain actually in the result (the gate's retries may have drawn more)
    have = int(np.shape(result.posterior.draws["tau"])[-1]) \
        if "tau" in getattr(result.posterior, "draws", {}) else nuts["draws"]
    cap = max(have, nuts["draws"] * DEFAULTS.plan_ess_max_factor)
    draws = min(cap, math.ceil(have * 1.2 * DEFAULTS.plan_ess_min / max(ess, 1.0)))
    if draws <= have:
        rec.note(f"{step}: ESS {ess:.0f} ({worst}) < {DEFAULTS.plan_ess_min:g} with {have} "
                 f"draws per chain, already the most the plan allows")
        return result
    better = refit(draws)
    new_ess, new_worst = _headline_ess(better)
    passed = getattr(better.diagnostics, "passed", True)
    if not passed or new_ess < ess:
        rec.note(f"{step}: ESS {ess:.0f} ({worst}) < {DEFAULTS.plan_ess_min:g} with {have} "
                 f"draws per chain; a redraw with {draws} was not better (ESS {new_ess:.0f}"
                 f"{'' if passed else ', gate failed'}), the first fit is kept")
        return result
    rec.note(f"{step}: ESS {ess:.0f} ({worst}) < {DEFAULTS.plan_ess_min:g} with "
             f"{have} draws per chain; redrawn with {draws}: ESS {new_ess:.0f}"
             + ("" if new_ess >= DEFAULTS.plan_ess_min else f" ({new_worst}), still short"))
    return better


def _relevance(result: BayesResult, outcome: OutcomeSpec, settings: FitSettings,
               **kwargs: Any) -> ClinicalRelevance:
    from ..clinical import clinical_relevance
    from ..config import DEFAULTS

    standardised = (result.measure or "").upper() in DEFAULTS.standardised_measures
    return clinical_relevance(
        result, mcid=outcome.mcid, sd_ref=outcome.sd_ref if standardised else None,
        direction=outcome.direction, rope=outcome.rope,
        sd_ref_grid=(outcome.sd_ref_grid or None) if standardised else None, **kwargs)


def _ppc(result: BayesResult, rec: Recorder, seed: int, settings: FitSettings) -> Any:
    from ..ppc import posterior_predictive_check

    if result.idata is None and not callable(getattr(result.posterior, "sample", None)):
        rec.note(f"posterior predictive checks not computed: they need posterior draws, and "
                 f"the {result.engine} engine's result has none (run with the NUTS engine)")
        return None
    with rec.step("ppc"):
        # as many replicates as a NUTS fit of the run has draws (fewer in quick mode)
        out = posterior_predictive_check(result, seed=seed,
                                         n_draws=settings.draws * settings.chains)
    rec.warn("ppc", out.warnings)
    return out


def _reml(rows: pd.DataFrame, rec: Recorder, settings: FitSettings) -> Any:
    from ..frequentist import rma

    fit = rec.attempt("reml", lambda: rma("yi", "vi", data=rows, method="REML", test="z",
                                          level=settings.level))
    if fit is not None:
        rec.warn("reml", fit.warnings)
    return fit


def _finish(analysis: Analysis, k: int, seed: int, rec: Recorder, **fields: Any
            ) -> AnalysisResult:
    return AnalysisResult(analysis=analysis, k=k, seed=seed, status="ok",
                          notes=tuple(rec.notes), warnings=tuple(rec.warnings),
                          library_warnings=tuple(rec.library), timings=dict(rec.timings),
                          **fields)


def run_pooled(analysis: Analysis, rows: pd.DataFrame, seed: int, settings: FitSettings,
               outcome: OutcomeSpec | None, notes: tuple[str, ...] = ()) -> AnalysisResult:
    """A pooled analysis: a main cell (with bias tests, outliers and prior sensitivity), a
    re-pooled subset or a reference model."""
    from ..frequentist import egger_test, outliers, rank_test

    rec = Recorder(analysis.name)
    for n in notes:
        rec.note(n)
    main = analysis.kind == "main"
    reml = _reml(rows, rec, settings)
    egger = rank = outl = het = None
    if reml is not None:
        het = rec.attempt("reml_confint", reml.confint)
    if main and reml is not None:
        egger = rec.attempt("egger_test", lambda: egger_test(reml))
        if egger is not None:
            rec.warn("egger_test", egger.warnings)
        rank = rec.attempt("rank_test", lambda: rank_test(reml))
        outl = rec.attempt("outliers", lambda: outliers(reml))
    engine = "exact" if settings.primary_engine == "exact" else "nuts"
    bayes = rec.attempt(f"bayes_{engine}", lambda: _fit_bayes(
        settings, rec, f"bayes_{engine}", rows, seed, tau_prior=settings.tau_prior,
        mu_prior=settings.mu_prior, engine=engine), timed=False)
    exact_check = None
    sensitivity: dict[str, BayesResult] = {}
    if main and bayes is not None:
        if bayes.engine != "exact":
            exact_check = rec.attempt("bayes_exact_check", lambda: _fit_bayes(
                settings, rec, "bayes_exact_check", rows, seed, tau_prior=settings.tau_prior,
                mu_prior=settings.mu_prior, engine="exact"), timed=False)
        alternatives = [(f"tau: {n}", p, settings.mu_prior) for n, p in settings.tau_sensitivity]
        alternatives += [(f"mu: {n}", settings.tau_prior, p) for n, p in settings.mu_sensitivity]
        step = f"sensitivity_{settings.sensitivity_engine}"
        for i, (label, tau_p, mu_p) in enumerate(alternatives, start=1):
            fit = rec.attempt(step, lambda t=tau_p, m=mu_p, s=seed + i: _fit_bayes(
                settings, rec, step, rows, s, tau_prior=t, mu_prior=m,
                engine=settings.sensitivity_engine), timed=False)
            if fit is not None:
                sensitivity[label] = fit
    relevance = None
    if bayes is not None and outcome is not None and outcome.mcid is not None:
        prior_fits = {settings.primary_label: bayes, **sensitivity} if sensitivity else None
        relevance = rec.attempt("clinical_relevance", lambda: _relevance(
            bayes, outcome, settings, prior_sensitivity=prior_fits))
    elif outcome is None or outcome.mcid is None:
        rec.note("clinical relevance not computed: no MCID declared for this outcome")
    ppc = _ppc(bayes, rec, seed, settings) if bayes is not None else None
    return _finish(analysis, int(len(rows)), seed, rec, reml=reml, bayes=bayes,
                   exact_check=exact_check, sensitivity=sensitivity, relevance=relevance,
                   egger=egger, rank=rank, outliers=outl, heterogeneity_ci=het, ppc=ppc)


def _fit_model(settings: FitSettings, rows: pd.DataFrame, seed: int, name: str,
               notes: tuple[str, ...], *, mu_prior: Any, force_nuts: bool = False,
               **model: Any) -> tuple[Recorder, BayesResult | None]:
    """The primary Bayesian fit of a subgroup or meta-regression model (None when it failed,
    the reason in the recorder's notes), its REML twin's warnings recorded."""
    rec = Recorder(name)
    for n in notes:
        rec.note(n)
    engine = "exact" if settings.primary_engine == "exact" and not force_nuts else "nuts"
    bayes = rec.attempt(f"bayes_{engine}", lambda: _fit_bayes(
        settings, rec, f"bayes_{engine}", rows, seed, tau_prior=settings.tau_prior,
        mu_prior=mu_prior, engine=engine, **model), timed=False)
    if bayes is not None and bayes.frequentist is not None:
        rec.warn("reml", bayes.frequentist.warnings)
    return rec, bayes


def run_subgroup(analysis: Analysis, rows: pd.DataFrame, seed: int, settings: FitSettings,
                 outcome: OutcomeSpec | None, notes: tuple[str, ...] = ()) -> AnalysisResult:
    """A Bayesian subgroup model (one mean per level) with its REML twin."""
    pooling = {"subgroup_pooling": True} if analysis.subgroup_pooling else {}
    if pooling and settings.primary_engine == "exact":
        # two variance parameters (tau, omega): no exact engine; NUTS, and the report says so
        notes = (*notes, "partially pooled subgroup means: fitted by NUTS (the exact engine "
                 "integrates over one variance parameter only)")
    rec, bayes = _fit_model(settings, rows, seed, analysis.name, notes,
                            mu_prior=settings.mu_prior, subgroup=analysis.subgroup,
                            tau=analysis.tau, force_nuts=bool(pooling), **pooling)
    if bayes is None:
        return skipped(analysis, int(len(rows)), seed, "the subgroup model could not be "
                       "fitted", tuple(rec.notes))
    relevance: dict[str, ClinicalRelevance] = {}
    if outcome is not None and outcome.mcid is not None:
        for level in bayes.extras.get("levels", []):
            cr = rec.attempt("clinical_relevance", lambda lv=level: _relevance(
                bayes, outcome, settings, param=f"mu[{lv}]", new_param=f"theta_new[{lv}]"))
            if cr is not None:
                relevance[str(level)] = cr
    ppc = _ppc(bayes, rec, seed, settings)
    return _finish(analysis, int(len(rows)), seed, rec, reml=bayes.frequentist, bayes=bayes,
                   subgroup_relevance=relevance, ppc=ppc)


def run_meta_regression(analysis: Analysis, rows: pd.DataFrame, seed: int,
                        settings: FitSettings, notes: tuple[str, ...] = ()) -> AnalysisResult:
    """A Bayesian meta-regression (flat coefficient priors, as bmr()'s default) with its REML
    twin."""
    rec, bayes = _fit_model(settings, rows, seed, analysis.name, notes, mu_prior=None,
                            mods=analysis.mods, coef_prior=None)
    if bayes is None:
        return skipped(analysis, int(len(rows)), seed, "the meta-regression could not be "
                       "fitted", tuple(rec.notes))
    ppc = _ppc(bayes, rec, seed, settings)
    return _finish(analysis, int(len(rows)), seed, rec, reml=bayes.frequentist, bayes=bayes,
                   ppc=ppc)


def check_outcome(spec_outcomes: Mapping[str, OutcomeSpec], analysis: Analysis
                  ) -> OutcomeSpec:
    if analysis.outcome not in spec_outcomes:
        raise InputError(Problem(f"no [outcome.{analysis.outcome}] table; defined: "
                                 f"{', '.join(spec_outcomes)}", column="outcome",
                                 value=analysis.outcome))
    return spec_outcomes[analysis.outcome]
