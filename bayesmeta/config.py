"""The one frozen source of defaults.

Every layer reads its defaults from :data:`DEFAULTS`; nothing else in the package hard-codes an
interval level, a convergence threshold or a default prior. Results print the defaults they used,
so a table header always says which interval it shows.

Priors are stored here as plain dictionaries (the ``to_dict()`` form of
:mod:`bayesmeta.bayes.priors`) because this module sits beneath every other layer and must not
import the Bayesian engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _frozen(mapping: dict[str, Any]) -> MappingProxyType:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Defaults:
    """Package-wide defaults (read-only).

    Attributes
    ----------
    level
        Coverage of every interval (confidence, credible, prediction) unless the caller asks for
        another. 0.95, as metafor and bayesmeta.
    interval_kind
        ``"eti"`` (equal-tailed, the default everywhere) or ``"shortest"``.
    standardised_measures
        Effect measures on a standardised, log or logit scale. For these a weakly informative
        default prior is defined; for raw-scale measures (MD, bare arrays) the user must choose.
    tau_prior_standardised, mu_prior_standardised
        Default priors (``to_dict()`` form) for standardised measures: HalfNormal(0.5) on tau
        (Friede et al. 2017, doi:10.1002/jrsm.1217) and Normal(0, 4) on mu.
    reml_tol
        Convergence threshold on |delta tau2| for Fisher scoring (metafor's default is 1e-5;
        we iterate to the tight value the references were computed with).
    reml_maxiter, reml_step_halvings
        Fisher scoring iteration cap and the number of step halvings tried per iteration.
    root_tol
        Absolute tolerance of the one-dimensional root finding for tau2 (Paule-Mandel, Q-profile
        bounds), as the references' tight control (metafor's default is about 1.2e-4).
    tau2_max
        Upper end of the tau2 search range of root finding (widened to 10 x tau2 when needed);
        a Q-profile bound beyond it is reported as ``">"``, as metafor's ``ub.sign``. 1e6 as the
        references' tight control (metafor's default is max(100, 10 x tau2)).
    tau2_grid_per_decade
        Points per decade of the grid on which the ML/REML score is scanned for a better maximum
        than the one Fisher scoring found (tau2 = 0 and s x 10^(-8..4), s = max(var(yi),
        mean(vi))). The references used 40; 10 (grid steps of 26%) finds the same maxima on every
        reference dataset at a quarter of the cost.
    rhat_max, ess_min, ebfmi_min
        The diagnostics gate applied after every NUTS fit (Vehtari et al. 2021,
        doi:10.1214/20-BA1221).
    draws, tune, chains, target_accept
        NUTS settings. 4 chains x 1000 draws reach the gate's ESS for the normal-normal model.
    seed
        Seed of a NUTS fit when the caller passes none (fits are reproducible by default).
    backend
        NUTS backend: ``"nutpie"`` (compiled once per model structure, then reused with new
        data) or ``"pymc"`` (PyMC's own sampler; rebuilds the graph for every fit).
    parametrisation
        First parametrisation tried by NUTS: ``"noncentred"`` (theta = mu + tau z), which has
        no funnel when the studies are imprecise relative to tau; the diagnostics gate falls
        back to ``"marginal"`` and ``"centred"`` on failure.
    omega_prior
        Default prior (``to_dict()`` form) on omega, the between-subgroup SD of partially pooled
        subgroup means (``bayes_rma(..., subgroup=..., subgroup_pooling=True)``). ``None`` means
        the tau prior of the same fit: it is on the scale of the effects whatever the measure
        (for raw-scale data the user's own tau prior), and a spread of subgroup means about as
        large as the spread of studies within a subgroup is plausible a priori.
    subgroup_min_k_separate_tau
        A subgroup with fewer studies than this under ``tau="separate"`` is flagged: its tau
        posterior mostly returns the tau prior, so its predictive interval is not a finding.
    subgroup_min_k_shared_tau
        A subgroup with fewer studies than this under a shared tau is flagged: its mean rests on
        one or two studies and on the tau estimated from the other subgroups, so neither its
        mean nor its predictive interval says anything about heterogeneity within it.
    ppc_draws
        Joint draws taken from an exact posterior for its posterior predictive checks
        (``ppc``; as many as a default NUTS fit has). NUTS results use all their own draws.
    pareto_k_max
        Pareto k above which a study's PSIS-LOO estimate is unreliable (Vehtari et al. 2024,
        doi:10.48550/arXiv.1507.02646; arviz's ``good_k`` for draws of a few thousand).
    se_ratio_warn
        Ratio of the largest to the smallest standard error above which a warning is recorded
        (as bayesmeta does): quadrature and sampling both get fragile there.
    outlier_alpha
        Family-wise error rate of the outlier screen on externally studentized residuals
        (``outliers``): a study is flagged when |rstudent| exceeds the two-sided Bonferroni bound
        Phi^-1(1 - alpha / (2k)), as the review did.
    trimfill_maxiter
        Iteration cap of the trim-and-fill algorithm (metafor's ``maxiter``, 100).
    rank_test_exact_max_k
        The rank test uses the exact null distribution of Kendall's tau (as metafor's
        ``cor.test(..., exact=TRUE)``) when there are no ties and k is at most this; above it,
        the normal approximation (the exact distribution costs seconds at k = 1000, and the two
        agree to ~1e-3 there).
    plan_ess_min
        Bulk and tail ESS a plan's primary NUTS fit must reach on its headline parameters (mu
        or the subgroup means or coefficients, and tau): the review's plan asks for 1000, more
        than the gate's ``ess_min``. A fit below it is redrawn with proportionally more draws
        (the compiled sampler is reused, so this costs seconds), at most
        ``plan_ess_max_factor`` times the planned draws.
    quick_draws, quick_tune
        NUTS draws and tuning steps per chain of a ``--quick`` run (smoke tests: the exact
        engine is used wherever it exists, and NUTS fits left over are shortened to these; the
        report says so).
    report_dpi
        Resolution of the PNG figures embedded in reports (a compromise between legibility and
        the time matplotlib takes to rasterise ~60 figures).
    output_workers
        Worker processes that rasterise a report's figures and write its netCDF files (forked
        after the fits; 1 = in the main process).
    escalc_add, escalc_to, escalc_vtype
        ``escalc`` defaults, as in metafor 3.8-1: add 1/2 to every cell of a 2x2 table (or both
        cells of a proportion) that has a zero cell (``to="only0"``); large-sample variances
        (``vtype="LS"``).
    """

    level: float = 0.95
    interval_kind: str = "eti"
    standardised_measures: frozenset[str] = frozenset(
        {"SMD", "SMDH", "SMCC", "SMCR", "ROM", "OR", "RR", "PLO", "ZCOR", "PLN"}
    )
    tau_prior_standardised: MappingProxyType = field(
        default_factory=lambda: _frozen({"family": "HalfNormal", "scale": 0.5})
    )
    mu_prior_standardised: MappingProxyType = field(
        default_factory=lambda: _frozen({"family": "Normal", "mean": 0.0, "sd": 4.0})
    )
    reml_tol: float = 1e-10
    reml_maxiter: int = 1000
    reml_step_halvings: int = 30
    root_tol: float = 1e-12
    tau2_max: float = 1e6
    tau2_grid_per_decade: int = 10
    rhat_max: float = 1.01
    ess_min: float = 400.0
    ebfmi_min: float = 0.3
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    seed: int = 0
    backend: str = "nutpie"
    parametrisation: str = "noncentred"
    omega_prior: MappingProxyType | None = None
    subgroup_min_k_separate_tau: int = 5
    subgroup_min_k_shared_tau: int = 3
    ppc_draws: int = 4000
    pareto_k_max: float = 0.7
    se_ratio_warn: float = 1000.0
    outlier_alpha: float = 0.05
    trimfill_maxiter: int = 100
    rank_test_exact_max_k: int = 300
    plan_ess_min: float = 1000.0
    plan_ess_max_factor: int = 4
    quick_draws: int = 300
    quick_tune: int = 300
    report_dpi: int = 80
    output_workers: int = 2
    escalc_add: float = 0.5
    escalc_to: str = "only0"
    escalc_vtype: str = "LS"

    def describe(self) -> dict[str, Any]:
        """The defaults as a plain dictionary, for printing beside results."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, MappingProxyType):
                value = dict(value)
            elif isinstance(value, frozenset):
                value = sorted(value)
            out[name] = value
        return out


DEFAULTS = Defaults()
