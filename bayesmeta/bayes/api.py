"""``bayes_rma``: the Bayesian random-effects model, by NUTS or by exact quadrature.

This module resolves the user's arguments (data, priors, defaults), builds the design, calls an
engine and assembles the frozen :class:`~bayesmeta.results.BayesResult` with its REML twin.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..inputs import EffectData, resolve_effects
from ..results import BayesResult, DrawsPosterior
from ..results import load as _load_file
from . import priors as P

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


def _frequentist_twin(effects: EffectData) -> tuple[Any, list[str]]:
    from ..frequentist import rma

    try:
        return rma(effects.yi, effects.vi, method="REML", labels=list(effects.labels)), []
    except InputError as exc:
        return None, [f"REML twin not computed: {exc}"]


def _prior_draws(prior: Any, rng: np.random.Generator, size: int) -> np.ndarray:
    return np.asarray(prior.sample(rng, size), float)


def _nuts_pooled(effects: EffectData, tau_prior: Any, mu_prior: Any, *, draws: int, tune: int,
                 chains: int, seed: int, target_accept: float, parametrisation: str,
                 backend: str, capacity: int | None, retry: bool,
                 ) -> tuple[DrawsPosterior, Any, Any, dict[str, Any]]:
    import arviz as az
    import xarray as xr

    from .models import pad_data, structure_for
    from .sampling import sample_with_gate

    k = effects.k
    X = np.ones((k, 1))
    if capacity is not None and capacity < k:
        raise InputError(Problem(f"capacity must be at least k = {k}", column="capacity",
                                 value=capacity))
    data = pad_data(effects.yi, effects.vi, X, np.zeros(k, dtype=int),
                    capacity=capacity or _capacity(k))

    def make(param: str):
        return structure_for(1, [None if mu_prior is None else mu_prior.to_dict()],
                             [tau_prior.to_dict()], param, k, capacity=data.y.size)

    raw, diag = sample_with_gate(make, data, coef_names=["mu"], tau_names=["tau"],
                                 labels=effects.labels, parametrisation=parametrisation,
                                 draws=draws, tune=tune, chains=chains, seed=seed,
                                 target_accept=target_accept, backend=backend,
                                 retry=retry)
    rng = np.random.default_rng([seed, 1])
    mu = raw.beta[:, :, 0]
    tau = raw.tau[:, :, 0]
    theta = raw.theta
    theta_new = mu + tau * rng.standard_normal(mu.shape)
    sigma = np.sqrt(effects.vi)
    y_rep = theta + sigma * rng.standard_normal(theta.shape)
    # Leave-one-study-out LOO needs the study's likelihood with its own theta_i integrated
    # out (y_i ~ N(mu, v_i + tau^2)); the conditional N(theta_i, v_i) gives Pareto k > 0.7
    # almost everywhere because theta_i is informed mostly by y_i itself.
    total_sd = np.sqrt(effects.vi + tau[..., None] ** 2)
    loglik = (-0.5 * np.log(2 * np.pi) - np.log(total_sd)
              - 0.5 * ((effects.yi - mu[..., None]) / total_sd) ** 2)
    chain = np.arange(mu.shape[0])
    draw = np.arange(mu.shape[1])
    study = list(effects.labels)
    coords = {"chain": chain, "draw": draw, "study": study}
    posterior = xr.Dataset({
        "mu": (("chain", "draw"), mu),
        "tau": (("chain", "draw"), tau),
        "theta": (("chain", "draw", "study"), theta),
        "theta_new": (("chain", "draw"), theta_new),
    }, coords=coords)
    groups = {
        "posterior": posterior,
        "posterior_predictive": xr.Dataset({"y": (("chain", "draw", "study"), y_rep)},
                                           coords=coords),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "study"), loglik)},
                                     coords=coords),
        "observed_data": xr.Dataset({"y": (("study",), effects.yi)}, coords={"study": study}),
        "constant_data": xr.Dataset({"vi": (("study",), effects.vi)}, coords={"study": study}),
        "sample_stats": xr.Dataset({
            "diverging": (("chain", "draw"), raw.diverging),
            "energy": (("chain", "draw"), raw.energy),
        }, coords={"chain": chain, "draw": draw}),
    }
    notes = []
    priors_proper = tau_prior.is_proper and mu_prior is not None
    if priors_proper:
        n = mu.size
        prng = np.random.default_rng([seed, 2])
        p_mu = _prior_draws(mu_prior, prng, n).reshape(mu.shape)
        p_tau = _prior_draws(tau_prior, prng, n).reshape(mu.shape)
        p_theta = p_mu[..., None] + p_tau[..., None] * prng.standard_normal(theta.shape)
        groups["prior"] = xr.Dataset({
            "mu": (("chain", "draw"), p_mu),
            "tau": (("chain", "draw"), p_tau),
            "theta": (("chain", "draw", "study"), p_theta),
        }, coords=coords)
        groups["prior_predictive"] = xr.Dataset(
            {"y": (("chain", "draw", "study"),
                   p_theta + sigma * prng.standard_normal(theta.shape))}, coords=coords)
    else:
        notes.append("prior group omitted: the prior is improper "
                     f"({'mu flat' if mu_prior is None else tau_prior.describe()})")
    idata = az.InferenceData(**groups)
    draws_map = {"mu": mu, "tau": tau, "theta_new": theta_new}
    draws_map.update({lab: theta[:, :, i] for i, lab in enumerate(effects.labels)})
    settings = {**raw.settings, "requested_parametrisation": parametrisation,
                "capacity": int(data.y.size), "seconds": round(raw.seconds, 3)}
    return DrawsPosterior(draws_map), idata, diag, {"settings": settings, "notes": notes}


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
    engine: str = "nuts",
    draws: int = DEFAULTS.draws,
    tune: int = DEFAULTS.tune,
    chains: int = DEFAULTS.chains,
    seed: int = 0,
    target_accept: float = DEFAULTS.target_accept,
    parametrisation: str = "noncentred",
    backend: str = "nutpie",
    capacity: int | None = None,
    retry: bool = True,
    level: float = DEFAULTS.level,
    labels: Any = None,
    measure: str | None = None,
) -> BayesResult:
    """Bayesian random-effects meta-analysis (the normal-normal hierarchical model).

    ``y_i ~ N(theta_i, v_i)``, ``theta_i ~ N(mu, tau^2)``, with priors on tau and mu.
    Equivalent of R bayesmeta's ``bayesmeta(y, sigma, tau.prior, mu.prior)`` (Röver 2020,
    doi:10.18637/jss.v093.i06).

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
    engine
        ``"nuts"`` (PyMC model sampled by nutpie, with the diagnostics gate) or ``"exact"``
        (one-dimensional quadrature over tau; no sampling).
    draws, tune, chains, seed, target_accept, parametrisation, backend
        NUTS settings. ``parametrisation`` is ``"noncentred"`` (default) or ``"centred"``;
        ``backend`` is ``"nutpie"`` (compile once, default) or ``"pymc"``.
    capacity
        Study slots of the compiled model (default: the next power of two >= k). Fits that
        share a structure and a capacity reuse one compiled sampler; pass the largest k of a
        batch of analyses to compile once for all of them.
    retry
        Retry automatically when the diagnostics gate fails (default True).
    level
        Default interval coverage of summaries (0.95).

    Returns
    -------
    BayesResult
        With the accessor vocabulary ``mean, sd, quantile, interval, prob`` over ``"mu"``,
        ``"tau"``, ``"theta_new"`` and the study labels, and ``result.frequentist`` the REML fit.
    """
    if engine not in ENGINES:
        raise InputError(Problem(f"engine must be one of {', '.join(ENGINES)}",
                                 column="engine", value=engine))
    effects = resolve_effects(yi, vi, data=data, labels=labels, measure=measure,
                              context="bayes_rma input")
    tau_p, mu_p, notes = resolve_priors(effects.measure, tau_prior, mu_prior)
    priors = {"tau": tau_p.to_dict(), "mu": None if mu_p is None else mu_p.to_dict()}
    warnings_: list[str] = list(_data_warnings(effects))
    twin, twin_notes = _frequentist_twin(effects)
    warnings_ += twin_notes
    settings: dict[str, Any] = {"engine": engine, "level": level, "defaults_applied": notes}
    if engine == "exact":
        from .exact import exact_posterior

        posterior = exact_posterior(effects, tau_p, mu_p)
        warnings_ += list(getattr(posterior, "warnings", ()))
        return BayesResult(posterior=posterior, engine="exact", model="pooled", yi=effects.yi,
                           vi=effects.vi, labels=effects.labels, measure=effects.measure,
                           priors=priors, frequentist=twin, settings=settings,
                           warnings=tuple(warnings_), level=level)
    posterior, idata, diag, info = _nuts_pooled(
        effects, tau_p, mu_p, draws=draws, tune=tune, chains=chains, seed=seed,
        target_accept=target_accept, parametrisation=parametrisation, backend=backend,
        capacity=capacity, retry=retry)
    settings.update(info["settings"])
    warnings_ += info["notes"]
    if not diag.passed:
        warnings_.append("NUTS diagnostics gate FAILED after retries: "
                         + "; ".join(diag.messages))
    return BayesResult(posterior=posterior, engine="nuts", model="pooled", yi=effects.yi,
                       vi=effects.vi, labels=effects.labels, measure=effects.measure,
                       priors=priors, frequentist=twin, idata=idata, diagnostics=diag,
                       settings=settings, warnings=tuple(warnings_), level=level)


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


def load(path: str | os.PathLike) -> BayesResult:
    """Read a result saved by ``result.save(path)``, verifying its hash, and re-attach its
    REML twin (recomputed from the stored data)."""
    result = _load_file(path)
    effects = resolve_effects(result.yi, result.vi, labels=list(result.labels),
                              measure=result.measure)
    twin, _ = _frequentist_twin(effects)
    return dataclasses.replace(result, frequentist=twin)
