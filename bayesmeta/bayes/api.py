"""``bayes_rma``: the Bayesian random-effects model, by NUTS or by exact quadrature.

This module resolves the user's arguments (data, priors, defaults), builds the design, calls an
engine and assembles the frozen :class:`~bayesmeta.results.BayesResult` with its REML twin.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..inputs import EffectData, align_moderators, resolve_effects
from ..results import BayesResult, DrawsPosterior
from ..results import load as _load_file
from . import priors as P
from .diagnostics import diagnostics_table

ENGINES = ("nuts", "exact")

#: marks an argument the caller did not pass, so that ``None`` can mean "flat prior"
DEFAULT: Any = type("DefaultPrior", (), {"__repr__": lambda self: "DEFAULT"})()


def resolve_priors(measure: str | None, tau_prior: Any,
                   mu_prior: Any) -> tuple[Any, Any, list[str]]:
    """Apply the package defaults (see :data:`bayesmeta.config.DEFAULTS`).

    For a standardised / log / logit measure (SMD, OR, ...): tau ~ HalfNormal(0.5),
    mu ~ Normal(0, 4). For raw-scale data (MD, or bare arrays without a recorded measure) no
    default tau prior exists, because its scale depends on the units of yi: the caller must
    choose one. mu defaults to flat there.
    """
    notes = []
    standardised = measure is not None and measure.upper() in DEFAULTS.standardised_measures
    if tau_prior is DEFAULT:
        if not standardised:
            what = f"measure {measure}" if measure else "bare arrays (no measure recorded)"
            raise InputError(Problem(
                "tau_prior is required for raw-scale data: a default scale for the "
                "between-study SD cannot be chosen without knowing the units of yi; pass e.g. "
                "bayesmeta.priors.HalfNormal(<a plausible between-study SD in your units>) "
                "(defaults exist for standardised measures: "
                f"{', '.join(sorted(DEFAULTS.standardised_measures))})",
                column="tau_prior", value=what))
        tau_prior = P.from_dict(dict(DEFAULTS.tau_prior_standardised))
        notes.append(f"tau prior: package default for {measure}: {tau_prior.describe()}")
    if mu_prior is DEFAULT:
        if standardised:
            mu_prior = P.from_dict(dict(DEFAULTS.mu_prior_standardised))
            notes.append(f"mu prior: package default for {measure}: {mu_prior.describe()}")
        else:
            mu_prior = None
            notes.append("mu prior: flat (improper uniform), the default for raw-scale data")
    if isinstance(tau_prior, Mapping):
        tau_prior = P.from_dict(dict(tau_prior))
    if isinstance(mu_prior, Mapping):
        mu_prior = P.from_dict(dict(mu_prior))
    if not isinstance(tau_prior, P.TauPrior):
        raise InputError(Problem("tau_prior must be a prior on tau from bayesmeta.priors "
                                 "(e.g. HalfNormal(0.5), rhodes(...))",
                                 column="tau_prior", value=repr(tau_prior)))
    if mu_prior is not None and not isinstance(mu_prior, P.Normal):
        raise InputError(Problem("mu_prior must be bayesmeta.priors.Normal(mean, sd) or None "
                                 "(flat)", column="mu_prior", value=repr(mu_prior)))
    return tau_prior, mu_prior, notes


def _frequentist_twin(effects: EffectData, level: float = DEFAULTS.level,
                      **kwargs: Any) -> tuple[Any, list[str]]:
    """The REML fit of the same data and model (``rma``), for side-by-side tables."""
    from ..frequentist import rma

    try:
        return rma(effects.yi, effects.vi, method="REML", labels=list(effects.labels),
                   level=level, **kwargs), []
    except InputError as exc:
        return None, [f"REML twin not computed: {exc}"]


def _restrict(effects: EffectData, rows: np.ndarray) -> EffectData:
    """The studies at positions ``rows`` (after a recorded exclusion)."""
    if rows.size == effects.k:
        return effects
    data = None if effects.data is None else effects.data.iloc[rows].reset_index(drop=True)
    if data is not None:
        data.attrs = dict(effects.data.attrs)
    return EffectData(yi=effects.yi[rows], vi=effects.vi[rows],
                      labels=tuple(effects.labels[i] for i in rows), measure=effects.measure,
                      rows=effects.rows[rows], data=data)


def _coef_priors(terms: tuple[str, ...], coef_prior: Any) -> tuple[Any, ...]:
    if coef_prior is None:
        return (None,) * len(terms)
    if isinstance(coef_prior, P.Normal):
        return (coef_prior,) * len(terms)
    if isinstance(coef_prior, Mapping):
        unknown = [t for t in coef_prior if t not in terms]
        if unknown:
            raise InputError([Problem(f"not a term of the model; terms: {', '.join(terms)}",
                                      column="coef_prior", value=t) for t in unknown])
        out = []
        for t in terms:
            prior = coef_prior.get(t)
            if isinstance(prior, Mapping):
                prior = P.from_dict(dict(prior))
            if prior is not None and not isinstance(prior, P.Normal):
                raise InputError(Problem("a coefficient prior must be Normal(mean, sd) or None "
                                         "(flat)", column=f"coef_prior[{t}]",
                                         value=repr(prior)))
            out.append(prior)
        return tuple(out)
    raise InputError(Problem("coef_prior must be Normal(mean, sd), a dict by term name, or None",
                             column="coef_prior", value=repr(coef_prior)))


def _regression_layout(effects: EffectData, mods: Any, tau_p: Any, coef_prior: Any,
                       missing: str) -> tuple[EffectData, Layout, list[str], dict[str, Any]]:
    from ..design import design_matrix

    design = design_matrix(mods, effects.data, labels=list(effects.labels), missing=missing)
    warn = [str(e) for e in design.excluded]
    effects = _restrict(effects, design.rows)
    terms = design.terms
    if len(terms) >= effects.k:
        raise InputError(Problem(f"{len(terms)} coefficients ({', '.join(terms)}) for "
                                 f"k = {effects.k} studies: a meta-regression needs k > p",
                                 column="mods", value=design.formula))
    layout = Layout(kind="meta_regression", X=np.asarray(design.matrix, float),
                    coef_names=terms, coef_priors=_coef_priors(terms, coef_prior),
                    tau_index=np.zeros(effects.k, dtype=int), tau_names=("tau",),
                    tau_priors=(tau_p,), coef_dim="moderator")
    twin_kw = {"mods": mods, "data": effects.data} if isinstance(mods, str) else \
        {"mods": mods.iloc[design.rows].reset_index(drop=True)}
    return effects, layout, warn, twin_kw


def _subgroup_layout(effects: EffectData, subgroup: str, tau: str, tau_p: Any, mu_p: Any,
                     missing: str, omega_p: Any = None,
                     ) -> tuple[EffectData, Layout, list[str], dict[str, Any]]:
    from ..design import grouping

    grp = grouping(effects.data, subgroup, labels=list(effects.labels), missing=missing)
    warn = [str(e) for e in grp.excluded]
    effects = _restrict(effects, grp.rows)
    levels = [str(lv) for lv in grp.levels]
    g = len(levels)
    if g < 2:
        raise InputError(Problem(f"a subgroup model needs at least two levels; {subgroup} only "
                                 f"has {', '.join(levels)} among these studies",
                                 column=subgroup, value=levels[0]))
    X = np.zeros((effects.k, g))
    X[np.arange(effects.k), grp.codes] = 1.0
    separate = tau == "separate"
    layout = Layout(
        kind="subgroup", X=X, coef_names=tuple(f"mu[{lv}]" for lv in levels),
        coef_priors=(mu_p,) * g,
        tau_index=np.asarray(grp.codes if separate else np.zeros(effects.k), dtype=int),
        tau_names=tuple(f"tau[{lv}]" for lv in levels) if separate else ("tau",),
        tau_priors=(tau_p,) * (g if separate else 1),
        new=tuple((f"theta_new[{lv}]", np.eye(g)[j], j if separate else 0)
                  for j, lv in enumerate(levels)),
        coef_dim="subgroup", tau_dim="subgroup" if separate else None, pooling=omega_p)
    # Partial pooling is a prior on the subgroup means: the REML twin stays the subgroup model.
    twin_kw = {"subgroup": subgroup, "data": effects.data}
    return effects, layout, warn, twin_kw


def _subgroup_extras(layout: Layout, effects: EffectData, tau: str) -> dict[str, Any]:
    """Subgroup levels, studies per subgroup, and the subgroups too small to report as findings.

    Under separate taus a subgroup with fewer than ``DEFAULTS.subgroup_min_k_separate_tau``
    studies is flagged (its tau posterior mostly returns the prior); under a shared tau one
    with fewer than ``DEFAULTS.subgroup_min_k_shared_tau`` (its mean rests on those studies and
    a tau estimated from the other subgroups)."""
    counts = layout.X.sum(axis=0).astype(int)
    levels = [n[3:-1] for n in layout.coef_names]
    separate = tau == "separate"
    threshold = (DEFAULTS.subgroup_min_k_separate_tau if separate
                 else DEFAULTS.subgroup_min_k_shared_tau)
    flags, messages = [], []
    for lv, n in zip(levels, counts.tolist(), strict=True):
        if n >= threshold:
            continue
        flags.append(lv)
        studies = f"{n} stud{'y' if n == 1 else 'ies'}"
        if separate:
            messages.append(f"subgroup {lv}: only {studies} with a separate tau; its tau "
                            "posterior mostly returns the prior, so its predictive interval "
                            "is not a finding")
        else:
            rests = "one study" if n == 1 else f"{n} studies"
            pooled = (" and the pooling across subgroups" if layout.pooling is not None
                      else "")
            messages.append(f"subgroup {lv}: only {studies} with a shared tau; its mean rests "
                            f"on {rests} and the shared tau{pooled}, so its mean and "
                            "predictive interval are not findings about this subgroup")
    return {"levels": levels, "k_per_subgroup": dict(zip(levels, counts.tolist(), strict=True)),
            "flagged": flags, "flag_messages": messages,
            "subgroup_pooling": layout.pooling is not None}


def _expected_tau2(posterior: Any) -> float | None:
    if isinstance(posterior, DrawsPosterior):
        return float(np.mean(posterior.flat("tau") ** 2))
    m, sd = posterior.mean("tau"), posterior.sd("tau")
    return None if m is None or sd is None else float(sd**2 + m**2)


def _bayes_r2(posterior: Any, effects: EffectData, tau_p: Any, layout: Layout) -> float | None:
    """1 - E[tau^2 | moderators] / E[tau^2 | intercept only, same rows] (not truncated).

    The intercept-only reference is computed exactly (quadrature) with the same tau prior and
    the intercept's prior (flat when the design has none)."""
    from .exact import exact_posterior

    intercept_prior = None
    if "intercept" in layout.coef_names:
        intercept_prior = layout.coef_priors[layout.coef_names.index("intercept")]
    try:
        reference = exact_posterior(effects, tau_p, intercept_prior)
    except InputError:
        return None
    num, den = _expected_tau2(posterior), _expected_tau2(reference)
    if num is None or den is None or den == 0:
        return None
    return 1.0 - num / den


