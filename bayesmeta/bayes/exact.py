"""The exact posterior of the normal-normal random-effects model, by one-dimensional quadrature.

Model (bayesmeta's; Röver 2020, doi:10.18637/jss.v093.i06)::

    y_i | theta_i ~ N(theta_i, v_i),   theta_i | mu, tau ~ N(mu, tau^2),
    tau ~ p(tau),   mu ~ N(m0, s0^2) or flat.

Given tau everything is normal, so mu can be integrated out in closed form. The marginal
posterior of tau is then one-dimensional: p(tau | y) ∝ p(tau) p(y | tau). It is integrated on
u = log tau (where heavy-tailed priors and likelihood tails decay exponentially) by adaptive
composite Gauss-Legendre quadrature; the prior mass below a tiny tau_min, where p(y | tau) is
flat to ~1e-10, is integrated exactly through the prior's CDF. The nodes and weights are
computed once per fit. The posteriors of mu, of a new study's effect theta_new and of each
study's shrunken theta_i are mixtures of the conditional normals over that grid, so densities,
CDFs, quantiles, moments and intervals follow without sampling.

The public entry point is :func:`exact_posterior`; :class:`ExactPosterior` is the frozen result.
The grid (:func:`tau_grid`) and the marginal of tau on it (:class:`TauMarginal`) are shared with
the subgroup and meta-regression engine (:mod:`bayesmeta.bayes.exact_regression`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, special

from ..errors import InputError, Problem, raise_if
from ..inputs import EffectData
from . import priors as P
from .quadrature import (
    adaptive_panels,
    bracketed_newton,
    mixture_cdf,
    mixture_pdf,
    mixture_quantile,
    mixture_sf,
    panel_nodes,
)

__all__ = ["exact_posterior", "ExactPosterior", "Conditional", "conditional_moments"]

#: the parameter names that are not study labels
CORE_PARAMS = ("mu", "tau", "theta_new")
OPERATORS = ("<", "<=", ">", ">=")
INTERVAL_KINDS = ("eti", "shortest")

# Below TAU_MIN_FACTOR * min(sqrt(v_i)) the likelihood p(y | tau) differs from p(y | 0) by a
# relative ~1e-10 * (1 + z^2) and the conditional normals by ~1e-10, so the prior mass there is
# integrated exactly via the prior CDF and carried by one node at tau = 0.
TAU_MIN_FACTOR = 1e-5
# Relative accuracy requested from the adaptive quadrature (per integrand, per panel).
QUADRATURE_RTOL = 1e-11
# log tau beyond which the grid never extends (tau^2 = e^600 is still a finite double).
LOG_TAU_CAP = 300.0
# The grid's upper end is where the (moment-weighted) density is below e^-40 of its peak.
TAIL_LOG_DROP = 40.0
# Prior quantiles used as initial panel edges.
PRIOR_BREAKPOINTS = np.array([1e-6, 1e-3, 0.02, 0.16, 0.5, 0.84, 0.98, 0.999, 1 - 1e-6])
# Nodes whose normalised weight (and moment contributions) fall below this are dropped.
NODE_PRUNE = 1e-20


# ---------------------------------------------------------------------------------------------
# the conditional (given tau) posterior: closed form


@dataclass(frozen=True)
class Conditional:
    """The posterior given tau, at an array of tau values (J,).

    Attributes
    ----------
    tau
        The tau values (J,).
    loglik
        log p(y | tau) with mu integrated out against its prior (flat: the restricted
        likelihood up to a constant; normal: a proper density of y).
    mu_mean, mu_var
        mu | tau, y ~ N(mu_mean, mu_var) (J,).
    theta_mean, theta_var
        theta_i | tau, y ~ N(theta_mean, theta_var) (J, k): the shrinkage posteriors.
    """

    tau: np.ndarray
    loglik: np.ndarray
    mu_mean: np.ndarray
    mu_var: np.ndarray
    theta_mean: np.ndarray
    theta_var: np.ndarray

    @property
    def theta_new_var(self) -> np.ndarray:
        """theta_new | tau, y ~ N(mu_mean, mu_var + tau^2)."""
        return self.mu_var + self.tau**2


def _marginal_loglik(y: np.ndarray, v: np.ndarray, tau: np.ndarray,
                     mu_prior: P.Normal | None) -> tuple[np.ndarray, ...]:
    """log p(y | tau), the conditional mean/variance of mu and the weights 1/(v + tau^2)."""
    tau2 = np.asarray(tau, float)[:, None] ** 2
    W = 1.0 / (v[None, :] + tau2)
    sw = W.sum(axis=1)
    swy = W @ y
    k = y.size
    # sum_i log N(y_i; mu, v_i + tau^2) integrated over mu: a Gaussian integral; a normal mu
    # prior enters as one more "observation" m0 with variance s0^2.
    if mu_prior is None:
        prec = sw
        mean = swy / prec
        quad = np.sum(W * (y[None, :] - mean[:, None]) ** 2, axis=1)
        const = 0.5 * (1 - k) * math.log(2 * math.pi)
    else:
        p0 = 1.0 / mu_prior.sd**2
        prec = sw + p0
        mean = (swy + p0 * mu_prior.mean) / prec
        quad = (np.sum(W * (y[None, :] - mean[:, None]) ** 2, axis=1)
                + p0 * (mean - mu_prior.mean) ** 2)
        const = -0.5 * k * math.log(2 * math.pi) - math.log(mu_prior.sd)
    loglik = const + 0.5 * np.sum(np.log(W), axis=1) - 0.5 * np.log(prec) - 0.5 * quad
    return loglik, mean, 1.0 / prec, W, tau2


def conditional_moments(yi: Any, vi: Any, tau: Any,
                        mu_prior: P.Normal | None = None) -> Conditional:
    """The conditional posterior given tau (closed form), for each tau in ``tau``.

    With a flat mu prior, mu | tau, y ~ N(mu_hat(tau), 1 / sum w_i) with w_i = 1/(v_i + tau^2):
    the random-effects estimate of metafor's ``rma(..., tau2=tau^2)`` and its variance.
    Study i's shrinkage posterior: with B_i = v_i / (v_i + tau^2),
    theta_i | tau, y ~ N((1 - B_i) y_i + B_i mu_hat, v_i (1 - B_i) + B_i^2 var(mu)).
    """
    y = np.asarray(yi, float)
    v = np.asarray(vi, float)
    tau = np.atleast_1d(np.asarray(tau, float))
    loglik, mean, var, W, tau2 = _marginal_loglik(y, v, tau, mu_prior)
    B = v[None, :] * W
    theta_mean = y[None, :] + B * (mean[:, None] - y[None, :])
    theta_var = v[None, :] * tau2 * W + B**2 * var[:, None]
    return Conditional(tau=tau, loglik=loglik, mu_mean=mean, mu_var=var,
                       theta_mean=theta_mean, theta_var=theta_var)


# ---------------------------------------------------------------------------------------------
# tails: when is the posterior proper, which moments exist


def _tail(tau_prior: P.TauPrior, k: int, flat_mu: bool) -> tuple[float, float]:
    """(e, b) with p(tau | y) ~ tau^-e (log tau)^-b as tau -> inf.

    p(y | tau) ~ tau^-(k-1) with a flat mu prior (mu's own integral contributes a factor tau)
    and tau^-k with a normal one; the prior contributes its own tail exponent.
    """
    a, b = tau_prior._tail
    return a + (k - 1 if flat_mu else k), b


def _integrable(e: float, b: float, r: int) -> bool:
    """Is the integral of t^r t^-e (log t)^-b over (T, inf) finite?"""
    return e - r > 1 or (e - r == 1 and b > 1)


# ---------------------------------------------------------------------------------------------
# text <-> float arrays (to_arrays() returns float arrays only, for the netCDF payload)


def _encode(obj: Any) -> np.ndarray:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(float)


def _decode(arr: Any) -> Any:
    return json.loads(np.asarray(arr, float).astype(np.uint8).tobytes().decode("utf-8"))


# ---------------------------------------------------------------------------------------------
# the result object


class TauMarginal:
    """The marginal posterior of one tau on its quadrature grid: density, CDF, quantiles, mode.

    Shared by the pooled engine (:class:`ExactPosterior`) and the regression engine
    (:mod:`bayesmeta.bayes.exact_regression`). A class using it is a frozen dataclass with the
    grid fields ``tau_prior, tau, log_weights, panel_lo, panel_hi, panel_log_mass, tau_min,
    log_lump_mass, loglik_zero, log_normaliser`` (documented on :class:`ExactPosterior`) and
    implements :meth:`_log_likelihood` and :meth:`_log_joint_term`.
    """

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

    def _log_likelihood(self, tau: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """log p(y | tau) with the coefficients integrated out (J,)."""
        raise NotImplementedError

    def _log_joint_term(self, tau: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """-1/2 log det Cov(coefficients | tau, y): added to the marginal density of tau it
        gives the joint density at the conditional mode of the coefficients (up to a
        constant), whose maximiser is the joint posterior mode."""
        raise NotImplementedError

    @cached_property
    def _weights(self) -> np.ndarray:
        return np.exp(self.log_weights)

    # -- the tau marginal: density and CDF by fresh quadrature inside one panel -------------------
    def _log_density_u(self, u: np.ndarray) -> np.ndarray:
        """log of the unnormalised density of u = log tau."""
        u = np.asarray(u, float)
        tau = np.exp(u)
        loglik = self._log_likelihood(tau.ravel())
        return (np.asarray(self.tau_prior.logpdf(tau), float) + u
                + loglik.reshape(u.shape))

    @cached_property
    def _panel_mass(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(mass before panel p, mass after panel p, lump share), all normalised."""
        mass = np.exp(self.panel_log_mass - self.log_normaliser)
        lump = math.exp(self.log_lump_mass - self.log_normaliser)
        before = lump + np.concatenate([[0.0], np.cumsum(mass)[:-1]])
        after = np.concatenate([np.cumsum(mass[::-1])[::-1][1:], [0.0]])
        return before, after, lump

    def _partial(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Normalised mass of u = log tau on [lo, hi] (arrays, inside one panel each)."""
        nodes, weights = panel_nodes(lo, hi)
        logf = self._log_density_u(nodes) - self.log_normaliser
        return np.sum(weights * np.exp(logf), axis=1)

    def _tau_cdf_sf(self, t: np.ndarray, upper: bool) -> np.ndarray:
        t = np.asarray(t, float).ravel()
        before, after, lump = self._panel_mass
        out = np.zeros(t.size)
        below = (t > 0) & (t < self.tau_min)
        if np.any(below):
            out[below] = np.exp(self.loglik_zero + self.tau_prior._log_mass_below(t[below])
                                - self.log_normaliser)
        inside = (t >= self.tau_min) & (t < math.exp(self.panel_hi[-1]))
        if np.any(inside):
            u = np.log(t[inside])
            p = np.clip(np.searchsorted(self.panel_hi, u, side="right"), 0,
                        self.panel_hi.size - 1)
            if upper:
                out[inside] = after[p] + self._partial(u, self.panel_hi[p])
            else:
                out[inside] = before[p] + self._partial(self.panel_lo[p], u)
        out[t >= math.exp(self.panel_hi[-1])] = 1.0
        if upper:
            out[below] = 1.0 - out[below]
            out[t <= 0] = 1.0
            out[t >= math.exp(self.panel_hi[-1])] = 0.0
        return np.clip(out, 0.0, 1.0)

    def _tau_logpdf(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float).ravel()
        out = np.full(t.size, -np.inf)
        pos = t > 0
        if np.any(pos):
            loglik = self._log_likelihood(t[pos])
            out[pos] = np.asarray(self.tau_prior.logpdf(t[pos]), float) + loglik
        zero = t == 0
        if np.any(zero):
            out[zero] = self.tau_prior._logpdf_zero() + self.loglik_zero
        return out - self.log_normaliser

    def _tau_quantile(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, float).ravel()
        before, after, lump = self._panel_mass
        out = np.empty(q.size)
        small = (q > 0) & (q <= lump)
        if np.any(small):
            # below tau_min the CDF is p(y | 0) * (prior mass below t) / Z
            with np.errstate(divide="ignore"):
                mass = np.exp(np.log(q[small]) + self.log_normaliser - self.loglik_zero)
            out[small] = self.tau_prior._mass_below_inverse(mass)
        rest = ~small & (q > 0) & (q < 1)
        if np.any(rest):
            qr = q[rest]
            ends = before + np.exp(self.panel_log_mass - self.log_normaliser)
            p = np.clip(np.searchsorted(ends, qr, side="left"), 0, self.panel_lo.size - 1)
            lo, hi = self.panel_lo[p], self.panel_hi[p]
            upper = qr > 0.5

            def residual(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                # one pass: the partial mass on the side of u that keeps tail precision, and
                # the density at u (the slope)
                a, b = np.where(upper, u, lo), np.where(upper, hi, u)
                nodes, weights = panel_nodes(a, b)
                logf = self._log_density_u(np.column_stack([nodes, u])) - self.log_normaliser
                part = np.sum(weights * np.exp(logf[:, :-1]), axis=1)
                r = np.where(upper, (1.0 - qr) - (after[p] + part), before[p] + part - qr)
                return r, np.exp(logf[:, -1])

            # start from the CDF at the grid nodes (cumulative weights), within the panel
            w = self._weights
            u0 = np.interp(qr, (np.cumsum(w) - 0.5 * w)[1:], np.log(self.tau[1:]))
            u0 = np.clip(u0, lo, hi)
            u = bracketed_newton(residual, lo, hi, u0, np.full(qr.size, 1e-13))
            out[rest] = np.exp(u)
        out[q >= 1] = math.inf
        out[q <= 0] = 0.0
        return out

    def _tau_mode(self, joint: bool) -> tuple[float, float]:
        def objective(tau: np.ndarray) -> np.ndarray:
            tau = np.atleast_1d(np.asarray(tau, float))
            value = np.asarray(self.tau_prior.logpdf(tau), float) + self._log_likelihood(tau)
            if joint:
                value = value + self._log_joint_term(tau)
            return value

        nodes = self.tau[1:]
        values = objective(nodes)
        at_zero = objective(np.array([0.0]))[0]
        T = np.concatenate([[0.0], nodes])
        D = np.concatenate([[at_zero], values])
        best_t, best_v = (0.0, at_zero) if np.isfinite(at_zero) else (0.0, -np.inf)
        upper = self.tau_prior.support_upper
        if math.isfinite(upper):
            # a bounded prior (Uniform) can put the mode on its upper end
            at_upper = objective(np.array([upper]))[0]
            T, D = np.append(T, upper), np.append(D, at_upper)
            if at_upper >= D[-2] and at_upper > best_v:
                best_t, best_v = upper, at_upper
        interior = np.flatnonzero((D[1:-1] >= D[:-2]) & (D[1:-1] >= D[2:])) + 1
        for j in interior[np.argsort(D[interior])[::-1][:3]]:
            lo, hi = math.log(max(T[j - 1], T[1] * 1e-3)), math.log(T[j + 1])
            res = optimize.minimize_scalar(lambda u: -float(objective(math.exp(u))[0]),
                                           bounds=(lo, hi), method="bounded",
                                           options={"xatol": 1e-11})
            t, v = math.exp(res.x), -float(res.fun)
            if v > best_v:
                best_t, best_v = t, v
        return best_t, best_v


@dataclass(frozen=True)
class ExactPosterior(TauMarginal):
    """The exact posterior of the normal-normal model (no sampling error).

    The accessors take ``param`` = ``"mu"``, ``"tau"``, ``"theta_new"`` (the effect in a new
    study) or a study label (that study's shrinkage posterior theta_i), as in bayesmeta's
    ``dposterior``/``pposterior``/``qposterior``/``post.interval``.

    Attributes
    ----------
    yi, vi, labels
        The data.
    tau_prior, mu_prior
        The priors (``mu_prior`` ``None`` = flat).
    tau
        Grid nodes (J,): ``tau[0] = 0`` carries the prior mass below ``tau_min`` (where the
        likelihood is flat); the rest are Gauss-Legendre nodes on log tau.
    log_weights
        Normalised log-weights of the nodes (``logsumexp(log_weights) = 0``).
    mu_mean, mu_var, theta_mean, theta_var
        Conditional moments at the nodes: mu | tau ~ N(mu_mean, mu_var); theta_new | tau ~
        N(mu_mean, mu_var + tau^2); theta_i | tau ~ N(theta_mean[:, i], theta_var[:, i]).
    panel_lo, panel_hi, panel_log_mass
        The quadrature panels on u = log tau and the log of each panel's unnormalised mass;
        the CDF of tau integrates the density freshly inside one panel.
    tau_min, log_lump_mass, loglik_zero, log_normaliser
        tau_min = exp(panel_lo[0]); the log prior mass below it times p(y | 0); log p(y | 0);
        log of the total unnormalised mass Z.
    log_marginal_likelihood
        log p(y) when both priors are proper, else ``None``.
    warnings
        Conditions the user should know about (recorded, never printed).
    """

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    tau_prior: P.TauPrior
    mu_prior: P.Normal | None
    tau: np.ndarray
    log_weights: np.ndarray
    mu_mean: np.ndarray
    mu_var: np.ndarray
    theta_mean: np.ndarray
    theta_var: np.ndarray
    panel_lo: np.ndarray
    panel_hi: np.ndarray
    panel_log_mass: np.ndarray
    tau_min: float
    log_lump_mass: float
    loglik_zero: float
    log_normaliser: float
    log_marginal_likelihood: float | None = None
    warnings: tuple[str, ...] = field(default=())

    #: the name under which saved results record this posterior type (bayesmeta.results)
    kind: ClassVar[str] = "exact"

    # -- vocabulary ------------------------------------------------------------------------------
    @property
    def params(self) -> tuple[str, ...]:
        """``("mu", "tau", "theta_new", *study labels)``."""
        return (*CORE_PARAMS, *self.labels)

    @property
    def k(self) -> int:
        return int(self.yi.size)

    def _check_param(self, param: str) -> str:
        if param not in CORE_PARAMS and param not in self._label_index:
            shown = ", ".join([*CORE_PARAMS, *self.labels[:10]])
            more = f" (and {len(self.labels) - 10} more study labels)" if self.k > 10 else ""
            raise InputError(Problem(f"unknown parameter; allowed: {shown}{more}",
                                     column="param", value=param))
        return param

    @cached_property
    def _label_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @cached_property
    def _tail_exponent(self) -> tuple[float, float]:
        return _tail(self.tau_prior, self.k, self.mu_prior is None)

    def _moment_exists(self, param: str, order: int) -> bool:
        if param == "tau" or param == "theta_new" or (param == "mu" and self.mu_prior is None):
            return _integrable(*self._tail_exponent, order)
        return True  # mu under a normal prior and every theta_i have bounded conditional moments

    def _mixture(self, param: str) -> tuple[np.ndarray, np.ndarray]:
        """(means, sds) of the conditional normals (J,) for a non-tau parameter."""
        if param == "mu":
            return self.mu_mean, np.sqrt(self.mu_var)
        if param == "theta_new":
            return self.mu_mean, np.sqrt(self.mu_var + self.tau**2)
        i = self._label_index[param]
        return self.theta_mean[:, i], np.sqrt(self.theta_var[:, i])

    def _log_likelihood(self, tau: np.ndarray) -> np.ndarray:
        return _marginal_loglik(self.yi, self.vi, tau, self.mu_prior)[0]

    def _log_joint_term(self, tau: np.ndarray) -> np.ndarray:
        return -0.5 * np.log(_marginal_loglik(self.yi, self.vi, tau, self.mu_prior)[2])

    # -- public accessors ------------------------------------------------------------------------
    def mean(self, param: str) -> float | None:
        """Posterior mean, or ``None`` where it does not exist (heavy posterior tail)."""
        self._check_param(param)
        if not self._moment_exists(param, 1):
            return None
        if param == "tau":
            return float(self._weights @ self.tau)
        means, _ = self._mixture(param)
        return float(self._weights @ means)

    def sd(self, param: str) -> float | None:
        """Posterior standard deviation, or ``None`` where it does not exist."""
        self._check_param(param)
        if not self._moment_exists(param, 2):
            return None
        w = self._weights
        if param == "tau":
            m = w @ self.tau
            return float(math.sqrt(max(w @ (self.tau - m) ** 2, 0.0)))
        means, sds = self._mixture(param)
        m = w @ means
        return float(math.sqrt(max(w @ (sds**2 + (means - m) ** 2), 0.0)))

    def _evaluate(self, param: str, x: Any, of_tau: Callable[[np.ndarray], np.ndarray],
                  of_mixture: Callable[..., np.ndarray]) -> float | np.ndarray:
        """A distribution function at ``x``: ``of_tau`` for tau, ``of_mixture`` (a batched
        mixture function of :mod:`.quadrature`) for the normal mixtures."""
        self._check_param(param)
        arr = np.asarray(x, float)
        if param == "tau":
            out = of_tau(arr)
        else:
            means, sds = self._mixture(param)
            out = of_mixture(arr.reshape(1, -1), means[None], sds[None], self._weights)[0]
        return _shaped(x, out)

    def cdf(self, param: str, x: Any) -> float | np.ndarray:
        """P(param <= x)."""
        return self._evaluate(param, x, lambda t: self._tau_cdf_sf(t, upper=False), mixture_cdf)

    def sf(self, param: str, x: Any) -> float | np.ndarray:
        """P(param > x), computed from the upper tail."""
        return self._evaluate(param, x, lambda t: self._tau_cdf_sf(t, upper=True), mixture_sf)

    def pdf(self, param: str, x: Any) -> float | np.ndarray:
        """Posterior density at ``x`` (for tau: on the tau scale)."""
        return self._evaluate(param, x, self._tau_pdf, mixture_pdf)

    def _tau_pdf(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(self._tau_logpdf(t))

    def quantile(self, param: str, q: Any) -> float | np.ndarray:
        """Posterior quantile(s) at probability ``q`` (scalar or array)."""
        self._check_param(param)
        probs = P._probabilities(q, "q")
        if param == "tau":
            out = self._tau_quantile(probs)
        else:
            means, sds = self._mixture(param)
            out = mixture_quantile(probs.ravel(), means[None], sds[None], self._weights)[0]
        return _shaped(q, out)

    def quantile_table(self, q: Any, params: Sequence[str] | None = None
                       ) -> dict[str, np.ndarray]:
        """Quantiles at probabilities ``q`` for many parameters at once (all by default),
        computed in one batched solve: ``{param: array of len(q)}``."""
        probs = np.atleast_1d(P._probabilities(q, "q")).ravel()
        names = list(self.params if params is None else params)
        for name in names:
            self._check_param(name)
        out: dict[str, np.ndarray] = {}
        mixtures = [n for n in names if n != "tau"]
        if mixtures:
            pairs = [self._mixture(n) for n in mixtures]
            means = np.stack([m for m, _ in pairs])
            sds = np.stack([s for _, s in pairs])
            table = mixture_quantile(probs, means, sds, self._weights)
            out.update({n: table[i] for i, n in enumerate(mixtures)})
        if "tau" in names:
            out["tau"] = self._tau_quantile(probs)
        return {n: out[n] for n in names}

    def prob(self, param: str, op: str, value: float) -> float:
        """Posterior probability of ``param op value``, ``op`` in ``<, <=, >, >=`` (the same for
        ``<`` and ``<=``: the posteriors are continuous)."""
        self._check_param(param)
        check_op(op)
        if op in ("<", "<="):
            return float(self.cdf(param, float(value)))
        return float(self.sf(param, float(value)))

    def interval(self, param: str, prob: float = 0.95, kind: str = "eti") -> tuple[float, float]:
        """Credible interval with coverage ``prob``: equal-tailed (``"eti"``) or the shortest
        one (``"shortest"``, equal density at both ends; for tau it starts at 0 when the
        density at 0 is at least that at the ``prob`` quantile)."""
        self._check_param(param)
        check_interval_args(prob, kind)
        if kind == "eti":
            lo, hi = np.asarray(self.quantile(param, [(1 - prob) / 2, (1 + prob) / 2]))
            return float(lo), float(hi)
        return self._shortest(param, prob)

    def _logpdf_at(self, param: str, x: np.ndarray) -> np.ndarray:
        if param == "tau":
            return self._tau_logpdf(x)
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(self.pdf(param, x), float)).ravel()

    def _shortest(self, param: str, prob: float) -> tuple[float, float]:
        return shortest_interval(lambda q: np.asarray(self.quantile(param, q), float),
                                 lambda x: self._logpdf_at(param, x), prob,
                                 bounded_below=param == "tau")

    def mode(self, param: str) -> float:
        """Posterior mode (the marginal density's maximiser).

        For tau under a prior whose density is unbounded at 0 (log-t, Rhodes) the density's
        supremum is at 0; the mode reported is then the highest interior local maximum (as
        bayesmeta reports it), and ``warnings`` says so.
        """
        self._check_param(param)
        if param == "tau":
            return self._tau_mode(joint=False)[0]
        return density_mode(lambda q: np.asarray(self.quantile(param, q), float),
                            lambda x: np.asarray(self.pdf(param, x), float))

    def joint_mode(self) -> dict[str, float]:
        """The joint posterior mode of (mu, tau) (bayesmeta's ``MAP["joint", ]``). With a flat mu
        prior and the improper uniform tau prior it is the maximum-likelihood estimate."""
        tau, _ = self._tau_mode(joint=True)
        cond = conditional_moments(self.yi, self.vi, [tau], self.mu_prior)
        return {"mu": float(cond.mu_mean[0]), "tau": tau}

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Exact joint posterior draws (no Markov chain): tau by inverting its CDF at uniform
        draws, then mu | tau, y and theta_i | mu, tau, y_i from their conditional normals.

        Returns ``{"tau": (n,), "mu": (n,), "theta": (n, k), "linpred": (n, k)}``; ``linpred``
        is the linear predictor (here mu for every study), as in the NUTS results.
        """
        tau = self._tau_quantile(rng.uniform(size=n))
        cond = conditional_moments(self.yi, self.vi, tau, self.mu_prior)
        mu = cond.mu_mean + np.sqrt(cond.mu_var) * rng.standard_normal(n)
        theta = draw_study_effects(rng, self.yi, self.vi, tau[:, None], mu[:, None])
        return {"tau": tau, "mu": mu, "theta": theta,
                "linpred": np.repeat(mu[:, None], self.k, axis=1)}

    # -- serialisation ---------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this object without recomputing, as float arrays (the
        texts — labels, priors, warnings — as UTF-8 codes of canonical JSON)."""
        scalars = np.array([self.tau_min, self.log_lump_mass, self.loglik_zero,
                            self.log_normaliser])
        out = {
            "yi": self.yi, "vi": self.vi, "tau": self.tau, "log_weights": self.log_weights,
            "mu_mean": self.mu_mean, "mu_var": self.mu_var, "theta_mean": self.theta_mean,
            "theta_var": self.theta_var, "panel_lo": self.panel_lo, "panel_hi": self.panel_hi,
            "panel_log_mass": self.panel_log_mass, "scalars": scalars,
            "labels_utf8": _encode(list(self.labels)),
            "tau_prior_utf8": _encode(self.tau_prior.to_dict()),
            "mu_prior_utf8": _encode(None if self.mu_prior is None else self.mu_prior.to_dict()),
            "warnings_utf8": _encode(list(self.warnings)),
        }
        if self.log_marginal_likelihood is not None:
            out["log_marginal_likelihood"] = np.array([self.log_marginal_likelihood])
        return {name: np.array(value, dtype=float) for name, value in out.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> ExactPosterior:
        """Inverse of :meth:`to_arrays`."""
        a = {name: np.asarray(value, float) for name, value in arrays.items()}
        mu_spec = _decode(a["mu_prior_utf8"])
        tau_prior = P.from_dict(_decode(a["tau_prior_utf8"]))
        tau_min, log_lump, loglik_zero, log_z = (float(x) for x in a["scalars"])
        lml = a.get("log_marginal_likelihood")
        return cls(
            yi=a["yi"], vi=a["vi"], labels=tuple(_decode(a["labels_utf8"])),
            tau_prior=tau_prior,  # type: ignore[arg-type]
            mu_prior=None if mu_spec is None else P.from_dict(mu_spec),  # type: ignore[arg-type]
            tau=a["tau"], log_weights=a["log_weights"], mu_mean=a["mu_mean"],
            mu_var=a["mu_var"], theta_mean=a["theta_mean"].reshape(a["tau"].size, -1),
            theta_var=a["theta_var"].reshape(a["tau"].size, -1), panel_lo=a["panel_lo"],
            panel_hi=a["panel_hi"], panel_log_mass=a["panel_log_mass"], tau_min=tau_min,
            log_lump_mass=log_lump, loglik_zero=loglik_zero, log_normaliser=log_z,
            log_marginal_likelihood=None if lml is None else float(lml.ravel()[0]),
            warnings=tuple(_decode(a["warnings_utf8"])),
        )


def shortest_interval(quantile: Callable[[Any], np.ndarray],
                      logpdf: Callable[[np.ndarray], np.ndarray], prob: float,
                      bounded_below: bool = False) -> tuple[float, float]:
    """The shortest interval with coverage ``prob`` of a continuous distribution given by its
    quantile function and log density (``bounded_below``: support [0, inf), so the interval
    may start at 0)."""
    # Minimise the width Q(a + prob) - Q(a) over a in [0, 1 - prob]: a coarse scan (one
    # batched quantile solve) finds the best region, including the boundary a = 0 for a
    # distribution on [0, inf) (needed when the density is unbounded at 0 but carries little
    # mass there); an interior optimum is then refined as the root of the equal-density
    # condition.
    a_grid = np.linspace(0.0, 1.0 - prob, 41)
    qs = np.asarray(quantile(np.concatenate([a_grid, a_grid + prob])), float)
    width = qs[a_grid.size:] - qs[:a_grid.size]
    j = int(np.argmin(np.where(np.isfinite(width), width, np.inf)))

    def gap(a: float) -> float:
        lo, hi = np.asarray(quantile([a, a + prob]), float)
        return float(np.diff(logpdf(np.array([hi, lo])))[0])

    a_lo = max(a_grid[max(j - 1, 0)], 1e-12)
    a_hi = min(a_grid[min(j + 1, a_grid.size - 1)], 1.0 - prob - 1e-12)
    a = a_grid[j]
    if j == 0 and bounded_below:
        best = width[0]
        res = optimize.minimize_scalar(
            lambda x: float(np.diff(np.asarray(quantile([x, x + prob])))[0]),
            bounds=(a_lo, a_hi), method="bounded", options={"xatol": 1e-13})
        if res.fun < best:
            a = float(res.x)
    else:
        g_lo, g_hi = gap(a_lo), gap(a_hi)
        if g_lo < 0 < g_hi:
            a = optimize.brentq(gap, a_lo, a_hi, xtol=1e-15, rtol=1e-13)
        else:
            res = optimize.minimize_scalar(
                lambda x: float(np.diff(np.asarray(quantile([x, x + prob])))[0]),
                bounds=(a_lo, a_hi), method="bounded", options={"xatol": 1e-13})
            a = float(res.x)
    lo, hi = np.asarray(quantile([a, a + prob]), float)
    return float(lo), float(hi)


def density_mode(quantile: Callable[[Any], np.ndarray],
                 pdf: Callable[[np.ndarray], np.ndarray]) -> float:
    """The maximiser of a unimodal-ish density on the real line: a scan of its central
    99.98% and a bounded refinement around the best grid point."""
    lo, hi = quantile([1e-4, 1 - 1e-4])
    grid = np.linspace(lo, hi, 401)
    dens = pdf(grid)
    j = int(np.argmax(dens))
    a, b = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda x: -float(pdf(np.array([x]))[0]), bounds=(a, b),
                                   method="bounded",
                                   options={"xatol": 1e-12 * max(abs(hi - lo), 1e-300)})
    return float(res.x)


def draw_study_effects(rng: np.random.Generator, y: np.ndarray, v: np.ndarray, tau: np.ndarray,
                       linpred: np.ndarray) -> np.ndarray:
    """Draws of theta_i | beta, tau, y_i ~ N((1 - B_i) y_i + B_i x_i'beta, v_i (1 - B_i)) with
    B_i = v_i / (v_i + tau^2) (exact at tau = 0), broadcasting tau and linpred (n, k)."""
    B = v / (v + tau**2)
    mean = (1.0 - B) * y + B * linpred
    return mean + np.sqrt(v * (1.0 - B)) * rng.standard_normal(np.shape(mean))


def _shaped(x: Any, out: np.ndarray) -> float | np.ndarray:
    return float(out.ravel()[0]) if np.ndim(x) == 0 else out.reshape(np.shape(x))


def check_op(op: Any) -> None:
    """Raise unless ``op`` is one of :data:`OPERATORS` (the ``prob`` accessors)."""
    if op not in OPERATORS:
        raise InputError(Problem(f"unknown comparison; allowed: {', '.join(OPERATORS)}",
                                 column="op", value=op))


def check_interval_args(prob: Any, kind: Any) -> None:
    """Raise unless ``prob`` is a coverage in (0, 1) and ``kind`` one of :data:`INTERVAL_KINDS`."""
    if not (isinstance(prob, int | float) and 0 < prob < 1):
        raise InputError(Problem("the coverage must lie strictly between 0 and 1",
                                 column="prob", value=prob))
    if kind not in INTERVAL_KINDS:
        raise InputError(Problem(f"unknown interval kind; allowed: {', '.join(INTERVAL_KINDS)}",
                                 column="kind", value=kind))


# ---------------------------------------------------------------------------------------------
# building the grid


def _check_inputs(effects: Any, tau_prior: Any, mu_prior: Any) -> P.Normal | None:
    if not isinstance(effects, EffectData):
        raise InputError(Problem("expected validated effect sizes (bayesmeta.inputs.EffectData, "
                                 "e.g. from resolve_effects)", column="effects",
                                 value=type(effects).__name__))
    problems = []
    if not isinstance(tau_prior, P.TauPrior):
        problems.append(Problem("tau_prior must be a prior on tau from bayesmeta.priors "
                                "(e.g. HalfNormal(0.5), rhodes(...))", column="tau_prior",
                                value=repr(tau_prior)))
    if isinstance(mu_prior, P.Flat):
        mu_prior = None
    if mu_prior is not None and not isinstance(mu_prior, P.Normal):
        problems.append(Problem("mu_prior must be bayesmeta.priors.Normal(mean, sd) or None "
                                "(flat)", column="mu_prior", value=repr(mu_prior)))
    for i, (label, v) in enumerate(zip(effects.labels, effects.vi, strict=True)):
        if not v > 0:
            problems.append(Problem("the exact engine needs a sampling variance > 0",
                                    row=i + 1, study=label, column="vi", value=float(v)))
        if label in CORE_PARAMS:
            problems.append(Problem(f"a study label may not be one of {', '.join(CORE_PARAMS)} "
                                    "(they name the model's parameters)", row=i + 1,
                                    study=label, column="labels", value=label))
    raise_if(problems, "exact_posterior input")
    return mu_prior


def _improper_message(tau_prior: P.TauPrior, mu_prior: P.Normal | None, k: int) -> str:
    mu_text = "a flat mu prior" if mu_prior is None else "a normal mu prior"
    if isinstance(tau_prior, P.ImproperUniform):
        need = 3 if mu_prior is None else 2
        return (f"the posterior is improper: with the improper uniform tau prior and {mu_text} "
                f"at least {need} studies are needed (k = {k}); use a proper tau prior such as "
                "HalfNormal" + (" or a Normal mu prior" if mu_prior is None else ""))
    e, _ = _tail(tau_prior, k, mu_prior is None)
    return (f"the posterior is improper: p(tau | y) decays like tau^-{e:g} with "
            f"{tau_prior.describe()}, {mu_text} and k = {k}; use a proper, lighter-tailed prior")


def exact_posterior(effects: EffectData, tau_prior: P.TauPrior,
                    mu_prior: P.Normal | None = None) -> ExactPosterior:
    """The exact posterior of the normal-normal random-effects model (bayesmeta's
    ``bayesmeta(y, sigma, tau.prior, mu.prior)``), by quadrature over tau.

    Parameters
    ----------
    effects
        Validated effect sizes (:func:`bayesmeta.inputs.resolve_effects`).
    tau_prior
        A prior on tau from :mod:`bayesmeta.priors` (proper or :class:`ImproperUniform`).
    mu_prior
        :class:`~bayesmeta.priors.Normal` or ``None`` (flat, bayesmeta's default).

    Returns
    -------
    ExactPosterior

    Raises
    ------
    InputError
        Bad input, or an improper posterior (e.g. improper uniform tau prior and flat mu prior
        with k < 3).

    References
    ----------
    Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R package.
    J Stat Softw 93(6). doi:10.18637/jss.v093.i06
    """
    mu_prior = _check_inputs(effects, tau_prior, mu_prior)
    y, v, k = effects.yi.astype(float), effects.vi.astype(float), effects.k
    e, b = _tail(tau_prior, k, mu_prior is None)
    if not _integrable(e, b, 0):
        raise InputError(Problem(_improper_message(tau_prior, mu_prior, k), column="tau_prior",
                                 value=tau_prior.describe()))
    grid = tau_grid(lambda tau: _marginal_loglik(y, v, tau, mu_prior)[0], tau_prior, y, v,
                    (e, b))
    notes = list(grid.notes)
    cond = conditional_moments(y, v, grid.tau, mu_prior)

    if tau_prior._logpdf_zero() == math.inf:
        notes.append("the prior density of tau is unbounded at tau = 0 (integrable); "
                     "mode('tau') reports the highest interior local maximum")
    missing = [name for name, r in (("mean", 1), ("sd", 2)) if not _integrable(e, b, r)]
    if missing:
        which = "tau and theta_new" + (" and mu" if mu_prior is None else "")
        notes.append(f"the posterior {' and '.join(missing)} of {which} do not exist "
                     f"(posterior tail of tau ~ tau^-{e:g} with k = {k}); they are reported "
                     "as None")
    proper = tau_prior.is_proper and mu_prior is not None
    return ExactPosterior(
        yi=y, vi=v, labels=tuple(effects.labels), tau_prior=tau_prior, mu_prior=mu_prior,
        mu_mean=cond.mu_mean, mu_var=cond.mu_var, theta_mean=cond.theta_mean,
        theta_var=cond.theta_var, **grid.fields(),
        log_marginal_likelihood=grid.log_normaliser if proper else None, warnings=tuple(notes),
    )


@dataclass(frozen=True)
class TauGrid:
    """The quadrature grid of one tau's marginal posterior (the fields of
    :class:`TauMarginal`, documented on :class:`ExactPosterior`) and the notes it produced."""

    tau: np.ndarray
    log_weights: np.ndarray
    panel_lo: np.ndarray
    panel_hi: np.ndarray
    panel_log_mass: np.ndarray
    tau_min: float
    log_lump_mass: float
    loglik_zero: float
    log_normaliser: float
    notes: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The grid fields (without the notes), as keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "notes"}


def tau_grid(log_likelihood: Callable[[np.ndarray], np.ndarray], tau_prior: P.TauPrior,
             y: np.ndarray, v: np.ndarray, tail: tuple[float, float]) -> TauGrid:
    """The adaptive quadrature grid over u = log tau of p(tau | y) ∝ p(tau) p(y | tau).

    ``log_likelihood(tau)`` is log p(y | tau) (J,) with the coefficients integrated out (it
    must accept tau = 0); ``y``, ``v`` set the scale of the grid's upper end; ``tail`` is
    (e, b) with p(tau | y) ~ tau^-e (log tau)^-b (the posterior must be proper: e > 1 or
    e = 1, b > 1), from which the highest moment of tau the grid must integrate accurately
    follows.
    """
    e, b = tail
    notes: list[str] = []
    # the highest moment of tau the grid must integrate accurately
    order = 2 if _integrable(e, b, 2) else (1 if _integrable(e, b, 1) else 0)

    def log_density(u: np.ndarray) -> np.ndarray:
        tau = np.exp(u)
        with np.errstate(divide="ignore"):
            prior = np.asarray(tau_prior.logpdf(tau), float)
        return prior + u + log_likelihood(tau)

    upper = tau_prior.support_upper
    tau_min = TAU_MIN_FACTOR * math.sqrt(float(v.min()))
    if math.isfinite(upper):
        tau_min = min(tau_min, TAU_MIN_FACTOR * upper)
    u_lo = math.log(tau_min)
    u_hi, drop = _upper_end(log_density, u_lo, y, v, upper, order)
    if drop is not None and drop < 25.0:
        notes.append("the posterior of tau has a very heavy tail; the grid stops at "
                     f"tau = exp({LOG_TAU_CAP:g}), where the density is still e^-{drop:.1f} of "
                     "its peak; mass beyond it is neglected")

    def log_tests(u: np.ndarray) -> np.ndarray:
        f = log_density(u)
        return np.stack([f + r * u for r in range(order + 1)])

    # The quantiles of a sharp prior (nearly a point mass on the log tau scale) become panel
    # edges, so that the prior's mass is located however narrow it is.
    breakpoints = None
    if tau_prior.is_proper:
        with np.errstate(divide="ignore"):
            breakpoints = np.log(np.asarray(tau_prior.ppf(PRIOR_BREAKPOINTS), float))
        if breakpoints[-2] - breakpoints[1] > 4.0:
            breakpoints = None
    panels = adaptive_panels(log_tests, u_lo, u_hi, breakpoints=breakpoints,
                             rtol=QUADRATURE_RTOL)
    if not panels.converged:
        notes.append("the adaptive quadrature over tau did not reach its tolerance everywhere")
    u = panels.nodes.ravel()
    logw = np.log(panels.weights.ravel()) + panels.log_values[0].ravel()
    panel_log_mass = special.logsumexp(
        np.log(panels.weights) + panels.log_values[0], axis=1)
    loglik_zero = float(log_likelihood(np.array([0.0]))[0])
    with np.errstate(divide="ignore"):
        log_lump = float(loglik_zero + tau_prior._log_mass_below(np.array([tau_min]))[0])
    log_z = float(special.logsumexp(np.concatenate([[log_lump], panel_log_mass])))
    # Nodes carrying nothing (relative to every integrated moment) are dropped from the
    # mixture grid; the panels (used for the CDF of tau) keep the full integral.
    rel = logw - log_z
    keep = rel > math.log(NODE_PRUNE)
    for r in range(1, order + 1):
        moment = rel + r * u
        keep |= moment - special.logsumexp(moment) > math.log(NODE_PRUNE)
    tau_nodes = np.concatenate([[0.0], np.exp(u[keep])])
    log_weights = np.concatenate([[log_lump], logw[keep]]) - log_z
    log_weights -= special.logsumexp(log_weights)
    return TauGrid(tau=tau_nodes, log_weights=log_weights, panel_lo=panels.lo,
                   panel_hi=panels.hi, panel_log_mass=panel_log_mass, tau_min=tau_min,
                   log_lump_mass=log_lump, loglik_zero=loglik_zero, log_normaliser=log_z,
                   notes=tuple(notes))


def _upper_end(log_density: Any, u_lo: float, y: np.ndarray, v: np.ndarray, upper: float,
               order: int) -> tuple[float, float | None]:
    """The upper end of the grid on log tau: the support's end for a bounded prior, otherwise
    where the density weighted by tau^order has dropped e^-40 below its peak and is
    decreasing (extended step by step for heavy tails). Also returns, when the grid had to stop
    at LOG_TAU_CAP first, how far (in log units) the density had dropped there."""
    if math.isfinite(upper):
        return math.log(upper), None
    spread = max(math.sqrt(float(v.max())), float(np.ptp(y)))
    u_hi = math.log(100 * spread)
    grid = np.linspace(u_lo, u_hi, max(64, int(8 * (u_hi - u_lo))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = log_density(grid) + order * grid
    capped = None
    while True:
        peak = np.max(h)
        if h[-1] < peak - TAIL_LOG_DROP and h[-1] < h[-2]:
            break
        if grid[-1] >= LOG_TAU_CAP:
            capped = float(peak - h[-1])
            break
        new_hi = min(LOG_TAU_CAP, grid[-1] + max(5.0, 0.5 * (grid[-1] - u_lo)))
        ext = np.linspace(grid[-1], new_hi, max(16, int(4 * (new_hi - grid[-1]))))[1:]
        grid = np.concatenate([grid, ext])
        h = np.concatenate([h, log_density(ext) + order * ext])
    # trim: the first point beyond the last one within TAIL_LOG_DROP of the peak
    peak = np.max(h)
    last = int(np.flatnonzero(h >= peak - TAIL_LOG_DROP)[-1])
    return float(grid[min(last + 1, grid.size - 1)]), capped
