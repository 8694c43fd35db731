"""Simulated meta-analytic data: ``bayesmeta.simulate(...)`` is :func:`simulate` here.

- :func:`simulate` draws an arm-level study table (schema-valid) from the hierarchical model;
- :class:`SimulationSettings` holds and validates its settings;
- :mod:`.draws` has the pure building blocks (quantile-matched sizes, exact allocations, exact
  sampling of arm-level summary statistics), reused by ``scripts/make_lbp_synthetic.py``.
"""

from __future__ import annotations

from .core import SIMULATION_ATTR, TRUE_EFFECT_COLUMN, simulate
from .settings import SLOPE_COLUMNS, SUBGROUP_COLUMNS, SimulationSettings

__all__ = ["SIMULATION_ATTR", "SLOPE_COLUMNS", "SUBGROUP_COLUMNS", "SimulationSettings",
           "TRUE_EFFECT_COLUMN", "simulate"]