def _exact_layout(effects: EffectData, layout: Layout) -> Any:
    from .exact_regression import exact_regression_posterior

    return exact_regression_posterior(effects, layout)


def _prior_draws(prior: Any, rng: np.random.Generator, size: int) -> np.ndarray:
    return np.asarray(prior.sample(rng, size), float)


@dataclass(frozen=True)
class Layout:
    """How a model's coefficients and taus map onto studies (one per model kind).

    ``X`` is the k x p design; ``coef_names`` name its columns in the result's vocabulary
    (``"mu"``, term names, or ``"mu[<level>]"``); ``tau_index`` assigns each study its tau group
    named by ``tau_names``; ``new`` lists the new-study predictive parameters as
    (name, design row, tau group). ``pooling`` is the prior on omega when the subgroup means are
    partially pooled (drawn from Normal(mu_overall, omega), mu_overall with the coefficients'
    prior), else ``None``.
    """

    kind: str
    X: np.ndarray
    coef_names: tuple[str, ...]
    coef_priors: tuple[Any, ...]
    tau_index: np.ndarray
    tau_names: tuple[str, ...]
    tau_priors: tuple[Any, ...]
    new: tuple[tuple[str, np.ndarray, int], ...] = ()
    coef_dim: str = "moderator"
    tau_dim: str | None = None
    pooling: Any = None


