"""Simulated meta-analytic data: ``bayesmeta.simulate(...)``.

- :func:`simulate` draws an arm-level study table (schema-valid) from the hierarchical model;
- :class:`SimulationSettings` holds and validates its settings;
- :mod:`.draws` has the pure building blocks (quantile-matched sizes, exact allocations, exact
  sampling of arm-level summary statistics), reused by ``scripts/make_lbp_synthetic.py``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .core import SIMULATION_ATTR, TRUE_EFFECT_COLUMN, simulate
from .settings import SLOPE_COLUMNS, SUBGROUP_COLUMNS, SimulationSettings

__all__ = ["SIMULATION_ATTR", "SLOPE_COLUMNS", "SUBGROUP_COLUMNS", "SimulationSettings",
           "TRUE_EFFECT_COLUMN", "simulate"]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`simulate`.

    The public name ``bayesmeta.simulate`` is both this package and its function: once the
    package has been imported, Python's import system binds the attribute ``simulate`` of
    ``bayesmeta`` to the package, shadowing the lazily exported function. Making the package
    callable keeps ``bayesmeta.simulate(...)`` and ``from bayesmeta import simulate`` working
    whichever was bound first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return simulate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
