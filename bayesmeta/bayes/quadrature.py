"""Numerical building blocks of the exact engine (pure numpy/scipy, no statistics model).

- :func:`adaptive_panels`: adaptive composite Gauss-Legendre quadrature of a positive,
  vectorised log-integrand, returning the final panels with their nodes and weights so that a
  caller can reuse them as a fixed grid (here: the grid over log tau of the exact posterior).
- Normal mixtures ``sum_j w_j N(m_bj, s_bj^2)``, batched over b: :func:`mixture_cdf`,
  :func:`mixture_sf`, :func:`mixture_pdf` and :func:`mixture_quantile`.
- :func:`bracketed_newton`: a vectorised safeguarded Newton iteration for increasing functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

#: Gauss-Legendre points per panel. 15 points integrate polynomials of degree 29 exactly; with
#: panels no wider than 2 on log tau this resolves the conditional moments (analytic in log tau
#: with singularities at distance >= pi/2 from the real axis) to ~1e-16.
GL_POINTS = 15


@lru_cache(maxsize=8)
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def panel_nodes(lo: np.ndarray, hi: np.ndarray, n: int = GL_POINTS
                ) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on each panel [lo_p, hi_p]: arrays (P, n)."""
    x, w = gauss_legendre(n)
    lo = np.asarray(lo, float)[:, None]
    hi = np.asarray(hi, float)[:, None]
    half = 0.5 * (hi - lo)
    return lo + half * (x + 1.0), half * w


@dataclass(frozen=True)
class Panels:
    """Result of :func:`adaptive_panels`.

    Attributes
    ----------
    lo, hi
        Panel ends (P,), sorted and contiguous.
    nodes, weights
        Gauss-Legendre nodes and weights (P, n).
    log_values
        The log-integrands at the nodes (m, P, n) as returned by the caller's function.
    converged
        False when the refinement hit its round limit or minimum panel width somewhere.
    """

    lo: np.ndarray
    hi: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    log_values: np.ndarray
    converged: bool


