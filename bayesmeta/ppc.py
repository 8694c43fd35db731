"""Posterior predictive checks for a Bayesian random-effects fit.

Three checks, each a number that can flag a misfit:

* **Study-level predictive p-values.** For each study, P(y_rep_i <= y_i) under two replication
  schemes: *conditional* (y_rep_i ~ N(theta_i, v_i) with theta_i from the posterior; known to be
  conservative because theta_i has seen y_i) and *mixed* (a fresh theta_i ~ N(x_i'beta, tau^2),
  then y_rep_i ~ N(theta_i, v_i); Marshall & Spiegelhalter 2007, doi:10.1214/07-BA211), which is
  close to uniform under the model. Values near 0 or 1 point to outlying studies.
* **LOO-PIT and Pareto k** from leave-one-study-out PSIS-LOO (Vehtari, Gelman & Gabry 2017,
  doi:10.1007/s11222-016-9696-4), computed by arviz on the marginal study likelihood; the PIT
  uses the mixed replicates, so it is a leave-one-out version of the mixed p-value.
* **Heterogeneity discrepancy.** Cochran's Q of replicated data (mixed scheme) against the
  observed Q; the posterior predictive p-value P(Q_rep >= Q_obs) asks whether the model
  reproduces the observed spread of the studies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import DEFAULTS
from .results import BayesResult


def cochran_q(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cochran's Q with inverse-variance weights along the last axis."""
    w = 1.0 / v
    mu = (y * w).sum(axis=-1, keepdims=True) / w.sum()
    return ((y - mu) ** 2 * w).sum(axis=-1)


@dataclass(frozen=True)
class PPCResult:
    """Outcome of :func:`posterior_predictive_check`.

    Attributes
    ----------
    studies
        One row per study: ``y``, ``ppp_conditional``, ``ppp_mixed``, ``loo_pit``,
        ``pareto_k``.
    q_obs, q_rep, ppp_q
        Observed Q, the replicated Q draws, and P(Q_rep >= Q_obs).
    elpd_loo, elpd_loo_se, p_loo
        PSIS-LOO expected log predictive density, its standard error and effective parameters.
    warnings
        E.g. studies with Pareto k > ``DEFAULTS.pareto_k_max`` (LOO unreliable for them).
    """

    studies: pd.DataFrame
    q_obs: float
    q_rep: np.ndarray
    ppp_q: float
    elpd_loo: float | None
    elpd_loo_se: float | None
    p_loo: float | None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "q_obs": self.q_obs,
            "ppp_q": self.ppp_q,
            "elpd_loo": self.elpd_loo,
            "elpd_loo_se": self.elpd_loo_se,
            "p_loo": self.p_loo,
            "n_pareto_k_high": int((self.studies["pareto_k"] > DEFAULTS.pareto_k_max).sum())
            if "pareto_k" in self.studies else None,
            "ppp_mixed_extreme": int(((self.studies["ppp_mixed"] < 0.025)
                                      | (self.studies["ppp_mixed"] > 0.975)).sum()),
            "warnings": list(self.warnings),
        }


