"""Normalise pain and disability scores to the 0-10 VAS used by the review.

The review (Fleckenstein et al. 2022) expresses every pain and disability score on a 0-10 visual
analogue scale, 0 = no burden, 10 = maximum burden, so that mean differences are in VAS points
and comparable with the minimal clinically important difference. The map is linear::

    means:    vas = 10 (x - min) / (max - min), mirrored to 10 - vas if higher is better
    SDs:      vas = 10 x / (max - min)  (scale only: an SD has no origin)
    changes:  vas = 10 x / (max - min)  (a difference has no origin; sign flipped if higher
              is better)

Normalise BEFORE ``escalc`` so that MD is in VAS points; SMD is unchanged by a linear map up to
the direction, which ``higher_is_worse`` fixes. A value outside the instrument's range is an
error, never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, raise_if
from ..io.schema import CUSTOM_INSTRUMENT, INSTRUMENT_RANGES
from .columns import is_missing, row_labels

__all__ = ["Instrument", "INSTRUMENTS", "VAS_RANGE", "to_vas", "from_vas", "table_to_vas",
           "TABLE_COLUMNS"]

#: the target scale
VAS_RANGE = (0.0, 10.0)


@dataclass(frozen=True)
class Instrument:
    """A bounded linear rating scale: name, minimum, maximum, description."""

    name: str
    minimum: float
    maximum: float
    description: str

    @property
    def width(self) -> float:
        return self.maximum - self.minimum


# The ranges live in the study-table schema (the lower layer, which validates them on reading);
# this layer adds what converting needs.
_DESCRIPTIONS = {
    "VAS_0_10": "visual analogue scale, 0-10 cm",
    "VAS_0_100": "visual analogue scale, 0-100 mm",
    "NRS_0_10": "numeric rating scale, 0-10",
    "RMDQ_0_24": "Roland-Morris Disability Questionnaire, 0-24",
    "ODI_0_100": "Oswestry Disability Index, 0-100 %",
}
INSTRUMENTS: dict[str, Instrument] = {
    name: Instrument(name, lo, hi, _DESCRIPTIONS[name])
    for name, (lo, hi) in INSTRUMENT_RANGES.items()
}
_CUSTOM = CUSTOM_INSTRUMENT
_KINDS = {"mean": "a mean or single score", "sd": "a standard deviation",
          "change": "a change or a difference of means"}

#: study-table columns converted by :func:`table_to_vas`, by kind
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "mean": ("baseline_mean1", "baseline_mean2", "post_mean1", "post_mean2"),
    "change": ("change_mean1", "change_mean2"),
    "sd": ("baseline_sd1", "baseline_sd2", "post_sd1", "post_sd2", "change_sd1", "change_sd2"),
}


def _known() -> str:
    return ", ".join([*INSTRUMENTS, _CUSTOM])


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def resolve_instrument(
    instrument: Any, scale_min: Any = None, scale_max: Any = None, *,
    row: int | None = None, study: str | None = None,
) -> tuple[Instrument | None, list[Problem]]:
    """The :class:`Instrument` meant, or problems (unknown name, custom without a valid range)."""
    problems: list[Problem] = []
    name = instrument.strip() if isinstance(instrument, str) else instrument
    if isinstance(name, str) and name in INSTRUMENTS:
        inst = INSTRUMENTS[name]
        for given, bound, label in ((scale_min, inst.minimum, "scale_min"),
                                    (scale_max, inst.maximum, "scale_max")):
            if not is_missing(given) and _number(given) != bound:
                problems.append(Problem(f"{inst.name} runs from {inst.minimum:g} to "
                                        f"{inst.maximum:g}; use instrument 'custom' for another "
                                        f"range", row=row, study=study, column=label, value=given))
        return (None if problems else inst), problems
    if isinstance(name, str) and name.lower() == _CUSTOM:
        for given, label in ((scale_min, "scale_min"), (scale_max, "scale_max")):
            if is_missing(given):
                problems.append(Problem("a custom instrument needs scale_min and scale_max",
                                        row=row, study=study, column=label, value=None))
            elif not isinstance(given, int | float | np.integer | np.floating) or isinstance(
                    given, bool) or not np.isfinite(float(given)):
                problems.append(Problem("expected a finite number", row=row, study=study,
                                        column=label, value=given))
        if problems:
            return None, problems
        lo, hi = float(scale_min), float(scale_max)
        if not lo < hi:
            problems.append(Problem(f"scale_max must be larger than scale_min ({lo:g})",
                                    row=row, study=study, column="scale_max", value=hi))
            return None, problems
        return Instrument(_CUSTOM, lo, hi, f"custom linear scale {lo:g}-{hi:g}"), problems
    if is_missing(name):
        problems.append(Problem(f"an instrument is needed; known instruments: {_known()}", row=row,
                                study=study, column="instrument", value=None))
    else:
        problems.append(Problem(f"unknown instrument; known instruments: {_known()} (for "
                                f"another linear scale use 'custom' with scale_min and "
                                f"scale_max)", row=row, study=study, column="instrument",
                                value=instrument))
    return None, problems


def _as_array(values: Any) -> tuple[np.ndarray, Any]:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=object), ("series", values.index, values.name)
    if np.ndim(values) == 0:
        return np.asarray([values], dtype=object), ("scalar",)
    return np.asarray(values, dtype=object).ravel(), ("array",)


def _restore(out: np.ndarray, kind: Any) -> Any:
    if kind[0] == "series":
        return pd.Series(out, index=kind[1], name=kind[2])
    if kind[0] == "scalar":
        return float(out[0])
    return out


def _convert(
    raw: np.ndarray, inst: Instrument, higher_is_worse: bool, kind: str, inverse: bool,
    column: str, labels: tuple[str, ...] | None, rows: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Problem]]:
    problems: list[Problem] = []
    lo, hi = (VAS_RANGE if inverse else (inst.minimum, inst.maximum))
    scale = inst.width / (VAS_RANGE[1] - VAS_RANGE[0])
    factor = scale if inverse else 1.0 / scale
    out = np.full(raw.size, np.nan)
    for j, v in enumerate(raw):
        i = j if rows is None else int(rows[j])
        where = {"row": i + 1, "study": None if labels is None else labels[i], "column": column}
        if is_missing(v):
            continue
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer
                                                          | np.floating | str):
            problems.append(Problem("expected a number", value=v, **where))
            continue
        try:
            x = float(v)
        except ValueError:
            problems.append(Problem("expected a number", value=v, **where))
            continue
        name = "the 0-10 VAS" if inverse else inst.name
        if kind == "mean" and not lo <= x <= hi:
            problems.append(Problem(f"outside the range {lo:g} to {hi:g} of {name}",
                                    value=x, **where))
            continue
        if kind == "sd" and not 0 <= x <= hi - lo:
            problems.append(Problem(f"a standard deviation on {name} must be between 0 and "
                                    f"{hi - lo:g} (the width of its range {lo:g} to {hi:g})",
                                    value=x, **where))
            continue
        if kind == "change" and not abs(x) <= hi - lo:
            problems.append(Problem(f"a change on {name} must be between {lo - hi:g} and "
                                    f"{hi - lo:g} (range {lo:g} to {hi:g})", value=x, **where))
            continue
        if kind == "mean":
            if inverse:
                x = VAS_RANGE[1] - x if not higher_is_worse else x
                y = inst.minimum + (x - VAS_RANGE[0]) * factor
                target = (inst.minimum, inst.maximum)
            else:
                y = VAS_RANGE[0] + (x - inst.minimum) * factor
                y = VAS_RANGE[1] - y if not higher_is_worse else y
                target = VAS_RANGE
            # x was checked to lie in range, so anything outside the target is rounding only
            out[j] = min(max(y, target[0]), target[1])
        elif kind == "change":
            out[j] = x * factor * (1.0 if higher_is_worse else -1.0)
        else:
            out[j] = x * factor
    return out, problems


def _check_options(kind: Any, higher_is_worse: Any) -> None:
    problems = []
    if kind not in _KINDS:
        problems.append(Problem("kind must be one of: " + "; ".join(
            f"{k!r} ({v})" for k, v in _KINDS.items()), column="kind", value=kind))
    if not isinstance(higher_is_worse, bool | np.bool_):
        problems.append(Problem("higher_is_worse must be True or False", column="higher_is_worse",
                                value=higher_is_worse))
    raise_if(problems)


def to_vas(
    values: Any,
    instrument: str,
    *,
    scale_min: float | None = None,
    scale_max: float | None = None,
    higher_is_worse: bool = True,
    kind: str = "mean",
    column: str = "values",
    labels: Any = None,
) -> Any:
    """Convert scores of a bounded linear instrument to the 0-10 VAS (0 = no burden).

    Parameters
    ----------
    values
        A number, an array or a pandas Series (the result has the same form). Missing values
        stay missing.
    instrument
        ``"VAS_0_10"``, ``"VAS_0_100"``, ``"NRS_0_10"``, ``"RMDQ_0_24"`` (Roland-Morris
        Disability Questionnaire), ``"ODI_0_100"`` (Oswestry Disability Index), or ``"custom"``
        with ``scale_min`` and ``scale_max``.
    scale_min, scale_max
        The instrument's range; required for ``"custom"``, optional (must then agree) otherwise.
    higher_is_worse
        ``True`` when a higher score means more burden (pain and disability scales). ``False``
        mirrors the scale so that on the VAS higher is still worse.
    kind
        ``"mean"`` (a score or mean: shifted and scaled), ``"sd"`` (scaled only) or
        ``"change"`` (a change or difference: scaled, sign flipped if higher is better).
    column, labels
        Names used in error messages: the column the values came from and, optionally, one
        study label per value.

    Raises
    ------
    InputError
        Unknown instrument (listing the known ones), custom without range, or a value outside
        the instrument's range, naming row, column, value and range.
    """
    return _vas_conversion(values, instrument, scale_min, scale_max, higher_is_worse, kind,
                           False, column, labels)


def from_vas(
    values: Any,
    instrument: str,
    *,
    scale_min: float | None = None,
    scale_max: float | None = None,
    higher_is_worse: bool = True,
    kind: str = "mean",
    column: str = "values",
) -> Any:
    """The inverse of :func:`to_vas`: 0-10 VAS values back on the instrument's own scale."""
    return _vas_conversion(values, instrument, scale_min, scale_max, higher_is_worse, kind,
                           True, column, None)


