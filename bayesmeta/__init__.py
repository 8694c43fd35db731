"""bayesmeta: Bayesian hierarchical meta-analysis, validated against R's metafor and bayesmeta.

The public names are imported lazily so that ``import bayesmeta`` (and the command line's
``--help``) does not pay for importing PyMC.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "read_studies": "bayesmeta.io",
    "StudyTable": "bayesmeta.io",
    "escalc": "bayesmeta.effects",
    "to_vas": "bayesmeta.effects",
    "split_shared_groups": "bayesmeta.effects",
    "table_to_vas": "bayesmeta.effects",
    "rma": "bayesmeta.frequentist",
    "egger_test": "bayesmeta.frequentist",
    "rank_test": "bayesmeta.frequentist",
    "trimfill": "bayesmeta.frequentist",
    "influence": "bayesmeta.frequentist",
    "leave_one_out": "bayesmeta.frequentist",
    "outliers": "bayesmeta.frequentist",
    "bayes_rma": "bayesmeta.bayes",
    "load": "bayesmeta.bayes",
    "clinical_relevance": "bayesmeta.clinical",
    "reanalyse": "bayesmeta.clinical",
    "simulate": "bayesmeta.simulation",
    "parse_spec": "bayesmeta.spec",
    "run_spec": "bayesmeta.pipeline",
    "InputError": "bayesmeta.errors",
    "DEFAULTS": "bayesmeta.config",
}

_SUBMODULES = {"priors": "bayesmeta.bayes.priors", "plots": "bayesmeta.plots"}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        return getattr(module, name)
    raise AttributeError(f"module 'bayesmeta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
