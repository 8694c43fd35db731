"""Resolve and validate the (yi, vi) input shared by every model entry point.

``rma`` and ``bayes_rma`` both accept ``yi``/``vi`` as arrays or as column names of ``data``
(metafor's convention). This module turns either form into an :class:`EffectData`, checking
every value once, so the engines beneath receive clean float arrays and never see NaN. The one
row left out is a study :func:`bayesmeta.escalc` itself set to NaN and recorded as dropped
(``drop00=True``): it is warned about and listed in :attr:`EffectData.excluded`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, Problem, raise_if, warn

#: ``DataFrame.attrs`` key under which :func:`bayesmeta.escalc` records the effect measure
MEASURE_ATTR = "measure"
#: ``DataFrame.attrs`` key of escalc's record (``attrs["escalc"]["dropped"]``: rows set to NaN
#: by ``drop00=True``, each ``{"row": 1-based row, "study": label, "reason": text}``)
ESCALC_ATTR = "escalc"


@dataclass(frozen=True)
class ExcludedStudy:
    """A study left out of the model because escalc recorded it as dropped.

    Attributes
    ----------
    row
        1-based row of the caller's ``data``.
    study
        The study label (as escalc recorded it), or ``None``.
    columns
        The effect-size columns that hold no value for it (``yi``, ``vi``).
    reason
        Why escalc dropped it, e.g. ``"no events in either arm (drop00=True)"``.
    """

    row: int
    study: str | None
    columns: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        who = f"row {self.row}" + (f" ({self.study})" if self.study else "")
        return (f"{who}: {self.reason}; escalc set {'/'.join(self.columns)} to NaN, so the "
                f"study is left out of the model (as metafor does)")

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "study": self.study, "columns": list(self.columns),
                "reason": self.reason}


@dataclass(frozen=True)
class EffectData:
    """Validated effect sizes of k studies.

    Attributes
    ----------
    yi, vi
        Observed effects and their sampling variances (metafor's ``yi``/``vi``), float arrays.
    labels
        One unique label per study (study_id, plus comparison_id where a study has several).
    measure
        The effect measure recorded by ``escalc`` (``"SMD"``, ``"OR"``, ...), or ``None``.
    rows
        The positions (0-based) of these studies in the caller's ``data``, for error messages
        and for aligning moderators.
    data
        The caller's table restricted to ``rows`` (``None`` when arrays were passed), with a
        fresh 0..k-1 index and the caller's ``attrs``.
    excluded
        Studies of ``data`` left out because escalc recorded them as dropped
        (``escalc(..., drop00=True)``); empty otherwise. Each was also issued as a warning.
    """

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    measure: str | None = None
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    data: pd.DataFrame | None = None
    excluded: tuple[ExcludedStudy, ...] = ()

    @property
    def k(self) -> int:
        return int(self.yi.size)

    @property
    def sei(self) -> np.ndarray:
        return np.sqrt(self.vi)


def _column_or_array(
    value: Any, name: str, data: pd.DataFrame | None, problems: list[Problem]
) -> np.ndarray | None:
    if isinstance(value, str):
        if data is None:
            problems.append(
                Problem(
                    "a column name was given but no data=; pass data= or an array",
                    column=name,
                    value=value,
                )
            )
            return None
        if value not in data.columns:
            problems.append(
                Problem(
                    "no such column in data; available columns: "
                    + ", ".join(map(str, data.columns)),
                    column=name,
                    value=value,
                )
            )
            return None
        value = data[value]
    try:
        arr = np.asarray(pd.to_numeric(pd.Series(np.asarray(value, dtype=object).ravel()),
                                       errors="coerce"), dtype=float)
    except (TypeError, ValueError):
        problems.append(Problem("expected a sequence of numbers", column=name,
                                value=str(value)[:40]))
        return None
    raw = np.asarray(value, dtype=object).ravel()
    for i, (a, r) in enumerate(zip(arr, raw, strict=True)):
        if np.isnan(a) and not (r is None or (isinstance(r, float) and np.isnan(r))
                                or r is pd.NA):
            problems.append(Problem("expected a number", row=i + 1, column=name, value=r))
    return arr


def study_labels(data: pd.DataFrame | None, k: int, labels: Any = None) -> tuple[str, ...]:
    """Unique study labels: explicit ``labels``, else study_id(+comparison_id), else 1..k."""
    if labels is not None:
        if isinstance(labels, str) and data is not None and labels in data.columns:
            out = [str(x) for x in data[labels]]
        else:
            out = [str(x) for x in labels]
    elif data is not None and "study_id" in data.columns:
        out = [str(x) for x in data["study_id"]]
        if len(set(out)) < len(out) and "comparison_id" in data.columns:
            out = [f"{s} [{c}]" for s, c in zip(out, data["comparison_id"], strict=True)]
        for extra in ("outcome", "follow_up"):
            if len(set(out)) < len(out) and extra in data.columns:
                out = [f"{s} {e}" for s, e in zip(out, data[extra], strict=True)]
    elif data is not None and "label" in data.columns:
        out = [str(x) for x in data["label"]]
    elif data is not None and not isinstance(data.index, pd.RangeIndex):
        out = [str(x) for x in data.index]
    else:
        out = [f"study {i + 1}" for i in range(k)]
    # Labels address studies in the accessor vocabulary, so they must be unique.
    seen: dict[str, int] = {}
    unique = []
    for lab in out:
        if lab in seen:
            seen[lab] += 1
            unique.append(f"{lab} #{seen[lab]}")
        else:
            seen[lab] = 1
            unique.append(lab)
    return tuple(unique)


def row_labels(data: pd.DataFrame | None) -> tuple[str, ...] | None:
    """Study labels of ``data`` rows when the table carries any (study_id, label, index)."""
    if data is None:
        return None
    informative = ("study_id" in data.columns or "label" in data.columns
                   or not isinstance(data.index, pd.RangeIndex))
    return study_labels(data, len(data)) if informative else None


def _dropped_entries(data: pd.DataFrame | None) -> list[Mapping[str, Any]]:
    record = None if data is None else data.attrs.get(ESCALC_ATTR)
    if not isinstance(record, Mapping):
        return []
    return [e for e in record.get("dropped") or () if isinstance(e, Mapping)]


def _escalc_dropped(
    data: pd.DataFrame | None, y: np.ndarray, v: np.ndarray, columns: tuple[str, str]
) -> tuple[dict[int, ExcludedStudy], list[Mapping[str, Any]]]:
    """Rows escalc set to NaN on purpose (drop00=True), matched to this table.

    An entry of ``attrs["escalc"]["dropped"]`` counts only where its row still holds NaN in
    both yi and vi and carries the study label escalc recorded: ``attrs`` survive filtering and
    reordering, and a stale row number must never exclude a different study.
    """
    entries = _dropped_entries(data)
    if not entries:
        return {}, []
    assert data is not None
    labels = row_labels(data)
    matched: dict[int, ExcludedStudy] = {}
    stale = []
    for entry in entries:
        row, study = entry.get("row"), entry.get("study")
        i = row - 1 if isinstance(row, int | np.integer) else -1
        ok = (0 <= i < y.size and np.isnan(y[i]) and np.isnan(v[i])
              and (study is None or labels is None or labels[i] == study))
        if ok:
            matched[int(i)] = ExcludedStudy(int(row), None if study is None else str(study),
                                            columns, str(entry.get("reason", "dropped by escalc")))
        else:
            stale.append(entry)
    return matched, stale


def _drop00_hint(entries: list[Mapping[str, Any]]) -> str:
    """Why a NaN row of an escalc table with drop00 exclusions was not excluded."""
    rows = ", ".join(f"{e.get('row')}" + (f" ({e.get('study')})" if e.get("study") else "")
                     for e in entries)
    return (f"; escalc(drop00=True) set yi/vi to NaN for row(s) {rows}, but this row is not "
            f"one of them as recorded (was the table filtered or reordered after escalc? run "
            f"escalc on the final table)")


def resolve_effects(
    yi: Any,
    vi: Any,
    *,
    data: pd.DataFrame | None = None,
    labels: Any = None,
    measure: str | None = None,
    allow_zero_vi: bool = False,
    context: str = "the effect sizes",
) -> EffectData:
    """Turn yi/vi (arrays or column names of ``data``) into validated :class:`EffectData`.

    Every problem (missing value, non-number, non-positive or non-finite variance, length
    mismatch, empty input) is collected and raised together as one :class:`InputError` naming
    row, study, column and value. Nothing is dropped silently: the one exclusion is a study that
    :func:`bayesmeta.escalc` itself set to NaN and recorded in ``data.attrs["escalc"]["dropped"]``
    (``drop00=True``, metafor's ``drop00=TRUE``, whose ``rma`` likewise leaves such studies out).
    Each such study is warned about and listed in :attr:`EffectData.excluded`; ``rows`` and
    ``data`` then describe the studies kept.
    """
    if data is not None and not isinstance(data, pd.DataFrame):
        raise InputError(Problem("data must be a pandas DataFrame", column="data",
                                 value=type(data).__name__))
    problems: list[Problem] = []
    y = _column_or_array(yi, "yi", data, problems)
    v = _column_or_array(vi, "vi", data, problems)
    raise_if(problems, context)
    assert y is not None and v is not None
    if y.size != v.size:
        raise InputError(Problem(f"yi has {y.size} values but vi has {v.size}; they must match",
                                 column="vi", value=v.size))
    if y.size == 0:
        raise InputError(Problem("no studies: at least one is needed", column="yi", value=0))
    if data is not None and len(data) != y.size:
        raise InputError(Problem(f"data has {len(data)} rows but yi/vi have {y.size} values",
                                 column="data", value=len(data)))
    labs = study_labels(data, y.size, labels)
    if len(labs) != y.size:
        raise InputError(Problem(f"{len(labs)} labels for {y.size} studies", column="labels",
                                 value=len(labs)))
    yname = yi if isinstance(yi, str) else "yi"
    vname = vi if isinstance(vi, str) else "vi"
    dropped, stale = _escalc_dropped(data, y, v, (yname, vname))
    hint = _drop00_hint(stale) if stale else ""
    for i in range(y.size):
        if i in dropped:
            continue
        if not np.isfinite(y[i]):
            problems.append(Problem("an effect size must be a finite number" + hint, row=i + 1,
                                    study=labs[i], column=yname, value=float(y[i])))
        if not np.isfinite(v[i]):
            problems.append(Problem("a sampling variance must be a finite number" + hint,
                                    row=i + 1, study=labs[i], column=vname, value=float(v[i])))
        elif v[i] < 0 or (v[i] == 0 and not allow_zero_vi):
            problems.append(Problem("a sampling variance must be > 0", row=i + 1,
                                    study=labs[i], column=vname, value=float(v[i])))
    raise_if(problems, context)
    if measure is None and data is not None:
        measure = data.attrs.get(MEASURE_ATTR)
    keep = np.array([i for i in range(y.size) if i not in dropped], dtype=int)
    excluded = tuple(dropped[i] for i in sorted(dropped))
    if keep.size == 0:
        raise InputError(Problem(f"no studies left: escalc dropped every one ({excluded[0].reason};"
                                 f" {len(excluded)} studies)", column=yname, value=None,
                                 show_value=False), context)
    for exc in excluded:
        warn(str(exc), stacklevel=4)
    kept_data = data
    if data is not None and excluded:
        kept_data = data.iloc[keep]
        if kept_data.index.name != "row":
            # number the kept rows as the caller's table (1-based, as messages count), so
            # influence tables and messages downstream name the caller's rows
            kept_data = kept_data.set_axis(
                pd.Index(np.asarray(keep, dtype=np.int64) + 1, name="row"), axis=0)
        kept_data.attrs = dict(data.attrs)
    return EffectData(
        yi=y[keep].astype(float),
        vi=v[keep].astype(float),
        labels=tuple(labs[i] for i in keep),
        measure=measure,
        rows=keep,
        data=kept_data,
        excluded=excluded,
    )


def as_effect_data(yi: Sequence[float], vi: Sequence[float], **kwargs: Any) -> EffectData:
    """Shorthand used by tests and internals: arrays in, validated :class:`EffectData` out."""
    return resolve_effects(np.asarray(yi, float), np.asarray(vi, float), **kwargs)


def align_moderators(mods: Any, effects: EffectData) -> Any:
    """A moderator table given for the caller's rows, restricted to the studies kept after
    escalc's drop00 exclusions (its rows then line up with ``effects``); anything else is
    returned unchanged (formulas are evaluated in ``effects.data``, already restricted)."""
    if (isinstance(mods, pd.DataFrame) and effects.excluded
            and len(mods) == effects.k + len(effects.excluded)):
        return mods.iloc[effects.rows].reset_index(drop=True)
    return mods
