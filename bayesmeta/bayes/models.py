"""PyMC model builders for the normal-normal hierarchy and its regression extensions.

One family covers the pooled model, subgroup models and meta-regression::

    y_i     ~ Normal(theta_i, sigma_i)             sigma_i = sqrt(v_i), known
    theta_i ~ Normal(x_i' beta, tau_{g(i)})        g(i) = tau group (one group unless separate)
    beta    ~ coefficient priors (Normal or flat), tau_g ~ tau prior

The pooled model is the special case x_i = 1 (beta = mu); a subgroup model with a shared tau is
a regression on subgroup indicators without intercept.

Building is separate from sampling (bambi's split, STYLE.md point 7): :func:`build_model` only
constructs the graph from a hashable :class:`ModelStructure` and placeholder data of a fixed
*capacity* (number of study slots). Real data of any k <= capacity are swapped in later through
``pm.Data``, with a 0/1 ``mask`` that switches off the unused slots: the compiled sampler is
reused for every dataset of the same structure, instead of recompiling once per fit.

Sampling efficiency: the sampler works on ``gamma`` with ``beta = M gamma``, where M comes from
the QR decomposition of the design (passed as data), so the sampled coefficients are
uncorrelated. Priors are placed on ``beta`` itself through a potential, so the reported
coefficients are those of the user's design and the priors mean what the user wrote (the map is
linear, its Jacobian a constant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .priors import from_dict as prior_from_dict

PARAMETRISATIONS = ("noncentred", "centred", "marginal")


@dataclass(frozen=True)
class ModelStructure:
    """Everything that changes the compiled graph (and nothing that doesn't).

    Attributes
    ----------
    n_coef
        Coefficient slots of the compiled graph (>= p of every design fitted with it). The
        coefficient priors are *data* (mean, sd and a normal/flat flag per slot), so designs of
        any p <= n_coef and any normal/flat coefficient priors share one compiled sampler;
        unused slots have a zero design column and a standard-normal prior, so they sample
        their prior independently of everything else.
    tau_priors
        One prior dict per tau group (length 1 unless subgroups have separate taus).
    parametrisation
        ``"noncentred"`` (theta = x'beta + tau z), ``"centred"`` (theta ~ N(x'beta, tau)) or
        ``"marginal"`` (theta integrated out: y_i ~ N(x'beta, v_i + tau^2); the study effects
        are then drawn exactly from their conditional normal given beta and tau, see
        :func:`conditional_theta`). The marginal form has no funnel at all and is the first
        fallback of the diagnostics gate.
    capacity
        Number of study slots in the compiled graph (>= k of every dataset fitted with it).
    """

    n_coef: int
    tau_priors: tuple[Any, ...]
    parametrisation: str = "noncentred"
    capacity: int = 8

    def key(self) -> str:
        from ..results import canonical_json

        return canonical_json({
            "n_coef": self.n_coef,
            "tau_priors": [dict(p) for p in self.tau_priors],
            "parametrisation": self.parametrisation,
            "capacity": self.capacity,
        })

    @property
    def n_tau(self) -> int:
        return len(self.tau_priors)


def coef_slots_for(p: int) -> int:
    """Coefficient slots to compile for p coefficients: the next power of two."""
    return 1 << int(np.ceil(np.log2(max(p, 1))))


def capacity_for(k: int) -> int:
    """Study slots to compile for k studies: the next power of two, at least 8.

    Power-of-two buckets bound the number of compilations (one per bucket and structure)
    while wasting at most half of the slots; unused slots cost one standard-normal dimension
    each, which NUTS handles at negligible cost.
    """
    return max(8, 1 << int(np.ceil(np.log2(max(k, 1)))))


@dataclass(frozen=True)
class ModelData:
    """Data for one fit, padded to a structure's capacity.

    ``y``, ``sigma``, ``mask``, ``tau_index`` have length capacity; ``X`` is (capacity,
    n_coef) and already centred/scaled; ``M`` (n_coef, n_coef) maps the sampler's gamma to the
    user's beta; ``coef_mean``, ``coef_sd``, ``coef_normal`` describe each slot's prior (normal
    when ``coef_normal`` is 1, flat when 0).
    """

    y: np.ndarray
    sigma: np.ndarray
    X: np.ndarray
    M: np.ndarray
    mask: np.ndarray
    tau_index: np.ndarray
    coef_mean: np.ndarray
    coef_sd: np.ndarray
    coef_normal: np.ndarray
    k: int
    p: int

    def as_updates(self) -> dict[str, np.ndarray]:
        return {"y": self.y, "sigma": self.sigma, "X": self.X, "M": self.M, "mask": self.mask,
                "tau_index": self.tau_index, "coef_mean": self.coef_mean,
                "coef_sd": self.coef_sd, "coef_normal": self.coef_normal}


def standardising_map(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (X_std, M) with X_std = X M orthogonal: then X beta = X_std gamma, beta = M gamma.

    The thin QR decomposition X = Q R gives X_std = sqrt(k) Q (columns of mean square 1) and
    M = (R / sqrt(k))^-1. The sampler then sees uncorrelated coefficients of similar scale
    whatever the collinearity of the user's moderators (an interaction beside its main effects,
    an uncentred dose), which a diagonal mass matrix handles well (Stan User's Guide, "The QR
    reparameterization").
    """
    X = np.asarray(X, float)
    k = X.shape[0]
    q, r = np.linalg.qr(X)
    # Fix signs so that R has a positive diagonal (a unique, reproducible decomposition).
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    q, r = q * signs, r * signs[:, None]
    scale = np.sqrt(k)
    return q * scale, np.linalg.inv(r / scale)


def pad_data(y: np.ndarray, vi: np.ndarray, X: np.ndarray, tau_index: np.ndarray,
             capacity: int, coef_priors: Sequence[Mapping | None] | None = None,
             n_coef: int | None = None) -> ModelData:
    """Standardise the design and pad every array to ``capacity`` study slots and ``n_coef``
    coefficient slots (mask = 0 for unused studies; zero column and N(0, 1) prior for unused
    coefficients). ``coef_priors`` holds one Normal prior dict or ``None`` (flat) per column."""
    k, p = X.shape
    n_coef = p if n_coef is None else n_coef
    if k > capacity:
        raise ValueError(f"k = {k} exceeds the compiled capacity {capacity}")
    if p > n_coef:
        raise ValueError(f"p = {p} exceeds the compiled coefficient slots {n_coef}")
    X_std, M_p = standardising_map(X)
    yp = np.zeros(capacity)
    sp = np.ones(capacity)
    Xp = np.zeros((capacity, n_coef))
    mk = np.zeros(capacity)
    ti = np.zeros(capacity, dtype=np.int64)
    yp[:k], sp[:k], Xp[:k, :p], mk[:k], ti[:k] = y, np.sqrt(vi), X_std, 1.0, tau_index
    M = np.eye(n_coef)
    M[:p, :p] = M_p
    mean, sd, normal = np.zeros(n_coef), np.ones(n_coef), np.ones(n_coef)
    for j, prior in enumerate(coef_priors or [None] * p):
        if prior is None:
            normal[j] = 0.0
        else:
            if prior.get("family") != "Normal":
                raise ValueError(f"coefficient priors must be Normal or flat (None), got {prior}")
            mean[j], sd[j] = float(prior["mean"]), float(prior["sd"])
    return ModelData(y=yp, sigma=sp, X=Xp, M=M, mask=mk, tau_index=ti, coef_mean=mean,
                     coef_sd=sd, coef_normal=normal, k=k, p=p)


def build_model(structure: ModelStructure, data: ModelData | None = None) -> Any:
    """Build the PyMC model for ``structure`` (data defaults to placeholders of its capacity).

    Free parameters: ``gamma`` (p), the tau prior's variables, and ``z`` (non-centred) or
    ``theta`` (centred) with one entry per study slot (none for the marginal form).
    Deterministics: ``beta`` (p), ``tau`` (the tau of each group), ``theta`` (non-centred).
    """
    import pymc as pm
    import pytensor.tensor as pt

    cap, p = structure.capacity, structure.n_coef
    if structure.parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}")
    if data is None:
        data = pad_data(np.zeros(1), np.ones(1), np.ones((1, 1)), np.zeros(1, dtype=int), cap,
                        n_coef=p)
    with pm.Model() as model:
        y = pm.Data("y", data.y)
        sigma = pm.Data("sigma", data.sigma)
        X = pm.Data("X", data.X)
        M = pm.Data("M", data.M)
        mask = pm.Data("mask", data.mask)
        tau_index = pm.Data("tau_index", data.tau_index)
        coef_mean = pm.Data("coef_mean", data.coef_mean)
        coef_sd = pm.Data("coef_sd", data.coef_sd)
        coef_normal = pm.Data("coef_normal", data.coef_normal)

        gamma = pm.Flat("gamma", shape=p)
        beta = pm.Deterministic("beta", pt.dot(M, gamma))
        coef_logp = pm.logp(pm.Normal.dist(coef_mean, coef_sd), beta)
        pm.Potential("coef_prior", pt.sum(coef_normal * coef_logp))

        taus = [prior_from_dict(prior).to_pymc(f"tau_{g}")
                for g, prior in enumerate(structure.tau_priors)]
        tau = pm.Deterministic("tau", pt.stack(taus))
        tau_i = tau[tau_index]
        linpred = pt.dot(X, gamma)
        if structure.parametrisation == "marginal":
            total = pt.sqrt(sigma**2 + tau_i**2)
            loglik = pm.logp(pm.Normal.dist(linpred, total), y)
        else:
            if structure.parametrisation == "noncentred":
                z = pm.Normal("z", 0.0, 1.0, shape=cap)
                theta = pm.Deterministic("theta", linpred + tau_i * z)
            else:
                theta = pm.Normal("theta", linpred, tau_i, shape=cap)
            loglik = pm.logp(pm.Normal.dist(theta, sigma), y)
        pm.Potential("loglik", pt.sum(mask * loglik))
    return model


