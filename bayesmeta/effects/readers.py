"""Per-family input readers for escalc: resolve keywords, fill derivable cells, check values.

Each reader returns plain float arrays ready for the measure functions, or records problems on
the :class:`~bayesmeta.effects.columns.ArgumentReader` (which the caller raises together). One
check per condition, each with its own message (STYLE anti-pattern 11).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .columns import ArgumentReader, Field
from .means import change_sd_from_prepost
from .registry import FAMILIES, Measure

__all__ = [
    "MeansInputs",
    "CountInputs",
    "missing_keyword_problems",
    "read_arm_means",
    "impute_change_sd",
    "check_means",
    "check_prepost_r",
    "read_table",
    "read_proportion",
    "read_correlation",
]


@dataclass
class MeansInputs:
    """Arm-level means, SDs and sizes of k studies plus what was imputed or derived."""

    m1: Field
    sd1: Field
    n1: Field
    m2: Field
    sd2: Field
    n2: Field
    r_used: np.ndarray  # pre-post correlation used per row (NaN where nothing was imputed)
    imputed: list[dict[str, Any]] = field(default_factory=list)
    derived: list[dict[str, Any]] = field(default_factory=list)
    given: np.ndarray | None = None  # rows whose yi/vi were given (study-table form C)
    given_yi: np.ndarray | None = None
    given_vi: np.ndarray | None = None
    hints: dict[str, str] = field(default_factory=dict)  # column -> how to supply it
    reported: set[tuple[int, int]] = field(default_factory=set)  # (row, arm): SD already reported


@dataclass
class CountInputs:
    """Cells of k 2x2 tables (ai, bi, ci, di) or k proportions (xi, mi), or (ri, ni)."""

    cells: tuple[np.ndarray, ...]


def missing_keyword_problems(reader: ArgumentReader, measure: Measure, missing: list[str]) -> None:
    if missing:
        family = FAMILIES[measure.family]
        reader.problem(f"measure {measure.name} needs {family.needs}; missing: "
                       f"{', '.join(missing)}", None, missing[0], None)


def _broadcast(f: Field | None, k: int) -> Field | None:
    if f is None or f.values.size == k:
        return f
    return Field(np.repeat(f.values, k), np.repeat(f.source, k))


def impute_change_sd(
    reader: ArgumentReader,
    sd: Field,
    baseline: Field | None,
    post: Field | None,
    r: Field | None,
    r_used: np.ndarray,
    arm: int,
    imputed: list[dict[str, Any]],
    reported: set[tuple[int, int]],
) -> None:
    """Fill missing change-score SDs in ``sd`` from baseline/follow-up SDs and r (in place).

    Rows whose SD is present are left alone. Cochrane Handbook v6, section 6.5.2.8.
    """
    if baseline is None or post is None:
        return
    for i in np.flatnonzero(np.isnan(sd.values)):
        b, p = baseline.values[i], post.values[i]
        if np.isnan(b) or np.isnan(p):
            continue  # nothing to impute from: reported as a missing SD by check_means
        bad = False
        for f, v in ((baseline, b), (post, p)):
            if v <= 0:
                reader.problem("a standard deviation must be > 0", i, f.source[i], v)
                bad = True
        rv = np.nan if r is None else r.values[i]
        if np.isnan(rv):
            reader.problem(
                f"a pre-post correlation is needed to impute the change SD of arm {arm} from "
                f"{baseline.source[i]} and {post.source[i]} (Cochrane Handbook 6.5.2.8); give it "
                f"in the table's prepost_r column or as escalc(..., prepost_r=)",
                i, "prepost_r" if r is None else r.source[i], None)
            bad = True
        elif abs(rv) > 1:
            bad = True  # reported once by check_prepost_r
        if bad:
            reported.add((int(i), arm))  # check_means must not report the SD a second time
            continue
        value = float(change_sd_from_prepost(np.float64(b), np.float64(p), np.float64(rv)))
        sd.values[i] = value
        sd.source[i] = f"{sd.source[i]} (imputed from {baseline.source[i]}, {post.source[i]})"
        r_used[i] = rv
        imputed.append({"row": int(i) + 1, "study": reader.study(int(i)), "arm": arm,
                        "sd_baseline": float(b), "sd_post": float(p), "prepost_r": float(rv),
                        "sd_change": value})


def check_prepost_r(reader: ArgumentReader, r: Field | None) -> None:
    if r is None:
        return
    for i, v in enumerate(r.values):
        if not np.isnan(v) and not -1.0 <= v <= 1.0:
            reader.problem("a pre-post correlation must be between -1 and 1",
                           i if r.values.size > 1 else None, r.source[i], v)


def read_arm_means(
    reader: ArgumentReader, measure: Measure, given: dict[str, Any]
) -> MeansInputs | None:
    """Means family from explicit keywords (metafor's m1i, sd1i, n1i, m2i, sd2i, n2i)."""
    f = {kw: reader.read(kw, v, scalar_ok=(kw == "prepost_r")) for kw, v in given.items()}
    missing = [kw for kw in ("m1i", "n1i", "m2i", "n2i") if kw not in given]
    for arm in (1, 2):
        if f"sd{arm}i" not in given and not (f"baseline_sd{arm}i" in given
                                             and f"post_sd{arm}i" in given):
            missing.append(f"sd{arm}i")
    missing_keyword_problems(reader, measure, missing)
    imputation = [kw for kw in given if kw.startswith(("baseline_", "post_")) or kw == "prepost_r"]
    if imputation and not measure.change_scores:
        reader.problem(f"measure {measure.name} cannot use imputed change-score SDs (only "
                       f"SMD, SMDH and MD can)", None, imputation[0], given[imputation[0]])
    k = reader.check_lengths()
    if k is None or reader.problems or any(v is None for v in f.values()):
        return None
    r = _broadcast(f.get("prepost_r"), k)
    check_prepost_r(reader, r)
    r_used = np.full(k, np.nan)
    imputed: list[dict[str, Any]] = []
    reported: set[tuple[int, int]] = set()
    sds = []
    for arm in (1, 2):
        sd = f.get(f"sd{arm}i") or Field.constant_source(np.full(k, np.nan), f"sd{arm}i")
        impute_change_sd(reader, sd, f.get(f"baseline_sd{arm}i"), f.get(f"post_sd{arm}i"), r,
                         r_used, arm, imputed, reported)
        sds.append(sd)
    return MeansInputs(f["m1i"], sds[0], f["n1i"], f["m2i"], sds[1], f["n2i"], r_used, imputed,
                       reported=reported)


def check_means(reader: ArgumentReader, measure: Measure, x: MeansInputs) -> None:
    """One problem per bad value: missing, non-finite, SD <= 0, n < 2, mean <= 0 for ROM."""
    rows = np.arange(x.m1.values.size)
    if x.given is not None:
        rows = rows[~x.given]
    for i in rows:
        for f, kind, arm in ((x.m1, "mean", 1), (x.sd1, "sd", 1), (x.n1, "n", 1),
                             (x.m2, "mean", 2), (x.sd2, "sd", 2), (x.n2, "n", 2)):
            v = f.values[i]
            if kind == "sd" and (int(i), arm) in x.reported:
                continue
            if np.isnan(v):
                hint = x.hints.get(f.source[i])
                text = _missing_message(measure, kind) if hint is None else hint
                reader.problem(text, i, f.source[i], None)
            elif not np.isfinite(v):
                reader.problem("expected a finite number", i, f.source[i], v)
            elif kind == "sd" and v <= 0:
                reader.problem("a standard deviation must be > 0", i, f.source[i], v)
            elif kind == "n" and v < 2:
                reader.problem("a group size must be >= 2 to have a mean and a standard deviation",
                               i, f.source[i], v)
            elif kind == "mean" and measure.name == "ROM" and v <= 0:
                reader.problem("ROM (log ratio of means) needs means > 0", i, f.source[i], v)


def _missing_message(measure: Measure, kind: str) -> str:
    what = {"mean": "mean", "sd": "standard deviation", "n": "group size"}[kind]
    text = f"measure {measure.name} needs a {what} for every study"
    if kind == "sd" and measure.change_scores:
        text += (" (a missing change-score SD can be imputed from the baseline and follow-up SDs"
                 " with a pre-post correlation)")
    return text


def _count_problems(reader: ArgumentReader, values: np.ndarray, name_of: Any, what: str) -> None:
    for i, v in enumerate(values):
        if np.isnan(v):
            continue
        if not np.isfinite(v):
            reader.problem("expected a finite number", i, name_of(i), v)
        elif v < 0:
            reader.problem(f"{what} must be >= 0", i, name_of(i), v)


def read_table(
    reader: ArgumentReader, measure: Measure, given: dict[str, Any]
) -> CountInputs | None:
    """2x2 tables from ai, bi, ci, di or ai, n1i, ci, n2i (metafor's semantics, per row)."""
    f = {kw: reader.read(kw, v) for kw, v in given.items()}
    missing = [kw for kw in ("ai", "ci") if kw not in given]
    for cell, size in (("bi", "n1i"), ("di", "n2i")):
        if cell not in given and size not in given:
            missing.append(f"{cell} (or {size})")
    missing_keyword_problems(reader, measure, missing)
    k = reader.check_lengths()
    if k is None or reader.problems or any(v is None for v in f.values()):
        return None
    cells = []
    for events, other, size in (("ai", "bi", "n1i"), ("ci", "di", "n2i")):
        e = f[events]
        o = f.get(other)
        n = f.get(size)
        _count_problems(reader, e.values, lambda i, e=e: e.source[i], "an event count")
        if o is not None:
            _count_problems(reader, o.values, lambda i, o=o: o.source[i], "a count")
        if n is not None:
            _count_problems(reader, n.values, lambda i, n=n: n.source[i], "a group size")
        rest = np.full(k, np.nan) if o is None else o.values.copy()
        for i in range(k):
            ev = e.values[i]
            nv = np.nan if n is None else n.values[i]
            if np.isnan(ev):
                reader.problem(f"measure {measure.name} needs an event count for every study",
                                i, e.source[i], None)
                continue
            if not np.isnan(nv) and nv >= 0 and ev > nv:
                reader.problem(f"events exceed the group size ({n.source[i]} = {nv:g})",
                               i, e.source[i], ev)
                continue
            if not np.isnan(rest[i]) and not np.isnan(nv) and rest[i] + ev != nv:
                reader.problem(f"{events} + {other} must equal {size} "
                               f"({ev:g} + {rest[i]:g} != {nv:g})", i, n.source[i], nv)
                continue
            if np.isnan(rest[i]):
                if np.isnan(nv):
                    reader.problem(f"give {other} or {size} for every study", i,
                                   other if o is None else o.source[i], None)
                    continue
                rest[i] = nv - ev
            if ev + rest[i] == 0 and rest[i] >= 0:
                reader.problem("the group has no participants", i,
                               size if n is not None else other, 0.0)
        cells += [e.values, rest]
    return CountInputs(tuple(cells))


def read_proportion(
    reader: ArgumentReader, measure: Measure, given: dict[str, Any]
) -> CountInputs | None:
    """Single proportions from xi and ni (or xi and mi, or a proportion pri and ni)."""
    f = {kw: reader.read(kw, v) for kw, v in given.items()}
    if "pri" in given and "xi" in given:
        reader.problem("give either xi (events) or pri (a proportion), not both", None, "pri",
                       given["pri"] if isinstance(given["pri"], str) else "array")
    missing = []
    if "xi" not in given and "pri" not in given:
        missing.append("xi")
    if "ni" not in given and ("mi" not in given or "pri" in given):
        missing.append("ni")
    missing_keyword_problems(reader, measure, missing)
    k = reader.check_lengths()
    if k is None or reader.problems or any(v is None for v in f.values()):
        return None
    n = f.get("ni")
    if n is not None:
        _count_problems(reader, n.values, lambda i: n.source[i], "a sample size")
    if "pri" in f:
        p = f["pri"]
        valid = p.values.copy()
        for i, v in enumerate(p.values):
            if not np.isnan(v) and not 0.0 <= v <= 1.0:
                reader.problem("a proportion must be between 0 and 1", i, p.source[i], v)
                valid[i] = 0.0  # reported once; keeps the checks below quiet for this row
        events = Field(valid * n.values, p.source)
    else:
        events = f["xi"]
        _count_problems(reader, events.values, lambda i: events.source[i], "an event count")
    mi = f.get("mi")
    rest = np.full(k, np.nan) if mi is None else mi.values.copy()
    for i in range(k):
        ev = events.values[i]
        nv = np.nan if n is None else n.values[i]
        if np.isnan(ev):
            reader.problem(f"measure {measure.name} needs events (or a proportion) for every "
                           f"study", i,
                           events.source[i], None)
            continue
        if not np.isnan(nv) and ev > nv:
            reader.problem(f"events exceed the sample size ({n.source[i]} = {nv:g})", i,
                           events.source[i], ev)
            continue
        if np.isnan(rest[i]):
            if np.isnan(nv):
                reader.problem("a sample size is needed for every study", i,
                               "ni" if n is None else n.source[i], None)
                continue
            rest[i] = nv - ev
        elif not np.isnan(nv) and rest[i] + ev != nv:
            reader.problem(f"xi + mi must equal ni ({ev:g} + {rest[i]:g} != {nv:g})", i,
                           n.source[i], nv)
            continue
        if ev + rest[i] <= 0:
            reader.problem("a sample size must be > 0", i, "ni" if n is None else n.source[i],
                           ev + rest[i])
    return CountInputs((events.values, rest))


def read_correlation(
    reader: ArgumentReader, measure: Measure, given: dict[str, Any]
) -> CountInputs | None:
    """Correlations ri with sample sizes ni; |r| <= 1 (< 1 for ZCOR), ni > 3."""
    f = {kw: reader.read(kw, v) for kw, v in given.items()}
    missing_keyword_problems(reader, measure, [kw for kw in ("ri", "ni") if kw not in given])
    k = reader.check_lengths()
    if k is None or reader.problems or any(v is None for v in f.values()):
        return None
    r, n = f["ri"], f["ni"]
    for i in range(k):
        rv, nv = r.values[i], n.values[i]
        if np.isnan(rv):
            reader.problem(f"measure {measure.name} needs a correlation for every study",
                            i, r.source[i], None)
        elif not -1.0 <= rv <= 1.0:
            reader.problem("a correlation must be between -1 and 1", i, r.source[i], rv)
        elif measure.name == "ZCOR" and abs(rv) == 1.0:
            reader.problem("Fisher's z is infinite at |r| = 1; ZCOR needs -1 < r < 1", i,
                           r.source[i], rv)
        if np.isnan(nv):
            reader.problem("a sample size is needed for every study", i, n.source[i], None)
        elif not np.isfinite(nv) or nv <= 3:
            reader.problem("a sample size must be > 3 for a correlation's sampling variance "
                           "(metafor gives none for ni <= 3)", i, n.source[i], nv)
    return CountInputs((r.values, n.values))
