"""Read escalc's keyword arguments (column names of ``data`` or arrays) into float arrays.

Every value is parsed once; each unreadable value, unknown column and length mismatch becomes a
:class:`~bayesmeta.errors.Problem` naming row, study, column and value, collected rather than
raised one at a time. Missing values (NA, None, NaN, empty text) become NaN here and are judged
by the caller, which knows whether the value was needed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import Problem
from ..inputs import row_labels

__all__ = ["Field", "ArgumentReader", "row_labels", "is_missing"]


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA/NaT and blank text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _to_float(value: Any) -> float | None:
    """A float, NaN for a missing value, or None when the value is not a number."""
    if is_missing(value):
        return np.nan
    if isinstance(value, bool | np.bool_):
        return None  # True/False in a numeric column is a data-entry slip, not 1/0
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


@dataclass
class Field:
    """One input as floats, with the column each row's value came from (for messages)."""

    values: np.ndarray
    source: np.ndarray  # object array of column names, one per row

    @classmethod
    def constant_source(cls, values: np.ndarray, name: str) -> Field:
        return cls(np.asarray(values, dtype=float), np.full(len(values), name, dtype=object))


@dataclass
class ArgumentReader:
    """Turns keyword values into :class:`Field` objects and collects problems.

    Parameters
    ----------
    data
        The caller's table, or ``None`` when arrays are passed.
    labels
        Study label per row for messages; by default taken from ``data`` (study_id, label or
        the index) when it has any.

    Problems accumulate in ``problems``; ``lengths`` and ``sources`` record, per keyword, how
    many values it had and which column (or ``"array"``) it came from.
    """

    data: pd.DataFrame | None
    labels: tuple[str, ...] | None = None
    problems: list[Problem] = field(default_factory=list)
    lengths: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = row_labels(self.data)

    def study(self, row: int) -> str | None:
        if self.labels is not None and row < len(self.labels):
            return self.labels[row]
        return None

    def problem(self, expected: str, row: int | None, column: str | None, value: Any) -> None:
        """Record a problem; ``row`` is 0-based here and reported 1-based."""
        self.problems.append(
            Problem(expected, row=None if row is None else row + 1,
                    study=None if row is None else self.study(row), column=column, value=value)
        )

    def read(self, keyword: str, value: Any, *, scalar_ok: bool = False) -> Field | None:
        """Resolve one keyword; ``None`` (with a recorded problem) when it cannot be read."""
        if isinstance(value, str):
            if self.data is None:
                self.problem(f"{keyword}= names a column but no data= table was given; pass "
                             f"data= or an array", None, keyword, value)
                return None
            if value not in self.data.columns:
                self.problem(f"{keyword}= names a column that is not in data; available "
                             f"columns: {', '.join(map(str, self.data.columns))}",
                             None, keyword, value)
                return None
            raw = self.data[value].to_numpy(dtype=object)
            name = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
            if not scalar_ok:
                self.problem(f"{keyword}= needs one value per study (a column name of data or "
                             f"an array), not a single number", None, keyword, value)
                return None
            self.sources[keyword] = "scalar"
            return Field.constant_source(np.array([float(value)]), keyword)
        else:
            try:
                raw = np.asarray(value, dtype=object).ravel()
            except (TypeError, ValueError):
                self.problem(f"{keyword}= must be a column name or a sequence of numbers",
                             None, keyword, type(value).__name__)
                return None
            if np.asarray(value, dtype=object).ndim != 1:
                self.problem(f"{keyword}= must be one-dimensional (one value per study)",
                             None, keyword, f"shape {np.shape(value)}")
                return None
            name = keyword
        out = np.empty(raw.size, dtype=float)
        for i, r in enumerate(raw):
            f = _to_float(r)
            if f is None:
                self.problem("expected a number", i, name, r)
                out[i] = np.nan
            else:
                out[i] = f
        self.lengths[keyword] = raw.size
        self.sources[keyword] = name if isinstance(value, str) else "array"
        return Field.constant_source(out, name)

    def check_lengths(self) -> int | None:
        """The common number of studies, or ``None`` after recording a mismatch or emptiness."""
        if self.data is not None:
            k = len(self.data)
            reference = "data"
        elif self.lengths:
            reference, k = next(iter(self.lengths.items()))
        else:
            return None
        ok = True
        for keyword, n in self.lengths.items():
            if n != k:
                what = f"data has {k} rows" if reference == "data" else f"{reference} has {k}"
                self.problem(f"{keyword} has {n} values but {what}; every input needs one "
                             f"value per study", None, keyword, n)
                ok = False
        if ok and k == 0:
            self.problem("no studies: the input is empty", None,
                         "data" if self.data is not None else next(iter(self.lengths)), 0)
            return None
        return k if ok else None