def _nuts_fit(effects: EffectData, layout: Layout, *, draws: int, tune: int, chains: int,
              seed: int, target_accept: float, parametrisation: str, backend: str,
              capacity: int | None, retry: bool, coef_slots: int | None = None,
              ) -> tuple[DrawsPosterior, Any, Any, dict[str, Any]]:
    import arviz as az
    import xarray as xr

    from .models import coef_slots_for, pad_data, structure_for
    from .sampling import sample_with_gate

    k, p = effects.k, layout.X.shape[1]
    if capacity is not None and capacity < k:
        raise InputError(Problem(f"capacity must be at least k = {k}", column="capacity",
                                 value=capacity))
    if coef_slots is not None and coef_slots < p:
        raise InputError(Problem(f"coef_slots must be at least p = {p}", column="coef_slots",
                                 value=coef_slots))
    pooled = layout.pooling is not None
    overall = layout.coef_priors[0] if pooled else None
    data = pad_data(effects.yi, effects.vi, layout.X, layout.tau_index,
                    capacity=capacity or _capacity(k),
                    coef_priors=[None if c is None else c.to_dict()
                                 for c in layout.coef_priors],
                    n_coef=coef_slots or coef_slots_for(p), standardise=not pooled,
                    overall_prior=None if overall is None else overall.to_dict())

    def make(param: str):
        return structure_for(data.M.shape[0], [t.to_dict() for t in layout.tau_priors], param,
                             k, capacity=data.y.size,
                             pooling_prior=layout.pooling.to_dict() if pooled else None)

    raw, diag = sample_with_gate(make, data, coef_names=list(layout.coef_names),
                                 tau_names=list(layout.tau_names), labels=effects.labels,
                                 parametrisation=parametrisation, draws=draws, tune=tune,
                                 chains=chains, seed=seed, target_accept=target_accept,
                                 backend=backend, retry=retry)
    rng = np.random.default_rng([seed, 1])
    beta, tau, theta = raw.beta, raw.tau, raw.theta            # (c, d, p), (c, d, g), (c, d, k)
    shape = beta.shape[:2]
    linpred = np.einsum("cdp,kp->cdk", beta, layout.X)
    tau_study = tau[:, :, layout.tau_index]
    new = {name: beta @ row + tau[:, :, g] * rng.standard_normal(shape)
           for name, row, g in layout.new}
    sigma = np.sqrt(effects.vi)
    y_rep = theta + sigma * rng.standard_normal(theta.shape)
    # Leave-one-study-out LOO needs each study's likelihood with its own theta_i integrated
    # out (y_i ~ N(x_i'beta, v_i + tau^2)); the conditional N(theta_i, v_i) gives Pareto
    # k > 0.7 almost everywhere because theta_i is informed mostly by y_i itself.
    total_sd = np.sqrt(effects.vi + tau_study**2)
    loglik = (-0.5 * np.log(2 * np.pi) - np.log(total_sd)
              - 0.5 * ((effects.yi - linpred) / total_sd) ** 2)
    chain, draw = np.arange(shape[0]), np.arange(shape[1])
    study = list(effects.labels)
    coords = {"chain": chain, "draw": draw, "study": study}
    cd = ("chain", "draw")
    post_vars: dict[str, Any] = {}
    if layout.kind == "pooled":
        post_vars["mu"] = (cd, beta[:, :, 0])
    else:
        coords[layout.coef_dim] = list(_dim_labels(layout.coef_names))
        post_vars["mu" if layout.kind == "subgroup" else "beta"] = (
            (*cd, layout.coef_dim), beta)
    if layout.tau_dim is None:
        post_vars["tau"] = (cd, tau[:, :, 0])
    else:
        coords[layout.tau_dim] = list(_dim_labels(layout.tau_names))
        post_vars["tau"] = ((*cd, layout.tau_dim), tau)
    post_vars["theta"] = ((*cd, "study"), theta)
    post_vars["linpred"] = ((*cd, "study"), linpred)
    if layout.kind != "pooled":
        post_vars["tau_study"] = ((*cd, "study"), tau_study)
    for name, values in new.items():
        post_vars[_var_name(name)] = (cd, values)
    for name, values in raw.extra.items():
        post_vars[name] = (cd, values)
    groups = {
        "posterior": xr.Dataset(post_vars, coords=coords),
        "posterior_predictive": xr.Dataset({"y": ((*cd, "study"), y_rep)}, coords=coords),
        "log_likelihood": xr.Dataset({"y": ((*cd, "study"), loglik)}, coords=coords),
        "observed_data": xr.Dataset({"y": (("study",), effects.yi)}, coords={"study": study}),
        "constant_data": xr.Dataset({"vi": (("study",), effects.vi),
                                     "X": (("study", "column"), layout.X)},
                                    coords={"study": study,
                                            "column": list(layout.coef_names)}),
        "sample_stats": xr.Dataset({"diverging": (cd, raw.diverging),
                                    "energy": (cd, raw.energy)},
                                   coords={"chain": chain, "draw": draw}),
    }
    notes = []
    improper = [c for c in layout.coef_priors if c is None]
    improper += [t for t in layout.tau_priors if not t.is_proper]
    if not improper:
        n = int(np.prod(shape))
        prng = np.random.default_rng([seed, 2])
        p_extra: dict[str, np.ndarray] = {}
        if pooled:
            p_extra["mu_overall"] = _prior_draws(overall, prng, n).reshape(shape)
            p_extra["omega"] = _prior_draws(layout.pooling, prng, n).reshape(shape)
            p_beta = (p_extra["mu_overall"][..., None] + p_extra["omega"][..., None]
                      * prng.standard_normal((*shape, p)))
        else:
            p_beta = np.stack([_prior_draws(c, prng, n).reshape(shape)
                               for c in layout.coef_priors], axis=-1)
        p_tau = np.stack([_prior_draws(t, prng, n).reshape(shape) for t in layout.tau_priors],
                         axis=-1)
        p_theta = (np.einsum("cdp,kp->cdk", p_beta, layout.X)
                   + p_tau[:, :, layout.tau_index] * prng.standard_normal(theta.shape))
        prior_vars = {"theta": ((*cd, "study"), p_theta)}
        for key, (dims, _) in post_vars.items():
            if key in ("mu", "beta"):
                prior_vars[key] = (dims, p_beta if p_beta.ndim == len(dims) else p_beta[..., 0])
            elif key == "tau":
                prior_vars[key] = (dims, p_tau if p_tau.ndim == len(dims) else p_tau[..., 0])
            elif key in p_extra:
                prior_vars[key] = (dims, p_extra[key])
        groups["prior"] = xr.Dataset(prior_vars, coords=coords)
        groups["prior_predictive"] = xr.Dataset(
            {"y": ((*cd, "study"), p_theta + sigma * prng.standard_normal(theta.shape))},
            coords=coords)
    else:
        what = ", ".join("flat coefficient prior" if c is None else c.describe()
                         for c in improper)
        notes.append(f"prior group omitted: the prior is improper ({what})")
    idata = az.InferenceData(**groups)
    draws_map: dict[str, np.ndarray] = {}
    for j, name in enumerate(layout.coef_names):
        draws_map[name] = beta[:, :, j]
    for g, name in enumerate(layout.tau_names):
        draws_map[name] = tau[:, :, g]
    draws_map.update(new)
    draws_map.update(raw.extra)
    if layout.kind == "subgroup":
        names = layout.coef_names
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                draws_map[f"{names[b]} - {names[a]}"] = beta[:, :, b] - beta[:, :, a]
    draws_map.update({lab: theta[:, :, i] for i, lab in enumerate(effects.labels)})
    settings = {**raw.settings, "requested_parametrisation": parametrisation,
                "subgroup_pooling": pooled,
                "capacity": int(data.y.size), "coef_slots": int(data.M.shape[0]),
                "seconds": round(raw.seconds, 3)}
    # The gate judged the sampled parameters; the summary also shows MCSE/ESS of the derived
    # ones (predictive effects drawn with a seeded z, subgroup differences), so they join it.
    derived = {p: v for p, v in draws_map.items() if p not in diag.table.index}
    if derived:
        diag = dataclasses.replace(
            diag, table=pd.concat([diag.table, diagnostics_table(derived)]))
    return DrawsPosterior(draws_map), idata, diag, {"settings": settings, "notes": notes}


