"""Closed-form normal posteriors (conjugate normal-normal updating).

Used where the posterior is exactly normal: the reanalysis of a published pooled estimate with
a normal or flat prior, and the tau-fixed oracle. Implements the
:class:`~bayesmeta.results.Posterior` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..config import DEFAULTS
from ..errors import InputError, Problem
from ..results import check_kind, check_op, check_prob


@dataclass(frozen=True)
class NormalPosterior:
    """Independent normal marginals: ``moments[param] = (mean, sd)``."""

    moments: Mapping[str, tuple[float, float]]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.moments)

    def _dist(self, param: str):
        try:
            m, s = self.moments[param]
        except KeyError:
            raise InputError(Problem(f"unknown parameter; available: {', '.join(self.params)}",
                                     column="param", value=param)) from None
        return stats.norm(m, s)

    def mean(self, param: str) -> float:
        return float(self._dist(param).mean())

    def sd(self, param: str) -> float:
        return float(self._dist(param).std())

    def quantile(self, param: str, q: float | Sequence[float]) -> float | np.ndarray:
        out = self._dist(param).ppf(q)
        return float(out) if np.ndim(out) == 0 else out

    def cdf(self, param: str, x: float | Sequence[float]) -> float | np.ndarray:
        out = self._dist(param).cdf(x)
        return float(out) if np.ndim(out) == 0 else out

    def pdf(self, param: str, x: float | Sequence[float]) -> float | np.ndarray:
        out = self._dist(param).pdf(x)
        return float(out) if np.ndim(out) == 0 else out

    def interval(self, param: str, prob: float = DEFAULTS.level,
                 kind: str = DEFAULTS.interval_kind) -> tuple[float, float]:
        # A normal is symmetric and unimodal: the shortest interval is the equal-tailed one.
        check_prob(prob)
        check_kind(kind)
        lo, hi = self._dist(param).ppf([(1 - prob) / 2, (1 + prob) / 2])
        return float(lo), float(hi)

    def prob(self, param: str, op: str, value: float) -> float:
        check_op(op)
        d = self._dist(param)
        return float(d.cdf(value) if op in ("<", "<=") else d.sf(value))

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        return {p: rng.normal(m, s, n) for p, (m, s) in self.moments.items()}


def normal_update(estimate: float, se: float, prior_mean: float | None,
                  prior_sd: float | None) -> tuple[float, float]:
    """Posterior (mean, sd) of a normal mean given one normal observation.

    A flat prior (``prior_mean=None``) returns the likelihood itself.
    """
    if prior_mean is None or prior_sd is None:
        return float(estimate), float(se)
    w_data, w_prior = 1.0 / se**2, 1.0 / prior_sd**2
    var = 1.0 / (w_data + w_prior)
    return float(var * (w_data * estimate + w_prior * prior_mean)), float(np.sqrt(var))
