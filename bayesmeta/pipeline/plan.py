"""Expand an analysis plan (:class:`~bayesmeta.spec.Spec`) into the analyses to run.

Nothing is fitted here. Each :class:`Analysis` names the rows of the effect-size table it uses
as a conjunction of column filters, so that the same selection rule serves the 8 main cells,
the re-pooled sensitivity subsets, the subgroup models and the meta-regressions. Follow-up
times are never pooled with each other (a study's short- and long-term results are not
independent), so every analysis has exactly one outcome and one follow-up; several
comparators may be pooled (each comparison of a multi-arm trial is its own row, as the review
pooled them).

A table that is not a study table of the extraction schema (effects given by column names, see
:class:`~bayesmeta.spec.EffectSpec`) holds one outcome: its analyses are not filtered by
outcome, and without a declared outcome the main analysis (``"pooled"``) uses every row.
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
        The outcome (a key of ``spec.outcomes``; ``None`` for a table without a declared
        outcome) and the follow-up (``None``: not selected by follow-up).
    filters
        ``{column: allowed values}``; a row is used when every column's value is allowed.
    subgroup, tau, subgroup_pooling
        Subgroup column, ``"shared"`` / ``"separate"`` tau and whether the subgroup means are
        partially pooled (subgroup models).
    mods
        Moderator formula (meta-regressions).
    """

    name: str
    label: str
    kind: str
    group: str
    outcome: str | None
    follow_up: str | None
    filters: Mapping[str, tuple[Any, ...]]
    subgroup: str | None = None
    tau: str = "shared"
    mods: str | None = None
    subgroup_pooling: bool = False

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


def _filters(outcome: str | None, comparators: tuple[str, ...], follow_up: str | None,
             where: Mapping[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    if outcome is not None:
        out["outcome"] = (outcome,)
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
    follow-up). A table outside the extraction schema is not selected by outcome; without a
    declared outcome its main analysis is named ``"pooled"``."""
    out: list[Analysis] = []
    m = spec.main
    by_outcome = spec.effect.schema_table

    def outcome_label(outcome: str | None) -> str | None:
        return None if outcome is None else (spec.outcomes[outcome].label or outcome)

    for outcome in m.outcomes or (None,):
        for comparator in m.comparators or (None,):
            for follow_up in m.follow_ups or (None,):
                parts = [p for p in (outcome, comparator, follow_up) if p is not None]
                name = "_".join(parts) or "pooled"
                label = ", ".join([outcome_label(outcome) or "Pooled analysis of every row"]
                                  + ([f"{comparator} comparator"] if comparator else [])
                                  + ([f"{follow_up} term"] if follow_up else []))
                comparators = (comparator,) if comparator else ()
                out.append(Analysis(name, label, "main", "main", outcome, follow_up,
                                    _filters(outcome if by_outcome else None, comparators,
                                             follow_up, {})))
    for s in spec.sensitivity:
        for outcome in s.outcomes or (None,):
            for follow_up in s.follow_ups or (None,):
                name = "_".join(p for p in (s.name, outcome, follow_up) if p is not None)
                shown = outcome_label(outcome)
                label = (s.label + (f": {shown}" if shown else "")
                         + (f", {follow_up} term" if follow_up else ""))
                kind = "subgroup" if s.subgroup else "subset"
                out.append(Analysis(name, label, kind, s.name, outcome, follow_up,
                                    _filters(outcome if by_outcome else None, s.comparators,
                                             follow_up, s.where),
                                    subgroup=s.subgroup, tau=s.tau,
                                    subgroup_pooling=s.subgroup_pooling))
    for r in spec.meta_regression:
        for follow_up in r.follow_ups or (None,):
            name = r.name if len(r.follow_ups) <= 1 else f"{r.name}_{follow_up}"
            out.append(Analysis(name, r.label, "meta_regression", r.name, r.outcome, follow_up,
                                _filters(r.outcome if by_outcome else None, r.comparators,
                                         follow_up, {}),
                                mods=r.mods))
    return out


def reference_analysis(analysis: Analysis) -> Analysis:
    """The pooled model of the same rows as a subgroup model or meta-regression."""
    comparators = analysis.filters.get("comparator", ())
    parts = [p for p in (analysis.outcome, *map(str, comparators), analysis.follow_up)
             if p is not None]
    name = "pooled_" + ("_".join(parts) if parts else f"rows_of_{analysis.name}")
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


def check_values(spec: Spec, table: pd.DataFrame) -> list[Problem]:
    """Problems of the plan against its study table, each naming the spec key, the value and
    what the table holds: an outcome, comparator or follow-up that never occurs there (a typo
    that would otherwise leave an analysis with no rows), and a ``where`` or ``subgroup``
    column the table does not have. Values of ``where`` that do not occur are notes of the
    selection instead (a level may legitimately be absent from a subset).

    A value inherited from ``[main]`` is reported once, under ``main``.
    """
    by_outcome = spec.effect.schema_table
    selectors: list[tuple[str, str, tuple[Any, ...]]] = []  # (key path, column, values)

    def add(path: str, outcomes: tuple[str | None, ...], comparators: tuple[str, ...],
            follow_ups: tuple[str, ...]) -> None:
        if by_outcome:
            selectors.append((f"{path}.outcomes", "outcome",
                              tuple(o for o in outcomes if o is not None)))
        selectors.append((f"{path}.comparators", "comparator", comparators))
        selectors.append((f"{path}.follow_ups", "follow_up", follow_ups))

    m = spec.main
    add("main", m.outcomes, m.comparators, m.follow_ups)
    columns_used: list[tuple[str, str]] = []  # (key path, column)
    for i, sub in enumerate(spec.sensitivity):
        add(f"sensitivity[{i}]", sub.outcomes, sub.comparators, sub.follow_ups)
        columns_used += [(f"sensitivity[{i}].where.{col}", col) for col in sub.where]
        if sub.subgroup:
            columns_used.append((f"sensitivity[{i}].subgroup", sub.subgroup))
    for i, r in enumerate(spec.meta_regression):
        if by_outcome:
            selectors.append((f"meta_regression[{i}].outcome", "outcome",
                              () if r.outcome is None else (r.outcome,)))
        selectors.append((f"meta_regression[{i}].comparators", "comparator", r.comparators))
        selectors.append((f"meta_regression[{i}].follow_ups", "follow_up", r.follow_ups))

    listing = ", ".join(map(str, table.columns))
    problems: list[Problem] = []
    seen: set[tuple[str, Any]] = set()
    for path, col, values in selectors:
        if not values or (col, None) in seen:
            continue
        if col not in table.columns:
            seen.add((col, None))
            problems.append(Problem(f"selects rows by the column {col}, which the study table "
                                    f"does not have; its columns: {listing}", column=path,
                                    value=", ".join(map(str, values))))
            continue
        present = sorted({str(v) for v in table[col].dropna().astype("object")})
        for value in values:
            if (col, value) in seen:
                continue
            seen.add((col, value))
            if not _matches(table[col], (value,)).any():
                problems.append(Problem(f"never occurs in the study table's {col} column, so "
                                        f"no rows match it; values there: "
                                        f"{', '.join(present) or 'none'}", column=path,
                                        value=value))
    for path, col in columns_used:
        if col not in table.columns:
            problems.append(Problem(f"no such column in the study table; its columns: "
                                    f"{listing}", column=path, value=col))
    return problems


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
