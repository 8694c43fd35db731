"""Pure numpy/scipy draws for the simulator: sizes, exact allocations, arm-level summaries.

Nothing here knows about study tables; every function takes a :class:`numpy.random.Generator`
and returns arrays, so that one seed reproduces every number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "IQR_Z",
    "allocate",
    "largest_remainder",
    "quantile_matched",
    "quartile_positions",
    "summary_statistics",
]

#: the 75% quantile of the standard normal: a normal's IQR is 2 * IQR_Z * sigma
IQR_Z = float(stats.norm.ppf(0.75))

#: quartile levels matched by :func:`quantile_matched`
_LEVELS = (0.25, 0.5, 0.75)


def largest_remainder(n: int, probabilities: Sequence[float]) -> np.ndarray:
    """Integer counts summing to ``n`` closest to ``n * p`` (Hamilton's largest-remainder rule).

    Ties in the remainders go to the earlier category, so the result is deterministic.
    """
    p = np.asarray(probabilities, dtype=float)
    quota = n * p / p.sum()
    counts = np.floor(quota).astype(int)
    short = n - int(counts.sum())
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def allocate(rng: np.random.Generator, n: int, probabilities: Mapping[str, float],
             exact: bool) -> np.ndarray:
    """``n`` category labels drawn with the given probabilities.

    ``exact=False`` draws each label independently; ``exact=True`` uses the largest-remainder
    counts (so the realised shares match the probabilities as closely as integers allow) in a
    random order.
    """
    labels = np.asarray(list(probabilities), dtype=object)
    p = np.asarray(list(probabilities.values()), dtype=float)
    if exact:
        out = np.repeat(labels, largest_remainder(n, p))
        return out[rng.permutation(n)]
    return labels[rng.choice(labels.size, size=n, p=p / p.sum())]


def quartile_positions(n: int) -> dict[float, tuple[int, ...]]:
    """0-based order statistics that the quartiles of ``n`` values interpolate between.

    Both common definitions are covered: R's type 7 / numpy's default ``linear``
    (position q (n - 1)) and SPSS's weighted average / R's type 6 (position q (n + 1) - 1).
    Setting all of them to the target makes the sample quartile equal to it under either.
    """
    out: dict[float, tuple[int, ...]] = {}
    for q in _LEVELS:
        positions = set()
        for pos in (q * (n - 1), q * (n + 1) - 1):
            pos = min(max(pos, 0.0), n - 1.0)
            positions.update({int(np.floor(pos)), int(np.ceil(pos))})
        out[q] = tuple(sorted(positions))
    return out


def quantile_matched(rng: np.random.Generator, n: int, q1: float, median: float, q3: float, *,
                     log: bool, decimals: int, exact: bool,
                     lower: float | None = None) -> np.ndarray:
    """``n`` draws whose distribution has the given median and quartiles.

    The draws come from a normal (``log=False``) or log-normal (``log=True``) distribution with
    that median and the IQR's width (on the log scale for the log-normal; the two quartiles need
    not be symmetric, so the sample is then mapped piecewise-linearly, on the same scale, through
    the three quartiles). With ``exact=True`` the sample quartiles equal the targets exactly
    after rounding to ``decimals`` (see :func:`quartile_positions`); with ``exact=False`` they
    are only expected to. ``lower`` clips the values below (e.g. a smallest trial size).
    Returned in random order.
    """
    f, finv = (np.log, np.exp) if log else (lambda x: x, lambda x: x)
    targets = np.array([f(q1), f(median), f(q3)])
    sigma = (targets[2] - targets[0]) / (2.0 * IQR_Z)
    z = rng.standard_normal(n)
    if exact and n >= 4:
        z = np.sort(z)
        current = np.quantile(z, _LEVELS)
        # piecewise-linear through the quartiles, the tails extended with the adjacent slope
        slope_lo = (targets[1] - targets[0]) / (current[1] - current[0])
        slope_hi = (targets[2] - targets[1]) / (current[2] - current[1])
        values = np.where(
            z < current[1], targets[1] + (z - current[1]) * slope_lo,
            targets[1] + (z - current[1]) * slope_hi)
        x = np.round(finv(values), decimals)
        if lower is not None:
            x = np.maximum(x, lower)
        for q, target in zip(_LEVELS, (q1, median, q3), strict=True):
            x[list(quartile_positions(n)[q])] = round(target, decimals)
        x = np.sort(x)  # the tie blocks stay in place: values around them are on their side
        return x[rng.permutation(n)]
    x = np.round(finv(targets[1] + sigma * z), decimals)
    if lower is not None:
        x = np.maximum(x, lower)
    return x


def summary_statistics(rng: np.random.Generator, n: np.ndarray, baseline: np.ndarray,
                       post: np.ndarray, sd_baseline: np.ndarray, sd_post: np.ndarray,
                       correlation: np.ndarray) -> dict[str, np.ndarray]:
    """Sample means, SDs and change scores of ``n`` bivariate-normal (baseline, follow-up) pairs.

    Draws the summary statistics from their exact sampling distribution instead of the
    participants: the mean vector is N(mean, Sigma / n) and (n - 1) times the sample covariance
    is Wishart(n - 1, Sigma) (Anderson 2003, An Introduction to Multivariate Statistical
    Analysis, 3rd ed., Theorem 3.3.2), independent of each other. One row per arm.

    Returns
    -------
    dict
        ``baseline_mean``, ``post_mean``, ``baseline_sd``, ``post_sd``, ``change_mean``
        (post minus baseline), ``change_sd`` and ``correlation`` (the sample pre-post r).
    """
    n = np.asarray(n, dtype=int)
    k = n.size
    cov = np.empty((k, 2, 2))
    cov[:, 0, 0] = sd_baseline ** 2
    cov[:, 1, 1] = sd_post ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = correlation * sd_baseline * sd_post
    chol = np.linalg.cholesky(cov)
    mean = np.stack([baseline, post], axis=1) + np.einsum(
        "kij,kj->ki", chol, rng.standard_normal((k, 2))) / np.sqrt(n)[:, None]
    # Bartlett decomposition of Wishart(df, I), then L A A' L'; avoids one scipy call per arm
    df = n - 1
    a11 = np.sqrt(rng.chisquare(df))
    a22 = np.sqrt(rng.chisquare(df - 1))
    a21 = rng.standard_normal(k)
    s00 = a11 ** 2
    s01 = a11 * a21
    s11 = a21 ** 2 + a22 ** 2
    w = np.stack([np.stack([s00, s01], -1), np.stack([s01, s11], -1)], -2)
    sample = np.einsum("kij,kjl,kml->kim", chol, w, chol) / df[:, None, None]
    var_b, var_p, c = sample[:, 0, 0], sample[:, 1, 1], sample[:, 0, 1]
    return {
        "baseline_mean": mean[:, 0],
        "post_mean": mean[:, 1],
        "baseline_sd": np.sqrt(var_b),
        "post_sd": np.sqrt(var_p),
        "change_mean": mean[:, 1] - mean[:, 0],
        "change_sd": np.sqrt(np.maximum(var_b + var_p - 2.0 * c, 0.0)),
        "correlation": c / np.sqrt(var_b * var_p),
    }
