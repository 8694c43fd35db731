"""Moderators and subgroups -> a design matrix with named columns and reference levels.

A moderator formula (``"~ weeks + comparator"``) or a table of moderator columns becomes the
design matrix X of a meta-regression, built by formulaic (no hand-written parser). Columns are
named as formulaic names them (``comparator[T.passive]``), except the intercept, which is called
``intercept``. Text columns are categorical with their levels sorted (R's ``factor`` default);
``reference={"comparator": "active"}`` chooses another reference level.

Nothing is dropped silently: a missing moderator value is an error naming the row, the study and
the column, unless the caller asks for ``missing="exclude"``, in which case the study is left out
and the exclusion is recorded in the design. Collinear moderators are an error naming the
columns involved.

This module builds matrices only; it never fits anything.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, Problem, raise_if

INTERCEPT = "intercept"
_FORMULAIC_INTERCEPT = "Intercept"
MISSING_POLICIES = ("error", "exclude")


@dataclass(frozen=True)
class Exclusion:
    """A study left out of an analysis because a value it needs is missing.

    Attributes
    ----------
    row
        1-based row of the caller's data.
    study
        The study label.
    columns
        The columns whose value is missing.
    """

    row: int
    study: str | None
    columns: tuple[str, ...]

    def __str__(self) -> str:
        who = f"row {self.row}" + (f" ({self.study})" if self.study else "")
        cols = ", ".join(self.columns)
        return f"{who}: missing value in {cols}; study excluded (missing='exclude')"


@dataclass(frozen=True)
class Design:
    """A design matrix with named columns.

    Attributes
    ----------
    matrix
        k x p float array (read-only), metafor's ``X``.
    terms
        Column names: ``intercept`` then the moderator terms as formulaic names them.
    intercept
        Whether the first column is the intercept.
    rows
        0-based positions, in the caller's data, of the studies the matrix describes (all of
        them unless some were excluded).
    excluded
        Studies left out because of missing moderator values (``missing="exclude"`` only).
    formula
        The moderator formula, or ``None`` for an intercept-only design.
    levels
        For each categorical moderator, its levels in the order used (reference first).
    spec
        formulaic's model spec, to build rows for new moderator values (``predict``).
    """

    matrix: np.ndarray
    terms: tuple[str, ...]
    intercept: bool
    rows: np.ndarray
    excluded: tuple[Exclusion, ...] = ()
    formula: str | None = None
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    spec: Any = field(default=None, compare=False, repr=False)

    @property
    def k(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def p(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def intercept_only(self) -> bool:
        return self.intercept and self.p == 1

    def new_rows(self, newmods: Any) -> np.ndarray:
        """Design rows for new moderator values (a DataFrame, a mapping or an array).

        A DataFrame or mapping goes through the stored formula (categorical levels must be
        known ones). An array holds the non-intercept columns (the intercept is added), or all
        p columns.
        """
        if isinstance(newmods, Mapping) and not isinstance(newmods, pd.DataFrame):
            newmods = pd.DataFrame({key: np.atleast_1d(val) for key, val in newmods.items()})
        if isinstance(newmods, pd.DataFrame):
            if self.spec is None:
                raise InputError(Problem("this model has no moderator formula; pass an array of "
                                         "moderator values instead", column="newmods"))
            prepared = _prepare(newmods, self.levels, {})
            try:
                with warnings.catch_warnings():
                    # formulaic only warns when a value is outside a C(...) term's levels and
                    # then encodes it as the reference level: that must be an error here
                    warnings.filterwarnings("error", message=".*(levels|categor).*")
                    mm = self.spec.get_model_matrix(prepared, na_action="raise")
            except Exception as exc:  # formulaic's errors carry the useful message
                raise InputError(Problem(f"could not build moderator rows: {exc}",
                                         column="newmods")) from exc
            return np.asarray(mm, dtype=float)
        arr = np.atleast_2d(np.asarray(newmods, dtype=float))
        if self.p == 1 and arr.size > 0 and arr.shape[1] != 1:
            arr = arr.reshape(-1, 1)
        if self.intercept and arr.shape[1] == self.p - 1:
            arr = np.column_stack([np.ones(arr.shape[0]), arr])
        if arr.shape[1] != self.p:
            raise InputError(Problem(
                f"expected {self.p - int(self.intercept)} moderator value(s) per row "
                f"({', '.join(t for t in self.terms if t != INTERCEPT)})",
                column="newmods", value=arr.shape[1]))
        if not np.all(np.isfinite(arr)):
            raise InputError(Problem("moderator values must be finite numbers", column="newmods"))
        return arr

    def subset(self, keep: np.ndarray) -> Design:
        """The design restricted to the rows ``keep`` (positions into this design)."""
        matrix = self.matrix[keep]
        matrix.flags.writeable = False
        return Design(matrix, self.terms, self.intercept, self.rows[keep], self.excluded,
                      self.formula, self.levels, self.spec)


@functools.lru_cache(maxsize=64)
def intercept_only(k: int) -> Design:
    """The design of a pooled (intercept-only) model with k studies (cached: it is
    immutable)."""
    matrix = np.ones((k, 1))
    matrix.flags.writeable = False
    return Design(matrix, (INTERCEPT,), True, np.arange(k))


def _is_text(series: pd.Series) -> bool:
    return (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)
            or isinstance(series.dtype, pd.CategoricalDtype))


def _sorted_levels(values: Sequence[Any]) -> list[Any]:
    try:
        return sorted(set(values))
    except TypeError:  # mixed types: sort by their text
        return sorted(set(values), key=str)


def _prepare(data: pd.DataFrame, levels: Mapping[str, Sequence[Any]],
             reference: Mapping[str, Any]) -> pd.DataFrame:
    """Text columns -> ordered categoricals (reference level first); boolean text -> 0/1."""
    out = {}
    for col in data.columns:
        s = data[col]
        # recoding a Categorical into fewer categories is deprecated in pandas (it will
        # raise); its values as objects recode the same way without that hazard
        values = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
        if col in levels:
            out[col] = pd.Categorical(values, categories=list(levels[col]))
            continue
        if not _is_text(s):
            out[col] = s.to_numpy() if not isinstance(s.dtype, pd.BooleanDtype) else \
                s.astype("float64").to_numpy()
            continue
        present = [x for x in s if not _isna(x)]
        if present and all(isinstance(x, bool | np.bool_) for x in present):
            # a boolean column with gaps arrives as objects; keep it numeric (0/1) as without gaps
            out[col] = np.array([np.nan if _isna(x) else float(x) for x in s])
            continue
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = [c for c in s.cat.categories if c in set(present)]
        else:
            cats = _sorted_levels(present)
        if col in reference:
            ref = reference[col]
            cats = [ref] + [c for c in cats if c != ref]
        out[col] = pd.Categorical(values, categories=cats)
    return pd.DataFrame(out, index=pd.RangeIndex(len(data)))


def _isna(x: Any) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _check_reference(data: pd.DataFrame, reference: Mapping[str, Any]) -> None:
    problems = []
    for col, ref in reference.items():
        if col not in data.columns:
            problems.append(Problem(
                f"no such moderator column; available: {', '.join(map(str, data.columns))}",
                column="reference", value=col))
            continue
        present = [x for x in data[col] if not _isna(x)]
        if ref not in set(present):
            problems.append(Problem(
                f"not a level of {col}; its levels are "
                f"{', '.join(map(str, _sorted_levels(present)))}",
                column="reference", value=ref))
    raise_if(problems, "the reference levels")


def _formula_of(mods: Any, data: pd.DataFrame | None) -> tuple[str, pd.DataFrame]:
    if isinstance(mods, pd.DataFrame):
        if mods.shape[1] == 0:
            raise InputError(Problem("the moderator table has no columns", column="mods"))
        names = [str(c) for c in mods.columns]
        frame = mods.copy()
        frame.columns = names
        return "~ " + " + ".join(f"`{n}`" for n in names), frame.reset_index(drop=True)
    if isinstance(mods, str):
        formula = mods.strip()
        if "~" in formula and formula.split("~", 1)[0].strip():
            raise InputError(Problem("mods takes the right-hand side of a formula only, e.g. "
                                     "'~ weeks + comparator' (yi is given separately)",
                                     column="mods", value=mods))
        if not formula.startswith("~"):
            formula = "~ " + formula
        if data is None:
            raise InputError(Problem("a moderator formula needs data= holding its columns",
                                     column="mods", value=mods))
        return formula, data.reset_index(drop=True)
    raise InputError(Problem("mods must be a formula string such as '~ weeks + comparator' or a "
                             "DataFrame of moderator columns", column="mods",
                             value=type(mods).__name__))


def _build(formula: str, frame: pd.DataFrame) -> Any:
    from formulaic import model_matrix  # deferred: formulaic is only needed with moderators

    try:
        return model_matrix(formula, frame, na_action="ignore", ensure_full_rank=True)
    except Exception as exc:
        raise InputError(Problem(f"could not build the design matrix: {exc}".strip(),
                                 column="mods", value=formula)) from exc


def check_full_rank(X: np.ndarray, terms: Sequence[str], context: str = "the moderators"
                    ) -> None:
    """Raise an :class:`InputError` naming the columns of X that are linearly dependent.

    metafor stops with "Model matrix not of full rank"; here every dependent set of columns is
    named so the user knows which moderator to drop.
    """
    k, p = X.shape
    problems = []
    if k < p:
        problems.append(Problem(f"{p} coefficients ({', '.join(terms)}) but only {k} studies; "
                                "a meta-regression needs at least as many studies as "
                                "coefficients", column="mods", value=k, show_value=False))
    norms = np.linalg.norm(X, axis=0)
    zero = [t for t, n in zip(terms, norms, strict=True) if n == 0.0]
    for name in zero:
        problems.append(Problem("this column is zero for every study used, so its coefficient "
                                "cannot be estimated", column=name, show_value=False))
    scaled = X / np.where(norms == 0.0, 1.0, norms)
    _, s, vt = np.linalg.svd(scaled, full_matrices=True)
    tol = max(k, p) * np.finfo(float).eps * (s[0] if s.size else 1.0) * 1e3
    rank = int(np.sum(s > tol))
    if rank < p and not zero:
        null = vt[rank:]
        seen: set[tuple[str, ...]] = set()
        for vec in null:
            involved = tuple(t for t, c in zip(terms, vec, strict=True) if abs(c) > 1e-6)
            if involved and involved not in seen:
                seen.add(involved)
                problems.append(Problem(
                    f"the columns {', '.join(involved)} are collinear (one is a linear "
                    "combination of the others, e.g. a duplicated moderator or a constant "
                    "column next to the intercept); drop one of them", column="mods",
                    value=", ".join(involved), show_value=False))
    raise_if(problems, context)


_MISSING_MODERATOR = ("a moderator value is missing; fill it in, or pass missing='exclude' to "
                      "leave this study out explicitly")
_MISSING_SUBGROUP = ("the subgroup is missing; fill it in, or pass missing='exclude' to leave "
                     "this study out explicitly")


def _missing_problems(data: pd.DataFrame, used: Sequence[str], labels: Sequence[str] | None,
                      expected: str = _MISSING_MODERATOR
                      ) -> tuple[np.ndarray, list[Problem], list[Exclusion]]:
    bad = np.zeros(len(data), dtype=bool)
    by_row: dict[int, list[str]] = {}
    for col in used:
        na = pd.isna(data[col]).to_numpy()
        bad |= na
        for i in np.flatnonzero(na):
            by_row.setdefault(int(i), []).append(col)
    problems = []
    exclusions = []
    for i in sorted(by_row):
        study = labels[i] if labels is not None else None
        for col in by_row[i]:
            problems.append(Problem(expected, row=i + 1, study=study, column=col, value=None))
        exclusions.append(Exclusion(i + 1, study, tuple(by_row[i])))
    return bad, problems, exclusions


def design_matrix(mods: Any, data: pd.DataFrame | None = None, *,
                  labels: Sequence[str] | None = None,
                  reference: Mapping[str, Any] | None = None,
                  missing: str = "error", k: int | None = None) -> Design:
    """Build the design matrix of a meta-regression.

    Parameters
    ----------
    mods
        ``None`` (intercept only; give ``k``), a formula's right-hand side such as
        ``"~ weeks + comparator"`` evaluated in ``data``, or a DataFrame whose columns are the
        moderators (an intercept is added; use a formula with ``- 1`` to drop it).
    data
        The study table (one row per study) holding the formula's columns.
    labels
        Study labels, for error messages.
    reference
        Reference level per categorical moderator, e.g. ``{"comparator": "active"}``; by
        default the first level in sorted order (as R's ``factor``), or the first category of a
        pandas Categorical.
    missing
        ``"error"`` (default): a missing moderator value is an error naming row, study and
        column. ``"exclude"``: such studies are left out and listed in ``Design.excluded``.

    Returns
    -------
    Design
    """
    if missing not in MISSING_POLICIES:
        raise InputError(Problem(f"missing must be one of {', '.join(MISSING_POLICIES)}",
                                 column="missing", value=missing))
    if mods is None:
        if k is None:
            raise ValueError("k is needed for an intercept-only design")
        return intercept_only(k)
    formula, frame = _formula_of(mods, data)
    n = len(frame)
    if labels is not None and len(labels) != n:
        raise InputError(Problem(f"the moderator table has {n} rows but there are "
                                 f"{len(labels)} studies", column="mods", value=n))
    reference = dict(reference or {})
    _check_reference(frame, reference)
    prepared = _prepare(frame, {}, reference)
    mm = _build(formula, prepared)
    used = [c for c in frame.columns if c in mm.model_spec.variables_by_source.get("data", set())]
    unknown_ref = [c for c in reference if c not in used]
    if unknown_ref:
        raise InputError(Problem(f"a reference level was given for {', '.join(unknown_ref)}, "
                                 "which the moderator formula does not use",
                                 column="reference", value=", ".join(unknown_ref)))
    bad, problems, exclusions = _missing_problems(frame, used, labels)
    rows = np.arange(n)
    if bad.any():
        if missing == "error":
            raise_if(problems, "the moderators")
        rows = np.flatnonzero(~bad)
        if rows.size == 0:
            raise InputError(Problem("every study has a missing moderator value; nothing left "
                                     "to analyse", column="mods", value=formula))
        sub = frame.iloc[rows].reset_index(drop=True)
        prepared = _prepare(sub, {}, reference)
        mm = _build(formula, prepared)
    else:
        exclusions = []
    levels: dict[str, tuple[str, ...]] = {}
    single = []
    for col in used:
        series = prepared[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            levels[col] = tuple(series.cat.categories)
            if len(series.cat.categories) < 2:
                single.append(Problem(
                    "a categorical moderator needs at least two levels among the studies used; "
                    f"it only has {', '.join(map(str, series.cat.categories))}",
                    column=col, show_value=False))
    raise_if(single, "the moderators")
    X = np.asarray(mm, dtype=float)
    terms = tuple(INTERCEPT if c == _FORMULAIC_INTERCEPT else str(c) for c in mm.columns)
    nonfinite = []
    for i, j in zip(*np.nonzero(~np.isfinite(X)), strict=True):
        study = labels[rows[i]] if labels is not None else None
        nonfinite.append(Problem("a moderator value must be a finite number", row=int(rows[i]) + 1,
                                 study=study, column=terms[j], value=float(X[i, j])))
    raise_if(nonfinite, "the moderators")
    check_full_rank(X, terms)
    X.flags.writeable = False
    return Design(X, terms, terms[0] == INTERCEPT if terms else False, rows,
                  tuple(exclusions), formula, levels, mm.model_spec)


@dataclass(frozen=True)
class Grouping:
    """Studies grouped by the levels of one column (a subgroup analysis).

    Attributes
    ----------
    variable
        The column.
    levels
        The levels in order (reference first; sorted by default, as R's ``factor``).
    codes
        For each study used, the index of its level.
    rows
        0-based positions, in the caller's data, of the studies used.
    excluded
        Studies left out because their level is missing (``missing="exclude"`` only).
    """

    variable: str
    levels: tuple[Any, ...]
    codes: np.ndarray
    rows: np.ndarray
    excluded: tuple[Exclusion, ...] = ()


def grouping(data: pd.DataFrame | None, variable: Any, *, labels: Sequence[str] | None = None,
             reference: Any = None, missing: str = "error") -> Grouping:
    """Group studies by the column ``variable`` of ``data`` (subgroup analyses).

    ``reference`` chooses the first level (the reference of the moderator test); a missing
    level is an error naming the row unless ``missing="exclude"``.
    """
    if missing not in MISSING_POLICIES:
        raise InputError(Problem(f"missing must be one of {', '.join(MISSING_POLICIES)}",
                                 column="missing", value=missing))
    if data is None or not isinstance(variable, str):
        raise InputError(Problem("subgroup= names a column of data=", column="subgroup",
                                 value=variable))
    if variable not in data.columns:
        raise InputError(Problem(f"no such column in data; available columns: "
                                 f"{', '.join(map(str, data.columns))}",
                                 column="subgroup", value=variable))
    series = data[variable].reset_index(drop=True)
    frame = pd.DataFrame({variable: series})
    bad, problems, exclusions = _missing_problems(frame, [variable], labels, _MISSING_SUBGROUP)
    if bad.any() and missing == "error":
        raise_if(problems, "the subgroups")
    rows = np.flatnonzero(~bad)
    if rows.size == 0:
        raise InputError(Problem("every study has a missing subgroup", column=variable))
    kept = series.iloc[rows]
    if isinstance(kept.dtype, pd.CategoricalDtype):
        present = set(kept)
        levels = [c for c in kept.cat.categories if c in present]
    else:
        levels = _sorted_levels(list(kept))
    if reference is not None:
        if reference not in levels:
            raise InputError(Problem(f"not a level of {variable}; its levels are "
                                     f"{', '.join(map(str, levels))}", column="reference",
                                     value=reference))
        levels = [reference] + [lv for lv in levels if lv != reference]
    index = {lv: i for i, lv in enumerate(levels)}
    codes = np.array([index[x] for x in kept], dtype=int)
    return Grouping(variable, tuple(levels), codes, rows,
                    tuple(exclusions) if bad.any() else ())
