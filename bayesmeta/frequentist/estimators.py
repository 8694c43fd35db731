"""Estimators of the between-study variance tau2, as metafor 3.8-1 computes them.

Closed forms: DerSimonian-Laird (DL), Hedges (HE), Hunter-Schmidt (HS), Sidik-Jonkman (SJ).
Iterative: Paule-Mandel (PM, root of the generalised Q statistic), empirical Bayes (EB, the same
estimating equation solved by metafor's scoring step), maximum likelihood (ML) and restricted
maximum likelihood (REML) by Fisher scoring with step halving, started from the HE estimate as
metafor does. Every estimate is truncated at 0, so tau2 is never negative.

References
----------
- DerSimonian & Laird (1986), doi:10.1016/0197-2456(86)90046-2
- Hedges & Olkin (1985), Statistical Methods for Meta-Analysis (HE)
- Hunter & Schmidt (2004), Methods of Meta-Analysis (HS)
- Sidik & Jonkman (2005), doi:10.1080/10543400500387155 (SJ)
- Paule & Mandel (1982), doi:10.6028/jres.087.022 (PM)
- Morris (1983), doi:10.1080/01621459.1983.10477920 (EB)
- Viechtbauer (2005), doi:10.3102/10769986030003261 (ML/REML Fisher scoring and the standard errors)
- Viechtbauer (2010), doi:10.18637/jss.v036.i03 (metafor)

The ML/REML log-likelihood can have more than one local maximum (e.g. dat.gibson2002's mean
differences: a local maximum at tau2 = 0 and the global one near 9.7). After Fisher scoring we
therefore evaluate the score d logL / d tau2 on a log-spaced grid (tau2 = 0 and
s x 10^(-8..4), the references' grid), locate every local maximum from the score's sign changes
and solve for each one that lies in another basin than Fisher scoring's solution; the largest
log-likelihood wins and the default start wins ties (the rule the references' ``metafor_tight``
values were computed with). When Fisher scoring does not converge, a bounded one-dimensional
optimisation of the profile likelihood on the grid brackets takes over and the result records
that method and a warning.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from ..config import DEFAULTS
from .linalg import Projection, Scorer, is_intercept_only, score_terms, weighted_fit

METHODS: tuple[str, ...] = ("EE", "DL", "HE", "HS", "SJ", "PM", "EB", "ML", "REML")
ALIASES: dict[str, str] = {"FE": "EE"}
LIKELIHOOD_METHODS = ("ML", "REML")
_LOG_2PI = math.log(2.0 * math.pi)
# grid of the search for another maximum: tau2 = 0 and s * 10^(-8 .. 4)
_GRID_DECADES = (-8, 4)


@dataclass(frozen=True)
class FitControl:
    """Convergence settings of the iterative estimators (metafor's ``control``).

    Attributes
    ----------
    tol
        Stop Fisher scoring when |delta tau2| < tol (metafor's ``threshold``).
    maxiter
        Fisher scoring iteration cap (metafor's ``maxiter``).
    search_maxiter
        Iteration cap of root finding and of the bounded optimisation that takes over when
        Fisher scoring fails (a budget of its own, so a fallback is not starved by the very cap
        that triggered it).
    step_halvings
        Step halvings tried when a step would make tau2 negative.
    root_tol
        Absolute tolerance of root finding (PM, Q-profile bounds; metafor's ``tol``).
    tau2_max
        Upper end of the root-finding range (widened when needed; metafor's ``tau2.max``).
    grid_per_decade
        Points per decade of the likelihood grid searched for a better maximum.
    global_check
        Search the grid for a better maximum after Fisher scoring (ML/REML).
    """

    tol: float = DEFAULTS.reml_tol
    maxiter: int = DEFAULTS.reml_maxiter
    search_maxiter: int = DEFAULTS.reml_maxiter
    step_halvings: int = DEFAULTS.reml_step_halvings
    root_tol: float = DEFAULTS.root_tol
    tau2_max: float = DEFAULTS.tau2_max
    grid_per_decade: int = DEFAULTS.tau2_grid_per_decade
    global_check: bool = True


DEFAULT_CONTROL = FitControl()


@dataclass(frozen=True)
class Tau2Estimate:
    """An estimate of tau2 and how it was obtained.

    Attributes
    ----------
    tau2
        The estimate, >= 0 (metafor's ``tau2``).
    se
        Its standard error as metafor computes it for the method (``se.tau2``); ``None`` when
        tau2 was not estimated (EE model, k = p, fixed tau2).
    method
        The method asked for.
    method_used
        The method that produced the estimate: the same as ``method`` unless a fallback took
        over (e.g. ``"REML (bounded profile-likelihood optimisation)"``).
    converged
        Whether ``method_used`` converged.
    iterations
        Fisher scoring iterations (0 for closed forms).
    warnings, notes
        Messages for the user; warnings also go to the result's ``warnings``.
    se_reason
        Why ``se`` is ``None`` when tau2 was estimated but its standard error does not exist
        (the formula's variance is not a finite positive number).
    """

    tau2: float
    se: float | None
    method: str
    method_used: str
    converged: bool = True
    iterations: int = 0
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    se_reason: str | None = None


# ---------------------------------------------------------------------------------------------
# log-likelihoods and scores


def profile_loglik(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: np.ndarray | float,
                   reml: bool, pooled: bool | None = None) -> np.ndarray:
    """ML or REML log-likelihood of tau2 with beta profiled out, vectorised over ``tau2``.

    The full constants are included, as metafor's ``logLik`` (REML with ``REMLf=TRUE``: the
    1/2 log|X'X| term). ``pooled`` says X is a column of ones (checked when ``None``).
    """
    t = np.atleast_1d(np.asarray(tau2, dtype=float))
    k, p = X.shape
    vt = np.add.outer(t, v)
    sumlog = np.log(vt).sum(axis=1)
    W = np.reciprocal(vt, out=vt)
    if pooled is None:
        pooled = is_intercept_only(X)
    if pooled:
        # centring y keeps sum(w y^2) - (sum w y)^2 / sum(w) free of cancellation
        yc = y - y.sum() / k
        sw = W.sum(axis=1)
        swy = W @ yc
        rss = W @ (yc * yc) - swy * swy / sw
        if reml:
            return (-0.5 * (k - 1) * _LOG_2PI + 0.5 * math.log(k) - 0.5 * sumlog
                    - 0.5 * np.log(sw) - 0.5 * rss)
        return -0.5 * k * _LOG_2PI - 0.5 * sumlog - 0.5 * rss
    if p == 1:
        x = X[:, 0]
        sxx = W @ (x * x)
        beta = (W @ (x * y)) / sxx
        R = y[None, :] - beta[:, None] * x[None, :]
        logdet = np.log(sxx)
        logdet_xx = math.log(float(x @ x))
    else:
        M = np.einsum("gk,ki,kj->gij", W, X, X)
        b = np.einsum("gk,ki,k->gi", W, X, y)
        beta = np.linalg.solve(M, b[..., None])[..., 0]
        R = y[None, :] - beta @ X.T
        logdet = np.linalg.slogdet(M)[1]
        logdet_xx = float(np.linalg.slogdet(X.T @ X)[1])
    rss = np.einsum("gk,gk->g", W * R, R)
    if reml:
        return (-0.5 * (k - p) * _LOG_2PI + 0.5 * logdet_xx - 0.5 * sumlog - 0.5 * logdet
                - 0.5 * rss)
    return -0.5 * k * _LOG_2PI - 0.5 * sumlog - 0.5 * rss


def likelihood_score(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float,
                     reml: bool) -> float:
    """d logL / d tau2 at ``tau2``: (y'PPy - tr P)/2 for REML, (y'PPy - sum w)/2 for ML."""
    _, yppy, trp, _, sw, _ = score_terms(y, v, X, tau2)
    return 0.5 * (yppy - (trp if reml else sw))


def score_grid(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: np.ndarray, reml: bool,
               pooled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ML/REML score d logL / d tau2 at every ``tau2`` (vectorised), and its scale.

    Returns ``(score, scale)``; ``scale`` = (y'PPy + tr P) / 2 (or sum w for ML) sets the size
    below which a score counts as zero. No logarithms are needed, which makes a grid of scores
    several times cheaper than a grid of log-likelihoods. ``y`` should be centred for the pooled
    model.
    """
    t = np.atleast_1d(np.asarray(tau2, dtype=float))
    W = np.add.outer(t, v)
    np.reciprocal(W, out=W)
    if pooled is None:
        pooled = is_intercept_only(X)
    if pooled:
        # weighted moments of (1, y, y^2) with w and w^2, by matrix-vector products (see
        # linalg.Scorer on why not one matrix-matrix product)
        sw = W.sum(axis=1)
        b = (W @ y) / sw
        np.multiply(W, W, out=W)
        sw2 = W.sum(axis=1)
        yppy = W @ (y * y) - 2.0 * b * (W @ y) + b * b * sw2
        sub = sw - sw2 / sw if reml else sw
        return 0.5 * (yppy - sub), 0.5 * (yppy + sub)
    sw = W.sum(axis=1)
    A = np.linalg.inv(np.einsum("gk,ki,kj->gij", W, X, X))
    beta = np.einsum("gij,gj->gi", A, np.einsum("gk,ki,k->gi", W, X, y))
    WR = W * (y[None, :] - beta @ X.T)
    yppy = np.einsum("gk,gk->g", WR, WR)
    if reml:
        sub = sw - np.einsum("gij,gji->g", A, np.einsum("gk,ki,kj->gij", W * W, X, X))
    else:
        sub = sw
    return 0.5 * (yppy - sub), 0.5 * (yppy + sub)


def _direction(kind: str, terms: tuple, k: int, p: int) -> float:
    """The estimating equation's value (its sign says which way tau2 should move)."""
    ypy, yppy, trp, _, sw, _ = terms
    if kind == "REML":
        return yppy - trp
    if kind == "ML":
        return yppy - sw
    return ypy * k / (k - p) - k  # EB


def _step(kind: str, terms: tuple, k: int, p: int) -> float:
    ypy, yppy, trp, trpp, sw, sw2 = terms
    if kind == "REML":
        return (yppy - trp) / trpp
    if kind == "ML":
        return (yppy - sw) / sw2
    return (ypy * k / (k - p) - k) / sw  # EB (metafor's scoring step for the EB estimator)


def fisher_scoring(y: np.ndarray, v: np.ndarray, X: np.ndarray, kind: str, start: float,
                   control: FitControl = DEFAULT_CONTROL, pooled: bool | None = None,
                   scorer: Scorer | None = None) -> tuple[float, bool, int]:
    """Fisher scoring for ML, REML or EB from ``start`` (metafor's iteration).

    ``y`` should be centred for the pooled model (see :class:`~.linalg.Scorer`).

    A step that would make tau2 negative is halved (metafor), except when the estimating
    equation also points below zero at tau2 = 0: then 0 is a boundary maximum and the iteration
    stops there exactly (metafor creeps towards it by repeated halving).

    Returns
    -------
    (tau2, converged, iterations)
    """
    k, p = X.shape
    if scorer is None:
        scorer = Scorer(y, v, X, pooled)
    t = max(0.0, float(start))
    for it in range(1, control.maxiter + 1):
        terms = scorer(t)
        adj = _step(kind, terms, k, p)
        if not math.isfinite(adj):
            return t, False, it
        if t + adj < 0.0:
            at_zero = terms if t == 0.0 else scorer(0.0)
            if _direction(kind, at_zero, k, p) <= 0.0:
                return 0.0, True, it
            halvings = 0
            while t + adj < 0.0 and halvings < control.step_halvings:
                adj *= 0.5
                halvings += 1
            if t + adj < 0.0:
                adj = -t
        t_new = t + adj
        if abs(adj) < control.tol:
            return t_new, True, it
        t = t_new
    return t, False, control.maxiter


# ---------------------------------------------------------------------------------------------
# standard errors


def _estimate(tau2: float, variance: float, method: str, *, what: str = "its variance formula",
              **kwargs: Any) -> Tau2Estimate:
    """The estimate with se = sqrt(variance), or se ``None`` with the reason when the variance
    is not a finite number > 0.

    metafor's formulas are sums and differences of traces; with sampling variances many orders
    of magnitude apart rounding can leave 0 or less (metafor then gives NaN). ``what`` names
    the quantity that failed in the reason.
    """
    se = reason = None
    if math.isfinite(variance) and variance > 0.0:
        se = math.sqrt(variance)
    else:
        reason = (f"the {method} standard error of tau2 does not exist for these data: {what} "
                  f"gives {variance:.3g}, not a positive number (rounding error when the "
                  "sampling variances span many orders of magnitude)")
    return Tau2Estimate(float(tau2), se, method, kwargs.pop("method_used", method),
                        se_reason=reason, **kwargs)


# ---------------------------------------------------------------------------------------------
# closed-form estimators


def _truncate(raw: float, name: str) -> tuple[float, tuple[str, ...]]:
    if raw < 0.0:
        return 0.0, (f"the {name} estimate of tau2 was negative ({raw:.6g}) and is truncated "
                     "at 0, as metafor does",)
    return float(raw), ()


def hedges(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> Tau2Estimate:
    """Hedges' (HE) unweighted method-of-moments estimator (also the ML/REML/EB start)."""
    k, p = X.shape
    proj = Projection.at(np.ones(k), X)
    rss = weighted_fit(y, np.ones(k), X).rss
    tr_pv = proj.trace(v)
    tau2, notes = _truncate((rss - tr_pv) / (k - p), "HE")
    var = ((2.0 * proj.trace2(v, v) + 4.0 * tau2 * tr_pv + 2.0 * tau2**2 * (k - p))
           / (k - p) ** 2)
    return _estimate(tau2, var, "HE", notes=notes)


def hedges_start(y: np.ndarray, v: np.ndarray, X: np.ndarray, pooled: bool = False) -> float:
    """The HE estimate without its standard error: metafor's start for ML, REML and EB."""
    k, p = X.shape
    if pooled:  # OLS residuals are y - mean(y); tr(PV) = (1 - 1/k) sum(v)
        r = y - float(y.sum()) / k
        return max(0.0, (float(r @ r) - (1.0 - 1.0 / k) * float(v.sum())) / (k - 1))
    if p == 1:
        x = X[:, 0]
        sxx = float(x @ x)
        b = float(x @ y) / sxx
        r = y - b * x
        tr_pv = float(v @ (1.0 - x * x / sxx))
        return max(0.0, (float(r @ r) - tr_pv) / (k - p))
    proj = Projection.at(np.ones(k), X)
    return max(0.0, (weighted_fit(y, np.ones(k), X).rss - proj.trace(v)) / (k - p))


def dersimonian_laird(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> Tau2Estimate:
    """DerSimonian-Laird (DL): (Q - (k - p)) / tr(P) with weights 1/v."""
    k, p = X.shape
    w = 1.0 / v
    proj = Projection.at(w, X)
    tr_p = proj.trace()
    tau2, notes = _truncate((weighted_fit(y, w, X).rss - (k - p)) / tr_p, "DL")
    var = (2.0 * (k - p) + 4.0 * tau2 * tr_p + 2.0 * tau2**2 * proj.trace2()) / tr_p**2
    return _estimate(tau2, var, "DL", notes=notes)


def hunter_schmidt(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> Tau2Estimate:
    """Hunter-Schmidt (HS): (Q - k) / sum(1/v)."""
    k, p = X.shape
    w = 1.0 / v
    proj = Projection.at(w, X)
    sw = float(w.sum())
    tau2, notes = _truncate((weighted_fit(y, w, X).rss - k) / sw, "HS")
    var = (2.0 * (k - p) + 4.0 * tau2 * proj.trace() + 2.0 * tau2**2 * proj.trace2()) / sw**2
    return _estimate(tau2, var, "HS", notes=notes)


def sidik_jonkman(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> Tau2Estimate:
    """Sidik-Jonkman (SJ): tau0^2 * Q(tau0^2) / (k - p), tau0^2 = var(y) * (k - 1)/k (metafor)."""
    k, p = X.shape
    tau0 = float(np.mean((y - y.mean()) ** 2))
    w = 1.0 / (v + tau0)
    tau2 = tau0 * weighted_fit(y, w, X).rss / (k - p)
    proj = Projection.at(w, X)
    var = tau0**2 / (k - p) ** 2 * (2.0 * proj.trace2(v, v) + 4.0 * tau2 * proj.trace2(1.0, v)
                                    + 2.0 * tau2**2 * proj.trace2())
    return _estimate(tau2, var, "SJ")


# ---------------------------------------------------------------------------------------------
# iterative estimators


def _generalised_q(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> float:
    return weighted_fit(y, 1.0 / (v + tau2), X).rss


def _var_moment(v: np.ndarray, tau2: float, k: int, p: int) -> float:
    # metafor's se for EB/PM: sqrt(2 k^2 / (k - p) / (sum w)^2)
    sw = float(np.sum(1.0 / (v + tau2)))
    return 2.0 * k**2 / (k - p) / sw**2


def _pm_root(y: np.ndarray, v: np.ndarray, X: np.ndarray, control: FitControl
             ) -> tuple[float, bool, tuple[str, ...]]:
    k, p = X.shape
    target = k - p

    def q(t: float) -> float:
        return _generalised_q(y, v, X, t) - target

    if q(0.0) <= 0.0:
        return 0.0, True, ()
    hi = control.tau2_max
    for _ in range(12):
        if q(hi) < 0.0:
            break
        hi *= 10.0
    else:
        return hi, False, (f"the generalised Q statistic stays above k - p = {target} up to "
                           f"tau2 = {hi:.3g}; the estimate is only known to exceed it",)
    root, info = optimize.brentq(q, 0.0, hi, xtol=control.root_tol, maxiter=control.search_maxiter,
                                 full_output=True, disp=False)
    return float(root), bool(info.converged), ()


def paule_mandel(y: np.ndarray, v: np.ndarray, X: np.ndarray,
                 control: FitControl = DEFAULT_CONTROL) -> Tau2Estimate:
    """Paule-Mandel (PM): the tau2 at which the generalised Q statistic equals k - p."""
    k, p = X.shape
    tau2, ok, warns = _pm_root(y, v, X, control)
    if not ok and not warns:
        warns = ("root finding for the Paule-Mandel estimate did not converge",)
    return _estimate(tau2, _var_moment(v, tau2, k, p), "PM", converged=ok, warnings=warns)


def empirical_bayes(y: np.ndarray, v: np.ndarray, X: np.ndarray,
                    control: FitControl = DEFAULT_CONTROL) -> Tau2Estimate:
    """Empirical Bayes (EB, Morris 1983) by metafor's scoring iteration from the HE estimate.

    Its estimating equation is Paule-Mandel's; if the iteration does not converge, the PM root
    is used and the result says so.
    """
    k, p = X.shape
    tau2, ok, it = fisher_scoring(y, v, X, "EB", hedges_start(y, v, X, is_intercept_only(X)),
                                  control)
    if ok:
        return _estimate(tau2, _var_moment(v, tau2, k, p), "EB", iterations=it)
    root, ok_root, warns = _pm_root(y, v, X, control)
    warns = (f"EB scoring did not converge in {control.maxiter} iterations; the estimate is the "
             "root of the same estimating equation found by bracketing (Paule-Mandel)", *warns)
    return _estimate(root, _var_moment(v, root, k, p), "EB",
                     method_used="EB (Paule-Mandel root finding)", converged=ok_root,
                     iterations=it, warnings=warns)


@functools.lru_cache(maxsize=8)
def _grid_base(per_decade: int) -> np.ndarray:
    lo, hi = _GRID_DECADES
    base = np.concatenate(([0.0], np.logspace(lo, hi, (hi - lo) * per_decade + 1)))
    base.flags.writeable = False
    return base


def _grid(y: np.ndarray, v: np.ndarray, control: FitControl) -> np.ndarray:
    """tau2 = 0 and s * 10^(-8..4), s = max(var(y), mean(v)) (the references' grid)."""
    k = y.size
    r = y - y.sum() / k
    var = float(r @ r) / (k - 1) if k > 1 else 0.0
    return max(var, float(v.sum()) / k) * _grid_base(control.grid_per_decade)


def _maxima_brackets(score: np.ndarray, scale: np.ndarray) -> list[int]:
    """Where the grid's score changes sign from + to -: bracket i is [grid[i], grid[i + 1]].

    -1 stands for a boundary maximum at tau2 = 0 (score <= 0 there) and ``size - 1`` for a
    likelihood still rising at the end of the grid. Scores below rounding noise count as 0.
    """
    positive = score > 1e-12 * scale
    out = [-1] if not positive[0] else []
    out.extend(int(i) for i in np.flatnonzero(positive[:-1] & ~positive[1:]))
    if positive[-1]:
        out.append(score.size - 1)
    return out


def _distinct(values: list[float]) -> list[float]:
    out: list[float] = []
    for x in sorted(values):
        if not out or abs(x - out[-1]) > 1e-6 * (1.0 + abs(x)):
            out.append(x)
    return out


def _bracket_maximum(y: np.ndarray, v: np.ndarray, X: np.ndarray, reml: bool,
                     grid: np.ndarray, i: int, control: FitControl, scorer: Scorer,
                     bounded: bool = False) -> float:
    """The local maximum in grid bracket ``i`` (see :func:`_maxima_brackets`).

    The score changes sign across the bracket, so its root is found by bracketing (Brent);
    ``bounded=True`` maximises the profile log-likelihood on the bracket instead (bounded Brent),
    the fallback when Fisher scoring fails. A likelihood still rising at the end of the grid is
    followed by Fisher scoring from there.
    """
    if i < 0:
        return 0.0
    k, p = X.shape
    kind = "REML" if reml else "ML"
    if i >= grid.size - 1:
        t, _, _ = fisher_scoring(y, v, X, kind, float(grid[-1]), control, scorer=scorer)
        return t
    lo, hi = float(grid[i]), float(grid[i + 1])
    if bounded:
        res = optimize.minimize_scalar(
            lambda t: -float(profile_loglik(y, v, X, t, reml, scorer.pooled)[0]),
            bounds=(lo, hi), method="bounded",
            options={"xatol": control.tol, "maxiter": control.search_maxiter})
        return float(res.x)

    def score(t: float) -> float:
        return _direction(kind, scorer(t), k, p)

    return float(optimize.brentq(score, lo, hi, xtol=control.tol,
                                 maxiter=control.search_maxiter))


def _likelihood_estimate(y: np.ndarray, v: np.ndarray, X: np.ndarray, kind: str,
                         control: FitControl, pooled: bool | None = None) -> Tau2Estimate:
    reml = kind == "REML"
    if pooled is None:
        pooled = is_intercept_only(X)
    scorer = Scorer(y, v, X, pooled)
    tau2, ok, it = fisher_scoring(y, v, X, kind, hedges_start(y, v, X, pooled), control, pooled,
                                  scorer)
    method_used = kind
    warns: list[str] = []
    notes: list[str] = []
    grid = brackets = None
    if not ok:
        grid = _grid(y, v, control)
        brackets = _maxima_brackets(*score_grid(y, v, X, grid, reml, pooled))
        maxima = [_bracket_maximum(y, v, X, reml, grid, i, control, scorer, bounded=True)
                  for i in brackets]
        lls = profile_loglik(y, v, X, np.array(maxima), reml, pooled)
        tau2 = float(maxima[int(np.argmax(lls))])
        method_used = f"{kind} (bounded profile-likelihood optimisation)"
        warns.append(f"Fisher scoring for {kind} did not converge in {control.maxiter} "
                     f"iterations; tau2 was found by a bounded one-dimensional optimisation of "
                     f"the profile {kind} log-likelihood instead")
        ok = True
    if control.global_check:
        if grid is None:
            grid = _grid(y, v, control)
            brackets = _maxima_brackets(*score_grid(y, v, X, grid, reml, pooled))
        assert brackets is not None
        candidates = [tau2]
        for i in brackets:
            if i < 0:
                lo, hi = 0.0, grid[1]
            elif i >= grid.size - 1:
                lo, hi = grid[-1], np.inf
            else:
                lo, hi = grid[i], grid[i + 1]
            if lo <= tau2 <= hi:
                continue  # the same basin as the default start's solution
            candidates.append(_bracket_maximum(y, v, X, reml, grid, i, control, scorer))
        if len(candidates) > 1:
            lls = profile_loglik(y, v, X, np.array(candidates), reml, pooled)
            best = int(np.argmax(lls))
            distinct = _distinct(candidates)
            if best != 0 and lls[best] > lls[0] + 1e-9 * (1.0 + abs(lls[0])):
                notes.append(
                    f"the {kind} log-likelihood has more than one local maximum (tau2 = "
                    + ", ".join(f"{c:.6g}" for c in distinct)
                    + f"); Fisher scoring from the default start reached {tau2:.6g}, the global "
                    f"maximum at {candidates[best]:.6g} is used")
                tau2 = float(candidates[best])
            elif len(distinct) > 1:
                notes.append(
                    f"the {kind} log-likelihood has more than one local maximum (tau2 = "
                    + ", ".join(f"{c:.6g}" for c in distinct)
                    + f"); the global maximum {tau2:.6g} is used")
    # the scorer's tr(PP) is free of cancellation (linalg.Scorer recomputes it when needed)
    _, _, _, tr_pp, _, sw2 = scorer(tau2)
    info, name = (tr_pp, "the information tr(PP)") if reml else (sw2, "the information sum(w^2)")
    if info > 0.0:
        variance, name = 2.0 / info, "2 / " + name
    else:  # not a variance at all: report the information itself
        variance = info
    return _estimate(tau2, variance, kind, what=name, method_used=method_used, converged=ok,
                     iterations=it, warnings=tuple(warns), notes=tuple(notes))


def maximum_likelihood(y: np.ndarray, v: np.ndarray, X: np.ndarray,
                       control: FitControl = DEFAULT_CONTROL, pooled: bool | None = None
                       ) -> Tau2Estimate:
    """Maximum likelihood (ML) by Fisher scoring from the HE estimate, with a global check."""
    return _likelihood_estimate(y, v, X, "ML", control, pooled)


def restricted_maximum_likelihood(y: np.ndarray, v: np.ndarray, X: np.ndarray,
                                  control: FitControl = DEFAULT_CONTROL,
                                  pooled: bool | None = None) -> Tau2Estimate:
    """Restricted maximum likelihood (REML) by Fisher scoring from the HE estimate, with a
    global check."""
    return _likelihood_estimate(y, v, X, "REML", control, pooled)


def estimate_tau2(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str,
                  control: FitControl = DEFAULT_CONTROL) -> Tau2Estimate:
    """Estimate tau2 by ``method`` (one of :data:`METHODS`; ``"FE"`` is ``"EE"``).

    ``y`` is centred first when the first column of ``X`` is an intercept, as metafor does for
    numerical stability (the estimators are invariant to it then).

    With k <= p there are no residual degrees of freedom: tau2 is set to 0 with a note, as
    metafor does for k = 1.
    """
    method = ALIASES.get(method, method)
    k, p = X.shape
    if method == "EE":
        return Tau2Estimate(0.0, None, "EE", "EE")
    if k <= p:
        return Tau2Estimate(0.0, None, method, "none (no residual degrees of freedom)",
                            notes=(f"k = {k} with p = {p} coefficient(s): tau2 cannot be "
                                   "estimated and is set to 0 (as metafor does for k = 1)",))
    pooled = p == 1 and is_intercept_only(X)
    if pooled or (X[0, 0] != 0.0 and np.ptp(X[:, 0]) == 0.0):
        y = y - y.sum() / k
    if method == "DL":
        return dersimonian_laird(y, v, X)
    if method == "HE":
        return hedges(y, v, X)
    if method == "HS":
        return hunter_schmidt(y, v, X)
    if method == "SJ":
        return sidik_jonkman(y, v, X)
    if method == "PM":
        return paule_mandel(y, v, X, control)
    if method == "EB":
        return empirical_bayes(y, v, X, control)
    if method == "ML":
        return maximum_likelihood(y, v, X, control, pooled)
    if method == "REML":
        return restricted_maximum_likelihood(y, v, X, control, pooled)
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)} or FE")
