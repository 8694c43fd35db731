"""``read_studies``: a study table file (or DataFrame) in, a validated DataFrame out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, raise_if
from . import checks
from .cells import CellError, infer_column, is_missing, parse_cell, parse_text
from .names import check_user_aliases, map_names
from .schema import DEFAULT_COMPARISON_ID, STUDY_TABLE, Column
from .sources import load

MISSING_POLICIES = ("error", "exclude")


def read_studies(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    sheet: str | int | None = None,
    aliases: Mapping[str, str] | None = None,
    missing: Literal["error", "exclude"] = "error",
    delimiter: str | None = None,
    encoding: str = "utf-8-sig",
) -> pd.DataFrame:
    """Read a study table and validate it against the extraction schema.

    Parameters
    ----------
    source
        A ``.csv``/``.tsv``/``.txt``, ``.xlsx``/``.xlsm`` or ``.parquet`` file, or a
        :class:`pandas.DataFrame`. Neither the file nor the caller's DataFrame is modified. A
        DataFrame whose index is named ``row`` (as returned here) keeps those row numbers; other
        named index levels are read as columns.
    sheet
        Excel only: sheet name or 0-based index (default: the first sheet).
    aliases
        Extra column-name aliases, ``{"your name": "schema column"}``, applied before the
        built-in ones (:data:`bayesmeta.io.schema.ALIASES`).
    missing
        Rows without one complete outcome form: ``"error"`` (default) reports them with the other
        problems; ``"exclude"`` keeps them out of the result and records why in
        ``attrs["excluded"]`` (see :func:`excluded`).
    delimiter
        CSV only: field separator; default: whichever of ``,``, ``;`` and tab the header holds most.
    encoding
        CSV only: text encoding (default UTF-8, with or without a byte-order mark).

    Returns
    -------
    pandas.DataFrame
        One row per (study_id, comparison_id, outcome, follow_up), index ``row`` = 1-based data
        row of the source. Schema columns come first, in schema order and with schema dtypes
        (text: ``string``; categories: ``Categorical`` with the schema's levels; booleans:
        ``boolean``; counts: ``Int64``; numbers: ``float64``), then unknown columns in their
        original order (numbers -> float64, yes/no -> boolean, else string). ``attrs`` holds
        ``source``, ``schema_version``, ``column_aliases`` (``{as written: name used}``),
        ``unknown_columns``, ``excluded`` (``[{row, study_id, reason}]``) and ``blank_rows``.

    Raises
    ------
    InputError
        With every problem of the table at once, each naming row, study, column, value and
        what was expected; its context is the file name.
    FileNotFoundError
        When the path does not exist.

    Notes
    -----
    Schema: ``/work/shared/design/SCHEMA.md`` and :data:`bayesmeta.io.schema.COLUMNS`. Missing
    change-score SDs are *not* imputed here; form A is complete when they can be imputed from form
    B's SDs and ``prepost_r`` (Cochrane Handbook 6.5.2.8), which ``escalc`` then does. There is no
    metafor equivalent (metafor takes vectors, not a validated table).
    """
    argument_problems = check_user_aliases(aliases)
    if missing not in MISSING_POLICIES:
        argument_problems.append(Problem("missing= must be 'error' or 'exclude'",
                                         column="missing", value=missing))
    raise_if(argument_problems, "read_studies arguments")

    raw = load(source, sheet=sheet, delimiter=delimiter, encoding=encoding)
    problems = list(raw.problems)
    names, mapped, name_problems = map_names(raw.header, aliases)
    problems += name_problems
    columns: dict[str, list[Any]] = {}
    for name, values in zip(names, raw.columns, strict=True):
        columns.setdefault(name, values)  # a duplicate was reported by map_names
    if not raw.rows:
        problems.append(Problem("the table has no data rows: add one row per comparison below "
                                "the header"))
    for name in STUDY_TABLE.required:
        if name not in columns:
            problems.append(Problem(
                "a required column is missing; the table has " + (", ".join(names) or "none"),
                column=name))

    cells, cell_problems = _parse(columns, raw.rows)
    problems += cell_problems
    problems += checks.required_cells(cells)
    problems += checks.unique_key(cells)
    problems += checks.events_within_n(cells)
    problems += checks.scales(cells)
    incomplete = checks.outcome_forms(cells)
    if missing == "error":
        problems += [p for _, p in incomplete]
    # Table-level problems first, then row by row (sort is stable: column order within a row).
    problems.sort(key=lambda p: -1 if p.row is None else p.row)
    raise_if(problems, raw.context)

    out_positions = sorted(set(range(cells.n)) - {i for i, _ in incomplete})
    frame = _frame(cells, columns, out_positions)
    frame.attrs.update(
        source=raw.source,
        schema_version=STUDY_TABLE.version,
        column_aliases=mapped,
        unknown_columns=[n for n in columns if n not in STUDY_TABLE],
        excluded=[{"row": p.row, "study_id": p.study, "reason": p.expected} for _, p in incomplete],
        blank_rows=list(raw.blank_rows),
    )
    return frame


def excluded(table: pd.DataFrame) -> pd.DataFrame:
    """The rows :func:`read_studies` kept out (``missing="exclude"``), with the reason for each.

    Returns a DataFrame with columns ``row`` (1-based data row of the source), ``study_id`` and
    ``reason``; empty when nothing was excluded.

    Raises
    ------
    InputError
        When ``table`` does not carry ``attrs["excluded"]`` (it was not returned by
        :func:`read_studies`, or an operation such as ``merge`` dropped its ``attrs``).
    """
    if not isinstance(table, pd.DataFrame) or "excluded" not in table.attrs:
        raise InputError(Problem(
            "expected a table returned by read_studies: attrs['excluded'] is missing (merge, "
            "concat and some other pandas operations drop attrs; read the file again)",
            column="table", value=type(table).__name__))
    return pd.DataFrame(table.attrs["excluded"], columns=["row", "study_id", "reason"])


def _parse(columns: dict[str, list[Any]], rows: tuple[int, ...]
           ) -> tuple[checks.Cells, list[Problem]]:
    n = len(rows)
    labels = [None if is_missing(v) else parse_text(v) for v in columns.get("study_id", [None] * n)]
    values: dict[str, list[Any]] = {}
    bad: dict[str, set[int]] = {}
    problems = []
    for column in STUDY_TABLE.columns:
        if column.name not in columns:
            continue
        parsed, failed = [], set()
        for i, value in enumerate(columns[column.name]):
            if is_missing(value):
                parsed.append(None)
                continue
            try:
                parsed.append(parse_cell(column, value))
            except CellError as exc:
                parsed.append(None)
                failed.add(i)
                problems.append(Problem(str(exc), row=rows[i], study=labels[i] or None,
                                        column=column.name, value=value))
        values[column.name], bad[column.name] = parsed, failed
    # comparison_id defaults to "1" (SCHEMA.md); a table without the column gets it too.
    values["comparison_id"] = [DEFAULT_COMPARISON_ID if v is None else v
                               for v in values.get("comparison_id", [None] * n)]
    bad.setdefault("comparison_id", set())
    return checks.Cells(values=values, bad=bad, rows=rows), problems


def _frame(cells: checks.Cells, columns: dict[str, list[Any]], keep: list[int]) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for column in STUDY_TABLE.columns:
        if column.name in cells.values:
            data[column.name] = _typed([cells.values[column.name][i] for i in keep], column)
    for name, raw in columns.items():
        if name not in STUDY_TABLE:
            values, dtype = infer_column(raw)
            data[name] = pd.array([values[i] for i in keep], dtype=dtype)
    index = pd.Index(np.asarray([cells.rows[i] for i in keep], dtype=np.int64), name="row")
    return pd.DataFrame(data, index=index)


def _typed(values: list[Any], column: Column) -> Any:
    if column.kind == "number":
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if column.kind != "category":
        return pd.array(values, dtype={"text": "string", "integer": "Int64",
                                       "boolean": "boolean"}[column.kind])
    if column.closed:
        levels = list(column.levels)
    else:
        # open category: the schema's suggested levels that occur (in schema order), then others
        present = {v for v in values if v is not None}
        levels = [lv for lv in column.levels if lv in present]
        levels += sorted(present - set(levels))
    return pd.Categorical(values, categories=levels)
