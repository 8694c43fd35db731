"""Expand an analysis plan (:class:`~bayesmeta.spec.Spec`) into the analyses to run.

Nothing is fitted here. Each :class:`Analysis` names the rows of the effect-size table it uses
as a conjunction of column filters, so that the same selection rule serves the 8 main cells,
the re-pooled sensitivity subsets, the subgroup models and the meta-regressions. Follow-up
times are never pooled with each other (a study's short- and long-term results are not
independent), so every analysis has exactly one outcome and one follow-up; several
comparators may be pooled (each comparison of a multi-arm trial is its own row, as the review
pooled them).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, raise_if
from ..spec import Spec

#: kinds of analysis, in report order
KINDS = ("main", "subset", "subgroup", "meta_regression", "reference")


@dataclass(frozen=True)
class Analysis:
    """One analysis of the plan.

    Attributes
    ----------
    name
        Unique identifier (file names, table keys); the main cells use the published
        ``analysis_id`` spelling ``<outcome>_<comparator>_<follow_up>``.
    label
        Display name.
    kind
        ``"main"`` (a main cell), ``"subset"`` (a re-pooled sensitivity subset), ``"subgroup"``
        (a subgroup model), ``"meta_regression"``, or ``"reference"`` (the pooled model of the
        rows of a subgroup or meta-regression model, fitted only for the LOO comparison).
    group
        The spec entry it comes from (``"main"``, or the sensitivity / meta-regression name).
    outcome, follow_up
        The outcome (a key of ``spec.outcomes``) and the follow-up.
    filters
        ``{column: allowed values}``; a row is used when every column's value is allowed.
    subgroup, tau
        Subgroup column and ``"shared"`` / ``"separate"`` tau (subgroup models).
    mods
        Moderator formula (meta-regressions).
    """

    name: str
    label: str
    kind: str
    group: str
    outcome: str
    follow_up: str | None
    filters: Mapping[str, tuple[Any, ...]]
    subgroup: str | None = None
    tau: str = "shared"
    mods: str | None = None

    @property
    def model(self) -> str:
        """The Bayesian model family: ``"pooled"``, ``"subgroup"`` or ``"meta_regression"``."""
        if self.kind == "subgroup":
            return "subgroup"
        if self.kind == "meta_regression":
            return "meta_regression"
        return "pooled"

    def describe_filters(self) -> str:
        return "; ".join(f"{col} in {{{', '.join(map(str, vals))}}}"
                         for col, vals in self.filters.items())


@dataclass(frozen=True)
class Selection:
    """The rows of the effect-size table an analysis uses, and what was noticed on the way."""

    rows: np.ndarray
    notes: tuple[str, ...] = field(default=())

    @property
    def k(self) -> int:
        return int(self.rows.size)


def seed_for(base: int, name: str) -> int:
    """A seed for one analysis, derived from the plan's seed and the analysis name.

    Depends on the name only (CRC-32, stable across processes, unlike ``hash``), so adding or
    removing an analysis leaves every other analysis's draws unchanged.
    """
    state = np.random.SeedSequence([int(base) & 0xFFFFFFFF, zlib.crc32(name.encode())])
    return int(state.generate_state(1, dtype=np.uint32)[0] >> 1)


def _filters(outcome: str, comparators: tuple[str, ...], follow_up: str | None,
             where: Mapping[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {"outcome": (outcome,)}
    if comparators:
        out["comparator"] = tuple(comparators)
    if follow_up is not None:
        out["follow_up"] = (follow_up,)
    out.update({col: tuple(vals) for col, vals in where.items()})
    return out


def expand(spec: Spec) -> list[Analysis]:
    """Every analysis of ``spec``, in report order: main cells, sensitivity subsets and
    subgroup models (one per outcome x follow-up of each entry), meta-regressions.

    An empty ``main.comparators`` pools every comparator of an outcome; an empty
    ``main.follow_ups`` selects no follow-up (a one-off analysis of a table with one
    follow-up)."""
    out: list[Analysis] = []
    m = spec.main
    for outcome in m.outcomes:
        for comparator in m.comparators or (None,):
            for follow_up in m.follow_ups or (None,):
                parts = [p for p in (outcome, comparator, follow_up) if p is not None]
                name = "_".join(parts)
                label = ", ".join([spec.outcomes[outcome].label or outcome]
                                  + ([f"{comparator} comparator"] if comparator else [])
                                  + ([f"{follow_up} term"] if follow_up else []))
                comparators = (comparator,) if comparator else ()
                out.append(Analysis(name, label, "main", "main", outcome, follow_up,
                                    _filters(outcome, comparators, follow_up, {})))
    for s in spec.sensitivity:
        for outcome in s.outcomes:
            for follow_up in s.follow_ups or (None,):
                name = "_".join(p for p in (s.name, outcome, follow_up) if p is not None)
                label = f"{s.label}: {spec.outcomes[outcome].label or outcome}" + (
                    f", {follow_up} term" if follow_up else "")
                kind = "subgroup" if s.subgroup else "subset"
                out.append(Analysis(name, label, kind, s.name, outcome, follow_up,
                                    _filters(outcome, s.comparators, follow_up, s.where),
                                    subgroup=s.subgroup, tau=s.tau))
    for r in spec.meta_regression:
        for follow_up in r.follow_ups or (None,):
            name = r.name if len(r.follow_ups) <= 1 else f"{r.name}_{follow_up}"
            out.append(Analysis(name, r.label, "meta_regression", r.name, r.outcome, follow_up,
                                _filters(r.outcome, r.comparators, follow_up, {}),
                                mods=r.mods))
    return out


def reference_analysis(analysis: Analysis) -> Analysis:
    """The pooled model of the same rows as a subgroup model or meta-regression."""
    comparators = analysis.filters.get("comparator", ())
    name = "pooled_" + "_".join([analysis.outcome, *map(str, comparators),
                                 str(analysis.follow_up)])
    label = (f"Pooled model of the same studies as {analysis.name} (for the LOO comparison)")
    return Analysis(name, label, "reference", analysis.group, analysis.outcome,
                    analysis.follow_up, dict(analysis.filters))


def _matches(series: pd.Series, allowed: tuple[Any, ...]) -> np.ndarray:
    """Rows whose value is one of ``allowed``; booleans compare as booleans, everything else
    as text (so ``true`` in a spec matches a boolean column, ``"low"`` a category)."""
    values = series.astype("object")
    missing = series.isna().to_numpy()
    bools = [a for a in allowed if isinstance(a, bool)]
    texts = {str(a) for a in allowed if not isinstance(a, bool)}
    hit = np.zeros(len(series), dtype=bool)
    for i, v in enumerate(values):
        if missing[i]:
            continue
        if isinstance(v, bool | np.bool_):
            hit[i] = bool(v) in bools or str(bool(v)).lower() in {t.lower() for t in texts}
        else:
            hit[i] = str(v) in texts
    return hit


def select(table: pd.DataFrame, analysis: Analysis) -> Selection:
    """The rows of ``table`` (the escalc output) that ``analysis`` uses.

    Raises InputError when a filter names a column the table does not have. Notes record
    filter values that never occur in the whole table (a likely typo in the spec) and rows
    left out because the filter column is missing there.
    """
    problems = []
    for col in analysis.filters:
        if col not in table.columns:
            problems.append(Problem(f"no such column in the study table (used by analysis "
                                    f"{analysis.name}); columns: "
                                    f"{', '.join(map(str, table.columns))}",
                                    column=col, show_value=False))
    raise_if(problems, f"the selection of {analysis.name}")
    keep = np.ones(len(table), dtype=bool)
    notes = []
    for col, allowed in analysis.filters.items():
        series = table[col]
        hit = _matches(series, allowed)
        absent = [a for a in allowed if not _matches(series, (a,)).any()]
        if absent and col not in ("outcome", "comparator", "follow_up"):
            present = sorted({str(v) for v in series.dropna().astype("object")})
            notes.append(f"filter {col}: value(s) {', '.join(map(str, absent))} never occur in "
                         f"the study table (values there: {', '.join(present)})")
        na = series.isna().to_numpy() & keep
        if na.any():
            notes.append(f"{int(na.sum())} row(s) left out because {col} is missing")
        keep &= hit
    return Selection(np.flatnonzero(keep), tuple(notes))


def capacity_plan(table: pd.DataFrame, selections: Mapping[str, Selection],
                  analyses: list[Analysis]) -> tuple[int, int]:
    """The largest k and the largest number of coefficients p over all analyses.

    These size the one compiled NUTS sampler every fit of the run shares (study slots and
    coefficient slots; see :func:`bayesmeta.bayes_rma`'s ``capacity`` and ``coef_slots``).
    p is counted from the design a model would use (subgroup levels; meta-regression terms),
    an upper bound when studies with missing moderators are later excluded.
    """
    from ..design import design_matrix

    max_k, max_p = 1, 1
    for a in analyses:
        sel = selections[a.name]
        if sel.k == 0:
            continue
        max_k = max(max_k, sel.k)
        rows = table.iloc[sel.rows].reset_index(drop=True)
        if a.kind == "subgroup" and a.subgroup in rows.columns:
            max_p = max(max_p, int(rows[a.subgroup].dropna().nunique()))
        elif a.kind == "meta_regression" and a.mods:
            try:
                design = design_matrix(a.mods, rows, missing="exclude")
            except InputError:
                continue  # the fit itself reports the problem
            max_p = max(max_p, design.p)
    return max_k, max_p