def conditional_theta(y: np.ndarray, vi: np.ndarray, linpred: np.ndarray, tau: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Exact draws of theta_i given (beta, tau) and y_i: normal with variance
    v tau^2 / (v + tau^2) and mean (tau^2 y + v x'beta) / (v + tau^2) (both finite at tau = 0).
    ``linpred`` and ``tau`` are (..., k) arrays of draws; returns the same shape."""
    t2 = tau**2
    denom = vi + t2
    mean = (t2 * y + vi * linpred) / denom
    sd = np.sqrt(vi * t2 / denom)
    return mean + sd * rng.standard_normal(mean.shape)


def structure_for(n_coef: int, tau_priors: list[Mapping], parametrisation: str, k: int,
                  capacity: int | None = None) -> ModelStructure:
    return ModelStructure(
        n_coef=n_coef,
        tau_priors=tuple(_freeze(p) for p in tau_priors),
        parametrisation=parametrisation,
        capacity=capacity if capacity is not None else capacity_for(k),
    )


class _FrozenDict(dict):
    """A hashable dict, so that a ModelStructure can key the compile cache."""

    def __hash__(self) -> int:  # type: ignore[override]
        from ..results import canonical_json

        return hash(canonical_json(self))


def _freeze(d: Mapping) -> _FrozenDict:
    return _FrozenDict(d)