def adaptive_panels(
    log_integrand: Callable[[np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    *,
    breakpoints: np.ndarray | None = None,
    rtol: float = 1e-11,
    max_width: float = 2.0,
    negligible: float = 1e-16,
    n: int = GL_POINTS,
    max_rounds: int = 60,
    max_panels: int = 4000,
    min_width: float = 1e-12,
) -> Panels:
    """Adaptive composite Gauss-Legendre quadrature of m positive integrands on [lo, hi].

    ``log_integrand(u)`` maps nodes (N,) to log-integrands (m, N) (row 0 is the main one;
    further rows are test functions whose integrals must converge as well, e.g. moments).
    The initial panels are at most ``max_width`` wide and have edges at ``breakpoints`` (points
    that locate narrow features, e.g. quantiles of a sharp prior). A panel is accepted when the
    sum of its two halves agrees with the panel rule to ``rtol`` times the current total of
    every integrand, and it is no wider than ``max_width`` unless its share of every total is
    below ``negligible``; otherwise its halves are examined in the next round. All sums are
    formed relative to the running maximum (log scale), so integrands far below or above 1
    are fine.
    """
    n_init = max(1, int(np.ceil((hi - lo) / max_width)))
    edges = np.linspace(lo, hi, n_init + 1)
    if breakpoints is not None:
        inside = np.asarray(breakpoints, float)
        inside = inside[np.isfinite(inside) & (inside > lo) & (inside < hi)]
        edges = np.unique(np.concatenate([edges, inside]))
    a, b = edges[:-1], edges[1:]

    def evaluate(pa: np.ndarray, pb: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        nodes, weights = panel_nodes(pa, pb, n)
        logv = np.asarray(log_integrand(nodes.ravel()), float).reshape(-1, *nodes.shape)
        logv = np.where(np.isnan(logv), -np.inf, logv)
        with np.errstate(divide="ignore"):
            log_int = special.logsumexp(logv + np.log(weights)[None], axis=2)  # (m, P)
        return nodes, weights, logv, log_int

    nodes, weights, logv, active_log = evaluate(a, b)
    m = active_log.shape[0]
    done: list[tuple[np.ndarray, ...]] = []
    done_log = np.full(m, -np.inf)
    converged = True
    n_panels = a.size
    for _round in range(max_rounds):
        if a.size == 0:
            break
        mid = 0.5 * (a + b)
        la, lb = np.concatenate([a, mid]), np.concatenate([mid, b])
        h_nodes, h_weights, h_logv, h_log = evaluate(la, lb)
        count = a.size
        total_log = np.logaddexp(done_log, special.logsumexp(active_log, axis=1))
        ref = np.where(np.isfinite(total_log), total_log, 0.0)[:, None]
        parent = np.exp(active_log - ref)
        halves = np.exp(h_log[:, :count] - ref) + np.exp(h_log[:, count:] - ref)
        error = np.abs(halves - parent)
        precise = np.all(error <= rtol, axis=0)
        ok = precise & (((b - a) <= max_width) | (np.max(parent, axis=0) < negligible))
        tiny = (b - a) < min_width
        if np.any(tiny & ~precise):
            converged = False
        ok |= tiny
        if n_panels + 2 * np.count_nonzero(~ok) > max_panels:
            converged = False
            ok[:] = True
        # An accepted panel keeps its own rule (the halves confirmed it to rtol, a
        # conservative error estimate): half the nodes of keeping the halves.
        if np.any(ok):
            done.append((a[ok], b[ok], nodes[ok], weights[ok], logv[:, ok]))
            done_log = np.logaddexp(done_log, special.logsumexp(active_log[:, ok], axis=1))
        split = np.concatenate([~ok, ~ok])
        n_panels += np.count_nonzero(~ok)
        a, b = la[split], lb[split]
        active_log = h_log[:, split]
        nodes, weights, logv = h_nodes[split], h_weights[split], h_logv[:, split]
    if a.size:
        converged = False
        done.append((a, b, nodes, weights, logv))
    pa = np.concatenate([d[0] for d in done])
    pb = np.concatenate([d[1] for d in done])
    order = np.argsort(pa)
    return Panels(
        lo=pa[order],
        hi=pb[order],
        nodes=np.concatenate([d[2] for d in done])[order],
        weights=np.concatenate([d[3] for d in done])[order],
        log_values=np.concatenate([d[4] for d in done], axis=1)[:, order],
        converged=converged,
    )


# ---------------------------------------------------------------------------------------------
# normal mixtures, batched: means/sds (B, J), weights (J,), points (B, N)


def _z(x: np.ndarray, means: np.ndarray, sds: np.ndarray) -> np.ndarray:
    return (x[:, :, None] - means[:, None, :]) / sds[:, None, :]


def mixture_cdf(x: np.ndarray, means: np.ndarray, sds: np.ndarray, weights: np.ndarray
                ) -> np.ndarray:
    """P(X <= x) for each mixture b at its points x[b] -> (B, N)."""
    return special.ndtr(_z(x, means, sds)) @ weights


def mixture_sf(x: np.ndarray, means: np.ndarray, sds: np.ndarray, weights: np.ndarray
               ) -> np.ndarray:
    """P(X > x), computed from the upper tails (no cancellation) -> (B, N)."""
    return special.ndtr(-_z(x, means, sds)) @ weights


def mixture_pdf(x: np.ndarray, means: np.ndarray, sds: np.ndarray, weights: np.ndarray
                ) -> np.ndarray:
    """Density -> (B, N)."""
    z = _z(x, means, sds)
    dens = np.exp(-0.5 * z * z) / (np.sqrt(2.0 * np.pi) * sds[:, None, :])
    return dens @ weights


def bracketed_newton(
    residual: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    lo: np.ndarray,
    hi: np.ndarray,
    x0: np.ndarray,
    xtol: np.ndarray,
    maxiter: int = 200,
) -> np.ndarray:
    """Solve ``r(x) = 0`` elementwise for increasing r with r(lo) <= 0 <= r(hi).

    ``residual(x)`` returns (r, dr/dx). Newton steps that leave the current bracket, or with a
    non-positive slope, are replaced by bisection; the bracket shrinks every iteration.
    """
    lo, hi = np.array(lo, float), np.array(hi, float)
    x = np.clip(np.array(x0, float), lo, hi)
    active = np.ones(x.shape, bool)
    for _ in range(maxiter):
        r, slope = residual(x)
        lo = np.where(active & (r <= 0), x, lo)
        hi = np.where(active & (r >= 0), x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(slope > 0, r / slope, np.nan)
        new = x - step
        # a step below the tolerance is convergence (it may not even move x in floating point,
        # which must not be mistaken for leaving the bracket)
        small = np.isfinite(step) & (np.abs(step) <= xtol)
        bad = ~np.isfinite(new) | (new < lo) | (new > hi)
        new = np.where(bad & ~small, 0.5 * (lo + hi), np.clip(new, lo, hi))
        new = np.where(active, new, x)
        active &= ~(small | (r == 0) | (hi - lo <= xtol))
        x = new
        if not np.any(active):
            break
    return x


def mixture_quantile(q: np.ndarray, means: np.ndarray, sds: np.ndarray, weights: np.ndarray
                     ) -> np.ndarray:
    """Quantiles (B, N) of B normal mixtures at probabilities q (N,), by bracketed Newton on
    the CDF (on the survival function for q > 1/2, to keep tail precision)."""
    q = np.asarray(q, float).ravel()
    B = means.shape[0]
    out = np.empty((B, q.size))
    out[:, q <= 0] = -np.inf
    out[:, q >= 1] = np.inf
    inner = (q > 0) & (q < 1)
    if np.any(inner):
        out[:, inner] = _mixture_quantile_inner(q[inner], means, sds, weights)
    return out


def _tail_and_density(x: np.ndarray, means: np.ndarray, sds: np.ndarray, weights: np.ndarray,
                      upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(X <= x) (or P(X > x) where ``upper``) and the density, in one pass over (B, N, J)."""
    z = _z(x, means, sds)
    tail = special.ndtr(np.where(upper[:, :, None], -z, z)) @ weights
    dens = (np.exp(-0.5 * z * z) / sds[:, None, :]) @ weights / np.sqrt(2.0 * np.pi)
    return tail, dens


def _mixture_quantile_inner(q: np.ndarray, means: np.ndarray, sds: np.ndarray,
                            weights: np.ndarray) -> np.ndarray:
    B = means.shape[0]
    qq = np.broadcast_to(q, (B, q.size))
    upper = qq > 0.5

    target = np.where(upper, 1.0 - qq, qq)
    log_target = np.log(target)

    def residual(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Newton on log P(X <= x) (log P(X > x) for q > 1/2): nearly linear in the tails, where
        # Newton on the CDF itself overshoots; increasing in x either way.
        tail, dens = _tail_and_density(x, means, sds, weights, upper)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_tail = np.log(tail)
            r = np.where(upper, log_target - log_tail, log_tail - log_target)
            slope = dens / tail
        return r, slope

    # Every component quantile m + s*z_q brackets the mixture quantile: F(min) <= q <= F(max).
    # Components of negligible weight are left out of the bracket, which is then verified.
    keep = weights > 1e-14 * weights.max()
    comp = means[:, None, keep] + sds[:, None, keep] * special.ndtri(qq)[:, :, None]
    lo, hi = comp.min(axis=2), comp.max(axis=2)
    # One scan of the bracket's ends and of a geometric ladder around the mixture's centre (in
    # units of its typical scale) gives Newton a close start and a tight bracket, even when
    # negligible heavy-tailed components make the initial bracket enormous.
    centre = (means @ weights)[:, None]
    typical = np.exp(np.log(sds) @ weights)[:, None]  # geometric mean: robust to heavy tails
    ladder = np.array([-16, -4, -2, -1, -0.5, 0, 0.5, 1, 2, 4, 16.0])
    for _ in range(60):
        inner = np.clip(centre[..., None] + typical[..., None] * ladder, lo[..., None],
                        hi[..., None])
        grid = np.concatenate([lo[..., None], inner, hi[..., None]], axis=2)
        n_grid = grid.shape[2]
        wide = np.repeat(upper, n_grid, axis=1)
        tail, _ = _tail_and_density(grid.reshape(B, -1), means, sds, weights, wide)
        goal = np.repeat(target, n_grid, axis=1)
        r_grid = np.where(wide, goal - tail, tail - goal).reshape(grid.shape)
        bad_lo, bad_hi = r_grid[..., 0] > 0, r_grid[..., -1] < 0
        if not (np.any(bad_lo) or np.any(bad_hi)):
            break
        spread = hi - lo + typical
        lo = np.where(bad_lo, lo - spread, lo)
        hi = np.where(bad_hi, hi + spread, hi)
    below = r_grid <= 0
    n_below = below.sum(axis=2)
    lo = np.take_along_axis(grid, np.maximum(n_below - 1, 0)[..., None], axis=2)[..., 0]
    hi = np.take_along_axis(grid, np.minimum(n_below, n_grid - 1)[..., None], axis=2)[..., 0]
    x0 = 0.5 * (lo + hi)
    # absolute tolerance from the mixture's own location and scale (not from the bracket)
    xtol = 1e-13 * (np.abs(means) @ weights + sds @ weights)[:, None] * np.ones_like(x0)
    return bracketed_newton(residual, lo, hi, x0, xtol)
