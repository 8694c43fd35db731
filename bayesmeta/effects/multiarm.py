"""Multi-arm trials: find groups shared by several comparisons and split them.

A trial with one control and two individualized arms gives two comparisons (same ``study_id``,
different ``comparison_id``) that reuse the same control participants. Pooling both as if
independent counts those participants twice and understates the uncertainty. The Cochrane
Handbook (v6, section 23.3.4, Higgins et al. 2023) lists remedies; the one implemented here
splits the shared group's sample size evenly across the comparisons (for dichotomous outcomes,
events too), leaving means and SDs unchanged.

A group is *shared* within one analysis: same study, and the same values of the ``by`` columns
(default outcome and follow-up; add e.g. ``"comparator"`` when active and passive controls are
analysed separately, since a shared arm then never meets itself within one analysis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, raise_if, warn

__all__ = ["SharedGroup", "find_shared_groups", "check_shared_groups", "split_shared_groups",
           "SPLIT_COLUMN"]

#: column written by :func:`split_shared_groups`; rows with text in it are not split again
SPLIT_COLUMN = "shared_group_split"

_ARM_COLUMNS = ("n", "events", "change_mean", "change_sd", "baseline_mean", "baseline_sd",
                "post_mean", "post_sd")
_SHARED_CHOICES = {
    "auto": "an arm whose data are identical in every comparison of the analysis",
    "control": "arm 2 (control) of every study with several comparisons in one analysis",
    "experimental": "arm 1 (experimental) of every study with several comparisons in one analysis",
}
_ARM_NAME = {1: "experimental arm (arm 1)", 2: "control arm (arm 2)"}


@dataclass(frozen=True)
class SharedGroup:
    """One arm used by several comparisons of the same analysis.

    Attributes
    ----------
    study
        The ``study_id``.
    arm
        1 (experimental) or 2 (control).
    comparisons
        The ``comparison_id`` of each row that uses the arm.
    rows
        1-based data rows of those comparisons.
    n
        The arm's sample size as given (before any split).
    analysis
        The ``by`` columns and their values that define the analysis, e.g.
        ``(("outcome", "pain"), ("follow_up", "short"))``.
    """

    study: str
    arm: int
    comparisons: tuple[str, ...]
    rows: tuple[int, ...]
    n: float
    analysis: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.analysis)
        return (f"study {self.study}: the {_ARM_NAME[self.arm]} (n={self.n:g}) is used by "
                f"{len(self.comparisons)} comparisons ({', '.join(self.comparisons)}; rows "
                f"{', '.join(map(str, self.rows))})"
                + (f" of the analysis {where}" if where else "")
                + "; pooling them double-counts its participants (Cochrane Handbook 23.3.4: "
                "split_shared_groups divides its n across the comparisons)")

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "arm": self.arm, "comparisons": list(self.comparisons),
                "rows": list(self.rows), "n": self.n,
                "analysis": {k: v for k, v in self.analysis}}


def _check_table(table: Any, by: Sequence[str] | None, shared: str) -> tuple[str, ...]:
    if not isinstance(table, pd.DataFrame):
        raise InputError(Problem("expected a pandas DataFrame (the study table)", column="table",
                                 value=type(table).__name__))
    problems = []
    if shared not in _SHARED_CHOICES:
        problems.append(Problem("shared must be one of: " + "; ".join(
            f"{k!r} ({v})" for k, v in _SHARED_CHOICES.items()), column="shared", value=shared))
    if "study_id" not in table.columns:
        problems.append(Problem("the study table needs a study_id column to find multi-arm "
                                "trials", column="study_id", value=None, show_value=False))
    if by is None:
        columns = tuple(c for c in ("outcome", "follow_up") if c in table.columns)
    else:
        columns = (by,) if isinstance(by, str) else tuple(by)
        for c in columns:
            if c not in table.columns:
                problems.append(Problem(f"by= names a column that is not in the table; available "
                                        f"columns: {', '.join(map(str, table.columns))}",
                                        column="by", value=c))
    if not any(f"n{arm}" in table.columns for arm in (1, 2)):
        problems.append(Problem("the study table needs group sizes n1 and n2", column="n1",
                                value=None, show_value=False))
    raise_if(problems, "the multi-arm check")
    return columns


def _same(values: np.ndarray) -> bool:
    """All equal, counting missing as equal to missing."""
    first = values[0]
    for v in values[1:]:
        both_missing = pd.isna(first) and pd.isna(v)
        if not both_missing and (pd.isna(first) or pd.isna(v) or first != v):
            return False
    return True


def _arm_identical(group: pd.DataFrame, arm: int) -> bool:
    cols = [f"{c}{arm}" for c in _ARM_COLUMNS if f"{c}{arm}" in group.columns]
    if f"n{arm}" not in group.columns or group[f"n{arm}"].isna().any():
        return False
    return all(_same(group[c].to_numpy(dtype=object)) for c in cols)


def find_shared_groups(
    table: pd.DataFrame, *, by: Sequence[str] | None = None, shared: str = "auto"
) -> list[SharedGroup]:
    """Every arm used by more than one comparison of the same analysis (no warning).

    Parameters
    ----------
    table
        A study table (SCHEMA.md): ``study_id``, optional ``comparison_id``, arm columns
        ``n1``/``n2`` (and ``events``, ``change_*``, ``baseline_*``, ``post_*``).
    by
        Columns whose values define one analysis; default: ``outcome`` and ``follow_up`` where
        present.
    shared
        How the shared arm is recognised: ``"auto"`` (its data are identical in each comparison),
        ``"control"`` (always arm 2) or ``"experimental"`` (always arm 1).
    """
    columns = _check_table(table, by, shared)
    work = table.reset_index(drop=True)
    if SPLIT_COLUMN in work.columns:
        done = work[SPLIT_COLUMN].fillna("").astype(str).str.strip() != ""
        work = work.loc[~done]
    keys = ["study_id", *columns]
    found: list[SharedGroup] = []
    problems: list[Problem] = []
    for key, group in work.groupby(keys, sort=False, dropna=False):
        if len(group) < 2:
            continue
        key = key if isinstance(key, tuple) else (key,)
        study = str(key[0])
        analysis = tuple((c, str(v)) for c, v in zip(columns, key[1:], strict=True))
        if "comparison_id" in group.columns:
            comparisons = tuple(str(c) for c in group["comparison_id"])
        else:
            comparisons = tuple(f"row {i + 1}" for i in group.index)
        rows = tuple(int(i) + 1 for i in group.index)
        if shared == "auto":
            arms = [arm for arm in (1, 2) if _arm_identical(group, arm)]
            if len(arms) == 2:
                problems.append(Problem(
                    f"rows {', '.join(map(str, rows))} have identical data in both arms: a "
                    f"duplicated comparison? Give each comparison its own data or remove the "
                    f"copy", study=study, column="comparison_id", value=", ".join(comparisons)))
                continue
        else:
            arms = [2 if shared == "control" else 1]
        for arm in arms:
            n_col = f"n{arm}"
            if n_col not in group.columns or group[n_col].isna().any():
                problems.append(Problem("the shared arm needs a group size", study=study,
                                        column=n_col, value=None))
                continue
            ns = pd.to_numeric(group[n_col], errors="coerce").to_numpy(dtype=float)
            if not _same(ns):
                problems.append(Problem(
                    f"the shared {_ARM_NAME[arm]} has different sizes in rows "
                    f"{', '.join(map(str, rows))} ({', '.join(f'{v:g}' for v in ns)}); a shared "
                    f"group has one size", study=study, column=n_col, value=ns[0]))
                continue
            found.append(SharedGroup(study, arm, comparisons, rows, float(ns[0]), analysis))
    raise_if(problems, "the multi-arm check")
    return found


def check_shared_groups(
    table: pd.DataFrame, *, by: Sequence[str] | None = None, shared: str = "auto"
) -> list[SharedGroup]:
    """:func:`find_shared_groups`, plus a :class:`~bayesmeta.errors.BayesmetaWarning` per group."""
    found = find_shared_groups(table, by=by, shared=shared)
    for group in found:
        warn(group.describe())
    return found


def split_shared_groups(
    table: pd.DataFrame, *, by: Sequence[str] | None = None, shared: str = "auto"
) -> pd.DataFrame:
    """Split each shared group's sample size evenly across its comparisons (new table).

    For a group of size n used by m comparisons of one analysis, each comparison gets n/m
    participants (and events/m for dichotomous outcomes); means and SDs are unchanged (Cochrane
    Handbook v6, section 23.3.4). The split is exact (n/m need not be an integer): RevMan rounds
    because it stores whole numbers, we need not, and the exact split keeps the group's total
    weight that of one group.

    Parameters
    ----------
    table, by, shared
        As in :func:`find_shared_groups`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table`` with split ``n1``/``n2`` (and ``events1``/``events2``), a text column
        ``shared_group_split`` describing each change (empty where nothing changed; such rows are
        never split twice), and ``attrs["split_shared_groups"]``: a list of records (study, arm,
        analysis, comparisons, rows, n_before, n_after, events_before, events_after).
    """
    found = find_shared_groups(table, by=by, shared=shared)
    out = table.copy()
    positions = np.arange(len(out))
    note = (out[SPLIT_COLUMN].astype(object).where(out[SPLIT_COLUMN].notna(), "").astype(str)
            if SPLIT_COLUMN in out.columns else pd.Series([""] * len(out), index=out.index))
    note = note.to_numpy(dtype=object)
    records = []
    for group in found:
        m = len(group.rows)
        idx = positions[[r - 1 for r in group.rows]]
        record: dict[str, Any] = {**group.to_dict(), "n_before": group.n, "n_after": group.n / m}
        for prefix in ("n", "events"):
            col = f"{prefix}{group.arm}"
            if col not in out.columns:
                continue
            before = pd.to_numeric(out[col].iloc[idx], errors="coerce").to_numpy(dtype=float)
            after = before / m
            values = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
            values[idx] = after
            out[col] = values
            if prefix == "events":
                record["events_before"] = before.tolist()
                record["events_after"] = after.tolist()
        for i in idx:
            text = (f"{_side_label(group.arm)} n {group.n:g} split over {m} comparisons -> "
                    f"{group.n / m:g} (Cochrane Handbook 23.3.4)")
            note[i] = f"{note[i]}; {text}" if note[i] else text
        records.append(record)
    out[SPLIT_COLUMN] = note
    out.attrs["split_shared_groups"] = records
    return out


def _side_label(arm: int) -> str:
    return "control" if arm == 2 else "experimental"
