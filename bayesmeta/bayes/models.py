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

Sampling efficiency: the sampler works on ``gamma`` with ``beta = M gamma``, where M centres and
scales the non-intercept columns of the design (passed as data). Priors are placed on ``beta``
itself through a potential, so the reported coefficients are those of the user's design and the
priors mean what the user wrote (the map is linear, its Jacobian a constant).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .priors import from_dict as prior_from_dict

PARAMETRISATIONS = ("noncentred", "centred")


@dataclass(frozen=True)
class ModelStructure:
    """Everything that changes the compiled graph (and nothing that doesn't).

    Attributes
    ----------
    n_coef
        Number of regression coefficients p (1 for the pooled model).
    coef_priors
        One prior dict (``to_dict()`` form) per coefficient, or ``None`` for a flat prior.
    tau_priors
        One prior dict per tau group (length 1 unless subgroups have separate taus).
    parametrisation
        ``"noncentred"`` (theta = x'beta + tau z) or ``"centred"`` (theta ~ N(x'beta, tau)).
    capacity
        Number of study slots in the compiled graph (>= k of every dataset fitted with it).
    """

    n_coef: int
    coef_priors: tuple[Any, ...]
    tau_priors: tuple[Any, ...]
    parametrisation: str = "noncentred"
    capacity: int = 8

    def key(self) -> str:
        from ..results import canonical_json

        return canonical_json({
            "n_coef": self.n_coef,
            "coef_priors": [None if p is None else dict(p) for p in self.coef_priors],
            "tau_priors": [dict(p) for p in self.tau_priors],
            "parametrisation": self.parametrisation,
            "capacity": self.capacity,
        })

    @property
    def n_tau(self) -> int:
        return len(self.tau_priors)


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

    ``y``, ``sigma``, ``mask``, ``tau_index`` have length capacity; ``X`` is (capacity, p) and
    already centred/scaled; ``M`` (p, p) maps the sampler's gamma to the user's beta.
    """

    y: np.ndarray
    sigma: np.ndarray
    X: np.ndarray
    M: np.ndarray
    mask: np.ndarray
    tau_index: np.ndarray
    k: int

    def as_updates(self) -> dict[str, np.ndarray]:
        return {"y": self.y, "sigma": self.sigma, "X": self.X, "M": self.M, "mask": self.mask,
                "tau_index": self.tau_index}


def standardising_map(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (X_std, M) with X_std = X M: non-intercept columns centred and scaled when the
    design has an intercept column, only scaled otherwise. Then X beta = X_std gamma with
    beta = M gamma."""
    X = np.asarray(X, float)
    p = X.shape[1]
    M = np.eye(p)
    intercept = [j for j in range(p) if np.all(X[:, j] == 1.0)]
    for j in range(p):
        if j in intercept:
            continue
        col = X[:, j]
        centre = col.mean() if intercept else 0.0
        scale = col.std() if col.std() > 0 else (np.abs(col).max() or 1.0)
        M[j, j] = 1.0 / scale
        if intercept:
            M[intercept[0], j] = -centre / scale
    return X @ M, M


def pad_data(y: np.ndarray, vi: np.ndarray, X: np.ndarray, tau_index: np.ndarray,
             capacity: int) -> ModelData:
    """Standardise the design and pad every array to ``capacity`` slots (mask = 0 there)."""
    k = y.size
    if k > capacity:
        raise ValueError(f"k = {k} exceeds the compiled capacity {capacity}")
    X_std, M = standardising_map(X)
    p = X.shape[1]
    yp = np.zeros(capacity)
    sp = np.ones(capacity)
    Xp = np.zeros((capacity, p))
    mk = np.zeros(capacity)
    ti = np.zeros(capacity, dtype=np.int64)
    yp[:k], sp[:k], Xp[:k], mk[:k], ti[:k] = y, np.sqrt(vi), X_std, 1.0, tau_index
    return ModelData(y=yp, sigma=sp, X=Xp, M=M, mask=mk, tau_index=ti, k=k)


def build_model(structure: ModelStructure, data: ModelData | None = None) -> Any:
    """Build the PyMC model for ``structure`` (data defaults to placeholders of its capacity).

    Free parameters: ``gamma`` (p), the tau prior's variables, and ``z`` (non-centred) or
    ``theta`` (centred) with one entry per study slot. Deterministics: ``beta`` (p), ``tau``
    (the tau of each group), ``theta`` (non-centred).
    """
    import pymc as pm
    import pytensor.tensor as pt

    cap, p = structure.capacity, structure.n_coef
    if structure.parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}")
    if data is None:
        data = pad_data(np.zeros(1), np.ones(1), np.ones((1, p)), np.zeros(1, dtype=int), cap)
    with pm.Model() as model:
        y = pm.Data("y", data.y)
        sigma = pm.Data("sigma", data.sigma)
        X = pm.Data("X", data.X)
        M = pm.Data("M", data.M)
        mask = pm.Data("mask", data.mask)
        tau_index = pm.Data("tau_index", data.tau_index)

        gamma = pm.Flat("gamma", shape=p)
        beta = pm.Deterministic("beta", pt.dot(M, gamma))
        coef_logp = []
        for j, prior in enumerate(structure.coef_priors):
            if prior is None:
                continue
            coef_logp.append(_coef_logp(prior, beta[j]))
        if coef_logp:
            pm.Potential("coef_prior", pt.sum(pt.stack(coef_logp)))

        taus = [prior_from_dict(prior).to_pymc(f"tau_{g}")
                for g, prior in enumerate(structure.tau_priors)]
        tau = pm.Deterministic("tau", pt.stack(taus))
        tau_i = tau[tau_index]
        linpred = pt.dot(X, gamma)
        if structure.parametrisation == "noncentred":
            z = pm.Normal("z", 0.0, 1.0, shape=cap)
            theta = pm.Deterministic("theta", linpred + tau_i * z)
        else:
            theta = pm.Normal("theta", linpred, tau_i, shape=cap)
        loglik = pm.logp(pm.Normal.dist(theta, sigma), y)
        pm.Potential("loglik", pt.sum(mask * loglik))
    return model


def _coef_logp(prior: Mapping, x: Any) -> Any:
    """Log density of a coefficient prior at ``x`` (a PyMC tensor). Coefficient priors are
    normal (the conditionally-normal model the exact engine also handles)."""
    import pymc as pm

    if prior.get("family") != "Normal":
        raise ValueError(f"coefficient priors must be Normal or flat (None), got {prior}")
    return pm.logp(pm.Normal.dist(float(prior["mean"]), float(prior["sd"])), x)


def structure_for(n_coef: int, coef_priors: list[Mapping | None], tau_priors: list[Mapping],
                  parametrisation: str, k: int, capacity: int | None = None) -> ModelStructure:
    return ModelStructure(
        n_coef=n_coef,
        coef_priors=tuple(None if p is None else _freeze(p) for p in coef_priors),
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
