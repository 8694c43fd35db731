"""Effect sizes from two-group means, SDs and sizes (pure numpy/scipy, no validation).

Every function takes float arrays of equal length and returns ``(yi, vi)``. Inputs are assumed
valid (positive SDs, n >= 2, positive means for ROM): :mod:`bayesmeta.effects.escalc` checks them
first and names the row of any bad value. Formulas follow metafor 3.8-1's ``escalc``
(Viechtbauer 2010, doi:10.18637/jss.v036.i03) so results agree to rounding error.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = [
    "hedges_correction",
    "pooled_sd",
    "standardized_mean_difference",
    "standardized_mean_difference_heteroscedastic",
    "mean_difference",
    "log_ratio_of_means",
    "change_sd_from_prepost",
]


def hedges_correction(df: np.ndarray) -> np.ndarray:
    """Exact small-sample bias correction c(m) of Cohen's d.

    ``c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, computed on the log scale as metafor's
    ``.cmicalc`` does (Hedges 1981, doi:10.3102/10769986006002107, eq. 6e). For m = n1 + n2 - 2
    it is < 1 and tends to 1; the familiar ``1 - 3/(4m - 1)`` is its approximation.
    """
    m = np.asarray(df, dtype=float)
    return np.exp(gammaln(m / 2.0) - 0.5 * np.log(m / 2.0) - gammaln((m - 1.0) / 2.0))


def pooled_sd(sd1: np.ndarray, n1: np.ndarray, sd2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Within-group SD pooled over both arms, ``sqrt(((n1-1) sd1^2 + (n2-1) sd2^2)/(n1+n2-2))``."""
    return np.sqrt(((n1 - 1.0) * sd1**2 + (n2 - 1.0) * sd2**2) / (n1 + n2 - 2.0))