def _dim_labels(names: tuple[str, ...]) -> tuple[str, ...]:
    """``mu[active]`` -> ``active`` for a dimension coordinate; term names stay as they are."""
    return tuple(n[n.index("[") + 1:-1] if n.startswith(("mu[", "tau[")) else n for n in names)


def _var_name(name: str) -> str:
    """A NetCDF-safe variable name for a predictive parameter (``theta_new[a b]``)."""
    return name.replace("[", "__").replace("]", "").replace(" ", "_")


def _capacity(k: int) -> int:
    from .models import capacity_for

    return capacity_for(k)


def bayes_rma(
    yi: Any,
    vi: Any,
    *,
    data: Any = None,
    tau_prior: Any = DEFAULT,
    mu_prior: Any = DEFAULT,
    mods: Any = None,
    subgroup: str | None = None,
    tau: str = "shared",
    subgroup_pooling: bool = False,
    omega_prior: Any = DEFAULT,
    coef_prior: Any = None,
    engine: str = "nuts",
    draws: int = DEFAULTS.draws,
    tune: int = DEFAULTS.tune,
    chains: int = DEFAULTS.chains,
    seed: int = DEFAULTS.seed,
    target_accept: float = DEFAULTS.target_accept,
    parametrisation: str = DEFAULTS.parametrisation,
    backend: str = DEFAULTS.backend,
    capacity: int | None = None,
    coef_slots: int | None = None,
    retry: bool = True,
    level: float = DEFAULTS.level,
    labels: Any = None,
    measure: str | None = None,
    missing: str = "error",
) -> BayesResult:
    """Bayesian random-effects meta-analysis: pooled, subgroup or meta-regression model.

    ``y_i ~ N(theta_i, v_i)``, ``theta_i ~ N(x_i' beta, tau^2)`` with priors on tau and beta.
    The pooled model (``x_i = 1``, ``beta = mu``) is R bayesmeta's ``bayesmeta(y, sigma,
    tau.prior, mu.prior)``; meta-regression is its ``bmr()`` (Röver 2020,
    doi:10.18637/jss.v093.i06; Röver & Friede 2023, doi:10.1016/j.cmpb.2022.107303).

    Parameters
    ----------
    yi, vi
        Effects and sampling variances (metafor's yi/vi): arrays or column names of ``data``.
    data
        A table from :func:`bayesmeta.escalc` (which records the measure) or any DataFrame.
    tau_prior
        A prior on tau from :mod:`bayesmeta.priors`. Defaults to HalfNormal(0.5) for
        standardised / log / logit measures; required for raw-scale data.
    mu_prior
        ``bayesmeta.priors.Normal(mean, sd)``, or ``None`` for a flat (improper) prior as in
        bayesmeta's default. Defaults to Normal(0, 4) for standardised measures, flat otherwise.
        For subgroup models it is the prior of every subgroup mean.
    mods
        Moderator formula (``"~ weeks + comparator"``, through formulaic, as in ``rma``) or a
        DataFrame of moderator columns: a meta-regression. Coefficients are reported for the
        design as written (the sampler centres and scales internally).
    subgroup
        A column of ``data``: one mean per subgroup (``mu[<level>]``), with a shared tau
        (``tau="shared"``) or one per subgroup (``tau="separate"``). A subgroup with fewer
        studies than ``DEFAULTS.subgroup_min_k_shared_tau`` (shared tau) or
        ``DEFAULTS.subgroup_min_k_separate_tau`` (separate taus) is flagged in
        ``extras["flagged"]`` and the warnings.
    subgroup_pooling
        With ``subgroup``: draw the subgroup means themselves from a common distribution,
        ``mu[g] ~ Normal(mu_overall, omega)`` (partial pooling across subgroups; Gelman 2006,
        doi:10.1214/06-BA117A), with ``mu_prior`` on ``mu_overall`` and ``omega_prior`` on the
        between-subgroup SD ``omega``; both are reported as parameters. NUTS only (the
        posterior has two variance parameters, tau and omega, so the one-dimensional
        quadrature of ``engine="exact"`` does not apply). The REML twin stays the subgroup
        model without pooling (metafor has no such model). Default False.
    omega_prior
        Prior on omega (a tau-type prior from :mod:`bayesmeta.priors`, proper) when
        ``subgroup_pooling=True``. Default: ``DEFAULTS.omega_prior``, which is the fit's tau
        prior. Concentrated near zero, the subgroup means are pooled into one; wide and away
        from zero, they approach the unpooled subgroup model.
    coef_prior
        Meta-regression coefficient priors: one ``Normal`` for every coefficient, a dict by term
        name (missing terms flat), or ``None`` (flat, as bmr()'s default).
    engine
        ``"nuts"`` (PyMC model sampled by nutpie, with the diagnostics gate) or ``"exact"``
        (one-dimensional quadrature over tau; no sampling).
    draws, tune, chains, seed, target_accept, parametrisation, backend
        NUTS settings (defaults in :data:`bayesmeta.config.DEFAULTS`). ``parametrisation``
        is ``"noncentred"`` (default), ``"centred"`` or ``"marginal"`` (study effects
        integrated out, then drawn exactly); for partially pooled subgroup means it applies to
        the subgroup level as well (``"marginal"`` keeps that level non-centred).
        ``backend`` is ``"nutpie"`` (compile once, default) or ``"pymc"``.
    capacity
        Study slots of the compiled model (default: the next power of two >= k). Fits that
        share a structure and a capacity reuse one compiled sampler; pass the largest k of a
        batch of analyses to compile once for all of them.
    coef_slots
        Coefficient slots of the compiled model (default: the next power of two >= p).
        Pooled, subgroup and meta-regression fits with p <= coef_slots, the same tau prior and
        the same capacity share one compiled sampler (coefficient priors are data).
    retry
        Retry automatically when the diagnostics gate fails (default True).
    level
        Default interval coverage of summaries (0.95).
    missing
        Missing moderator / subgroup values: ``"error"`` (default) or ``"exclude"`` (recorded in
        the result's warnings).

    Returns
    -------
    BayesResult
        With the accessor vocabulary ``mean, sd, quantile, interval, prob`` over ``"mu"``,
        ``"tau"``, ``"theta_new"``, the study labels (shrunken effects), and for meta-regression
        the term names, for subgroups ``"mu[<level>]"``, ``"theta_new[<level>]"`` and the
        differences ``"mu[b] - mu[a]"`` (with ``subgroup_pooling`` also ``"mu_overall"`` and
        ``"omega"``); ``result.frequentist`` is the REML twin.
    """
    if engine not in ENGINES:
        raise InputError(Problem(f"engine must be one of {', '.join(ENGINES)}",
                                 column="engine", value=engine))
    if mods is not None and subgroup is not None:
        raise InputError(Problem("pass either mods= (meta-regression) or subgroup=, not both",
                                 column="subgroup", value=subgroup))
    if tau not in ("shared", "separate"):
        raise InputError(Problem('tau must be "shared" or "separate"', column="tau", value=tau))
    effects = resolve_effects(yi, vi, data=data, labels=labels, measure=measure,
                              context="bayes_rma input")
    tau_p, mu_p, notes = resolve_priors(effects.measure, tau_prior, mu_prior)
    omega_p = _resolve_omega_prior(subgroup, subgroup_pooling, omega_prior, tau_p, engine,
                                   notes)
    if mods is not None:  # a meta-regression has coefficient priors (coef_prior), no mu
        notes = [n for n in notes if not n.startswith("mu prior:")]
    # studies escalc dropped (drop00=True) were warned about by resolve_effects
    warnings_: list[str] = [str(e) for e in effects.excluded]
    if mods is not None:
        mods = align_moderators(mods, effects)  # a table for the caller's rows, after drop00
        effects, layout, extra_warn, twin_kw = _regression_layout(
            effects, mods, tau_p, coef_prior, missing)
        model = "meta_regression"
    elif subgroup is not None:
        effects, layout, extra_warn, twin_kw = _subgroup_layout(
            effects, subgroup, tau, tau_p, mu_p, missing, omega_p)
        model = "subgroup"
    else:
        layout = Layout(kind="pooled", X=np.ones((effects.k, 1)), coef_names=("mu",),
                        coef_priors=(mu_p,), tau_index=np.zeros(effects.k, dtype=int),
                        tau_names=("tau",), tau_priors=(tau_p,),
                        new=(("theta_new", np.ones(1), 0),))
        extra_warn, twin_kw, model = [], {}, "pooled"
    warnings_ += extra_warn + _data_warnings(effects)
    priors = {"tau": tau_p.to_dict(), "mu": None if mu_p is None else mu_p.to_dict()}
    if model == "meta_regression":
        priors["coefficients"] = {n: None if c is None else c.to_dict()
                                  for n, c in zip(layout.coef_names, layout.coef_priors,
                                                  strict=True)}
        priors.pop("mu")
    if omega_p is not None:
        priors["omega"] = omega_p.to_dict()
    twin, twin_notes = _frequentist_twin(effects, level=level, **twin_kw)
    warnings_ += twin_notes
    settings: dict[str, Any] = {"engine": engine, "level": level, "defaults_applied": notes,
                                "tau": tau if subgroup is not None else "shared",
                                "subgroup_pooling": omega_p is not None}
    extras: dict[str, Any] = {}
    if engine == "exact":
        from .exact import exact_posterior

        if model != "pooled":
            posterior = _exact_layout(effects, layout)
        else:
            posterior = exact_posterior(effects, tau_p, mu_p)
        warnings_ += list(getattr(posterior, "warnings", ()))
        idata = diag = None
    else:
        posterior, idata, diag, info = _nuts_fit(
            effects, layout, draws=draws, tune=tune, chains=chains, seed=seed,
            target_accept=target_accept, parametrisation=parametrisation, backend=backend,
            capacity=capacity, retry=retry, coef_slots=coef_slots)
        settings.update(info["settings"])
        warnings_ += info["notes"]
        if not diag.passed:
            warnings_.append("NUTS diagnostics gate FAILED after retries: "
                             + "; ".join(diag.messages))
    if model == "meta_regression":
        extras["terms"] = list(layout.coef_names)
        extras["r2_bayes"] = _bayes_r2(posterior, effects, tau_p, layout)
    if model == "subgroup":
        extras.update(_subgroup_extras(layout, effects, tau))
        warnings_ += extras["flag_messages"]
    if model != "pooled":
        extras["twin_design"] = _twin_design(layout, subgroup, mods, effects.data)
    return BayesResult(posterior=posterior, engine=engine, model=model, yi=effects.yi,
                       vi=effects.vi, labels=effects.labels, measure=effects.measure,
                       priors=priors, frequentist=twin, idata=idata, diagnostics=diag,
                       settings=settings, warnings=tuple(warnings_), level=level,
                       extras=extras)


