"""The frequentist engine: pure numpy/scipy estimators under a thin ``rma`` API.

Validated against metafor 3.8-1 (tests/reference/*.json, ``metafor_tight`` values to 1e-6).
"""

from .bias import EggerTest, RankTest, TrimFill, egger_test, rank_test, trimfill
from .estimators import FitControl
from .influence import influence, leave_one_out, outliers
from .rma import RmaResult, SubgroupResult, refit, rma

__all__ = ["EggerTest", "FitControl", "RankTest", "RmaResult", "SubgroupResult", "TrimFill",
           "egger_test", "influence", "leave_one_out", "outliers", "rank_test", "refit", "rma",
           "trimfill"]
