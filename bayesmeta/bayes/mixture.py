"""A finite mixture of normals as a distribution object (the exact engines' marginals).

Given tau, every coefficient, linear combination, prediction and study effect of the
normal-normal models is normal; integrated over the quadrature grid of tau it is a mixture
``sum_j w_j N(m_j, s_j^2)``. :class:`NormalMixture` answers the accessor vocabulary for one such
marginal (mean, sd, cdf, sf, pdf, quantile, interval, prob, mode) with the batched numerics of
:mod:`bayesmeta.bayes.quadrature`; :meth:`NormalMixture.add` forms the distribution of a sum of
independent mixtures (e.g. the difference of two subgroup means with separate taus) as a
mixture over pairs of nodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import DEFAULTS
from . import priors as P
from .exact import _shaped, check_interval_args, check_op, density_mode, shortest_interval
from .quadrature import mixture_cdf, mixture_pdf, mixture_quantile, mixture_sf

__all__ = ["NormalMixture"]

# Components of a sum whose share of the mass and of the second moment both fall below this
# are dropped (together below J1 * J2 * PAIR_PRUNE, far below the quadrature's accuracy; the
# second-moment rule keeps rare wide components of heavy-tailed posteriors).
PAIR_PRUNE = 1e-20


@dataclass(frozen=True)
class NormalMixture:
    """``sum_j weights_j N(means_j, sds_j^2)``.

    Attributes
    ----------
    means, sds, weights
        Components (J,); the weights are normalised (sum 1).
    mean_exists, sd_exists
        False when the posterior mean / SD does not exist (a conditional SD growing like tau
        under a posterior of tau with too heavy a tail); :meth:`mean` / :meth:`sd` then return
        ``None``.
    """

    means: np.ndarray
    sds: np.ndarray
    weights: np.ndarray
    mean_exists: bool = True
    sd_exists: bool = True

    def add(self, other: NormalMixture, scale: float = 1.0) -> NormalMixture:
        """The distribution of X + scale * Y for independent X (self) and Y (other)."""
        w = np.multiply.outer(self.weights, other.weights).ravel()
        means = np.add.outer(self.means, scale * other.means).ravel()
        var = np.add.outer(self.sds**2, (scale * other.sds) ** 2).ravel()
        second = w * (means**2 + var)
        keep = (w > PAIR_PRUNE) | (second > PAIR_PRUNE * second.sum())
        w = w[keep]
        return NormalMixture(means=means[keep], sds=np.sqrt(var[keep]), weights=w / w.sum(),
                             mean_exists=self.mean_exists and other.mean_exists,
                             sd_exists=self.sd_exists and other.sd_exists)

    # -- moments -----------------------------------------------------------------------------
    def mean(self) -> float | None:
        return float(self.weights @ self.means) if self.mean_exists else None

    def sd(self) -> float | None:
        if not self.sd_exists:
            return None
        m = self.weights @ self.means
        return float(math.sqrt(max(self.weights @ (self.sds**2 + (self.means - m) ** 2), 0.0)))

    # -- distribution functions ----------------------------------------------------------------
    def _batch(self, fn: Any, x: Any) -> float | np.ndarray:
        arr = np.asarray(x, float)
        out = fn(arr.reshape(1, -1), self.means[None], self.sds[None], self.weights)[0]
        return _shaped(x, out)

    def cdf(self, x: Any) -> float | np.ndarray:
        """P(X <= x)."""
        return self._batch(mixture_cdf, x)

    def sf(self, x: Any) -> float | np.ndarray:
        """P(X > x), from the upper tails (no cancellation)."""
        return self._batch(mixture_sf, x)

    def pdf(self, x: Any) -> float | np.ndarray:
        return self._batch(mixture_pdf, x)

    def logpdf(self, x: Any) -> float | np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.pdf(x))

    def quantile(self, q: Any) -> float | np.ndarray:
        probs = P._probabilities(q, "q")
        out = mixture_quantile(probs.ravel(), self.means[None], self.sds[None], self.weights)[0]
        return _shaped(q, out)

    def quantiles(self, q: Sequence[float]) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.quantile(np.asarray(q, float)), float))

    def prob(self, op: str, value: float) -> float:
        """P(X op value), op in ``<, <=, >, >=`` (continuous: ``<`` and ``<=`` agree)."""
        check_op(op)
        if op in ("<", "<="):
            return float(self.cdf(float(value)))
        return float(self.sf(float(value)))

    def interval(self, prob: float = DEFAULTS.level,
                 kind: str = DEFAULTS.interval_kind) -> tuple[float, float]:
        """Equal-tailed (``"eti"``) or shortest (``"shortest"``) interval of coverage prob."""
        check_interval_args(prob, kind)
        if kind == "eti":
            lo, hi = self.quantiles([(1 - prob) / 2, (1 + prob) / 2])
            return float(lo), float(hi)
        return shortest_interval(self.quantiles,
                                 lambda x: np.log(np.asarray(self.pdf(x), float)).ravel(), prob)

    def mode(self) -> float:
        return density_mode(self.quantiles, lambda x: np.asarray(self.pdf(x), float))

