"""Checks across the cells of a row (and across rows): key, required cells, counts, scales and
outcome forms. Single cells were parsed and range-checked before (:mod:`bayesmeta.io.cells`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from .schema import (
    CHANGE_MEANS,
    CUSTOM_INSTRUMENT,
    EVENTS_WITHIN,
    INSTRUMENT_RANGES,
    LEVEL_MEANS,
    STUDY_TABLE,
    Form,
)


@dataclass(frozen=True)
class Cells:
    """Parsed cells of a table: ``values[column][i]`` (``None`` when missing or unparseable),
    ``bad[column]`` the positions whose cell could not be parsed (already reported)."""

    values: dict[str, list[Any]]
    bad: dict[str, set[int]]
    rows: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.rows)

    def get(self, column: str, i: int) -> Any:
        return self.values[column][i] if column in self.values else None

    def filled(self, column: str, i: int) -> bool:
        """A value is there, valid or not (an invalid one is reported once, as invalid)."""
        return self.get(column, i) is not None or i in self.bad.get(column, ())

    def study(self, i: int) -> str | None:
        return self.get("study_id", i)

    def problem(self, i: int, column: str | None, value: Any, expected: str,
                show_value: bool = True) -> Problem:
        return Problem(expected, row=self.rows[i], study=self.study(i), column=column,
                       value=value, show_value=show_value)


def required_cells(cells: Cells) -> list[Problem]:
    return [
        cells.problem(i, name, None, f"{STUDY_TABLE[name].noun} is required")
        for i in range(cells.n)
        for name in STUDY_TABLE.required
        if name in cells.values and not cells.filled(name, i)
    ]


def unique_key(cells: Cells) -> list[Problem]:
    key = STUDY_TABLE.key
    if not all(name in cells.values for name in key):
        return []
    seen: dict[tuple[Any, ...], int] = {}
    problems = []
    for i in range(cells.n):
        values = tuple(cells.get(name, i) for name in key)
        if any(v is None for v in values):
            continue  # reported as missing or invalid
        if values in seen:
            problems.append(cells.problem(
                i, ", ".join(key), ", ".join(values),
                f"the same key as row {cells.rows[seen[values]]}; the key must be unique (a "
                "multi-arm trial gives each comparison its own comparison_id)"))
        else:
            seen[values] = i
    return problems


def events_within_n(cells: Cells) -> list[Problem]:
    problems = []
    for events, n in EVENTS_WITHIN:
        for i in range(cells.n):
            e, total = cells.get(events, i), cells.get(n, i)
            if e is not None and total is not None and e > total:
                problems.append(cells.problem(
                    i, events, e, f"events cannot exceed the arm's {n} ({total})"))
    return problems


def scales(cells: Cells) -> list[Problem]:
    """Scale ends for ``custom``, consistent ends, and means inside the instrument's range."""
    problems = []
    for i in range(cells.n):
        instrument = cells.get("instrument", i)
        low, high = cells.get("scale_min", i), cells.get("scale_max", i)
        if low is not None and high is not None and low >= high:
            problems.append(cells.problem(
                i, "scale_max", high, f"scale_max must be greater than scale_min ({low:g})"))
            continue
        span: tuple[float, float] | None = None
        label = ""
        if instrument in INSTRUMENT_RANGES:
            span = INSTRUMENT_RANGES[instrument]
            label = instrument
            for column, end in zip(("scale_min", "scale_max"), span, strict=True):
                given = cells.get(column, i)
                if given is not None and given != end:
                    problems.append(cells.problem(
                        i, column, given, f"{instrument} runs from {span[0]:g} to {span[1]:g}; "
                        f"leave {column} empty or use instrument custom"))
        elif instrument == CUSTOM_INSTRUMENT or (instrument is None
                                                 and not cells.filled("instrument", i)):
            for column in ("scale_min", "scale_max"):
                if instrument == CUSTOM_INSTRUMENT and not cells.filled(column, i):
                    problems.append(cells.problem(
                        i, column, None, "instrument custom needs scale_min and scale_max"))
            if low is not None and high is not None:
                span, label = (low, high), "the custom scale"
        if span is not None:
            problems += _means_in_range(cells, i, span, label)
    return problems


def _means_in_range(cells: Cells, i: int, span: tuple[float, float], label: str) -> list[Problem]:
    low, high = span
    width = high - low
    out = []
    for column in LEVEL_MEANS:
        value = cells.get(column, i)
        if value is not None and not low <= value <= high:
            out.append(cells.problem(
                i, column, value, f"a mean on {label} must be between {low:g} and {high:g}"))
    for column in CHANGE_MEANS:
        value = cells.get(column, i)
        if value is not None and abs(value) > width:
            out.append(cells.problem(
                i, column, value,
                f"a mean change on {label} must be between {-width:g} and {width:g}"))
    return out


def _unmet(cells: Cells, i: int, form: Form) -> list[tuple[tuple[str, ...], ...]]:
    return [alternatives for alternatives in form.needs
            if not any(all(cells.filled(c, i) for c in alt) for alt in alternatives)]


def _needs_text(alternatives: tuple[tuple[str, ...], ...]) -> str:
    def words(columns: tuple[str, ...]) -> str:
        return columns[0] if len(columns) == 1 else (
            ", ".join(columns[:-1]) + " and " + columns[-1])

    first, *others = alternatives
    return words(first) + "".join(f" (or {words(alt)})" for alt in others)


def outcome_forms(cells: Cells) -> list[tuple[int, Problem]]:
    """Rows with no complete outcome form, each with the problem that says what is missing.

    The message names the closest form (fewest missing requirements among the forms whose own
    columns the row has started to fill; n1/n2 alone start none), so the user sees the cells
    to add.
    """
    forms = STUDY_TABLE.forms
    own = {f.name: [c for c in f.columns
                    if not any(c in g.columns for g in forms if g is not f)] for f in forms}
    every = list(dict.fromkeys(c for f in forms for c in f.columns))
    listing = ", ".join(f"{f.name} ({f.meaning}: {f.summary})" for f in forms)
    out = []
    for i in range(cells.n):
        started = []
        for form in forms:
            unmet = _unmet(cells, i, form)
            if not unmet:
                break
            if any(cells.filled(c, i) for c in own[form.name]):
                started.append((len(unmet), form, unmet))
        else:
            if started:
                _, form, unmet = min(started, key=lambda s: s[0])
                columns = ", ".join(dict.fromkeys(c for alts in unmet for c in alts[0]))
                needs = ", ".join(_needs_text(alts) for alts in unmet)
                problem = cells.problem(
                    i, columns, None, f"incomplete outcome data: form {form.name} "
                    f"({form.meaning}) also needs {needs}, and no other form is complete")
            else:
                given = [c for c in every if cells.filled(c, i)]
                what = (f"no complete outcome form (only {', '.join(given)} given)" if given
                        else "no outcome data")
                problem = cells.problem(i, None, None, f"{what}; fill one complete outcome "
                                        f"form: {listing}", show_value=False)
            out.append((i, problem))
    return out
