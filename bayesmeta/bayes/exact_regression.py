"""The exact posterior of subgroup and meta-regression models, by quadrature over tau.

Model (bayesmeta's ``bmr()``; Röver & Friede 2023, doi:10.1016/j.cmpb.2022.107303)::

    y_i | theta_i ~ N(theta_i, v_i),   theta_i | beta, tau ~ N(x_i' beta, tau_g(i)^2),
    beta_j ~ N(m_j, s_j^2) or flat, independently,   tau_g ~ p_g(tau).

**One shared tau.** Given tau, beta | tau, y ~ N(beta_hat, V) with precision
A = V^-1 = X' W X + D, W = diag(1 / (v_i + tau^2)), D = diag(1 / s_j^2) (0 for a flat
coefficient) and beta_hat = V (X' W y + D m). Integrating beta out against its prior (a flat
coefficient with density 1, as REML does)::

    log p(y | tau) = -(k + |N| - p)/2 log(2 pi) + 1/2 sum_i log W_i - sum_{j in N} log s_j
                     - 1/2 log det A - 1/2 [r' W r + (beta_hat - m)' D (beta_hat - m)],

with r = y - X beta_hat and N the coefficients with a normal prior. With every coefficient flat
this is the restricted likelihood of tau^2 (Harville 1977, doi:10.1080/01621459.1977.10480998)
up to a constant, so under a uniform tau prior the marginal posterior mode of tau is the REML
estimate. As tau -> inf, W ~ tau^-2 I and det A ~ tau^-2|F| (F: the flat coefficients), so
p(y | tau) ~ tau^-(k - |F|): the posterior is proper iff the flat columns of X have full rank
and the tau prior's tail times tau^-(k - |F|) is integrable. A conditional variance c' V c
grows like tau^2 iff c puts weight on a flat coefficient, which decides whether a posterior
mean / SD exists.

The marginal posterior of tau is integrated on the adaptive grid of the pooled engine
(:func:`bayesmeta.bayes.exact.tau_grid`, :class:`bayesmeta.bayes.exact.TauMarginal`); every
coefficient, linear combination x0' beta, new-study effect x0' beta + tau z and shrunken study
effect theta_i is a normal mixture over that grid (:class:`~bayesmeta.bayes.mixture.NormalMixture`).

**Separate taus** (subgroups with ``tau="separate"``). With independent coefficient priors and
every coefficient informed by the studies of one tau group only, the groups are independent
models with one shared tau each ("blocks"); a quantity spanning two groups (the difference of
two subgroup means) is a sum of independent mixtures, a mixture over pairs of nodes.

The public entry point is :func:`exact_regression_posterior`;
:class:`ExactRegressionPosterior` is the frozen result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..config import DEFAULTS
from ..errors import InputError, Problem, raise_if
from ..inputs import EffectData
from . import priors as P
from .exact import (
    TauMarginal,
    _decode,
    _encode,
    _integrable,
    _shaped,
    check_interval_args,
    check_op,
    draw_study_effects,
    shortest_interval,
    tau_grid,
)
from .mixture import NormalMixture

__all__ = ["exact_regression_posterior", "ExactRegressionPosterior", "RegressionConditional",
           "regression_conditional"]

MODELS = ("meta_regression", "subgroup")


# ---------------------------------------------------------------------------------------------
# the conditional (given tau) posterior: closed form


@dataclass(frozen=True)
class RegressionConditional:
    """The posterior given tau, at an array of tau values (J,).

    Attributes
    ----------
    tau
        The tau values (J,).
    loglik
        log p(y | tau) with beta integrated out against its prior (module docstring).
    beta_mean, beta_cov
        beta | tau, y ~ N(beta_mean[j], beta_cov[j]): (J, p) and (J, p, p). With flat priors
        these are metafor's ``rma(yi, vi, mods=X, tau2=tau^2)`` coefficients and ``vb``.
        ``beta_cov`` is ``None`` when only the likelihood was asked for.
    log_det_precision
        log det A = -log det beta_cov (J,).
    theta_mean, theta_var
        theta_i | tau, y ~ N(theta_mean, theta_var) (J, k): with B_i = v_i / (v_i + tau^2),
        mean (1 - B_i) y_i + B_i x_i' beta_hat, variance v_i (1 - B_i) + B_i^2 x_i' V x_i
        (``None`` unless asked for).
    """

    tau: np.ndarray
    loglik: np.ndarray
    beta_mean: np.ndarray
    beta_cov: np.ndarray | None
    log_det_precision: np.ndarray
    theta_mean: np.ndarray | None = None
    theta_var: np.ndarray | None = None


def regression_conditional(y: np.ndarray, v: np.ndarray, X: np.ndarray,
                           prior_mean: np.ndarray, prior_sd: np.ndarray, tau: Any,
                           study_effects: bool = False,
                           covariance: bool = True) -> RegressionConditional:
    """The posterior of beta (and of each theta_i) given tau, for each tau in ``tau``.

    ``prior_sd[j] = inf`` marks a flat prior on coefficient j (its ``prior_mean`` is then
    ignored). ``X`` must give the flat coefficients a full-rank design (checked by the caller).
    ``covariance=False`` skips beta's covariance (the quadrature only needs the likelihood).
    """
    y, v, X = (np.asarray(a, float) for a in (y, v, X))
    tau = np.atleast_1d(np.asarray(tau, float))
    proper = np.isfinite(prior_sd)
    prec = np.where(proper, 1.0 / np.where(proper, prior_sd, 1.0) ** 2, 0.0)
    m = np.where(proper, prior_mean, 0.0)
    k, p = X.shape
    tau2 = tau[:, None] ** 2
    W = 1.0 / (v[None, :] + tau2)                                        # (J, k)
    A = np.einsum("jk,ka,kb->jab", W, X, X) + np.diag(prec)
    rhs = (W * y) @ X + prec * m                                          # (J, p)
    L = np.linalg.cholesky(A)
    cov = None
    if covariance or study_effects:
        L_inv = np.linalg.solve(L, np.eye(p))
        cov = np.swapaxes(L_inv, -1, -2) @ L_inv
    # beta_hat by two triangular solves (more accurate than cov @ rhs when A is ill-conditioned)
    half = np.linalg.solve(L, rhs[..., None])
    beta = np.linalg.solve(np.swapaxes(L, -1, -2), half)[..., 0]
    log_det = 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    resid = y[None, :] - beta @ X.T
    quad = np.sum(W * resid**2, axis=1) + np.sum(prec * (beta - m) ** 2, axis=1)
    n_proper = int(np.count_nonzero(proper))
    const = (-0.5 * (k + n_proper - p) * math.log(2 * math.pi)
             - float(np.sum(np.log(prior_sd[proper]))))
    loglik = const + 0.5 * np.sum(np.log(W), axis=1) - 0.5 * log_det - 0.5 * quad
    theta_mean = theta_var = None
    if study_effects:
        B = v[None, :] * W
        lin_var = np.einsum("ka,jab,kb->jk", X, cov, X)
        theta_mean = y[None, :] + B * (beta @ X.T - y[None, :])
        theta_var = v[None, :] * tau2 * W + B**2 * lin_var
    return RegressionConditional(tau=tau, loglik=loglik, beta_mean=beta, beta_cov=cov,
                                 log_det_precision=log_det, theta_mean=theta_mean,
                                 theta_var=theta_var)


# ---------------------------------------------------------------------------------------------
# one tau and the coefficients its studies inform


@dataclass(frozen=True)
class TauBlock(TauMarginal):
    """The studies sharing one tau, the coefficients they inform, and the grid over that tau.

    Attributes
    ----------
    y, v, X
        The block's studies and its design (k_b x p_b).
    prior_mean, prior_sd
        Coefficient priors (``prior_sd = inf``: flat).
    tau_prior
        The prior of this tau.
    tau, log_weights, panel_lo, panel_hi, panel_log_mass, tau_min, log_lump_mass, loglik_zero,
    log_normaliser
        The quadrature grid (see :class:`bayesmeta.bayes.exact.ExactPosterior`).
    beta_mean, beta_cov, theta_mean, theta_var
        Conditional moments at the grid nodes (J, p_b), (J, p_b, p_b), (J, k_b), (J, k_b).
    """

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    tau_prior: P.TauPrior
    tau: np.ndarray
    log_weights: np.ndarray
    panel_lo: np.ndarray
    panel_hi: np.ndarray
    panel_log_mass: np.ndarray
    tau_min: float
    log_lump_mass: float
    loglik_zero: float
    log_normaliser: float
    beta_mean: np.ndarray
    beta_cov: np.ndarray
    theta_mean: np.ndarray
    theta_var: np.ndarray

    GRID_FIELDS: ClassVar[tuple[str, ...]] = (
        "tau", "log_weights", "panel_lo", "panel_hi", "panel_log_mass", "beta_mean",
        "beta_cov", "theta_mean", "theta_var")

    def conditional(self, tau: Any, study_effects: bool = False,
                    covariance: bool = True) -> RegressionConditional:
        return regression_conditional(self.y, self.v, self.X, self.prior_mean, self.prior_sd,
                                      tau, study_effects, covariance)

    def _log_likelihood(self, tau: np.ndarray) -> np.ndarray:
        return self.conditional(tau, covariance=False).loglik

    def _log_joint_term(self, tau: np.ndarray) -> np.ndarray:
        return 0.5 * self.conditional(tau, covariance=False).log_det_precision

    @cached_property
    def flat(self) -> np.ndarray:
        return ~np.isfinite(self.prior_sd)

    @cached_property
    def tail(self) -> tuple[float, float]:
        """(e, b): p(tau | y) ~ tau^-e (log tau)^-b as tau -> inf (module docstring)."""
        return _block_tail(self.tau_prior, self.y.size, int(np.count_nonzero(self.flat)))

    def moment_exists(self, order: int, heavy: bool = True) -> bool:
        """Does the posterior moment of this order exist for a quantity whose conditional SD
        grows like tau (``heavy``) or stays bounded?"""
        return (not heavy) or _integrable(*self.tail, order)

    def combination(self, c: np.ndarray, predictive: bool) -> NormalMixture:
        """c' beta (+ tau z for a new study) as a mixture over the grid."""
        means = self.beta_mean @ c
        var = np.einsum("a,jab,b->j", c, self.beta_cov, c)
        if predictive:
            var = var + self.tau**2
        heavy = predictive or bool(np.any(c[self.flat] != 0))
        return NormalMixture(means=means, sds=np.sqrt(np.maximum(var, 0.0)),
                             weights=self._weights, mean_exists=self.moment_exists(1, heavy),
                             sd_exists=self.moment_exists(2, heavy))

    def study(self, i: int) -> NormalMixture:
        return NormalMixture(means=self.theta_mean[:, i], sds=np.sqrt(self.theta_var[:, i]),
                             weights=self._weights)