def _resolve_omega_prior(subgroup: str | None, pooling: bool, omega_prior: Any, tau_p: Any,
                         engine: str, notes: list[str]) -> Any:
    """The prior on omega of partially pooled subgroup means, or None without pooling."""
    if not isinstance(pooling, bool):
        raise InputError(Problem("subgroup_pooling must be True or False",
                                 column="subgroup_pooling", value=repr(pooling)))
    if not pooling:
        if omega_prior is not DEFAULT:
            raise InputError(Problem("omega_prior is the prior of the between-subgroup SD and "
                                     "needs subgroup_pooling=True", column="omega_prior",
                                     value=repr(omega_prior)))
        return None
    if subgroup is None:
        raise InputError(Problem("subgroup_pooling pools subgroup means: pass subgroup= too",
                                 column="subgroup_pooling", value=True))
    if engine == "exact":
        raise InputError(Problem(
            'partially pooled subgroup means need engine="nuts": with omega (the '
            "between-subgroup SD) beside tau the posterior is not conditionally normal given "
            "one variance parameter, so the exact engine's one-dimensional quadrature over tau "
            "does not apply", column="engine", value=engine))
    if omega_prior is DEFAULT:
        if DEFAULTS.omega_prior is None:
            omega_prior = tau_p
            notes.append(f"omega prior: package default, the tau prior: {tau_p.describe()}")
        else:
            omega_prior = P.from_dict(dict(DEFAULTS.omega_prior))
            notes.append(f"omega prior: package default: {omega_prior.describe()}")
    if isinstance(omega_prior, Mapping):
        omega_prior = P.from_dict(dict(omega_prior))
    if not isinstance(omega_prior, P.TauPrior):
        raise InputError(Problem("omega_prior must be a prior on an SD from bayesmeta.priors "
                                 "(e.g. HalfNormal(0.5))", column="omega_prior",
                                 value=repr(omega_prior)))
    if not omega_prior.is_proper:
        raise InputError(Problem("omega_prior must be proper: with a handful of subgroups an "
                                 "improper prior on the between-subgroup SD can leave the "
                                 "posterior improper", column="omega_prior",
                                 value=omega_prior.describe()))
    return omega_prior


