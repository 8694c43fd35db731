"""PyMC model builders for the normal-normal hierarchy and its regression extensions.

One family covers the pooled model, subgroup models and meta-regression::

    y_i     ~ Normal(theta_i, sigma_i)             sigma_i = sqrt(v_i), known
    theta_i ~ Normal(x_i' beta, tau_{g(i)})        g(i) = tau group (one group unless separate)
    beta    ~ coefficient priors (Normal or flat), tau_g ~ tau prior

The pooled model is the special case x_i = 1 (beta = mu); a subgroup model with a shared tau is
a regression on subgroup indicators without intercept. Partially pooled subgroup means add one
level (Gelman 2006, doi:10.1214/06-BA117A)::

    beta_g  ~ Normal(mu_overall, omega)            mu_overall ~ mu prior, omega ~ omega prior

in a graph of its own (:class:`ModelStructure` with ``pooling_prior`` set). The sampler does
not see mu_overall: it samples the average of the subgroup means, ``beta_mean``, which the data
pin down, and the contrasts ``beta - beta_mean`` (non-centred: ``omega * B zeta`` with B an
orthonormal basis of the sum-zero vectors). Given omega, the average of G iid Normal(mu_overall,
omega) means is Normal(mu_overall, omega^2 / G) and independent of the contrasts, so
mu_overall integrates out in closed form (``beta_mean ~ Normal(m0, s0^2 + omega^2 / G)`` under a
Normal(m0, s0) prior, flat under a flat one) and is drawn afterwards from its exact conditional
normal (:func:`conditional_overall`). Sampling mu_overall itself would leave a ridge
``mu_overall + omega * mean(eta) = beta_mean`` whose width changes with omega (a funnel).

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
        :func:`conditional_theta`; the coefficients are non-centred on their exact conditional
        normal given tau, see :func:`_collapsed_coefficients`). The marginal form has no funnel
        at all and is the first fallback of the diagnostics gate.
    capacity
        Number of study slots in the compiled graph (>= k of every dataset fitted with it).
    pooling_prior
        ``None`` for independent coefficients; otherwise the prior dict of omega, and the
        coefficients (subgroup means) are drawn from Normal(mu_overall, omega). mu_overall's
        prior is data (``overall_prior``), as the coefficient priors are, so every partially
        pooled fit with the same omega and tau priors and capacity shares one compiled sampler.
    """

    n_coef: int
    tau_priors: tuple[Any, ...]
    parametrisation: str = "noncentred"
    capacity: int = 8
    pooling_prior: Any = None

    def key(self) -> str:
        from ..results import canonical_json

        return canonical_json({
            "n_coef": self.n_coef,
            "tau_priors": [dict(p) for p in self.tau_priors],
            "parametrisation": self.parametrisation,
            "capacity": self.capacity,
            "pooling_prior": None if self.pooling_prior is None else dict(self.pooling_prior),
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
    when ``coef_normal`` is 1, flat when 0). Partially pooled graphs read instead
    ``overall_prior`` ([mean, sd, normal flag, number of subgroups G] of mu_overall's prior),
    ``contrast_basis`` (n_coef, n_coef - 1: an orthonormal basis of the sum-zero vectors of the
    G used slots in its first G - 1 columns, zero elsewhere) and ``contrast_used`` (1 for those
    G - 1 columns, 0 for padding).
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
    overall_prior: np.ndarray | None = None
    contrast_basis: np.ndarray | None = None
    contrast_used: np.ndarray | None = None

    def as_updates(self) -> dict[str, np.ndarray]:
        """Every data array by its ``pm.Data`` name (a graph reads the subset it needs)."""
        out = {"y": self.y, "sigma": self.sigma, "X": self.X, "M": self.M, "mask": self.mask,
               "tau_index": self.tau_index, "coef_mean": self.coef_mean,
               "coef_sd": self.coef_sd, "coef_normal": self.coef_normal}
        for name in ("overall_prior", "contrast_basis", "contrast_used"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


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
             n_coef: int | None = None, *, standardise: bool = True,
             overall_prior: Mapping | None = None) -> ModelData:
    """Standardise the design and pad every array to ``capacity`` study slots and ``n_coef``
    coefficient slots (mask = 0 for unused studies; zero column and N(0, 1) prior for unused
    coefficients). ``coef_priors`` holds one Normal prior dict or ``None`` (flat) per column.

    Partially pooled subgroup means need the design as written (``standardise=False``: the
    hierarchy is on the subgroup means themselves, and indicator columns are orthogonal
    already) and mu_overall's prior (``overall_prior``: a Normal prior dict, or ``None`` for
    flat)."""
    k, p = X.shape
    n_coef = p if n_coef is None else n_coef
    if k > capacity:
        raise ValueError(f"k = {k} exceeds the compiled capacity {capacity}")
    if p > n_coef:
        raise ValueError(f"p = {p} exceeds the compiled coefficient slots {n_coef}")
    X_std, M_p = standardising_map(X) if standardise else (np.asarray(X, float), np.eye(p))
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
    overall = np.array([0.0, 1.0, 0.0, float(p)])
    if overall_prior is not None:
        if overall_prior.get("family") != "Normal":
            raise ValueError(f"mu_overall's prior must be Normal or flat (None), "
                             f"got {overall_prior}")
        overall[:3] = float(overall_prior["mean"]), float(overall_prior["sd"]), 1.0
    basis = np.zeros((n_coef, max(n_coef - 1, 0)))
    basis[:p, :max(p - 1, 0)] = helmert_basis(p)
    used = (np.arange(max(n_coef - 1, 0)) < p - 1).astype(float)
    return ModelData(y=yp, sigma=sp, X=Xp, M=M, mask=mk, tau_index=ti, coef_mean=mean,
                     coef_sd=sd, coef_normal=normal, k=k, p=p, overall_prior=overall,
                     contrast_basis=basis, contrast_used=used)


def helmert_basis(g: int) -> np.ndarray:
    """An orthonormal basis (g, g - 1) of the vectors of length g that sum to zero (Helmert
    contrasts, normalised: column j compares element j with the mean of the ones before it)."""
    basis = np.zeros((g, max(g - 1, 0)))
    for j in range(1, g):
        norm = np.sqrt(j * (j + 1.0))
        basis[:j, j - 1] = 1.0 / norm
        basis[j, j - 1] = -j / norm
    return basis


def build_model(structure: ModelStructure, data: ModelData | None = None) -> Any:
    """Build the PyMC model for ``structure`` (data defaults to placeholders of its capacity).

    Free parameters: ``gamma`` (p; ``zeta`` in the marginal form), the tau prior's variables,
    and ``z`` (non-centred) or ``theta`` (centred) with one entry per study slot (none for the
    marginal form).
    Deterministics: ``beta`` (p), ``tau`` (the tau of each group), ``theta`` (non-centred).
    With ``structure.pooling_prior``: ``beta_mean``, ``omega`` and ``zeta`` (n_coef - 1;
    non-centred and marginal forms) or ``contrast`` (centred) replace ``gamma``; ``beta`` is
    deterministic (see the module docstring; mu_overall is drawn after sampling).
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

        collapsed = (structure.pooling_prior is None
                     and structure.parametrisation == "marginal")
        if structure.pooling_prior is not None:
            linpred = pt.dot(X, _pooled_coefficients(structure, data))
        elif not collapsed:
            gamma = pm.Flat("gamma", shape=p)
            beta = pm.Deterministic("beta", pt.dot(M, gamma))
            coef_logp = pm.logp(pm.Normal.dist(coef_mean, coef_sd), beta)
            pm.Potential("coef_prior", pt.sum(coef_normal * coef_logp))
            linpred = pt.dot(X, gamma)

        taus = [prior_from_dict(prior).to_pymc(f"tau_{g}")
                for g, prior in enumerate(structure.tau_priors)]
        tau = pm.Deterministic("tau", pt.stack(taus))
        tau_i = tau[tau_index]
        if collapsed:
            gamma = _collapsed_coefficients(y, sigma, X, M, mask, tau_i, coef_mean, coef_sd,
                                            coef_normal)
            beta = pm.Deterministic("beta", pt.dot(M, gamma))
            coef_logp = pm.logp(pm.Normal.dist(coef_mean, coef_sd), beta)
            pm.Potential("coef_prior", pt.sum(coef_normal * coef_logp))
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


def _collapsed_coefficients(y: Any, sigma: Any, X: Any, M: Any, mask: Any, tau_i: Any,
                            coef_mean: Any, coef_sd: Any, coef_normal: Any) -> Any:
    """gamma non-centred on its exact conditional posterior given tau (marginal form).

    With theta integrated out, gamma | tau, y is normal (the coefficient priors are normal or
    flat): precision Q = X' W X + M' D M and mean Q^-1 (X' W y + M' D m), with W = diag(mask /
    (v + tau^2)) and D, m the prior precisions and means of beta = M gamma. Sampling
    ``zeta`` with ``gamma = mean + L^-T zeta`` (Q = L L') makes the posterior of (zeta, tau)
    p(tau | y) N(zeta; 0, I) exactly, so nothing is left of the funnel between the mean and
    log tau that the plain marginal form still has when the studies are precise and k is small
    (the spread of mu given tau grows with tau). ``zeta`` is flat here and the potentials of
    the likelihood, the coefficient prior and the Jacobian |det L^-T| make its density.
    """
    import pymc as pm
    import pytensor.tensor as pt
    from pytensor.tensor.slinalg import cholesky, solve_triangular

    w = mask / (sigma**2 + tau_i**2)
    prior_precision = coef_normal / coef_sd**2
    Q = pt.dot(X.T, X * w[:, None]) + pt.dot(M.T, M * prior_precision[:, None])
    rhs = pt.dot(X.T, w * y) + pt.dot(M.T, prior_precision * coef_mean)
    L = cholesky(Q, lower=True)
    mean = solve_triangular(L.T, solve_triangular(L, rhs, lower=True), lower=False)
    zeta = pm.Flat("zeta", shape=X.shape[1])
    pm.Potential("jacobian", -pt.sum(pt.log(pt.diag(L))))
    return mean + solve_triangular(L.T, zeta, lower=False)


def _pooled_coefficients(structure: ModelStructure, data: ModelData) -> Any:
    """beta_g ~ Normal(mu_overall, omega), mu_overall integrated out, inside the current model
    context; returns beta.

    Contrasts non-centred (``omega * zeta``, zeta ~ N(0, 1)) for the non-centred and marginal
    forms: free of the funnel when omega is near zero and the means are pooled hard. Centred
    (``contrast ~ N(0, omega)``) on request: better when every subgroup mean is pinned down by
    its studies and omega is large. Padding contrasts (``contrast_used`` 0) have zero basis
    columns and an independent N(0, 1), so they leave omega's posterior untouched.
    """
    import pymc as pm
    import pytensor.tensor as pt

    n_contrast = structure.n_coef - 1
    overall_prior = pm.Data("overall_prior", data.overall_prior)
    basis = pm.Data("contrast_basis", data.contrast_basis)
    m0, s0, normal, n_groups = (overall_prior[i] for i in range(4))
    omega = prior_from_dict(structure.pooling_prior).to_pymc("omega")
    beta_mean = pm.Flat("beta_mean")
    # the average of the G subgroup means given omega, mu_overall integrated out: Normal(m0,
    # s0^2 + omega^2 / G) under a Normal prior on mu_overall, flat under a flat one
    mean_sd = pt.sqrt(s0**2 + omega**2 / n_groups)
    pm.Potential("beta_mean_prior",
                 normal * pm.logp(pm.Normal.dist(m0, mean_sd), beta_mean))
    if structure.parametrisation == "centred":
        used = pm.Data("contrast_used", data.contrast_used)
        contrast = pm.Flat("contrast", shape=n_contrast)
        pm.Potential("contrast_prior", pt.sum(
            used * pm.logp(pm.Normal.dist(0.0, omega), contrast)
            + (1 - used) * pm.logp(pm.Normal.dist(0.0, 1.0), contrast)))
    else:
        contrast = omega * pm.Normal("zeta", 0.0, 1.0, shape=n_contrast)
    return pm.Deterministic("beta", beta_mean + pt.dot(basis, contrast))


def conditional_overall(beta_mean: np.ndarray, omega: np.ndarray, overall_prior: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """Exact draws of mu_overall given the average of the G subgroup means and omega.

    ``beta_mean | mu_overall, omega ~ Normal(mu_overall, omega^2 / G)``; with a Normal(m0, s0)
    prior the conditional is normal with precision 1/s0^2 + G/omega^2, with a flat prior it is
    Normal(beta_mean, omega^2 / G). ``overall_prior`` is ``ModelData.overall_prior``.
    """
    m0, s0, normal, g = (float(v) for v in overall_prior)
    # omega = 0 (pooled into one mean): mu_overall equals beta_mean; the divisions below are
    # guarded so that the limit comes out without a warning.
    w = g / np.maximum(omega, 1e-300) ** 2
    if normal:
        prec = 1.0 / s0**2 + w
        mean = (m0 / s0**2 + w * beta_mean) / prec
        sd = np.sqrt(1.0 / prec)
    else:
        mean, sd = beta_mean, omega / np.sqrt(g)
    return mean + sd * rng.standard_normal(np.shape(beta_mean))


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
                  capacity: int | None = None,
                  pooling_prior: Mapping | None = None) -> ModelStructure:
    return ModelStructure(
        n_coef=n_coef,
        tau_priors=tuple(_freeze(p) for p in tau_priors),
        parametrisation=parametrisation,
        capacity=capacity if capacity is not None else capacity_for(k),
        pooling_prior=None if pooling_prior is None else _freeze(pooling_prior),
    )


class _FrozenDict(dict):
    """A hashable dict, so that a ModelStructure can key the compile cache."""

    def __hash__(self) -> int:  # type: ignore[override]
        from ..results import canonical_json

        return hash(canonical_json(self))


def _freeze(d: Mapping) -> _FrozenDict:
    return _FrozenDict(d)