def _block_tail(tau_prior: P.TauPrior, k: int, n_flat: int) -> tuple[float, float]:
    a, b = tau_prior._tail
    return a + (k - n_flat), b


# ---------------------------------------------------------------------------------------------
# the result object


@dataclass(frozen=True)
class ExactRegressionPosterior:
    """The exact posterior of a subgroup or meta-regression model (no sampling error).

    ``param`` is a coefficient name (a term name such as ``"intercept"`` or ``"dose"``, or
    ``"mu[<level>]"`` for subgroups), a tau name (``"tau"`` or ``"tau[<level>]"``), a
    new-study effect (``"theta_new[<level>]"``), for subgroup models a pairwise difference
    ``"mu[b] - mu[a]"`` (b after a in level order), or a study label (the shrunken theta_i) —
    the same names as the NUTS results. bmr()'s ``qposterior``/``pposterior``/
    ``post.interval``/``qpredict`` answers correspond to :meth:`quantile`, :meth:`cdf`,
    :meth:`interval` and :meth:`predict`.

    Attributes
    ----------
    yi, vi, labels
        The data.
    X
        The design (k x p), as the user wrote it.
    model
        ``"meta_regression"`` or ``"subgroup"``.
    coef_names, coef_priors
        Coefficient names and priors (``Normal`` or ``None`` = flat).
    tau_names, tau_priors, tau_index
        The taus, their priors and each study's tau (k,).
    new
        New-study parameters: (name, design row, tau group).
    blocks
        One :class:`TauBlock` per tau (in ``tau_names`` order).
    log_marginal_likelihood
        log p(y) when every prior is proper, else ``None``.
    warnings
        Conditions the user should know about (recorded, never printed).
    """

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    X: np.ndarray
    model: str
    coef_names: tuple[str, ...]
    coef_priors: tuple[P.Normal | None, ...]
    tau_names: tuple[str, ...]
    tau_priors: tuple[P.TauPrior, ...]
    tau_index: np.ndarray
    new: tuple[tuple[str, np.ndarray, int], ...]
    blocks: tuple[TauBlock, ...]
    log_marginal_likelihood: float | None = None
    warnings: tuple[str, ...] = field(default=())

    #: the name under which saved results record this posterior type (bayesmeta.results)
    kind: ClassVar[str] = "exact_regression"

    # -- vocabulary ------------------------------------------------------------------------------
    @cached_property
    def differences(self) -> tuple[tuple[str, int, int], ...]:
        """(name, b, a) of every pairwise difference ``"mu[b] - mu[a]"`` (subgroup models)."""
        if self.model != "subgroup":
            return ()
        names = self.coef_names
        return tuple((f"{names[b]} - {names[a]}", b, a) for a in range(len(names))
                     for b in range(a + 1, len(names)))

    @property
    def params(self) -> tuple[str, ...]:
        return (*self.coef_names, *self.tau_names, *(n for n, _, _ in self.new),
                *(n for n, _, _ in self.differences), *self.labels)

    @property
    def k(self) -> int:
        return int(self.yi.size)

    @cached_property
    def _index(self) -> dict[str, tuple[str, Any]]:
        out: dict[str, tuple[str, Any]] = {}
        p = len(self.coef_names)
        for j, name in enumerate(self.coef_names):
            out[name] = ("combination", (np.eye(p)[j], None))
        for g, name in enumerate(self.tau_names):
            out[name] = ("tau", g)
        for name, row, g in self.new:
            out[name] = ("combination", (np.asarray(row, float), g))
        for name, b, a in self.differences:
            out[name] = ("combination", (np.eye(p)[b] - np.eye(p)[a], None))
        for i, label in enumerate(self.labels):
            out[label] = ("study", i)
        return out

    @cached_property
    def _rows(self) -> tuple[np.ndarray, ...]:
        return tuple(np.flatnonzero(self.tau_index == g) for g in range(len(self.blocks)))

    @cached_property
    def _coefs(self) -> tuple[np.ndarray, ...]:
        return _partition(self.X, self.tau_index, len(self.blocks), self.coef_names,
                          self.tau_names)

    @cached_property
    def _cache(self) -> dict[str, NormalMixture]:
        return {}

    def _lookup(self, param: str) -> tuple[str, Any]:
        try:
            return self._index[param]
        except (KeyError, TypeError):
            shown = ", ".join(self.params[:12])
            more = f" (and {len(self.params) - 12} more)" if len(self.params) > 12 else ""
            raise InputError(Problem(f"unknown parameter; allowed: {shown}{more}",
                                     column="param", value=param)) from None

    def _tau_block(self, param: str) -> TauBlock | None:
        what, where = self._lookup(param)
        return self.blocks[where] if what == "tau" else None

    def distribution(self, param: str) -> NormalMixture:
        """The marginal posterior of a non-tau parameter as a :class:`NormalMixture`."""
        what, where = self._lookup(param)
        if what == "tau":
            raise InputError(Problem("tau is not a normal mixture; use the accessors",
                                     column="param", value=param))
        if param not in self._cache:
            if what == "study":
                g = int(self.tau_index[where])
                local = int(np.searchsorted(self._rows[g], where))
                self._cache[param] = self.blocks[g].study(local)
            else:
                c, group = where
                self._cache[param] = self._combination(c, group)
        return self._cache[param]

    def _combination(self, c: np.ndarray, group: int | None) -> NormalMixture:
        parts = []
        for b, coefs in enumerate(self._coefs):
            cb = c[coefs]
            if np.any(cb != 0) or group == b:
                parts.append(self.blocks[b].combination(cb, predictive=group == b))
        if not parts:
            raise InputError(Problem("the linear combination is identically zero",
                                     column="x", value=c.tolist()))
        out = parts[0]
        for part in parts[1:]:
            out = out.add(part)
        return out

    def predict(self, x: Mapping[str, float] | Sequence[float],
                new_study: bool = False) -> NormalMixture:
        """The posterior of x' beta (``new_study=False``: the mean effect at moderator values
        x, bmr()'s ``qpredict(..., mean=TRUE)``) or of a new study's effect x' beta + tau z
        (``new_study=True``), as a :class:`NormalMixture` with the same accessors.

        ``x`` is a design row in the coefficients' order (as written, including the intercept
        column) or a mapping by coefficient name (missing names are 0).
        """
        p = len(self.coef_names)
        if isinstance(x, Mapping):
            unknown = [name for name in x if name not in self.coef_names]
            raise_if([Problem(f"not a coefficient; coefficients: {', '.join(self.coef_names)}",
                              column="x", value=name) for name in unknown], "predict")
            c = np.array([float(x.get(name, 0.0)) for name in self.coef_names])
        else:
            c = np.asarray(x, float).ravel()
            if c.size != p or not np.all(np.isfinite(c)):
                raise InputError(Problem(f"a design row needs {p} finite values "
                                         f"({', '.join(self.coef_names)})", column="x",
                                         value=c.tolist()))
        group = None
        if new_study:
            used = [b for b, coefs in enumerate(self._coefs) if np.any(c[coefs] != 0)]
            if len(used) != 1:
                raise InputError(Problem("a new study belongs to one tau group: its design row "
                                         "must use the coefficients of one group only",
                                         column="x", value=c.tolist()))
            group = used[0]
        return self._combination(c, group)

    # -- public accessors ------------------------------------------------------------------------
    def mean(self, param: str) -> float | None:
        """Posterior mean, or ``None`` where it does not exist (heavy posterior tail)."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).mean()
        return float(block._weights @ block.tau) if block.moment_exists(1) else None

    def sd(self, param: str) -> float | None:
        """Posterior standard deviation, or ``None`` where it does not exist."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).sd()
        if not block.moment_exists(2):
            return None
        w, t = block._weights, block.tau
        return float(math.sqrt(max(w @ (t - w @ t) ** 2, 0.0)))

    def cdf(self, param: str, x: Any) -> float | np.ndarray:
        """P(param <= x)."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).cdf(x)
        return _shaped(x, block._tau_cdf_sf(np.asarray(x, float), upper=False))

    def sf(self, param: str, x: Any) -> float | np.ndarray:
        """P(param > x), computed from the upper tail."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).sf(x)
        return _shaped(x, block._tau_cdf_sf(np.asarray(x, float), upper=True))

    def pdf(self, param: str, x: Any) -> float | np.ndarray:
        """Posterior density at ``x`` (for a tau: on the tau scale)."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).pdf(x)
        with np.errstate(over="ignore"):
            return _shaped(x, np.exp(block._tau_logpdf(np.asarray(x, float))))

    def quantile(self, param: str, q: Any) -> float | np.ndarray:
        """Posterior quantile(s) at probability ``q`` (scalar or array)."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).quantile(q)
        probs = P._probabilities(q, "q")
        return _shaped(q, block._tau_quantile(probs))

    def prob(self, param: str, op: str, value: float) -> float:
        """Posterior probability of ``param op value``, ``op`` in ``<, <=, >, >=``."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).prob(op, value)
        check_op(op)
        if op in ("<", "<="):
            return float(self.cdf(param, float(value)))
        return float(self.sf(param, float(value)))

    def interval(self, param: str, prob: float = DEFAULTS.level,
                 kind: str = DEFAULTS.interval_kind) -> tuple[float, float]:
        """Credible interval with coverage ``prob``: equal-tailed (``"eti"``) or the shortest
        one (``"shortest"``; for a tau it starts at 0 when that is shortest)."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).interval(prob, kind)
        check_interval_args(prob, kind)
        if kind == "eti":
            lo, hi = block._tau_quantile(np.array([(1 - prob) / 2, (1 + prob) / 2]))
            return float(lo), float(hi)
        return shortest_interval(lambda q: block._tau_quantile(np.atleast_1d(q)),
                                 block._tau_logpdf, prob, bounded_below=True)

    def mode(self, param: str) -> float:
        """Posterior mode (for a tau whose prior density is unbounded at 0: the highest
        interior local maximum, as bayesmeta reports it)."""
        block = self._tau_block(param)
        if block is None:
            return self.distribution(param).mode()
        return block._tau_mode(joint=False)[0]

    def joint_mode(self) -> dict[str, float]:
        """The joint posterior mode of (beta, taus) (bmr()'s ``MAP["joint", ]``). With flat
        coefficient priors and the improper uniform tau prior it is the maximum-likelihood
        estimate of the mixed-effects model (metafor's ``method="ML"``)."""
        out: dict[str, float] = {}
        for g, block in enumerate(self.blocks):
            tau, _ = block._tau_mode(joint=True)
            beta = block.conditional([tau]).beta_mean[0]
            out[self.tau_names[g]] = tau
            out.update({self.coef_names[j]: float(b)
                        for j, b in zip(self._coefs[g], beta, strict=True)})
        return {name: out[name] for name in (*self.coef_names, *self.tau_names)}

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Exact joint posterior draws (no Markov chain): each tau by inverting its CDF at
        uniform draws, beta | tau, y from its conditional normal, then theta_i | beta, tau, y_i.

        Returns ``{"tau": (n,) for one shared tau or (n, k) (each study's tau) for separate
        taus, "beta": (n, p), "theta": (n, k), "linpred": (n, k)}`` (linpred = x_i' beta).
        """
        k, p = self.X.shape
        beta = np.zeros((n, p))
        tau_study = np.zeros((n, k))
        for g, block in enumerate(self.blocks):
            tau = block._tau_quantile(rng.uniform(size=n))
            cond = block.conditional(tau)
            chol = np.linalg.cholesky(cond.beta_cov)
            z = rng.standard_normal((n, chol.shape[-1]))
            beta[:, self._coefs[g]] = cond.beta_mean + np.einsum("nab,nb->na", chol, z)
            tau_study[:, self._rows[g]] = tau[:, None]
        linpred = beta @ self.X.T
        theta = draw_study_effects(rng, self.yi, self.vi, tau_study, linpred)
        tau_out = tau_study[:, 0] if len(self.blocks) == 1 else tau_study
        return {"tau": tau_out, "beta": beta, "theta": theta, "linpred": linpred}

    # -- serialisation ---------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this object without recomputing, as float arrays (the
        texts — names, priors, warnings — as UTF-8 codes of canonical JSON)."""
        header = {
            "model": self.model, "labels": list(self.labels),
            "coef_names": list(self.coef_names),
            "coef_priors": [None if c is None else c.to_dict() for c in self.coef_priors],
            "tau_names": list(self.tau_names),
            "tau_priors": [t.to_dict() for t in self.tau_priors],
            "new": [[name, int(g)] for name, _, g in self.new],
            "warnings": list(self.warnings),
        }
        out: dict[str, Any] = {"header_utf8": _encode(header), "yi": self.yi, "vi": self.vi,
                               "X": self.X, "tau_index": self.tau_index}
        if self.new:
            out["new_rows"] = np.stack([np.asarray(row, float) for _, row, _ in self.new])
        for g, block in enumerate(self.blocks):
            for name in TauBlock.GRID_FIELDS:
                out[f"block{g}_{name}"] = getattr(block, name)
            out[f"block{g}_scalars"] = np.array([block.tau_min, block.log_lump_mass,
                                                 block.loglik_zero, block.log_normaliser])
        if self.log_marginal_likelihood is not None:
            out["log_marginal_likelihood"] = np.array([self.log_marginal_likelihood])
        return {name: np.array(value, dtype=float) for name, value in out.items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> ExactRegressionPosterior:
        """Inverse of :meth:`to_arrays`."""
        a = {name: np.asarray(value, float) for name, value in arrays.items()}
        head = _decode(a["header_utf8"])
        coef_priors = tuple(None if c is None else P.from_dict(c) for c in head["coef_priors"])
        tau_priors = tuple(P.from_dict(t) for t in head["tau_priors"])
        X = a["X"].reshape(a["yi"].size, len(head["coef_names"]))
        tau_index = a["tau_index"].astype(int)
        new_rows = a.get("new_rows")
        new = tuple((name, new_rows[i], int(g)) for i, (name, g) in enumerate(head["new"]))
        prior_mean, prior_sd = _prior_arrays(coef_priors)
        coefs = _partition(X, tau_index, len(tau_priors), tuple(head["coef_names"]),
                           tuple(head["tau_names"]))
        blocks = []
        for g, tau_prior in enumerate(tau_priors):
            rows = np.flatnonzero(tau_index == g)
            grid = {name: a[f"block{g}_{name}"] for name in TauBlock.GRID_FIELDS}
            J, pb, kb = grid["tau"].size, coefs[g].size, rows.size
            grid["beta_mean"] = grid["beta_mean"].reshape(J, pb)
            grid["beta_cov"] = grid["beta_cov"].reshape(J, pb, pb)
            grid["theta_mean"] = grid["theta_mean"].reshape(J, kb)
            grid["theta_var"] = grid["theta_var"].reshape(J, kb)
            tau_min, log_lump, loglik_zero, log_z = (float(x) for x in a[f"block{g}_scalars"])
            blocks.append(TauBlock(
                y=a["yi"][rows], v=a["vi"][rows], X=X[np.ix_(rows, coefs[g])],
                prior_mean=prior_mean[coefs[g]], prior_sd=prior_sd[coefs[g]],
                tau_prior=tau_prior, tau_min=tau_min, log_lump_mass=log_lump,
                loglik_zero=loglik_zero, log_normaliser=log_z, **grid))
        lml = a.get("log_marginal_likelihood")
        return cls(yi=a["yi"], vi=a["vi"], labels=tuple(head["labels"]), X=X,
                   model=head["model"], coef_names=tuple(head["coef_names"]),
                   coef_priors=coef_priors,  # type: ignore[arg-type]
                   tau_names=tuple(head["tau_names"]),
                   tau_priors=tau_priors,  # type: ignore[arg-type]
                   tau_index=tau_index, new=new, blocks=tuple(blocks),
                   log_marginal_likelihood=None if lml is None else float(lml.ravel()[0]),
                   warnings=tuple(head["warnings"]))


# ---------------------------------------------------------------------------------------------
# building the posterior


def _prior_arrays(coef_priors: Sequence[P.Normal | None]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([0.0 if c is None else float(c.mean) for c in coef_priors])
    sd = np.array([math.inf if c is None else float(c.sd) for c in coef_priors])
    return mean, sd


def _partition(X: np.ndarray, tau_index: np.ndarray, n_groups: int,
               coef_names: Sequence[str], tau_names: Sequence[str]) -> tuple[np.ndarray, ...]:
    """The coefficients each tau group informs; every coefficient must belong to one group
    (then the groups are independent models)."""
    if n_groups == 1:
        return (np.arange(X.shape[1]),)
    used = np.stack([np.any(X[tau_index == g] != 0, axis=0) for g in range(n_groups)])
    problems = []
    for j, name in enumerate(coef_names):
        groups = np.flatnonzero(used[:, j])
        if groups.size > 1:
            problems.append(Problem(
                "with separate taus the exact engine needs each coefficient informed by the "
                "studies of one tau group only; this one spans "
                f"{', '.join(tau_names[g] for g in groups)} (use engine=\"nuts\")",
                column="X", value=name))
    raise_if(problems, "exact_regression_posterior")
    return tuple(np.flatnonzero(used[g]) for g in range(n_groups))


def _dependent_columns(X: np.ndarray) -> list[int]:
    """Columns that are linear combinations of earlier ones (or zero)."""
    out, kept = [], []
    for j in range(X.shape[1]):
        trial = kept + [j]
        if np.linalg.matrix_rank(X[:, trial]) == len(trial):
            kept = trial
        else:
            out.append(j)
    return out


def _improper_message(tau_prior: P.TauPrior, k: int, flat_names: Sequence[str],
                      where: str) -> str:
    n_flat = len(flat_names)
    flat_text = (f"{n_flat} coefficient{'s' if n_flat != 1 else ''} with a flat prior"
                 + (f" ({', '.join(flat_names)})" if flat_names else ""))
    if isinstance(tau_prior, P.ImproperUniform):
        return (f"the posterior is improper: with the improper uniform tau prior and "
                f"{flat_text}, at least {n_flat + 2} studies are needed{where} (k = {k}); use a "
                "proper tau prior such as HalfNormal, or Normal coefficient priors")
    e, _ = _block_tail(tau_prior, k, n_flat)
    return (f"the posterior is improper: p(tau | y) decays like tau^-{e:g} with "
            f"{tau_prior.describe()}, {flat_text} and k = {k}{where}; use a proper, "
            "lighter-tailed tau prior or Normal coefficient priors")


def _check(effects: Any, layout: Any) -> tuple[np.ndarray, tuple, tuple, np.ndarray]:
    if not isinstance(effects, EffectData):
        raise InputError(Problem("expected validated effect sizes (bayesmeta.inputs.EffectData, "
                                 "e.g. from resolve_effects)", column="effects",
                                 value=type(effects).__name__))
    problems = []
    k = effects.k
    X = np.asarray(layout.X, float)
    if X.ndim != 2 or X.shape[0] != k:
        raise InputError(Problem(f"the design must have one row per study ({k} rows)",
                                 column="X", value=str(X.shape)))
    if not np.all(np.isfinite(X)):
        problems.append(Problem("the design must be finite", column="X", value="nan/inf"))
    if layout.kind not in MODELS:
        problems.append(Problem(f"the model must be one of {', '.join(MODELS)}",
                                column="layout.kind", value=layout.kind))
    coef_priors = []
    for name, prior in zip(layout.coef_names, layout.coef_priors, strict=True):
        if isinstance(prior, P.Flat):
            prior = None
        if prior is not None and not isinstance(prior, P.Normal):
            problems.append(Problem("a coefficient prior must be Normal(mean, sd) or None "
                                    "(flat)", column=f"coef_prior[{name}]", value=repr(prior)))
        coef_priors.append(prior)
    for name, prior in zip(layout.tau_names, layout.tau_priors, strict=True):
        if not isinstance(prior, P.TauPrior):
            problems.append(Problem("a tau prior must be a prior on tau from bayesmeta.priors",
                                    column=name, value=repr(prior)))
    tau_index = np.asarray(layout.tau_index, dtype=int)
    n_groups = len(layout.tau_names)
    if tau_index.shape != (k,) or np.any((tau_index < 0) | (tau_index >= n_groups)):
        problems.append(Problem(f"each study needs a tau group in 0..{n_groups - 1}",
                                column="tau_index", value=str(tau_index.tolist())))
    else:
        for g in np.setdiff1d(np.arange(n_groups), tau_index):
            problems.append(Problem("no study belongs to this tau group", column="tau_index",
                                    value=layout.tau_names[g]))
    names = {*layout.coef_names, *layout.tau_names, *(n for n, _, _ in layout.new)}
    if layout.kind == "subgroup":
        names |= {f"{b} - {a}" for a in layout.coef_names for b in layout.coef_names}
    for i, (label, v) in enumerate(zip(effects.labels, effects.vi, strict=True)):
        if not v > 0:
            problems.append(Problem("the exact engine needs a sampling variance > 0",
                                    row=i + 1, study=label, column="vi", value=float(v)))
        if label in names:
            problems.append(Problem("a study label may not be the name of a model parameter",
                                    row=i + 1, study=label, column="labels", value=label))
    raise_if(problems, "exact_regression_posterior input")
    return X, tuple(coef_priors), tuple(layout.tau_priors), tau_index


def exact_regression_posterior(effects: EffectData, layout: Any) -> ExactRegressionPosterior:
    """The exact posterior of a subgroup or meta-regression model (bmr()), by quadrature over
    each tau.

    Parameters
    ----------
    effects
        Validated effect sizes (:func:`bayesmeta.inputs.resolve_effects`).
    layout
        The model's layout as built by :func:`bayesmeta.bayes_rma` (``kind``
        ``"meta_regression"`` or ``"subgroup"``, design ``X``, ``coef_names``,
        ``coef_priors`` (``Normal`` or ``None`` = flat), ``tau_index``, ``tau_names``,
        ``tau_priors``, ``new``).

    Returns
    -------
    ExactRegressionPosterior

    Raises
    ------
    InputError
        Bad input; a coefficient spanning two tau groups under separate taus; an improper
        posterior (flat coefficients not identified by the design, or too few studies for the
        tau prior's tail, e.g. the improper uniform prior with k <= p_flat + 1).

    References
    ----------
    Röver C, Friede T (2023). Using the bayesmeta R package for Bayesian random-effects
    meta-regression. Comput Methods Programs Biomed 229:107303. doi:10.1016/j.cmpb.2022.107303
    """
    X, coef_priors, tau_priors, tau_index = _check(effects, layout)
    y, v = effects.yi.astype(float), effects.vi.astype(float)
    coef_names, tau_names = tuple(layout.coef_names), tuple(layout.tau_names)
    prior_mean, prior_sd = _prior_arrays(coef_priors)
    coefs = _partition(X, tau_index, len(tau_names), coef_names, tau_names)
    separate = len(tau_names) > 1
    problems, notes, blocks = [], [], []
    for g, (tau_name, tau_prior) in enumerate(zip(tau_names, tau_priors, strict=True)):
        rows = np.flatnonzero(tau_index == g)
        Xb = X[np.ix_(rows, coefs[g])]
        flat = ~np.isfinite(prior_sd[coefs[g]])
        flat_names = [coef_names[j] for j in coefs[g][flat]]
        where = f" in the studies of {tau_name}" if separate else ""
        dependent = _dependent_columns(Xb[:, flat])
        if dependent:
            names = [flat_names[j] for j in dependent]
            problems.append(Problem(
                f"the posterior is improper: these coefficients with a flat prior are not "
                f"identified by the design{where} (collinear with earlier columns, constant "
                f"zero, or more coefficients than studies: k = {rows.size}); drop or merge "
                "them, or give them Normal priors", column="mods", value=", ".join(names)))
            continue
        tail = _block_tail(tau_prior, rows.size, len(flat_names))
        if not _integrable(*tail, 0):
            problems.append(Problem(_improper_message(tau_prior, rows.size, flat_names, where),
                                    column="tau_prior", value=tau_prior.describe()))
            continue
        yb, vb, mb, sb = y[rows], v[rows], prior_mean[coefs[g]], prior_sd[coefs[g]]
        grid = tau_grid(lambda t, Xb=Xb, yb=yb, vb=vb, mb=mb, sb=sb:
                        regression_conditional(yb, vb, Xb, mb, sb, t, covariance=False).loglik,
                        tau_prior, yb, vb, tail)
        cond = regression_conditional(yb, vb, Xb, mb, sb, grid.tau, study_effects=True)
        prefix = f"{tau_name}: " if separate else ""
        notes += [prefix + note for note in grid.notes]
        blocks.append(TauBlock(y=yb, v=vb, X=Xb, prior_mean=mb, prior_sd=sb,
                               tau_prior=tau_prior, beta_mean=cond.beta_mean,
                               beta_cov=cond.beta_cov, theta_mean=cond.theta_mean,
                               theta_var=cond.theta_var, **grid.fields()))
        if tau_prior._logpdf_zero() == math.inf:
            notes.append(f"the prior density of {tau_name} is unbounded at 0 (integrable); "
                         f"mode('{tau_name}') reports the highest interior local maximum")
        missing = [name for name, r in (("mean", 1), ("sd", 2)) if not _integrable(*tail, r)]
        if missing:
            which = f"{tau_name}, of new-study effects" + (
                " and of combinations involving flat-prior coefficients" if flat_names else "")
            notes.append(f"the posterior {' and '.join(missing)} of {which} do not exist "
                         f"(posterior tail of tau ~ tau^-{tail[0]:g}); reported as None")
    raise_if(problems, "exact_regression_posterior")
    proper = all(t.is_proper for t in tau_priors) and all(c is not None for c in coef_priors)
    new = tuple((name, np.asarray(row, float), int(g)) for name, row, g in layout.new)
    return ExactRegressionPosterior(
        yi=y, vi=v, labels=tuple(effects.labels), X=X, model=layout.kind,
        coef_names=coef_names, coef_priors=coef_priors, tau_names=tau_names,
        tau_priors=tau_priors, tau_index=tau_index, new=new, blocks=tuple(blocks),
        log_marginal_likelihood=sum(b.log_normaliser for b in blocks) if proper else None,
        warnings=tuple(notes))