def _vas_conversion(values: Any, instrument: str, scale_min: float | None,
                    scale_max: float | None, higher_is_worse: bool, kind: str, inverse: bool,
                    column: str, labels: Any) -> Any:
    """:func:`to_vas` (``inverse=False``) or :func:`from_vas` (``inverse=True``)."""
    _check_options(kind, higher_is_worse)
    inst, problems = resolve_instrument(instrument, scale_min, scale_max)
    raise_if(problems)
    assert inst is not None
    raw, form = _as_array(values)
    labs = None if labels is None else tuple(str(s) for s in labels)
    out, problems = _convert(raw, inst, bool(higher_is_worse), kind, inverse, column, labs)
    raise_if(problems, "the conversion from the 0-10 VAS" if inverse
             else f"the conversion of {inst.name} to the 0-10 VAS")
    return _restore(out, form)


def _parse_bool(value: Any, default: bool) -> bool | None:
    if is_missing(value):
        return default
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    return None


def table_to_vas(table: pd.DataFrame, *, higher_is_worse: bool = True) -> pd.DataFrame:
    """Normalise every outcome column of a study table (SCHEMA.md) to the 0-10 VAS, row by row.

    Each row's ``instrument`` (with ``scale_min``/``scale_max`` for ``custom`` and its own
    ``higher_is_worse``, default ``higher_is_worse``) says how its means (``baseline_mean*``,
    ``post_mean*``), changes (``change_mean*``) and SDs (``*_sd*``) are converted. Form-C rows
    (``yi``/``vi`` without arm data) are converted when their ``measure`` is MD (yi scaled, vi
    scaled squared) or SMD/SMDH (sign only). Returns a new table with ``instrument`` set to
    ``VAS_0_10``, the original in ``instrument_original``, ``higher_is_worse`` set to True, and
    ``attrs["to_vas"]`` recording each row's conversion. All problems are raised together.
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(Problem("expected a pandas DataFrame (the study table)", column="table",
                                 value=type(table).__name__))
    _check_options("mean", higher_is_worse)
    labels = row_labels(table)
    out = table.copy()
    k = len(out)
    problems: list[Problem] = []
    present = {kind: [c for c in cols if c in out.columns] for kind, cols in TABLE_COLUMNS.items()}
    outcome_cols = [c for cols in present.values() for c in cols]
    has_effect = "yi" in out.columns
    converted = {c: pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float).copy()
                 for c in outcome_cols}
    yi = vi = None
    if has_effect:
        yi = pd.to_numeric(out["yi"], errors="coerce").to_numpy(dtype=float).copy()
        vi = (pd.to_numeric(out["vi"], errors="coerce").to_numpy(dtype=float).copy()
              if "vi" in out.columns else None)
    records = []
    col = {name: (out[name].to_numpy(dtype=object) if name in out.columns else np.full(k, None))
           for name in ("instrument", "scale_min", "scale_max", "higher_is_worse", "measure")}
    for i in range(k):
        study = None if labels is None else labels[i]
        has_values = any(not is_missing(out[c].iloc[i]) for c in outcome_cols)
        has_yi = has_effect and not is_missing(out["yi"].iloc[i]) and not has_values
        if not has_values and not has_yi:
            continue
        if "instrument" not in out.columns:
            problems.append(Problem(f"the table has no instrument column; known instruments: "
                                    f"{_known()}", column="instrument", value=None,
                                    show_value=False))
            break
        inst, found = resolve_instrument(col["instrument"][i], col["scale_min"][i],
                                         col["scale_max"][i], row=i + 1, study=study)
        worse = _parse_bool(col["higher_is_worse"][i], bool(higher_is_worse))
        if worse is None:
            found.append(Problem("higher_is_worse must be true or false", row=i + 1, study=study,
                                 column="higher_is_worse", value=col["higher_is_worse"][i]))
        problems += found
        if found or inst is None or worse is None:
            continue
        for kind, cols in present.items():
            for c in cols:
                value, bad = _convert(out[c].to_numpy(dtype=object)[i:i + 1], inst, worse, kind,
                                      False, c, labels, rows=np.array([i]))
                problems += bad
                converted[c][i] = value[0]
        factor = (VAS_RANGE[1] - VAS_RANGE[0]) / inst.width
        if has_yi:
            measure = col["measure"][i]
            measure = measure.strip() if isinstance(measure, str) else measure
            if measure == "MD":
                yi[i] = yi[i] * factor * (1.0 if worse else -1.0)
                if vi is not None:
                    vi[i] = vi[i] * factor**2
            elif measure in ("SMD", "SMDH"):
                yi[i] = yi[i] * (1.0 if worse else -1.0)
            else:
                problems.append(Problem("a row with only yi/vi can be normalised when its "
                                        "measure is MD, SMD or SMDH", row=i + 1, study=study,
                                        column="measure", value=measure))
                continue
        records.append({"row": i + 1, "study": study, "instrument": inst.name,
                        "scale_min": inst.minimum, "scale_max": inst.maximum,
                        "higher_is_worse": worse, "factor": factor})
    raise_if(problems, "the conversion of the study table to the 0-10 VAS")
    for c, values in converted.items():
        out[c] = values
    if has_effect and yi is not None:
        out["yi"] = yi
        if vi is not None:
            out["vi"] = vi
    converted_rows = [r["row"] - 1 for r in records]
    if "instrument" in out.columns:
        original = out["instrument"].to_numpy(dtype=object).copy()
        new = original.copy()
        new[converted_rows] = "VAS_0_10"
        out["instrument_original"] = original
        out["instrument"] = new
        for name, value in (("scale_min", VAS_RANGE[0]), ("scale_max", VAS_RANGE[1]),
                            ("higher_is_worse", True)):
            if name in out.columns:
                values = out[name].to_numpy(dtype=object).copy()
                values[converted_rows] = value
                out[name] = values
    out.attrs["to_vas"] = records
    return out
