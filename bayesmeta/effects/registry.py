"""The closed registry of effect measures: name -> (input family, function, variance types).

Each entry points at a small pure function returning ``(yi, vi)`` whose docstring cites its
source. The *family* says which inputs a measure reads (two-group means, a 2x2 table, a single
proportion, a correlation); :mod:`bayesmeta.effects.escalc` resolves and checks those inputs once
per family. Adding a measure = writing its function and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, Problem
from . import binary, correlations, means

__all__ = ["FAMILIES", "MEASURES", "Family", "Measure", "get_measure", "known_measures"]


@dataclass(frozen=True)
class Family:
    """Inputs shared by a group of measures.

    Attributes
    ----------
    name
        ``"means"``, ``"table"``, ``"proportion"`` or ``"correlation"``.
    keywords
        Every ``escalc`` keyword this family reads.
    needs
        Human-readable statement of the required keywords, used in error messages.
    """

    name: str
    keywords: tuple[str, ...]
    needs: str


FAMILIES: dict[str, Family] = {
    "means": Family(
        "means",
        ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i",
         "baseline_sd1i", "post_sd1i", "baseline_sd2i", "post_sd2i", "prepost_r"),
        "m1i, sd1i, n1i, m2i, sd2i, n2i (a missing change-score SD can be imputed from "
        "baseline_sd1i/post_sd1i, baseline_sd2i/post_sd2i and prepost_r)",
    ),
    "table": Family(
        "table",
        ("ai", "bi", "ci", "di", "n1i", "n2i"),
        "ai, bi, ci, di (or ai, n1i, ci, n2i)",
    ),
    "proportion": Family("proportion", ("xi", "mi", "ni", "pri"), "xi, ni (or xi, mi; or pri, ni)"),
    "correlation": Family("correlation", ("ri", "ni"), "ri, ni"),
}


@dataclass(frozen=True)
class Measure:
    """One effect measure.

    Attributes
    ----------
    name
        metafor's spelling (``"SMD"``, ``"OR"``, ...).
    family
        Key of :data:`FAMILIES`.
    compute
        Pure function returning ``(yi, vi)``; its docstring gives the formula and reference.
    vtypes
        Accepted variance types (``vtype``); the first is the default where ``"LS"`` is absent.
    description
        One line for tables and error messages.
    change_scores
        Whether change scores (follow-up minus baseline) with SD imputation make sense.
    """

    name: str
    family: str
    compute: Callable[..., tuple[np.ndarray, np.ndarray]]
    vtypes: tuple[str, ...]
    description: str
    change_scores: bool = False


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("SMD", "means", means.standardized_mean_difference, ("LS", "LS2", "UB"),
                "standardized mean difference, Hedges' g (exact bias correction)", True),
        Measure("SMDH", "means", means.standardized_mean_difference_heteroscedastic, ("LS",),
                "standardized mean difference with heteroscedastic SDs (Bonett)", True),
        Measure("MD", "means", means.mean_difference, ("LS", "HO"),
                "raw mean difference", True),
        Measure("ROM", "means", means.log_ratio_of_means, ("LS", "HO"),
                "log ratio of means (response ratio)"),
        Measure("OR", "table", binary.log_odds_ratio, ("LS",), "log odds ratio"),
        Measure("RR", "table", binary.log_risk_ratio, ("LS",), "log risk ratio"),
        Measure("RD", "table", binary.risk_difference, ("LS", "UB"), "risk difference"),
        Measure("PLO", "proportion", binary.logit_proportion, ("LS",),
                "logit-transformed proportion"),
        Measure("COR", "correlation", correlations.correlation, ("LS",),
                "raw correlation coefficient"),
        Measure("ZCOR", "correlation", correlations.fisher_z, ("LS",),
                "Fisher r-to-z transformed correlation"),
    )
}


def known_measures() -> tuple[str, ...]:
    """The measure names ``escalc`` accepts, sorted."""
    return tuple(sorted(MEASURES))


def get_measure(name: object) -> Measure:
    """Look a measure up; an unknown name raises :class:`InputError` listing the known ones."""
    if isinstance(name, str) and name in MEASURES:
        return MEASURES[name]
    hint = ""
    if isinstance(name, str) and name.strip().upper() in MEASURES:
        hint = f" (did you mean {name.strip().upper()!r}? names are upper case, as in metafor)"
    raise InputError(
        Problem(
            f"unknown effect measure{hint}; known measures: {', '.join(known_measures())}",
            column="measure",
            value=name if isinstance(name, str) else type(name).__name__,
        )
    )
