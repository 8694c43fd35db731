"""``escalc``: arm-level summaries -> effect sizes ``yi`` and sampling variances ``vi``.

The thin API over the registry (:mod:`.registry`), the input readers (:mod:`.readers`,
:mod:`.changes`) and the pure formulas (:mod:`.means`, :mod:`.binary`, :mod:`.correlations`).
Numbers agree with metafor 3.8-1's ``escalc`` (Viechtbauer 2010, doi:10.18637/jss.v036.i03).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import DEFAULTS
from ..errors import InputError, Problem, raise_if, warn
from ..inputs import ESCALC_ATTR, MEASURE_ATTR
from .binary import ZERO_CELL_RULES, double_zero_rows, zero_cell_correction
from .changes import (
    SCHEMA_COUNT_COLUMNS,
    SCHEMA_MEANS_COLUMNS,
    looks_like_study_table,
    read_study_table_means,
)
from .columns import ArgumentReader
from .multiarm import SPLIT_COLUMN, find_shared_groups
from .readers import (
    CountInputs,
    MeansInputs,
    check_means,
    read_arm_means,
    read_correlation,
    read_proportion,
    read_table,
)
from .registry import FAMILIES, Measure, get_measure

__all__ = ["escalc", "ESCALC_ATTR", "PREPOST_R_COLUMN"]

# ESCALC_ATTR (defined in ..inputs, which reads the record back) is re-exported here

#: column added where a change-score SD was imputed: the pre-post correlation used in that row
PREPOST_R_COLUMN = "prepost_r_used"

_DIRECTION = {
    "means": "yi = sign x (arm 1 - arm 2)",
    "table": "yi = sign x (arm 1 vs arm 2)",
    "proportion": "yi = sign x logit(xi / ni)",
    "correlation": "yi = sign x r (or its Fisher z)",
}


def escalc(
    measure: str,
    data: pd.DataFrame | None = None,
    *,
    m1i: Any = None,
    sd1i: Any = None,
    n1i: Any = None,
    m2i: Any = None,
    sd2i: Any = None,
    n2i: Any = None,
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    xi: Any = None,
    mi: Any = None,
    ni: Any = None,
    pri: Any = None,
    ri: Any = None,
    baseline_sd1i: Any = None,
    post_sd1i: Any = None,
    baseline_sd2i: Any = None,
    post_sd2i: Any = None,
    prepost_r: Any = None,
    add: float = DEFAULTS.escalc_add,
    to: str = DEFAULTS.escalc_to,
    drop00: bool = False,
    sign: int = 1,
    vtype: str = DEFAULTS.escalc_vtype,
) -> pd.DataFrame:
    """Compute effect sizes and their sampling variances (metafor's ``escalc``).

    Each data keyword takes either the name of a column of ``data`` or an array with one value
    per study; keyword names and meanings are metafor's. Arm 1 is the experimental
    (individualized) arm, arm 2 the control.

    Parameters
    ----------
    measure
        The effect measure (metafor's names): ``"SMD"`` Hedges' g; ``"SMDH"`` standardized mean
        difference without assuming equal variances; ``"MD"`` raw mean difference; ``"ROM"`` log
        ratio of means; ``"OR"`` log odds ratio; ``"RR"`` log risk ratio; ``"RD"`` risk
        difference; ``"PLO"`` logit of a proportion; ``"COR"`` correlation; ``"ZCOR"`` Fisher's
        z of a correlation. Each measure's formula and reference is in the docstring of its
        function in :data:`bayesmeta.effects.MEASURES`.
    data
        The study table. The result is a new table: a copy of ``data`` with ``yi`` and ``vi``
        appended (``data`` itself is never modified). When ``data`` follows the extraction
        schema (``n1``, ``n2``, ``change_mean1``, ... see SCHEMA.md) and no data keyword is
        given, SMD/SMDH/MD are computed from change scores (form A), deriving missing change
        means from baseline and follow-up means and imputing missing change SDs (form B), and
        keeping given ``yi``/``vi`` (form C); OR/RR/RD read ``events1, n1, events2, n2``.
    m1i, sd1i, n1i, m2i, sd2i, n2i
        Mean, standard deviation and size of arm 1 and arm 2 (SMD, SMDH, MD, ROM). For change
        scores, the means are mean changes and the SDs the SDs of the change.
    ai, bi, ci, di
        2x2 table (OR, RR, RD): events and non-events in arm 1 (``ai``, ``bi``) and arm 2
        (``ci``, ``di``). Instead of ``bi``/``di`` give the group sizes ``n1i``/``n2i``.
    xi, mi, ni, pri
        Single proportion (PLO): events ``xi`` out of ``ni`` (or ``xi`` events and ``mi``
        non-events, or a proportion ``pri`` of ``ni``). ``ni`` is also the sample size of a
        correlation.
    ri
        Correlation coefficient (COR, ZCOR).
    baseline_sd1i, post_sd1i, baseline_sd2i, post_sd2i
        Baseline and follow-up SDs per arm, used to impute a missing (NaN) change-score SD:
        ``sqrt(sd_baseline^2 + sd_post^2 - 2 r sd_baseline sd_post)`` (Cochrane Handbook v6,
        6.5.2.8). Only for SMD, SMDH and MD.
    prepost_r
        The pre-post correlation r for that imputation: a number, an array or a column name.
        When given it is used for every imputed row (e.g. a sensitivity value); when ``None``
        the table's ``prepost_r`` column is used. A row that needs r and has none is an error.
        Each imputed row gets r in the column ``prepost_r_used``.
    add, to
        Zero-cell correction for counts (OR, RR, RD, PLO): ``add`` is added to every cell of a
        table according to ``to``: ``"only0"`` (tables with a zero cell; metafor's default),
        ``"all"``, ``"if0all"`` (all tables if any has a zero) or ``"none"``.
    drop00
        2x2 measures only. ``False`` (metafor's default): a study with no events in either arm
        (or only events) is kept and computed with the correction, with a warning recorded.
        ``True``: its ``yi``/``vi`` are set to NaN, and the rows and reason are recorded in
        ``attrs["escalc"]["dropped"]`` (metafor's ``drop00=TRUE``); never silent. ``rma`` and
        ``bayes_rma`` then leave those studies out, with a warning naming each
        (:func:`bayesmeta.inputs.resolve_effects`), as metafor's ``rma`` omits NA rows.
    sign
        ``+1`` or ``-1``; every ``yi`` is multiplied by it (metafor's ``flip``). With ``+1``,
        ``yi`` is arm 1 minus arm 2; for change scores (follow-up minus baseline) on a scale
        where higher is worse (pain, disability), a negative ``yi`` then means the experimental
        arm improved more, the low-back-pain review's convention.
    vtype
        Sampling-variance estimator: ``"LS"`` (large sample, default) for every measure;
        also ``"LS2"``/``"UB"`` for SMD, ``"HO"`` for MD/ROM, ``"UB"`` for RD.

    Returns
    -------
    pandas.DataFrame
        ``data`` (or an empty frame) plus ``yi`` and ``vi`` (and ``prepost_r_used`` when an SD was
        imputed). ``attrs["measure"]`` holds the measure; ``attrs["escalc"]`` a record with keys
        measure, description, vtype, add, to (``None`` for measures without counts), drop00,
        sign, direction, prepost_r, inputs (keyword -> column), zero_cell_rows, dropped,
        imputed_change_sd, derived_change_mean, given_effects, replaced_columns (``yi``/``vi``
        columns of ``data`` that were overwritten), warnings, notes. Rows are 1-based.

    Raises
    ------
    InputError
        Every bad input at once, each naming row, study, column, value and what was expected.

    Warns
    -----
    BayesmetaWarning
        For double-zero studies, drop00 exclusions and groups shared by several comparisons
        (also listed in ``attrs["escalc"]["warnings"]``). The shared-group check
        (:func:`~bayesmeta.effects.find_shared_groups`) runs for a study table and, with data
        keywords, whenever ``data`` has a ``study_id`` column (means and 2x2 measures).
    """
    m = get_measure(measure)
    if data is not None and not isinstance(data, pd.DataFrame):
        raise InputError(Problem("data must be a pandas DataFrame", column="data",
                                 value=type(data).__name__))
    _check_settings(m, add, to, drop00, sign, vtype)
    keywords = {
        "m1i": m1i, "sd1i": sd1i, "n1i": n1i, "m2i": m2i, "sd2i": sd2i, "n2i": n2i,
        "ai": ai, "bi": bi, "ci": ci, "di": di, "xi": xi, "mi": mi, "ni": ni, "pri": pri,
        "ri": ri, "baseline_sd1i": baseline_sd1i, "post_sd1i": post_sd1i,
        "baseline_sd2i": baseline_sd2i, "post_sd2i": post_sd2i, "prepost_r": prepost_r,
    }
    given = {k: v for k, v in keywords.items() if v is not None}
    family = FAMILIES[m.family]
    unused = [k for k in given if k not in family.keywords]
    if unused:
        raise InputError([Problem(f"not used by measure {m.name}, which reads "
                                  f"{', '.join(family.keywords)}", column=k,
                                  value=given[k] if isinstance(given[k], str) else "given",
                                  show_value=isinstance(given[k], str)) for k in unused],
                         f"escalc(measure={m.name!r})")

    reader = ArgumentReader(data)
    context = f"escalc(measure={m.name!r})"
    data_keywords = {k: v for k, v in given.items() if k != "prepost_r"}
    schema = not data_keywords
    if schema and not looks_like_study_table(data, m.family):
        columns = (SCHEMA_MEANS_COLUMNS[:6] if m.family == "means"
                   else tuple(SCHEMA_COUNT_COLUMNS[m.family].values()))
        reason = ("no data= table was given" if data is None
                  else f"data has none of the study-table columns {', '.join(columns)}")
        raise InputError(Problem(f"measure {m.name} needs {family.needs}; none were given and "
                                 f"{reason}", column="measure", value=m.name), context)

    inputs: MeansInputs | CountInputs | None
    if m.family == "means":
        if schema:
            inputs = read_study_table_means(reader, m, prepost_r)
        else:
            inputs = read_arm_means(reader, m, given)
        if inputs is not None:
            check_means(reader, m, inputs)
    else:
        source = dict(SCHEMA_COUNT_COLUMNS[m.family]) if schema else data_keywords
        readers = {"table": read_table, "proportion": read_proportion,
                   "correlation": read_correlation}
        inputs = readers[m.family](reader, m, source)
    raise_if(reader.problems, context)
    assert inputs is not None

    counts = m.family in ("table", "proportion")
    record: dict[str, Any] = {
        "measure": m.name, "description": m.description, "vtype": vtype,
        # add/to only act on counts; None says "not applicable" rather than implying a correction
        "add": float(add) if counts else None, "to": to if counts else None,
        "drop00": bool(drop00), "sign": int(sign),
        "direction": _DIRECTION[m.family].replace("sign", f"{int(sign):+d}"),
        "prepost_r": _describe_r(prepost_r), "inputs": _describe_inputs(reader, schema, m),
        "zero_cell_rows": [], "dropped": [], "imputed_change_sd": [], "derived_change_mean": [],
        "given_effects": [], "replaced_columns": [], "warnings": [], "notes": [],
    }
    if isinstance(inputs, MeansInputs):
        yi, vi = _compute_means(m, inputs, vtype, record)
    else:
        yi, vi = _compute_counts(m, inputs, add, to, drop00, vtype, reader, record)
    yi = yi * float(sign)
    _check_finite(m, yi, vi, add, to, reader, record)
    raise_if(reader.problems, context)

    view = _multiarm_view(data, m, schema, inputs)
    if view is not None:
        remark = "" if schema else _split_remark(reader, m)
        for group in find_shared_groups(view):
            record["warnings"].append(group.describe() + remark)
    for text in record["warnings"]:
        warn(text, stacklevel=3)
    return _assemble(data, yi, vi, m, inputs, record)


def _check_settings(m: Measure, add: Any, to: Any, drop00: Any, sign: Any, vtype: Any) -> None:
    problems = []
    if vtype not in m.vtypes:
        problems.append(Problem(f"vtype for {m.name} must be one of: {', '.join(m.vtypes)}",
                                column="vtype", value=vtype))
    if isinstance(add, bool) or not isinstance(add, int | float) or not np.isfinite(add) or add < 0:
        problems.append(Problem("add (the zero-cell correction) must be a number >= 0",
                                column="add", value=add))
    if to not in ZERO_CELL_RULES:
        problems.append(Problem("to must be one of: " + "; ".join(
            f"{k!r} ({v})" for k, v in ZERO_CELL_RULES.items()), column="to", value=to))
    if not isinstance(drop00, bool | np.bool_):
        problems.append(Problem("drop00 must be True or False", column="drop00", value=drop00))
    elif drop00 and m.family != "table":
        problems.append(Problem(f"drop00 applies to 2x2 table measures (OR, RR, RD), not "
                                f"{m.name}", column="drop00", value=drop00))
    if isinstance(sign, bool) or sign not in (1, -1):
        problems.append(Problem("sign must be +1 (yi = arm 1 - arm 2) or -1 (yi = arm 2 - "
                                "arm 1)", column="sign", value=sign))
    raise_if(problems, f"escalc(measure={m.name!r})")


def _compute_means(
    m: Measure, x: MeansInputs, vtype: str, record: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    arrays = [f.values.copy() for f in (x.m1, x.sd1, x.n1, x.m2, x.sd2, x.n2)]
    given = x.given if x.given is not None else np.zeros(arrays[0].size, dtype=bool)
    for a, placeholder in zip(arrays, (1.0, 1.0, 2.0, 1.0, 1.0, 2.0), strict=True):
        a[given] = placeholder  # form-C rows keep their given yi/vi below
    yi, vi = m.compute(*arrays, vtype=vtype)
    if given.any():
        yi = np.where(given, x.given_yi, yi)
        vi = np.where(given, x.given_vi, vi)
    record["imputed_change_sd"] = x.imputed
    record["derived_change_mean"] = x.derived
    record["given_effects"] = [int(i) + 1 for i in np.flatnonzero(given)]
    if x.imputed:
        rs = sorted({d["prepost_r"] for d in x.imputed})
        record["notes"].append(
            f"change-score SD imputed in {len(x.imputed)} arm(s) of "
            f"{len({d['row'] for d in x.imputed})} row(s) from baseline and follow-up SDs with "
            f"r = {', '.join(f'{r:g}' for r in rs)} (Cochrane Handbook 6.5.2.8); see "
            f"imputed_change_sd and the column {PREPOST_R_COLUMN}")
    if x.derived:
        record["notes"].append(
            f"change mean derived as follow-up minus baseline in {len(x.derived)} arm(s); see "
            f"derived_change_mean")
    if given.any():
        record["notes"].append(f"yi/vi taken as given (form C) in rows "
                               f"{', '.join(map(str, record['given_effects']))}")
    return yi, vi


def _compute_counts(
    m: Measure, x: CountInputs, add: float, to: str, drop00: bool, vtype: str,
    reader: ArgumentReader, record: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    cells = x.cells
    k = cells[0].size
    dropped = np.zeros(k, dtype=bool)
    if m.family == "table":
        ai, bi, ci, di = cells
        double = double_zero_rows(ai, bi, ci, di)
        for i in np.flatnonzero(double):
            what = ("no events in either arm" if ai[i] == 0 and ci[i] == 0
                    else "every participant had the event in both arms")
            where = f"row {i + 1}" + (f" ({reader.study(int(i))})" if reader.study(int(i)) else "")
            if drop00:
                record["dropped"].append({"row": int(i) + 1, "study": reader.study(int(i)),
                                          "reason": f"{what} (drop00=True)"})
                record["warnings"].append(f"{where}: {what}; yi and vi set to NaN because "
                                          f"drop00=True")
            elif m.name in ("OR", "RR"):
                record["warnings"].append(
                    f"{where}: {what} (a double-zero study); kept and computed with the "
                    f"zero-cell correction add={add:g}, to={to!r}, as metafor does. It carries "
                    f"almost no information on the {m.name}; drop00=True excludes it explicitly")
        if drop00:
            dropped = double
    if m.family in ("table", "proportion"):
        live = tuple(np.where(dropped, 1.0, c) for c in cells)  # dropped rows: dummy cells
        corrected, mask = zero_cell_correction(live, add, to)
        mask &= ~dropped
        record["zero_cell_rows"] = [int(i) + 1 for i in np.flatnonzero(mask)]
        if mask.any():
            record["notes"].append(f"{int(mask.sum())} row(s) with a zero cell: {add:g} added to "
                                   f"every cell (to={to!r}); see zero_cell_rows")
        cells = corrected
    with np.errstate(divide="ignore", invalid="ignore"):
        yi, vi = m.compute(*cells, vtype=vtype)
    yi = np.where(dropped, np.nan, yi)
    vi = np.where(dropped, np.nan, vi)
    record["_dropped_mask"] = dropped
    return yi, vi


def _check_finite(
    m: Measure, yi: np.ndarray, vi: np.ndarray, add: float, to: str,
    reader: ArgumentReader, record: dict[str, Any],
) -> None:
    dropped = record.pop("_dropped_mask", np.zeros(yi.size, dtype=bool))
    for i in np.flatnonzero(~dropped):
        if np.isfinite(yi[i]) and np.isfinite(vi[i]) and vi[i] > 0:
            continue
        hint = ""
        if m.family in ("table", "proportion"):
            hint = (f" (a zero cell with add={add:g}, to={to!r}: use metafor's default "
                    f"add=0.5, to='only0'" + (", or drop00=True" if m.family == "table" else "")
                    + ")")
        reader.problem(f"the {m.name} cannot be computed for this study: yi = {yi[i]:g}, vi = "
                       f"{vi[i]:g}{hint}", int(i), "yi" if not np.isfinite(yi[i]) else "vi",
                       float(yi[i]) if not np.isfinite(yi[i]) else float(vi[i]))


def _multiarm_view(
    data: pd.DataFrame | None, m: Measure, schema: bool, inputs: MeansInputs | CountInputs
) -> pd.DataFrame | None:
    """The table the shared-group check reads, or ``None`` when there is nothing to check.

    A study table is checked as it is. With metafor keywords the arm values may sit in any
    columns, so the check reads them as escalc did: the table's identifying columns plus, per
    arm, n, mean and SD (means) or events and n (2x2 tables), under the schema's names.
    """
    if data is None or m.family not in ("means", "table"):
        return None
    if schema:
        return data
    if "study_id" not in data.columns:
        return None
    ids = [c for c in ("study_id", "comparison_id", "outcome", "follow_up", SPLIT_COLUMN)
           if c in data.columns]
    view = data[ids].reset_index(drop=True)
    k = len(view)
    if isinstance(inputs, MeansInputs):
        arms = {"n": (inputs.n1, inputs.n2), "change_mean": (inputs.m1, inputs.m2),
                "change_sd": (inputs.sd1, inputs.sd2)}
        columns = {f"{name}{arm}": np.broadcast_to(f.values, k)
                   for name, pair in arms.items() for arm, f in zip((1, 2), pair, strict=True)}
    else:
        ai, bi, ci, di = (np.broadcast_to(c, k) for c in inputs.cells)
        columns = {"events1": ai, "n1": ai + bi, "events2": ci, "n2": ci + di}
    return view.assign(**columns)


def _split_remark(reader: ArgumentReader, m: Measure) -> str:
    """What to do about a shared group when :func:`split_shared_groups` cannot see the arms."""
    schema_names = dict(SCHEMA_COUNT_COLUMNS["table"])
    if m.family == "means":
        schema_names = {"n1i": "n1", "n2i": "n2"}
    if all(reader.sources.get(kw) == col for kw, col in schema_names.items()):
        return ""
    read = ", ".join(f"{kw}={reader.sources[kw]}" for kw in reader.sources)
    what = "n" if m.family == "means" else "counts (events and non-events)"
    return (f". split_shared_groups reads the study-table columns "
            f"{', '.join(schema_names.values())}, but escalc read the arms from {read}: divide "
            f"the shared arm's {what} by the number of comparisons before escalc instead")


def _describe_r(prepost_r: Any) -> Any:
    if prepost_r is None:
        return "column prepost_r of the table (where present)"
    if isinstance(prepost_r, str):
        return f"column {prepost_r}"
    if isinstance(prepost_r, int | float):
        return float(prepost_r)
    return "array"


def _describe_inputs(reader: ArgumentReader, schema: bool, m: Measure) -> dict[str, str]:
    if schema and m.family == "means":
        return {"form": "study table (SCHEMA.md): change scores, forms A/B/C"}
    return dict(reader.sources)


def _assemble(
    data: pd.DataFrame | None, yi: np.ndarray, vi: np.ndarray, m: Measure,
    inputs: MeansInputs | CountInputs, record: dict[str, Any],
) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.RangeIndex(yi.size)) if data is None else data.copy()
    given_rows = set(record["given_effects"])
    for name in ("yi", "vi"):
        if name in out.columns and not given_rows:
            record["replaced_columns"].append(name)
    out["yi"] = yi
    out["vi"] = vi
    if isinstance(inputs, MeansInputs) and inputs.imputed:
        out[PREPOST_R_COLUMN] = inputs.r_used
    out.attrs[MEASURE_ATTR] = m.name
    out.attrs[ESCALC_ATTR] = record
    return out
