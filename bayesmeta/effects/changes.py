"""Change scores from a study table that follows the extraction schema (SCHEMA.md).

Per row and arm, the outcome comes from the first form that is complete:

- Form A: ``change_mean{j}`` and ``change_sd{j}``;
- a missing ``change_mean{j}`` is derived as ``post_mean{j} - baseline_mean{j}`` (recorded);
- a missing ``change_sd{j}`` is imputed from ``baseline_sd{j}``, ``post_sd{j}`` and the pre-post
  correlation (Cochrane Handbook v6, 6.5.2.8; recorded with the r used);
- Form C: a row without any arm data but with ``yi`` and ``vi`` (or ``sei``) keeps them, provided
  its ``measure`` column (if any) names the requested measure.

Arm 1 is the experimental (individualized) arm, arm 2 the control; change = follow-up minus
baseline. Nothing is dropped: a row that fits no form is an error naming its row and columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .columns import ArgumentReader, Field
from .readers import MeansInputs, check_prepost_r, impute_change_sd
from .registry import Measure

__all__ = ["SCHEMA_MEANS_COLUMNS", "SCHEMA_COUNT_COLUMNS", "looks_like_study_table",
           "read_study_table_means"]

#: columns that mark a study table with continuous outcomes (Form A or B)
SCHEMA_MEANS_COLUMNS = ("n1", "n2", "change_mean1", "change_mean2", "change_sd1", "change_sd2",
                        "baseline_mean1", "baseline_mean2", "baseline_sd1", "baseline_sd2",
                        "post_mean1", "post_mean2", "post_sd1", "post_sd2", "prepost_r")

#: escalc keyword -> study-table column, for the count and correlation families
SCHEMA_COUNT_COLUMNS: dict[str, dict[str, str]] = {
    "table": {"ai": "events1", "n1i": "n1", "ci": "events2", "n2i": "n2"},
    "proportion": {"xi": "xi", "ni": "ni"},
    "correlation": {"ri": "ri", "ni": "ni"},
}


def looks_like_study_table(data: pd.DataFrame | None, family: str) -> bool:
    """Whether ``data`` carries the schema's columns for this measure family."""
    if data is None:
        return False
    if family == "means":
        return "n1" in data.columns and "n2" in data.columns and any(
            c in data.columns for c in ("change_mean1", "post_mean1", "yi"))
    return all(c in data.columns for c in SCHEMA_COUNT_COLUMNS[family].values())


def _column(reader: ArgumentReader, name: str, k: int) -> Field:
    """A schema column as a Field; an absent optional column reads as all-missing."""
    data = reader.data
    assert data is not None
    if name in data.columns:
        f = reader.read(name, name)
        if f is not None:
            return f
    return Field.constant_source(np.full(k, np.nan), name)


def read_study_table_means(
    reader: ArgumentReader, measure: Measure, prepost_r: Any
) -> MeansInputs | None:
    """Assemble arm-level change scores from a schema table (see module docstring)."""
    data = reader.data
    assert data is not None
    k = len(data)
    if k == 0:
        reader.problem("no studies: the input is empty", None, "data", 0)
        return None
    if not measure.change_scores:
        reader.problem(f"measure {measure.name} cannot be computed from change scores; pass "
                       f"m1i, sd1i, n1i, m2i, sd2i, n2i explicitly", None, "measure",
                       measure.name)
        return None
    col = {name: _column(reader, name, k) for name in SCHEMA_MEANS_COLUMNS}
    for name in ("yi", "vi", "sei"):
        col[name] = _column(reader, name, k)
    if prepost_r is not None:
        r = reader.read("prepost_r", prepost_r, scalar_ok=True)
        if r is not None and r.values.size == 1:
            r = Field(np.repeat(r.values, k), np.repeat(r.source, k))
    else:
        r = col["prepost_r"]
    if r is not None and r.values.size != k:
        reader.problem(f"prepost_r has {r.values.size} values but data has {k} rows", None,
                       "prepost_r", r.values.size)
        return None
    if reader.problems or r is None:
        return None
    check_prepost_r(reader, r)

    arm_columns = [c for c in SCHEMA_MEANS_COLUMNS if c[-1] in "12" and c[:-1] != "n"]
    has_arm_data = np.zeros(k, dtype=bool)
    for c in arm_columns:
        has_arm_data |= ~np.isnan(col[c].values)
    vi_given = np.where(np.isnan(col["vi"].values), col["sei"].values ** 2, col["vi"].values)
    given = ~has_arm_data & ~np.isnan(col["yi"].values) & ~np.isnan(vi_given)
    if "measure" in data.columns:
        for i in np.flatnonzero(given):
            m = data["measure"].iloc[i]
            if isinstance(m, str) and m.strip() and m.strip() != measure.name:
                reader.problem(f"this row gives yi/vi as {m.strip()}, but escalc was asked for "
                               f"{measure.name}; convert it or analyse it separately", int(i),
                               "measure", m)
    for i in np.flatnonzero(given):
        if not vi_given[i] > 0:
            reader.problem("a sampling variance must be > 0", int(i),
                           "vi" if not np.isnan(col["vi"].values[i]) else "sei",
                           float(vi_given[i]))

    derived: list[dict[str, Any]] = []
    means = []
    for arm in (1, 2):
        change = col[f"change_mean{arm}"]
        mean = Field(change.values.copy(), change.source.copy())
        base, post = col[f"baseline_mean{arm}"], col[f"post_mean{arm}"]
        fill = np.isnan(mean.values) & ~np.isnan(base.values) & ~np.isnan(post.values)
        for i in np.flatnonzero(fill & ~given):
            mean.values[i] = post.values[i] - base.values[i]
            mean.source[i] = f"post_mean{arm} - baseline_mean{arm}"
            derived.append({"row": int(i) + 1, "study": reader.study(int(i)), "arm": arm,
                            "baseline_mean": float(base.values[i]),
                            "post_mean": float(post.values[i]),
                            "change_mean": float(mean.values[i])})
        for i in np.flatnonzero(np.isnan(mean.values) & ~given):
            # Name the Form A column but say what else would do.
            mean.source[i] = f"change_mean{arm}"
        means.append(mean)

    r_used = np.full(k, np.nan)
    imputed: list[dict[str, Any]] = []
    reported: set[tuple[int, int]] = set()
    sds = []
    for arm in (1, 2):
        sd = col[f"change_sd{arm}"]
        sd = Field(sd.values.copy(), sd.source.copy())
        sd.values[given] = 1.0  # placeholder for form-C rows, never used
        impute_change_sd(reader, sd, col[f"baseline_sd{arm}"], col[f"post_sd{arm}"], r,
                         r_used, arm, imputed, reported)
        sds.append(sd)
    n1 = col["n1"]
    n2 = col["n2"]
    hints = {}
    for arm in (1, 2):
        hints[f"change_mean{arm}"] = (f"give change_mean{arm}, or baseline_mean{arm} and "
                                      f"post_mean{arm}, or the row's yi and vi (form C)")
        hints[f"change_sd{arm}"] = (f"give change_sd{arm}, or baseline_sd{arm} and post_sd{arm} "
                                    f"with a pre-post correlation (prepost_r)")
        hints[f"n{arm}"] = f"give the number of analysed participants n{arm}"
    return MeansInputs(means[0], sds[0], n1, means[1], sds[1], n2, r_used, imputed, derived,
                       given=given, given_yi=col["yi"].values.copy(), given_vi=vi_given,
                       hints=hints, reported=reported)
