"""The frequentist engine: pure numpy/scipy estimators under a thin ``rma`` API.

Validated against metafor 3.8-1 (tests/reference/*.json, ``metafor_tight`` values to 1e-6).
"""

from .estimators import FitControl
from .rma import RmaResult, SubgroupResult, refit, rma

__all__ = ["FitControl", "RmaResult", "SubgroupResult", "refit", "rma"]
