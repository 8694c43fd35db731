"""Prior distributions for the between-study SD tau and for the mean effect mu.

Every prior is a frozen, serialisable object (``to_dict()`` / :func:`from_dict` through a closed
registry) with a numpy/scipy density on the scale it is a prior for (tau, not tau^2), its CDF and
quantile function where those are closed-form, a human description, and ``to_pymc(name)`` which
creates the same prior inside the active ``pm.Model()``.

Priors on tau: :class:`HalfNormal`, :class:`HalfCauchy`, :class:`HalfStudentT`,
:class:`Exponential`, :class:`Uniform`, :class:`LogNormal`, :class:`LogStudentT`,
:class:`InverseGamma`, :class:`ImproperUniform`. Priors on mu (and regression coefficients):
:class:`Normal`, :class:`Flat` (``mu_prior=None`` means flat, bayesmeta's default).

Published presets: :func:`rhodes` (Rhodes, Turner & Higgins 2015, SMD outcomes,
doi:10.1016/j.jclinepi.2014.08.012), :func:`turner` (Turner et al. 2015, log-OR outcomes,
doi:10.1002/sim.6381) and :func:`uisd_half_normal` (Röver et al. 2021, doi:10.1002/jrsm.1475).
The empirical presets are published for log(tau^2); their density on tau includes the Jacobian
of tau -> tau^2, i.e. p(tau) = p_{tau^2}(tau^2) * 2 tau.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from ..errors import InputError, Problem, raise_if

__all__ = [
    "Prior", "TauPrior", "LocationPrior",
    "HalfNormal", "HalfCauchy", "HalfStudentT", "Exponential", "Uniform", "LogNormal",
    "LogStudentT", "InverseGamma", "ImproperUniform", "Normal", "Flat",
    "from_dict", "FAMILIES",
    "rhodes", "turner", "uisd", "uisd_half_normal",
    "RHODES_OUTCOMES", "RHODES_COMPARISONS", "RHODES_AREAS",
    "TURNER_OUTCOMES", "TURNER_COMPARISONS", "UISD_TAU_FACTOR",
]


def _result(x: Any, values: np.ndarray) -> float | np.ndarray:
    """Scalar in, float out; array in, array out."""
    return float(values) if np.ndim(x) == 0 else values


def _probabilities(q: Any, column: str) -> np.ndarray:
    arr = np.asarray(q, dtype=float)
    if not np.all((arr >= 0) & (arr <= 1)):
        bad = arr[~((arr >= 0) & (arr <= 1))].ravel()[0]
        raise InputError(Problem("a probability must lie in [0, 1]", column=column,
                                 value=float(bad)))
    return arr


# ---------------------------------------------------------------------------------------------
# base classes


@dataclass(frozen=True)
class Prior:
    """Base of every prior. ``label``/``citation`` are provenance metadata (presets set them).

    Subclasses declare their numeric parameters as dataclass fields and list the constraint of
    each in ``_constraints`` ("positive" or "finite"); they are validated once, on construction.
    """

    label: str | None = field(default=None, kw_only=True)
    citation: str | None = field(default=None, kw_only=True)

    target: ClassVar[str] = "tau"
    is_proper: ClassVar[bool] = True
    _constraints: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        problems = []
        family = type(self).__name__
        for name, rule in self._constraints.items():
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                problems.append(Problem("expected a number", column=f"{family}.{name}",
                                        value=value))
                continue
            if isinstance(value, bool) or not math.isfinite(number):
                problems.append(Problem("expected a finite number", column=f"{family}.{name}",
                                        value=value))
            elif rule == "positive" and number <= 0:
                problems.append(Problem("must be > 0", column=f"{family}.{name}", value=number))
            else:
                object.__setattr__(self, name, number)
        raise_if(problems, f"the {family} prior")

    # -- serialisation ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("label", "citation"))

    def params(self) -> dict[str, Any]:
        """The distribution's parameters (without provenance metadata)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def to_dict(self) -> dict[str, Any]:
        """Canonical form ``{"family": <class name>, <parameters>...}`` (plus ``label`` and
        ``citation`` for presets); :func:`from_dict` inverts it."""
        out: dict[str, Any] = {"family": type(self).__name__, **self.params()}
        if self.label is not None:
            out["label"] = self.label
        if self.citation is not None:
            out["citation"] = self.citation
        return out

    # -- description -------------------------------------------------------------------------------
    def _describe_core(self) -> str:
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def describe(self, *, citation: bool = True) -> str:
        """One line for humans, e.g. ``"half-normal(scale=0.5) on tau"``; ``citation=False``
        leaves out the reference of a published preset (for legends)."""
        text = self._describe_core()
        if self.label is not None:
            text += f" [{self.label}]"
        if citation and self.citation is not None:
            text += f"; {self.citation}"
        return text

    # -- densities -------------------------------------------------------------------------------
    def logpdf(self, x: Any) -> float | np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def pdf(self, x: Any) -> float | np.ndarray:
        """Density at ``x`` (``exp(logpdf(x))``)."""
        return _result(x, np.exp(np.asarray(self.logpdf(x), float)))

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Independent draws by inversion of the CDF (proper priors only)."""
        if not self.is_proper:
            raise InputError(Problem("an improper prior cannot be sampled",
                                     column="prior", value=self.describe()))
        return np.asarray(self.ppf(rng.random(size)), float)

    def cdf(self, x: Any) -> float | np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def ppf(self, q: Any) -> float | np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sf(self, x: Any) -> float | np.ndarray:
        """Survival function ``P(X > x)``."""
        return _result(x, 1.0 - np.asarray(self.cdf(x), float))

    def to_pymc(self, name: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _improper_error(self, what: str) -> InputError:
        return InputError(Problem(f"an improper prior has no {what}", column="prior",
                                  value=self.describe()))


@dataclass(frozen=True)
class TauPrior(Prior):
    """A prior on the between-study SD tau >= 0 (density on the tau scale).

    Besides the public interface, it tells the exact engine how its upper tail decays
    (``_tail``: p(tau) ~ tau^-a (log tau)^-b as tau -> inf, ``a = inf`` for light tails) and
    how much (unnormalised) mass it puts below a small tau (``_log_mass_below``), which the
    engine needs to decide whether posterior moments exist and to integrate near tau = 0.
    """

    target: ClassVar[str] = "tau"
    _tail: ClassVar[tuple[float, float]] = (math.inf, 0.0)

    @property
    def support_upper(self) -> float:
        """Upper end of the support (inf unless bounded)."""
        return math.inf

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _logpdf_zero(self) -> float:
        """The limit of the log-density as tau -> 0+ (may be +-inf)."""
        return float(self._logpdf_positive(np.array([0.0]))[0])

    def logpdf(self, x: Any) -> float | np.ndarray:
        """Log-density on the tau scale (-inf outside the support)."""
        arr = np.asarray(x, dtype=float)
        out = np.full(arr.shape, -np.inf)
        pos = (arr > 0) & (arr <= self.support_upper)
        if np.any(pos):
            out[pos] = self._logpdf_positive(arr[pos])
        zero = arr == 0
        if np.any(zero):
            out[zero] = self._logpdf_zero()
        return _result(x, out)

    def logpdf_tau2(self, s: Any) -> float | np.ndarray:
        """Log-density of tau^2 at ``s`` (the Jacobian of tau -> tau^2 removed)."""
        arr = np.asarray(s, dtype=float)
        with np.errstate(divide="ignore"):
            root = np.sqrt(np.where(arr > 0, arr, np.nan))
            out = np.where(arr > 0, np.asarray(self.logpdf(root), float)
                           - np.log(2.0 * root), -np.inf)
        return _result(s, out)

    def _log_mass_below(self, t: np.ndarray) -> np.ndarray:
        """log of the (unnormalised) prior mass on (0, t]."""
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(self.cdf(t), float))

    def _mass_below_inverse(self, mass: np.ndarray) -> np.ndarray:
        """Inverse of ``exp(_log_mass_below)``."""
        return np.asarray(self.ppf(np.clip(mass, 0.0, 1.0)), float)


@dataclass(frozen=True)
class LocationPrior(Prior):
    """A prior on a location parameter (mu, a regression coefficient) on the real line."""

    target: ClassVar[str] = "location"


class _ScipyFamily:
    """cdf, sf and ppf of a prior that is the scipy.stats family ``_family`` with the keyword
    parameters ``_scipy_params()`` (listed first among the bases, so it overrides
    :class:`Prior`'s abstract methods)."""

    _family: ClassVar[Any]

    def _scipy_params(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf(self, x: Any) -> float | np.ndarray:
        return _result(x, self._family.cdf(np.asarray(x, float), **self._scipy_params()))

    def sf(self, x: Any) -> float | np.ndarray:
        return _result(x, self._family.sf(np.asarray(x, float), **self._scipy_params()))

    def ppf(self, q: Any) -> float | np.ndarray:
        return _result(q, self._family.ppf(_probabilities(q, "q"), **self._scipy_params()))


# ---------------------------------------------------------------------------------------------
# priors on tau


@dataclass(frozen=True)
class HalfNormal(_ScipyFamily, TauPrior):
    """Half-normal prior on tau: density ``2 * N(tau; 0, scale^2)`` for tau >= 0.

    Friede et al. 2017 (doi:10.1002/jrsm.1217) recommend scale 0.5 or 1 for log-OR; bayesmeta's
    ``dhalfnormal(t, scale)``.
    """

    scale: float
    _constraints: ClassVar[dict[str, str]] = {"scale": "positive"}
    _family: ClassVar[Any] = stats.halfnorm

    def _describe_core(self) -> str:
        return f"half-normal(scale={self.scale:g}) on tau"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return stats.halfnorm.logpdf(x, scale=self.scale)

    def _scipy_params(self) -> dict[str, float]:
        return {"scale": self.scale}

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.HalfNormal(name, sigma=self.scale)


@dataclass(frozen=True)
class HalfCauchy(_ScipyFamily, TauPrior):
    """Half-Cauchy prior on tau (Gelman 2006, doi:10.1214/06-BA117A); bayesmeta's
    ``dhalfcauchy(t, scale)``. Heavy upper tail: p(tau) ~ tau^-2."""

    scale: float
    _constraints: ClassVar[dict[str, str]] = {"scale": "positive"}
    _family: ClassVar[Any] = stats.halfcauchy
    _tail: ClassVar[tuple[float, float]] = (2.0, 0.0)

    def _describe_core(self) -> str:
        return f"half-Cauchy(scale={self.scale:g}) on tau"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return stats.halfcauchy.logpdf(x, scale=self.scale)

    def _scipy_params(self) -> dict[str, float]:
        return {"scale": self.scale}

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.HalfCauchy(name, beta=self.scale)


@dataclass(frozen=True)
class HalfStudentT(TauPrior):
    """Half-Student-t prior on tau with ``nu`` degrees of freedom: ``2 * t_nu(tau; 0, scale)``."""

    nu: float
    scale: float
    _constraints: ClassVar[dict[str, str]] = {"nu": "positive", "scale": "positive"}

    @property
    def _tail(self) -> tuple[float, float]:  # type: ignore[override]
        return (self.nu + 1.0, 0.0)

    def _describe_core(self) -> str:
        return f"half-Student-t(nu={self.nu:g}, scale={self.scale:g}) on tau"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return math.log(2.0) + stats.t.logpdf(x, self.nu, scale=self.scale)

    def cdf(self, x: Any) -> float | np.ndarray:
        # P(|T| <= z) = I_{z^2/(nu+z^2)}(1/2, nu/2): no cancellation for small tau, where the
        # exact engine needs the prior mass below a tiny tau to full relative precision.
        z2 = np.maximum(np.asarray(x, float), 0.0) ** 2 / self.scale**2
        return _result(x, special.betainc(0.5, self.nu / 2, z2 / (self.nu + z2)))

    def sf(self, x: Any) -> float | np.ndarray:
        z2 = np.maximum(np.asarray(x, float), 0.0) ** 2 / self.scale**2
        return _result(x, special.betainc(self.nu / 2, 0.5, self.nu / (self.nu + z2)))

    def ppf(self, q: Any) -> float | np.ndarray:
        p = _probabilities(q, "q")
        return _result(q, stats.t.isf((1.0 - p) / 2.0, self.nu, scale=self.scale))

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.HalfStudentT(name, nu=self.nu, sigma=self.scale)


@dataclass(frozen=True)
class Exponential(_ScipyFamily, TauPrior):
    """Exponential prior on tau with the given ``rate`` (mean 1/rate)."""

    rate: float
    _constraints: ClassVar[dict[str, str]] = {"rate": "positive"}
    _family: ClassVar[Any] = stats.expon

    def _describe_core(self) -> str:
        return f"exponential(rate={self.rate:g}) on tau"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return stats.expon.logpdf(x, scale=1.0 / self.rate)

    def _scipy_params(self) -> dict[str, float]:
        return {"scale": 1.0 / self.rate}

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.Exponential(name, lam=self.rate)


@dataclass(frozen=True)
class Uniform(_ScipyFamily, TauPrior):
    """Uniform prior on tau over (0, upper); bayesmeta's ``dunif(t, 0, upper)``."""

    upper: float
    _constraints: ClassVar[dict[str, str]] = {"upper": "positive"}
    _family: ClassVar[Any] = stats.uniform

    @property
    def support_upper(self) -> float:
        return self.upper

    def _describe_core(self) -> str:
        return f"uniform(0, {self.upper:g}) on tau"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return np.full(x.shape, -math.log(self.upper))

    def _scipy_params(self) -> dict[str, float]:
        return {"loc": 0.0, "scale": self.upper}

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.Uniform(name, lower=0.0, upper=self.upper)


_ON = ("tau", "tau2")


def _check_on(prior: Prior) -> None:
    on = prior.on  # type: ignore[attr-defined]
    if on not in _ON:
        raise InputError(Problem(f"must be one of {', '.join(_ON)}",
                                 column=f"{type(prior).__name__}.on", value=on))


@dataclass(frozen=True)
class LogNormal(TauPrior):
    """Log-normal prior: ``log(tau) ~ N(mu, sigma^2)`` (``on="tau"``) or
    ``log(tau^2) ~ N(mu, sigma^2)`` (``on="tau2"``, Turner et al. 2015's parametrisation).

    On tau^2 this is log(tau) ~ N(mu/2, (sigma/2)^2): halving both parameters is exactly the
    Jacobian of tau -> tau^2.
    """

    mu: float
    sigma: float
    on: str = "tau"
    _constraints: ClassVar[dict[str, str]] = {"mu": "finite", "sigma": "positive"}

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_on(self)

    @property
    def log_tau_params(self) -> tuple[float, float]:
        """(mean, sd) of log(tau)."""
        return (self.mu / 2, self.sigma / 2) if self.on == "tau2" else (self.mu, self.sigma)

    def _describe_core(self) -> str:
        if self.on == "tau2":
            m, s = self.log_tau_params
            return (f"log-normal on tau^2: log(tau^2) ~ N({self.mu:g}, {self.sigma:g}^2), "
                    f"i.e. log(tau) ~ N({m:g}, {s:g}^2)")
        return f"log-normal on tau: log(tau) ~ N({self.mu:g}, {self.sigma:g}^2)"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        m, s = self.log_tau_params
        with np.errstate(divide="ignore"):
            logx = np.log(x)
        return np.where(x > 0, stats.norm.logpdf(logx, m, s) - logx, -np.inf)

    def _logpdf_zero(self) -> float:
        return -math.inf

    def cdf(self, x: Any) -> float | np.ndarray:
        m, s = self.log_tau_params
        arr = np.asarray(x, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(arr > 0, stats.norm.cdf(np.log(np.where(arr > 0, arr, 1.0)), m, s),
                           0.0)
        return _result(x, out)

    def sf(self, x: Any) -> float | np.ndarray:
        m, s = self.log_tau_params
        arr = np.asarray(x, float)
        out = np.where(arr > 0, stats.norm.sf(np.log(np.where(arr > 0, arr, 1.0)), m, s), 1.0)
        return _result(x, out)

    def ppf(self, q: Any) -> float | np.ndarray:
        m, s = self.log_tau_params
        return _result(q, np.exp(stats.norm.ppf(_probabilities(q, "q"), m, s)))

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        # An RV on tau whose default log transform makes NUTS sample log(tau): Gaussian.
        m, s = self.log_tau_params
        return pm.LogNormal(name, mu=m, sigma=s)


@dataclass(frozen=True)
class LogStudentT(TauPrior):
    """Log-Student-t prior: ``log(tau^2) ~ t_nu(loc, scale)`` (``on="tau2"``, Rhodes et al.
    2015 with nu = 5; bayesmeta's ``dlt5``) or ``log(tau) ~ t_nu(loc, scale)`` (``on="tau"``).

    Its density on tau is unbounded at 0 (like 1/(tau |log tau|^(nu+1))) but integrable, and its
    upper tail is heavier than any power of tau beyond 1.
    """

    nu: float
    loc: float
    scale: float
    on: str = "tau2"
    _constraints: ClassVar[dict[str, str]] = {"nu": "positive", "loc": "finite",
                                              "scale": "positive"}

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_on(self)

    @property
    def _tail(self) -> tuple[float, float]:  # type: ignore[override]
        return (1.0, self.nu + 1.0)

    @property
    def log_tau_params(self) -> tuple[float, float]:
        """(location, scale) of log(tau)."""
        return ((self.loc / 2, self.scale / 2) if self.on == "tau2"
                else (self.loc, self.scale))

    def _describe_core(self) -> str:
        if self.on == "tau2":
            m, s = self.log_tau_params
            return (f"log-Student-t on tau^2: log(tau^2) ~ t(nu={self.nu:g}, loc={self.loc:g}, "
                    f"scale={self.scale:g}), i.e. log(tau) ~ t(nu={self.nu:g}, loc={m:g}, "
                    f"scale={s:g})")
        return (f"log-Student-t on tau: log(tau) ~ t(nu={self.nu:g}, loc={self.loc:g}, "
                f"scale={self.scale:g})")

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        m, s = self.log_tau_params
        logx = np.log(x)
        return stats.t.logpdf(logx, self.nu, m, s) - logx

    def _logpdf_zero(self) -> float:
        return math.inf

    def cdf(self, x: Any) -> float | np.ndarray:
        m, s = self.log_tau_params
        arr = np.asarray(x, float)
        out = np.where(arr > 0, stats.t.cdf(np.log(np.where(arr > 0, arr, 1.0)), self.nu, m, s),
                       0.0)
        return _result(x, out)

    def sf(self, x: Any) -> float | np.ndarray:
        m, s = self.log_tau_params
        arr = np.asarray(x, float)
        out = np.where(arr > 0, stats.t.sf(np.log(np.where(arr > 0, arr, 1.0)), self.nu, m, s),
                       1.0)
        return _result(x, out)

    def ppf(self, q: Any) -> float | np.ndarray:
        m, s = self.log_tau_params
        return _result(q, np.exp(stats.t.ppf(_probabilities(q, "q"), self.nu, m, s)))

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        # NUTS samples the log-scale t variable itself (smooth, unbounded); tau is derived.
        if self.on == "tau2":
            log_var = pm.StudentT(f"log_{name}2", nu=self.nu, mu=self.loc, sigma=self.scale)
            return pm.Deterministic(name, pm.math.exp(0.5 * log_var))
        log_var = pm.StudentT(f"log_{name}", nu=self.nu, mu=self.loc, sigma=self.scale)
        return pm.Deterministic(name, pm.math.exp(log_var))


@dataclass(frozen=True)
class InverseGamma(_ScipyFamily, TauPrior):
    """Inverse-gamma prior on tau (not tau^2): density
    ``scale^shape / Gamma(shape) * tau^-(shape+1) * exp(-scale/tau)``.

    RoBMA <= 3 used InvGamma(1, 0.15) on tau for Cohen's d (Bartoš et al.). Röver 2020
    (doi:10.18637/jss.v093.i06) advises against inverse-gamma priors for routine use.
    """

    shape: float
    scale: float
    _constraints: ClassVar[dict[str, str]] = {"shape": "positive", "scale": "positive"}
    _family: ClassVar[Any] = stats.invgamma

    @property
    def _tail(self) -> tuple[float, float]:  # type: ignore[override]
        return (self.shape + 1.0, 0.0)

    def _describe_core(self) -> str:
        return f"inverse-gamma(shape={self.shape:g}, scale={self.scale:g}) on tau"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return stats.invgamma.logpdf(x, self.shape, scale=self.scale)

    def _logpdf_zero(self) -> float:
        return -math.inf

    def _scipy_params(self) -> dict[str, float]:
        return {"a": self.shape, "scale": self.scale}

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.InverseGamma(name, alpha=self.shape, beta=self.scale)


@dataclass(frozen=True)
class ImproperUniform(TauPrior):
    """Flat, improper prior on tau > 0 (bayesmeta's default ``tau.prior="uniform"``).

    With a flat mu prior its marginal posterior mode of tau is the REML estimate; the
    posterior is proper only for k >= 3 (flat mu) or k >= 2 (normal mu).
    """

    is_proper: ClassVar[bool] = False
    _tail: ClassVar[tuple[float, float]] = (0.0, 0.0)

    def _describe_core(self) -> str:
        return "improper uniform on tau > 0"

    def _logpdf_positive(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(x.shape)

    def cdf(self, x: Any) -> float | np.ndarray:
        raise self._improper_error("CDF")

    def ppf(self, q: Any) -> float | np.ndarray:
        raise self._improper_error("quantiles")

    def sf(self, x: Any) -> float | np.ndarray:
        raise self._improper_error("survival function")

    def _log_mass_below(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(t, float))

    def _mass_below_inverse(self, mass: np.ndarray) -> np.ndarray:
        return np.asarray(mass, float)

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.HalfFlat(name)


# ---------------------------------------------------------------------------------------------
# priors on mu


@dataclass(frozen=True)
class Normal(_ScipyFamily, LocationPrior):
    """Normal prior on mu (or a regression coefficient): ``N(mean, sd^2)``; bayesmeta's
    ``mu.prior = c(mean, sd)``."""

    mean: float
    sd: float
    _constraints: ClassVar[dict[str, str]] = {"mean": "finite", "sd": "positive"}
    _family: ClassVar[Any] = stats.norm

    def _describe_core(self) -> str:
        return f"normal(mean={self.mean:g}, sd={self.sd:g})"

    def logpdf(self, x: Any) -> float | np.ndarray:
        return _result(x, stats.norm.logpdf(np.asarray(x, float), self.mean, self.sd))

    def _scipy_params(self) -> dict[str, float]:
        return {"loc": self.mean, "scale": self.sd}

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.Normal(name, mu=self.mean, sigma=self.sd)


@dataclass(frozen=True)
class Flat(LocationPrior):
    """Flat (improper uniform) prior on the real line; ``mu_prior=None`` means the same."""

    is_proper: ClassVar[bool] = False

    def _describe_core(self) -> str:
        return "flat (improper uniform)"

    def logpdf(self, x: Any) -> float | np.ndarray:
        return _result(x, np.zeros(np.shape(x)))

    def cdf(self, x: Any) -> float | np.ndarray:
        raise self._improper_error("CDF")

    def ppf(self, q: Any) -> float | np.ndarray:
        raise self._improper_error("quantiles")

    def sf(self, x: Any) -> float | np.ndarray:
        raise self._improper_error("survival function")

    def to_pymc(self, name: str) -> Any:
        import pymc as pm

        return pm.Flat(name)


# ---------------------------------------------------------------------------------------------
# the closed registry

FAMILIES: Mapping[str, type[Prior]] = {
    cls.__name__: cls
    for cls in (HalfNormal, HalfCauchy, HalfStudentT, Exponential, Uniform, LogNormal,
                LogStudentT, InverseGamma, ImproperUniform, Normal, Flat)
}


def from_dict(spec: Mapping[str, Any]) -> Prior:
    """Rebuild a prior from its ``to_dict()`` form.

    Only the families in :data:`FAMILIES` are accepted (never an import by dotted path); an
    unknown family or parameter is an :class:`~bayesmeta.errors.InputError` naming the allowed
    ones.
    """
    if not isinstance(spec, Mapping):
        raise InputError(Problem("a prior specification must be a mapping with a 'family' key",
                                 column="prior", value=repr(spec)))
    spec = dict(spec)
    family = spec.pop("family", None)
    if family not in FAMILIES:
        raise InputError(Problem(f"unknown prior family; allowed: {', '.join(FAMILIES)}",
                                 column="family", value=family))
    cls = FAMILIES[family]
    allowed = (*cls._param_names(), "label", "citation")
    unknown = [key for key in spec if key not in allowed]
    if unknown:
        raise InputError([Problem(f"unknown parameter of {family}; allowed: "
                                  f"{', '.join(allowed)}", column=str(key), value=spec[key])
                          for key in unknown])
    missing = [name for name in cls._param_names()
               if name not in spec and _has_no_default(cls, name)]
    if missing:
        raise InputError([Problem(f"missing parameter of {family}", column=name, value=None,
                                  show_value=False) for name in missing])
    return cls(**spec)


def _has_no_default(cls: type, name: str) -> bool:
    from dataclasses import MISSING

    f = next(f for f in fields(cls) if f.name == name)
    return f.default is MISSING and f.default_factory is MISSING


# ---------------------------------------------------------------------------------------------
# published presets

RHODES_CITATION = ("Rhodes KM, Turner RM, Higgins JPT (2015). Predictive distributions were "
                   "developed for the extent of heterogeneity in meta-analyses of continuous "
                   "outcome data. J Clin Epidemiol 68(1):52-60. doi:10.1016/j.jclinepi.2014.08.012")
TURNER_CITATION = ("Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT (2015). Predictive "
                   "distributions for between-study heterogeneity and simple methods for their "
                   "application in Bayesian meta-analysis. Stat Med 34(6):984-998. "
                   "doi:10.1002/sim.6381")
UISD_CITATION = ("Röver C, Bender R, Dias S, Schmid CH, Schmidli H, Sturtz S, Weber S, Friede T "
                 "(2021). On weakly informative prior distributions for the heterogeneity "
                 "parameter in Bayesian random-effects meta-analysis. Res Synth Methods "
                 "12(4):448-474. doi:10.1002/jrsm.1475")

RHODES_OUTCOMES = ("obstetric", "resource_use", "structure", "pain_function", "signs_symptoms",
                   "mental_health", "biological_marker", "subjective")
RHODES_COMPARISONS = ("pharmacological_vs_placebo", "pharmacological_vs_pharmacological",
                      "non-pharmacological")
RHODES_AREAS = ("other", "respiratory", "cancer")
TURNER_OUTCOMES = ("all_cause_mortality", "obstetric", "cause_specific_mortality",
                   "resource_use", "surgical", "withdrawals", "structure",
                   "general_physical_health", "adverse_events", "infection", "signs_symptoms",
                   "pain", "quality_of_life", "mental_health", "biological_markers", "subjective")
TURNER_COMPARISONS = ("pharmacological_vs_placebo", "pharmacological_vs_pharmacological",
                      "non-pharmacological_vs_placebo", "non-pharmacological_vs_pharmacological",
                      "non-pharmacological_vs_non-pharmacological")

#: The empirical priors for log(tau^2), as stored in bayesmeta 3.4 (``TurnerEtAlParameters``,
#: ``RhodesEtAlParameters``) and cross-checked against rnmamod and hetprior (review priors.md).
#: Key (source, outcome, area); value: one (location, scale) pair per comparison, in the order
#: of TURNER_COMPARISONS / RHODES_COMPARISONS. Turner: log(tau^2) ~ N(location, scale^2),
#: log-OR scale (Turner et al. 2015, Table IV). Rhodes: log(tau^2) ~ t5(location, scale), SMD
#: scale (Rhodes et al. 2015, Table 3 and Appendix Tables A.3.1/A.3.2).
#: Rhodes outcome classes: pain_function = "general physical health and adverse event and pain
#: and quality of life / functioning"; signs_symptoms = "signs / symptoms reflecting
#: continuation / end of condition and infection / onset of new acute / chronic disease";
#: structure = "internal and external structure-related outcome".
EMPIRICAL_LOG_TAU2: Mapping[tuple[str, str, str | None], tuple[tuple[float, float], ...]] = {
    # Turner et al. 2015, Table IV. Discrepancy (priors.md 3.2, note 3): obstetric,
    # pharmacological vs placebo is -3.52 in bayesmeta and rnmamod but -3.25 in hetprior
    # (probably a transposition in hetprior); -3.52 kept.
    ("turner", "all_cause_mortality", None): (
        (-3.95, 1.34), (-4.18, 1.41), (-4.17, 1.55), (-2.92, 1.02), (-3.50, 1.26)),
    ("turner", "obstetric", None): (
        (-3.52, 1.74), (-3.75, 1.79), (-3.74, 1.91), (-2.49, 1.50), (-3.08, 1.68)),
    ("turner", "cause_specific_mortality", None): (
        (-3.71, 1.74), (-3.95, 1.79), (-3.93, 1.91), (-2.68, 1.51), (-3.27, 1.68)),
    ("turner", "resource_use", None): (
        (-2.34, 1.74), (-2.58, 1.79), (-2.56, 1.91), (-1.31, 1.50), (-1.90, 1.68)),
    ("turner", "surgical", None): (
        (-2.14, 1.74), (-2.37, 1.79), (-2.36, 1.91), (-1.11, 1.50), (-1.69, 1.68)),
    ("turner", "withdrawals", None): (
        (-2.99, 1.74), (-3.23, 1.79), (-3.21, 1.91), (-1.96, 1.51), (-2.55, 1.68)),
    ("turner", "structure", None): (
        (-2.71, 1.74), (-2.94, 1.79), (-2.93, 1.92), (-1.67, 1.51), (-2.26, 1.68)),
    ("turner", "general_physical_health", None): (
        (-2.29, 1.53), (-2.53, 1.58), (-2.51, 1.72), (-1.26, 1.25), (-1.85, 1.46)),
    ("turner", "adverse_events", None): (
        (-1.87, 1.52), (-2.10, 1.58), (-2.10, 1.71), (-0.84, 1.24), (-1.43, 1.45)),
    ("turner", "infection", None): (
        (-2.49, 1.52), (-2.73, 1.58), (-2.71, 1.71), (-1.46, 1.24), (-2.05, 1.45)),
    ("turner", "signs_symptoms", None): (
        (-2.06, 1.51), (-2.29, 1.58), (-2.28, 1.71), (-1.03, 1.24), (-1.61, 1.45)),
    ("turner", "pain", None): (
        (-1.83, 1.52), (-2.06, 1.58), (-2.05, 1.71), (-0.80, 1.25), (-1.38, 1.45)),
    ("turner", "quality_of_life", None): (
        (-2.54, 1.54), (-2.78, 1.60), (-2.77, 1.73), (-1.51, 1.27), (-2.10, 1.47)),
    ("turner", "mental_health", None): (
        (-2.12, 1.53), (-2.35, 1.60), (-2.34, 1.72), (-1.09, 1.27), (-1.67, 1.47)),
    ("turner", "biological_markers", None): (
        (-1.77, 1.52), (-2.00, 1.58), (-1.99, 1.71), (-0.74, 1.24), (-1.33, 1.45)),
    ("turner", "subjective", None): (
        (-2.70, 1.52), (-2.93, 1.58), (-2.92, 1.71), (-1.67, 1.25), (-2.26, 1.45)),
    # Rhodes et al. 2015, Table 3 (medical area "other").
    ("rhodes", "obstetric", "other"): ((-4.13, 2.34), (-4.40, 2.31), (-3.99, 2.11)),
    ("rhodes", "resource_use", "other"): ((-2.55, 2.73), (-2.83, 2.70), (-2.41, 2.57)),
    ("rhodes", "structure", "other"): ((-2.43, 2.50), (-2.70, 2.46), (-2.29, 2.32)),
    ("rhodes", "pain_function", "other"): ((-3.16, 2.50), (-3.44, 2.44), (-3.02, 2.27)),
    ("rhodes", "signs_symptoms", "other"): ((-3.00, 2.50), (-3.27, 2.47), (-2.86, 2.33)),
    # Discrepancy (priors.md 3.2, note 1): non-pharmacological = -3.85 in all three
    # transcriptions, but every other row has non-pharm = pharm-vs-placebo + 0.14, which would
    # give -2.85; possibly a typo in the paper. Kept as published.
    ("rhodes", "mental_health", "other"): ((-2.99, 2.16), (-3.27, 2.14), (-3.85, 1.93)),
    ("rhodes", "biological_marker", "other"): ((-3.41, 2.83), (-3.68, 2.78), (-3.27, 2.66)),
    ("rhodes", "subjective", "other"): ((-2.76, 2.58), (-3.03, 2.59), (-2.62, 2.41)),
    # Rhodes et al. 2015, Appendix Table A.3.1 (respiratory diseases).
    ("rhodes", "obstetric", "respiratory"): ((-6.03, 2.36), (-6.31, 2.31), (-5.89, 2.21)),
    ("rhodes", "resource_use", "respiratory"): ((-4.46, 2.74), (-4.73, 2.70), (-4.32, 2.57)),
    ("rhodes", "structure", "respiratory"): ((-4.33, 2.51), (-4.61, 2.46), (-4.19, 2.33)),
    ("rhodes", "pain_function", "respiratory"): ((-5.07, 2.51), (-5.34, 2.45), (-4.93, 2.28)),
    ("rhodes", "signs_symptoms", "respiratory"): ((-4.90, 2.50), (-5.18, 2.47), (-4.76, 2.33)),
    ("rhodes", "mental_health", "respiratory"): ((-4.90, 2.17), (-5.17, 2.14), (-4.76, 1.94)),
    ("rhodes", "biological_marker", "respiratory"): ((-5.31, 2.83), (-5.59, 2.78),
                                                     (-5.17, 2.66)),
    ("rhodes", "subjective", "respiratory"): ((-4.66, 2.59), (-4.94, 2.59), (-4.52, 2.41)),
    # Rhodes et al. 2015, Appendix Table A.3.2 (cancer). Discrepancy (priors.md 3.2, note 4):
    # resource use, pharmacological vs placebo is +0.01 here (bayesmeta stores -c(..., -0.01,
    # ...)); rnmamod prints -0.01. bayesmeta's sign kept. Also (our observation, not in the
    # review): structure, pharmacological vs pharmacological = -0.14 breaks the table's
    # pattern (pharm-vs-pharm = pharm-vs-placebo - 0.28 elsewhere, i.e. -0.41); kept as stored.
    ("rhodes", "obstetric", "cancer"): ((-1.57, 2.45), (-1.85, 2.41), (-1.43, 2.24)),
    ("rhodes", "resource_use", "cancer"): ((0.01, 2.83), (-0.27, 2.79), (0.15, 2.68)),
    ("rhodes", "structure", "cancer"): ((-0.13, 2.61), (-0.14, 2.56), (0.27, 2.45)),
    ("rhodes", "pain_function", "cancer"): ((-0.60, 2.61), (-0.88, 2.55), (-0.46, 2.40)),
    ("rhodes", "signs_symptoms", "cancer"): ((-0.44, 2.60), (-0.71, 2.57), (-0.30, 2.46)),
    ("rhodes", "mental_health", "cancer"): ((-0.43, 2.28), (-0.71, 2.25), (-0.29, 2.08)),
    ("rhodes", "biological_marker", "cancer"): ((-0.85, 2.93), (-1.13, 2.87), (-0.71, 2.78)),
    ("rhodes", "subjective", "cancer"): ((-0.20, 2.68), (-0.48, 2.68), (-0.06, 2.53)),
}

#: Marginal ("any setting") priors for log(tau^2). Rhodes: start of Sec. 3.3 of the paper.
#: Discrepancy (priors.md 3.2, note 2): bayesmeta and rnmamod give location -3.44, hetprior
#: -3.34 (scale 2.59 in all three); -3.44 kept (2 of 3 sources). Turner: p. 993.
RHODES_MARGINAL = (-3.44, 2.59)
TURNER_MARGINAL = (-2.56, 1.74)


def _choice(value: Any, allowed: Sequence[str], column: str) -> str:
    if value not in allowed:
        raise InputError(Problem(f"unknown {column}; allowed: {', '.join(allowed)}",
                                 column=column, value=value))
    return value


def rhodes(outcome: str | None = None, comparison: str = "non-pharmacological",
           area: str = "other") -> LogStudentT:
    """Rhodes et al. (2015) empirical prior for tau on the SMD scale:
    ``log(tau^2) ~ t5(location, scale)`` (bayesmeta's ``RhodesEtAlPrior``).

    Parameters
    ----------
    outcome
        One of :data:`RHODES_OUTCOMES`; ``None`` (with the default comparison and area) gives
        the marginal prior t5(-3.44, 2.59).
    comparison
        ``"pharmacological_vs_placebo"``, ``"pharmacological_vs_pharmacological"`` or
        ``"non-pharmacological"`` (any comparison involving a non-pharmacological
        intervention).
    area
        Medical area: ``"other"``, ``"respiratory"`` or ``"cancer"``.

    References
    ----------
    Rhodes, Turner & Higgins (2015), J Clin Epidemiol 68(1):52-60,
    doi:10.1016/j.jclinepi.2014.08.012.
    """
    comparison = _choice(comparison, RHODES_COMPARISONS, "comparison")
    area = _choice(area, RHODES_AREAS, "area")
    if outcome is None:
        if (comparison, area) != ("non-pharmacological", "other"):
            raise InputError(Problem("the marginal Rhodes prior (outcome=None) has no "
                                     "comparison or area; give an outcome as well, one of "
                                     + ", ".join(RHODES_OUTCOMES), column="outcome",
                                     value=None, show_value=False))
        loc, scale = RHODES_MARGINAL
        label = "rhodes(): marginal (any setting)"
    else:
        outcome = _choice(outcome, RHODES_OUTCOMES, "outcome")
        loc, scale = EMPIRICAL_LOG_TAU2[("rhodes", outcome, area)][
            RHODES_COMPARISONS.index(comparison)]
        label = f"rhodes(outcome={outcome!r}, comparison={comparison!r}, area={area!r})"
    return LogStudentT(5.0, loc, scale, on="tau2", label=label, citation=RHODES_CITATION)


def turner(outcome: str | None = None, comparison: str | None = None) -> LogNormal:
    """Turner et al. (2015) empirical prior for tau on the log-OR scale:
    ``log(tau^2) ~ N(mu, sigma^2)`` (bayesmeta's ``TurnerEtAlPrior``).

    Parameters
    ----------
    outcome
        One of :data:`TURNER_OUTCOMES` (the 16 rows of Table IV in snake_case). ``turner()``
        without arguments is the marginal prior LN(-2.56, 1.74^2) on tau^2.
    comparison
        One of :data:`TURNER_COMPARISONS`; required when ``outcome`` is given.

    References
    ----------
    Turner et al. (2015), Stat Med 34(6):984-998, doi:10.1002/sim.6381.
    """
    if outcome is None and comparison is None:
        mu, sigma = TURNER_MARGINAL
        label = "turner(): marginal (any setting)"
    else:
        problems = []
        if outcome is None or outcome not in TURNER_OUTCOMES:
            problems.append(Problem(f"{'missing' if outcome is None else 'unknown'} outcome; "
                                    f"allowed: {', '.join(TURNER_OUTCOMES)}",
                                    column="outcome", value=outcome))
        if comparison is None or comparison not in TURNER_COMPARISONS:
            problems.append(Problem(f"{'missing' if comparison is None else 'unknown'} "
                                    f"comparison; allowed: {', '.join(TURNER_COMPARISONS)}",
                                    column="comparison", value=comparison))
        raise_if(problems, "turner()")
        assert outcome is not None and comparison is not None
        mu, sigma = EMPIRICAL_LOG_TAU2[("turner", outcome, None)][
            TURNER_COMPARISONS.index(comparison)]
        label = f"turner(outcome={outcome!r}, comparison={comparison!r})"
    return LogNormal(mu, sigma, on="tau2", label=label, citation=TURNER_CITATION)


#: Scale of the UISD half-normal prior in units of the unit-information SD: RoBMA 4.x's
#: ``default_UISD.heterogeneity = 1/4`` (tau ~ HN(UISD / 4)). A parameter of the published
#: preset, not a package default.
UISD_TAU_FACTOR = 0.25


def uisd(n: Any, sei: Any = None, *, vi: Any = None) -> float:
    """Unit-information standard deviation ``sigma_u = sqrt(sum n_i / sum sei_i^-2)``.

    Röver et al. 2021 (doi:10.1002/jrsm.1475), Eq. 6; bayesmeta's ``uisd()``.
    **Convention:** ``n_i`` is the *total* sample size of study i (all arms), so for an SMD
    (var ~ 4/N) sigma_u ~ 2 and for a log-OR it is about 2/sqrt(p(1-p)). (RoBMA's fixed UISD of
    sqrt(2) for SMD counts per-group n instead; with this function's convention the same
    HN(UISD/4) prior has scale 0.5, not 0.354.)

    Parameters
    ----------
    n
        Total sample size per study (> 0).
    sei, vi
        Standard errors or sampling variances of the effect estimates (one of the two).
    """
    if (sei is None) == (vi is None):
        raise InputError(Problem("give exactly one of sei= or vi=", column="sei/vi",
                                 value=None, show_value=False))
    column = "sei" if sei is not None else "vi"
    raw = np.asarray(sei if sei is not None else vi, dtype=float).ravel()
    n_arr = np.asarray(n, dtype=float).ravel()
    problems = []
    if n_arr.size != raw.size:
        raise InputError(Problem(f"n has {n_arr.size} values but {column} has {raw.size}",
                                 column="n", value=n_arr.size))
    for i, (ni, si) in enumerate(zip(n_arr, raw, strict=True)):
        if not (math.isfinite(ni) and ni > 0):
            problems.append(Problem("a sample size must be > 0", row=i + 1, column="n",
                                    value=float(ni)))
        if not (math.isfinite(si) and si > 0):
            problems.append(Problem(f"{'a standard error' if column == 'sei' else 'a variance'}"
                                    " must be > 0", row=i + 1, column=column, value=float(si)))
    raise_if(problems, "uisd()")
    variances = raw**2 if column == "sei" else raw
    return float(np.sqrt(n_arr.sum() / np.sum(1.0 / variances)))


def uisd_half_normal(n: Any, sei: Any = None, *, vi: Any = None,
                     factor: float = UISD_TAU_FACTOR) -> HalfNormal:
    """Half-normal prior on tau scaled by the unit-information SD: ``HN(factor * UISD)``.

    The idea of Röver et al. 2021 (doi:10.1002/jrsm.1475); the factor 1/4 is RoBMA 4.x's
    default. See :func:`uisd` for the UISD convention (total sample size per study).
    """
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 0):
        raise InputError(Problem("must be > 0", column="factor", value=factor))
    sigma_u = uisd(n, sei, vi=vi)
    return HalfNormal(factor * sigma_u,
                      label=f"uisd_half_normal(factor={factor:g}): UISD = {sigma_u:.6g}",
                      citation=UISD_CITATION)