def _data_warnings(effects: EffectData) -> list[str]:
    out = []
    se = np.sqrt(effects.vi)
    if se.max() / se.min() > DEFAULTS.se_ratio_warn:
        out.append(f"standard errors differ by a factor {se.max() / se.min():.3g} "
                   f"(> {DEFAULTS.se_ratio_warn:g}); check the input variances")
    if effects.k == 1:
        out.append("k = 1: the between-study SD is informed by its prior alone")
    elif effects.k == 2:
        out.append("k = 2: the between-study SD is weakly identified; its posterior leans on "
                   "the prior")
    return out


def _twin_design(layout: Layout, subgroup: str | None, mods: Any = None,
                 data: pd.DataFrame | None = None) -> dict[str, Any]:
    """What :func:`load` needs to refit the REML twin of a subgroup or regression model, and
    what ``result.predict`` needs to build design rows, JSON-serialisably: the per-study
    subgroup levels; or the design matrix with its term names plus, for a moderator formula or
    table, the formula, the moderator columns of the studies used and the categorical levels in
    order (:func:`bayesmeta.bayes.prediction.design_record`)."""
    if layout.kind == "subgroup":
        levels = [n[3:-1] for n in layout.coef_names]
        return {"subgroup": subgroup, "order": levels,
                "levels": [levels[j] for j in np.argmax(layout.X, axis=1)]}
    out: dict[str, Any] = {"terms": list(layout.coef_names),
                           "matrix": np.asarray(layout.X, float).tolist()}
    if isinstance(mods, str | pd.DataFrame):
        from .prediction import design_record

        out.update(design_record(mods, data, layout.coef_names, layout.X))
        out["source"] = "formula" if isinstance(mods, str) else "table"
    return out


