"""Effect sizes from correlation coefficients (pure numpy, no validation).

Inputs: ``ri`` (Pearson correlation, |r| < 1 for ZCOR) and ``ni`` (sample size, > 3).
Formulas follow metafor 3.8-1 (Viechtbauer 2010, doi:10.18637/jss.v036.i03).
"""

from __future__ import annotations

import numpy as np

__all__ = ["correlation", "fisher_z"]


def correlation(ri: np.ndarray, ni: np.ndarray, vtype: str = "LS") -> tuple[np.ndarray, np.ndarray]:
    """Raw correlation (metafor ``"COR"``), large-sample variance ``(1 - r^2)^2 / (n - 1)``.

    Borenstein et al. (2009), *Introduction to Meta-Analysis*, ch. 6, eq. 6.1,
    doi:10.1002/9780470743386.
    """
    if vtype != "LS":
        raise ValueError(f"vtype {vtype!r} is not defined for COR")
    return np.asarray(ri, dtype=float), (1.0 - ri**2) ** 2 / (ni - 1.0)


def fisher_z(ri: np.ndarray, ni: np.ndarray, vtype: str = "LS") -> tuple[np.ndarray, np.ndarray]:
    """Fisher's r-to-z transformed correlation (metafor ``"ZCOR"``): ``atanh(r)``, ``1/(n - 3)``.

    Fisher (1921), *Metron* 1, 3-32; Borenstein et al. (2009), ch. 6, eqs. 6.2-6.3.
    """
    if vtype != "LS":
        raise ValueError(f"vtype {vtype!r} is not defined for ZCOR")
    return np.arctanh(ri), 1.0 / (ni - 3.0)
