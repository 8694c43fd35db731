"""Effect sizes from event counts (pure numpy, no validation).

2x2 tables use metafor's cell names: ``ai`` events and ``bi`` non-events in arm 1, ``ci`` events
and ``di`` non-events in arm 2. Single proportions use ``xi`` events and ``mi`` non-events.
Measure functions receive the cells AFTER the zero-cell correction
(:func:`zero_cell_correction`) and return ``(yi, vi)``; formulas follow metafor 3.8-1
(Viechtbauer 2010, doi:10.18637/jss.v036.i03).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ZERO_CELL_RULES",
    "zero_cell_rows",
    "zero_cell_correction",
    "double_zero_rows",
    "log_odds_ratio",
    "log_risk_ratio",
    "risk_difference",
    "logit_proportion",
]

#: how a continuity correction ``add`` is applied (metafor's ``to``)
ZERO_CELL_RULES: dict[str, str] = {
    "only0": "add to every cell of each table that has at least one zero cell (metafor default)",
    "all": "add to every cell of every table",
    "if0all": "add to every cell of every table if any table has a zero cell",
    "none": "never add anything",
}


def zero_cell_rows(*cells: np.ndarray) -> np.ndarray:
    """Boolean mask: rows where any of the given cells is zero."""
    out = np.zeros(np.asarray(cells[0]).shape, dtype=bool)
    for c in cells:
        out |= np.asarray(c) == 0
    return out


def zero_cell_correction(
    cells: tuple[np.ndarray, ...], add: float, to: str
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Add ``add`` to the cells according to ``to`` (see :data:`ZERO_CELL_RULES`).

    Returns the corrected cells and the mask of rows that received the correction. The rule
    follows metafor's ``escalc`` (``add=1/2, to="only0"`` by default); see also Sweeting, Sutton
    & Lambert (2004), doi:10.1002/sim.1761, on continuity corrections.
    """
    has_zero = zero_cell_rows(*cells)
    if to == "all":
        mask = np.ones_like(has_zero)
    elif to == "only0":
        mask = has_zero
    elif to == "if0all":
        mask = np.full_like(has_zero, bool(has_zero.any()))
    elif to == "none":
        mask = np.zeros_like(has_zero)
    else:
        raise ValueError(f"unknown zero-cell rule {to!r}")
    shift = np.where(mask, float(add), 0.0)
    return tuple(np.asarray(c, dtype=float) + shift for c in cells), mask & (add != 0)


def double_zero_rows(
    ai: np.ndarray, bi: np.ndarray, ci: np.ndarray, di: np.ndarray
) -> np.ndarray:
    """Rows with no events in both arms, or only events in both arms (metafor's ``drop00``)."""
    return ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))


def log_odds_ratio(
    ai: np.ndarray, bi: np.ndarray, ci: np.ndarray, di: np.ndarray, vtype: str = "LS"
) -> tuple[np.ndarray, np.ndarray]:
    """Log odds ratio ``log(ai di / (bi ci))`` with Woolf's variance ``1/ai + 1/bi + 1/ci + 1/di``.

    metafor ``"OR"``; Woolf (1955), doi:10.1111/j.1469-1809.1955.tb01348.x.
    """
    if vtype != "LS":
        raise ValueError(f"vtype {vtype!r} is not defined for OR")
    # Same order of operations as metafor, so rounding agrees to the last bits.
    p1 = ai / (ai + bi)
    p2 = ci / (ci + di)
    yi = np.log(p1 / (1.0 - p1)) - np.log(p2 / (1.0 - p2))
    vi = 1.0 / ai + 1.0 / bi + 1.0 / ci + 1.0 / di
    return yi, vi


def log_risk_ratio(
    ai: np.ndarray, bi: np.ndarray, ci: np.ndarray, di: np.ndarray, vtype: str = "LS"
) -> tuple[np.ndarray, np.ndarray]:
    """Log risk ratio ``log(p1/p2)``, variance ``1/ai - 1/n1 + 1/ci - 1/n2`` (metafor ``"RR"``).

    Katz et al. (1978), doi:10.2307/2530610.
    """
    if vtype != "LS":
        raise ValueError(f"vtype {vtype!r} is not defined for RR")
    n1 = ai + bi
    n2 = ci + di
    yi = np.log(ai / n1) - np.log(ci / n2)
    vi = 1.0 / ai - 1.0 / n1 + 1.0 / ci - 1.0 / n2
    return yi, vi


def risk_difference(
    ai: np.ndarray, bi: np.ndarray, ci: np.ndarray, di: np.ndarray, vtype: str = "LS"
) -> tuple[np.ndarray, np.ndarray]:
    """Risk difference ``p1 - p2`` (metafor ``"RD"``).

    ``vtype="LS"``: ``p1(1-p1)/n1 + p2(1-p2)/n2``; ``"UB"``: the unbiased version with
    ``n - 1`` denominators. Borenstein et al. (2009), ch. 5, doi:10.1002/9780470743386.
    """
    n1 = ai + bi
    n2 = ci + di
    p1 = ai / n1
    p2 = ci / n2
    if vtype == "LS":
        vi = p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2
    elif vtype == "UB":
        vi = p1 * (1.0 - p1) / (n1 - 1.0) + p2 * (1.0 - p2) / (n2 - 1.0)
    else:
        raise ValueError(f"vtype {vtype!r} is not defined for RD")
    return p1 - p2, vi


def logit_proportion(
    xi: np.ndarray, mi: np.ndarray, vtype: str = "LS"
) -> tuple[np.ndarray, np.ndarray]:
    """Logit of a single proportion ``log(xi/mi)``, variance ``1/xi + 1/mi`` (metafor ``"PLO"``).

    ``xi`` events, ``mi`` non-events. Sahai & Khurshid (1996), *Statistics in Epidemiology*.
    """
    if vtype != "LS":
        raise ValueError(f"vtype {vtype!r} is not defined for PLO")
    p = xi / (xi + mi)
    yi = np.log(p / (1.0 - p))
    vi = 1.0 / xi + 1.0 / mi
    return yi, vi