def standardized_mean_difference(
    m1: np.ndarray,
    sd1: np.ndarray,
    n1: np.ndarray,
    m2: np.ndarray,
    sd2: np.ndarray,
    n2: np.ndarray,
    vtype: str = "LS",
) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g (metafor ``measure="SMD"``): bias-corrected standardized mean difference.

    ``g = c(n1+n2-2) (m1 - m2) / s_pooled``. Sampling variance by ``vtype``:

    - ``"LS"`` (metafor's default): ``1/n1 + 1/n2 + g^2 / (2 (n1 + n2))``
      (Hedges & Olkin 1985, eq. 15, with g plugged in).
    - ``"LS2"``: ``c^2 (1/n1 + 1/n2 + d^2 / (2 (n1 + n2)))``, Borenstein et al. (2009,
      *Introduction to Meta-Analysis*, eq. 4.24 / 12.17; doi:10.1002/9780470743386).
    - ``"UB"``: the unbiased estimate ``1/n1 + 1/n2 + (1 - (m-2)/(m c^2)) g^2``
      (Hedges 1983, doi:10.1037/0033-2909.93.2.388).

    References: Hedges (1981), doi:10.3102/10769986006002107.
    """
    df = n1 + n2 - 2.0
    c = hedges_correction(df)
    d = (m1 - m2) / pooled_sd(sd1, n1, sd2, n2)
    g = c * d
    if vtype == "LS":
        vi = 1.0 / n1 + 1.0 / n2 + g**2 / (2.0 * (n1 + n2))
    elif vtype == "LS2":
        vi = c**2 * (1.0 / n1 + 1.0 / n2 + d**2 / (2.0 * (n1 + n2)))
    elif vtype == "UB":
        vi = 1.0 / n1 + 1.0 / n2 + (1.0 - (df - 2.0) / (df * c**2)) * g**2
    else:  # the registry admits only the types above
        raise ValueError(f"vtype {vtype!r} is not defined for SMD")
    return g, vi


def standardized_mean_difference_heteroscedastic(
    m1: np.ndarray,
    sd1: np.ndarray,
    n1: np.ndarray,
    m2: np.ndarray,
    sd2: np.ndarray,
    n2: np.ndarray,
    vtype: str = "LS",
) -> tuple[np.ndarray, np.ndarray]:
    """Bonett's standardized mean difference without assuming equal variances (``"SMDH"``).

    The difference is divided by the unweighted root-mean-square SD ``s = sqrt((sd1^2+sd2^2)/2)``
    and bias-corrected with c(n1+n2-2). Variance (Bonett 2009, doi:10.1037/a0016619, eq. 5, with
    the corrected estimate plugged in and scaled by c^2, as metafor 3.8-1 does)::

        vi = c^2 [ g^2 (sd1^4/(n1-1) + sd2^4/(n2-1)) / (8 s^4)
                   + (sd1^2/(n1-1) + sd2^2/(n2-1)) / s^2 ]

    (metafor >= 4.6 dropped the leading c^2; we follow 3.8-1, the version of our references.)
    """
    if vtype != "LS":
        raise ValueError(f"vtype {vtype!r} is not defined for SMDH")
    c = hedges_correction(n1 + n2 - 2.0)
    s2 = (sd1**2 + sd2**2) / 2.0
    g = c * (m1 - m2) / np.sqrt(s2)
    vi = g**2 * (sd1**4 / (n1 - 1.0) + sd2**4 / (n2 - 1.0)) / (8.0 * s2**2) + (
        sd1**2 / (n1 - 1.0) + sd2**2 / (n2 - 1.0)
    ) / s2
    return g, c**2 * vi


def mean_difference(
    m1: np.ndarray,
    sd1: np.ndarray,
    n1: np.ndarray,
    m2: np.ndarray,
    sd2: np.ndarray,
    n2: np.ndarray,
    vtype: str = "LS",
) -> tuple[np.ndarray, np.ndarray]:
    """Raw mean difference ``m1 - m2`` (metafor ``"MD"``).

    ``vtype="LS"`` (default, metafor's LS = UB): ``sd1^2/n1 + sd2^2/n2`` (no equal-variance
    assumption); ``"HO"``: ``s_pooled^2 (1/n1 + 1/n2)``. Borenstein et al. (2009), ch. 4,
    doi:10.1002/9780470743386.
    """
    yi = m1 - m2
    if vtype == "LS":
        vi = sd1**2 / n1 + sd2**2 / n2
    elif vtype == "HO":
        vi = pooled_sd(sd1, n1, sd2, n2) ** 2 * (1.0 / n1 + 1.0 / n2)
    else:
        raise ValueError(f"vtype {vtype!r} is not defined for MD")
    return yi, vi


def log_ratio_of_means(
    m1: np.ndarray,
    sd1: np.ndarray,
    n1: np.ndarray,
    m2: np.ndarray,
    sd2: np.ndarray,
    n2: np.ndarray,
    vtype: str = "LS",
) -> tuple[np.ndarray, np.ndarray]:
    """Log response ratio ``log(m1/m2)`` (metafor ``"ROM"``; means must be > 0).

    ``vtype="LS"``: ``sd1^2/(n1 m1^2) + sd2^2/(n2 m2^2)``; ``"HO"``: the same with the pooled SD
    in both terms. Hedges, Gurevitch & Curtis (1999),
    doi:10.1890/0012-9658(1999)080[1150:TMAORR]2.0.CO;2.
    metafor 3.8-1 applies no bias correction to yi, and neither do we.
    """
    yi = np.log(m1 / m2)
    if vtype == "LS":
        vi = sd1**2 / (n1 * m1**2) + sd2**2 / (n2 * m2**2)
    elif vtype == "HO":
        sp2 = pooled_sd(sd1, n1, sd2, n2) ** 2
        vi = sp2 / (n1 * m1**2) + sp2 / (n2 * m2**2)
    else:
        raise ValueError(f"vtype {vtype!r} is not defined for ROM")
    return yi, vi


def change_sd_from_prepost(
    sd_baseline: np.ndarray, sd_post: np.ndarray, r: np.ndarray
) -> np.ndarray:
    """SD of the change score imputed from baseline SD, follow-up SD and their correlation r.

    ``sd_change = sqrt(sd_baseline^2 + sd_post^2 - 2 r sd_baseline sd_post)``, Cochrane Handbook
    for Systematic Reviews of Interventions, version 6, section 6.5.2.8 (Higgins et al. 2023).
    """
    var = sd_baseline**2 + sd_post**2 - 2.0 * r * sd_baseline * sd_post
    # Rounding can make an exactly-zero variance slightly negative; clip so sqrt stays real and
    # the caller's "must be > 0" check reports it.
    return np.sqrt(np.maximum(var, 0.0))