def _draws(result: BayesResult, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Joint posterior draws, (draw, study): the linear predictor, each study's tau, theta."""
    if result.idata is not None and "posterior" in result.idata.groups():
        post = result.idata.posterior
        theta = post["theta"].values
        n_draws = theta.shape[0] * theta.shape[1]
        theta = theta.reshape(n_draws, -1)
        lin = post["linpred"].values.reshape(n_draws, -1)
        if "tau_study" in post:
            tau = post["tau_study"].values.reshape(n_draws, -1)
        else:
            tau = np.repeat(post["tau"].values.reshape(-1, 1), theta.shape[1], axis=1)
        return {"tau": tau, "theta": theta, "linpred": lin}
    sampler = getattr(result.posterior, "sample", None)
    if sampler is None:
        raise TypeError("posterior predictive checks need draws; this posterior has none")
    d = sampler(rng, n)
    theta = np.asarray(d["theta"])
    tau = np.asarray(d["tau"])
    if tau.ndim == 1:
        tau = np.repeat(tau[:, None], theta.shape[1], axis=1)
    lin = np.asarray(d.get("linpred", d.get("mu")))
    if lin.ndim == 1:
        lin = np.repeat(lin[:, None], theta.shape[1], axis=1)
    return {"tau": tau, "theta": theta, "linpred": lin}


def posterior_predictive_check(result: BayesResult, *, seed: int = 0,
                               n_draws: int = DEFAULTS.ppc_draws) -> PPCResult:
    """Run the checks described in the module docstring on ``result``."""
    rng = np.random.default_rng(seed)
    d = _draws(result, rng, n_draws)
    y, v = np.asarray(result.yi, float), np.asarray(result.vi, float)
    sd = np.sqrt(v)
    y_cond = d["theta"] + sd * rng.standard_normal(d["theta"].shape)
    theta_mixed = d["linpred"] + d["tau"] * rng.standard_normal(d["theta"].shape)
    y_mixed = theta_mixed + sd * rng.standard_normal(d["theta"].shape)
    studies = pd.DataFrame({
        "y": y,
        "ppp_conditional": (y_cond <= y).mean(axis=0),
        "ppp_mixed": (y_mixed <= y).mean(axis=0),
    }, index=pd.Index(result.labels, name="study"))
    q_obs = float(cochran_q(y, v))
    q_rep = cochran_q(y_mixed, v)
    warnings = []
    elpd = elpd_se = p_loo = None
    if result.idata is not None and "log_likelihood" in result.idata.groups():
        import arviz as az

        loo = az.loo(result.idata, pointwise=True)
        elpd, elpd_se, p_loo = float(loo.elpd_loo), float(loo.se), float(loo.p_loo)
        studies["pareto_k"] = np.asarray(loo.pareto_k)
        # LOO-PIT needs replicates whose study effect has not seen y_i: the mixed replicates
        # (a fresh theta_i), reweighted by PSIS to leave study i out. The stored posterior
        # predictive is conditional on theta_i, which LOO weights cannot undo.
        loglik = result.idata.log_likelihood["y"].values.reshape(y_mixed.shape)
        log_weights, _ = az.psislw(-loglik.T)
        studies["loo_pit"] = np.asarray(az.loo_pit(y=y, y_hat=y_mixed.T,
                                                   log_weights=np.asarray(log_weights)))
        high = studies.index[studies["pareto_k"] > DEFAULTS.pareto_k_max].tolist()
        if high:
            warnings.append(f"Pareto k > {DEFAULTS.pareto_k_max:g} for "
                            f"{', '.join(map(str, high))}: LOO is unreliable for these studies")
    return PPCResult(studies=studies, q_obs=q_obs, q_rep=q_rep,
                     ppp_q=float((q_rep >= q_obs).mean()), elpd_loo=elpd,
                     elpd_loo_se=elpd_se, p_loo=p_loo, warnings=tuple(warnings))


def compare_loo(results: dict[str, BayesResult]) -> pd.DataFrame:
    """Rank models of the same studies by PSIS-LOO (arviz ``compare``, stacking weights).

    Every result must be a NUTS fit of the same studies (same labels and effects), e.g. the
    pooled, subgroup and meta-regression models of one analysis. Returns arviz's table: elpd_loo,
    p_loo, elpd_diff and its standard error ``dse`` against the best model, weight, warning.
    """
    import arviz as az

    from .errors import InputError, Problem

    if len(results) < 2:
        raise InputError(Problem("LOO comparison needs at least two models",
                                 column="results", value=len(results)))
    names = list(results)
    first = results[names[0]]
    problems = []
    for name in names:
        res = results[name]
        if res.idata is None or "log_likelihood" not in res.idata.groups():
            problems.append(Problem("a LOO comparison needs NUTS draws with a log-likelihood "
                                    f"(this is an {res.engine} result)", column=name,
                                    value=res.model))
        elif res.labels != first.labels or not np.array_equal(res.yi, first.yi):
            problems.append(Problem(f"not fitted to the same studies as {names[0]}; LOO "
                                    "compares models of the same data only", column=name,
                                    value=f"k = {res.k}"))
    if problems:
        raise InputError(problems, "compare_loo")
    return az.compare({name: results[name].idata for name in names}, ic="loo")
