"""Resolve and validate the (yi, vi) input shared by every model entry point.

``rma`` and ``bayes_rma`` both accept ``yi``/``vi`` as arrays or as column names of ``data``
(metafor's convention). This module turns either form into an :class:`EffectData`, checking
every value once, so the engines beneath receive clean float arrays and never see NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, Problem, raise_if

#: attribute key under which :func:`bayesmeta.escalc` records the effect measure in ``DataFrame.attrs``
MEASURE_ATTR = "measure"


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
        The caller's table restricted to ``rows`` (``None`` when arrays were passed).
    """

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    measure: str | None = None
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    data: pd.DataFrame | None = None

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
                    f"a column name was given but no data=; pass data= or an array",
                    column=name,
                    value=value,
                )
            )
            return None
        if value not in data.columns:
            problems.append(
                Problem(
                    f"no such column in data; available columns: {', '.join(map(str, data.columns))}",
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
        problems.append(Problem("expected a sequence of numbers", column=name, value=str(value)[:40]))
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
    row, study, column and value. Nothing is dropped.
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
    for i in range(y.size):
        if not np.isfinite(y[i]):
            problems.append(Problem("an effect size must be a finite number", row=i + 1,
                                    study=labs[i], column=yname, value=float(y[i])))
        if not np.isfinite(v[i]):
            problems.append(Problem("a sampling variance must be a finite number", row=i + 1,
                                    study=labs[i], column=vname, value=float(v[i])))
        elif v[i] < 0 or (v[i] == 0 and not allow_zero_vi):
            problems.append(Problem("a sampling variance must be > 0", row=i + 1,
                                    study=labs[i], column=vname, value=float(v[i])))
    raise_if(problems, context)
    if measure is None and data is not None:
        measure = data.attrs.get(MEASURE_ATTR)
    return EffectData(
        yi=y.astype(float),
        vi=v.astype(float),
        labels=labs,
        measure=measure,
        rows=np.arange(y.size),
        data=data,
    )


def as_effect_data(yi: Sequence[float], vi: Sequence[float], **kwargs: Any) -> EffectData:
    """Shorthand used by tests and internals: arrays in, validated :class:`EffectData` out."""
    return resolve_effects(np.asarray(yi, float), np.asarray(vi, float), **kwargs)