def _twin_from_design(effects: EffectData, design: Mapping[str, Any],
                      level: float) -> tuple[Any, list[str]]:
    if "subgroup" in design:
        # the fit's level order (reference first), not the text order of the stored labels
        order = design.get("order") or sorted(set(design["levels"]))
        frame = pd.DataFrame({design["subgroup"]: pd.Categorical(design["levels"],
                                                                 categories=order)})
        return _frequentist_twin(effects, level=level, subgroup=design["subgroup"], data=frame)
    if design.get("formula") and design.get("source") == "formula":
        from .prediction import moderator_frame

        # The fit's own formula on its own moderator columns: the same twin as before saving
        # (and one whose predict() takes moderator values).
        return _frequentist_twin(effects, level=level, mods=design["formula"],
                                 data=moderator_frame(design))
    terms, X = list(design["terms"]), np.asarray(design["matrix"], float)
    keep = [j for j, t in enumerate(terms) if t != "intercept"]
    frame = pd.DataFrame({terms[j]: X[:, j] for j in keep})
    # Backticks keep formulaic's own term names (e.g. comparator[T.passive]) as column names,
    # so the refitted twin's coefficients carry the names of the original fit.
    formula = "~ " + ("" if "intercept" in terms else "0 + ") + " + ".join(
        f"`{terms[j]}`" for j in keep)
    return _frequentist_twin(effects, level=level, mods=formula, data=frame)


def load(path: str | os.PathLike) -> BayesResult:
    """Read a result saved by ``result.save(path)``, verifying its hash, and re-attach its
    REML twin (recomputed from the stored data and, for subgroup and meta-regression models,
    the stored design)."""
    result = _load_file(path)
    effects = resolve_effects(result.yi, result.vi, labels=list(result.labels),
                              measure=result.measure)
    design = result.extras.get("twin_design")
    if design is None:
        twin, _ = _frequentist_twin(effects, level=result.level)
    else:
        twin, _ = _twin_from_design(effects, design, result.level)
    return dataclasses.replace(result, frequentist=twin)
