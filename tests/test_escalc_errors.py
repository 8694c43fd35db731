"""A catalogue of bad inputs to escalc, to_vas/table_to_vas and split_shared_groups.

Each case asserts the exact message of every problem (row, study label where the table has one,
column, value, and what was expected), so a vaguer message fails the test. Problems are
collected, not raised one at a time: several cases check that all of them are reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmeta import InputError, escalc
from bayesmeta.effects import split_shared_groups, table_to_vas, to_vas

TRIALS = pd.DataFrame({
    "study_id": ["Ford 2016", "Smith 2015", "Lee 2019"],
    "m_exp": [3.1, 2.5, 4.0], "sd_exp": [1.2, 1.1, 1.3], "n_exp": [30, 25, 40],
    "m_ctl": [3.9, 3.0, 4.2], "sd_control": [1.4, 1.2, 1.5], "n_ctl": [31, 26, 41],
})
ARMS = dict(m1i="m_exp", sd1i="sd_exp", n1i="n_exp", m2i="m_ctl", sd2i="sd_control",
            n2i="n_ctl")
SCHEMA = pd.DataFrame({
    "study_id": ["A 2010", "B 2012"], "n1": [30, 40], "n2": [30, 40],
    "change_mean1": [-2.0, -2.5], "change_mean2": [-1.0, -1.0],
    "change_sd1": [2.0, np.nan], "change_sd2": [2.0, 2.0],
    "baseline_sd1": [np.nan, 3.0], "post_sd1": [np.nan, 4.0],
})
MULTI = pd.DataFrame({
    "study_id": ["A 2010", "A 2010"], "comparison_id": ["1", "2"], "outcome": ["pain"] * 2,
    "follow_up": ["short"] * 2, "n1": [20, 20], "n2": [30, 30],
    "change_mean1": [-1.0, -1.0], "change_mean2": [0.0, 0.0],
})
KNOWN_MEASURES = "COR, MD, OR, PLO, RD, ROM, RR, SMD, SMDH, ZCOR"
KNOWN_INSTRUMENTS = "VAS_0_10, VAS_0_100, NRS_0_10, RMDQ_0_24, ODI_0_100, custom"
SMD_NEEDS = ("m1i, sd1i, n1i, m2i, sd2i, n2i (a missing change-score SD can be imputed from "
             "baseline_sd1i/post_sd1i, baseline_sd2i/post_sd2i and prepost_r)")

CASES = [
    # --- escalc: values --------------------------------------------------------------------
    ("negative SD",
     lambda: escalc("SMD", TRIALS.assign(sd_control=[1.4, -1.2, 1.5]), **ARMS),
     ["row 2 (Smith 2015), column sd_control: -1.2; a standard deviation must be > 0"]),
    ("zero SD",
     lambda: escalc("SMD", TRIALS.assign(sd_control=[1.4, 0.0, 1.5]), **ARMS),
     ["row 2 (Smith 2015), column sd_control: 0; a standard deviation must be > 0"]),
    ("group of one",
     lambda: escalc("MD", TRIALS.assign(n_exp=[30, 1, 40]), **ARMS),
     ["row 2 (Smith 2015), column n_exp: 1; a group size must be >= 2 to have a mean and a "
      "standard deviation"]),
    ("text in a number column",
     lambda: escalc("MD", TRIALS.assign(m_exp=["3.1", "2.5a", 4.0]), **ARMS),
     ["row 2 (Smith 2015), column m_exp: 2.5a; expected a number"]),
    ("all problems at once",
     lambda: escalc("SMD", TRIALS.assign(sd_exp=[-1.0, 1.1, 0.0], n_ctl=[31, np.nan, 41]),
                    **ARMS),
     ["row 1 (Ford 2016), column sd_exp: -1; a standard deviation must be > 0",
      "row 2 (Smith 2015), column n_ctl: missing; measure SMD needs a group size for every "
      "study",
      "row 3 (Lee 2019), column sd_exp: 0; a standard deviation must be > 0"]),
    ("ROM with a negative mean",
     lambda: escalc("ROM", TRIALS.assign(m_ctl=[3.9, -0.5, 4.2]), **ARMS),
     ["row 2 (Smith 2015), column m_ctl: -0.5; ROM (log ratio of means) needs means > 0"]),
    ("events exceed the group",
     lambda: escalc("OR", ai=[12, 3], n1i=[10, 10], ci=[1, 2], n2i=[10, 10]),
     ["row 1, column ai: 12; events exceed the group size (n1i = 10)"]),
    ("negative count",
     lambda: escalc("RR", ai=[2, 3], bi=[8, 7], ci=[1, -1], di=[9, 9]),
     ["row 2, column ci: -1; an event count must be >= 0"]),
    ("inconsistent group size",
     lambda: escalc("OR", ai=[2], bi=[5], n1i=[10], ci=[1], n2i=[10]),
     ["row 1, column n1i: 10; ai + bi must equal n1i (2 + 5 != 10)"]),
    ("correlation above 1",
     lambda: escalc("COR", ri=[0.3, 1.2], ni=[50, 60]),
     ["row 2, column ri: 1.2; a correlation must be between -1 and 1"]),
    ("Fisher z at r = 1",
     lambda: escalc("ZCOR", ri=[1.0], ni=[50]),
     ["row 1, column ri: 1; Fisher's z is infinite at |r| = 1; ZCOR needs -1 < r < 1"]),
    ("correlation from 3 people",
     lambda: escalc("COR", ri=[0.3], ni=[3]),
     ["row 1, column ni: 3; a sample size must be > 3 for a correlation's sampling variance "
      "(metafor gives none for ni <= 3)"]),
    ("proportion above 1",
     lambda: escalc("PLO", pri=[0.2, 1.3], ni=[50, 60]),
     ["row 2, column pri: 1.3; a proportion must be between 0 and 1"]),
    ("pre-post correlation above 1",
     lambda: escalc("MD", m1i=[-1.0], sd1i=[np.nan], n1i=[20], m2i=[0.0], sd2i=[1.0], n2i=[20],
                    baseline_sd1i=[2.0], post_sd1i=[2.0], prepost_r=1.5),
     ["column prepost_r: 1.5; a pre-post correlation must be between -1 and 1"]),
    ("zero cell with to='none'",
     lambda: escalc("OR", ai=[0, 3], bi=[10, 7], ci=[2, 2], di=[8, 8], to="none"),
     ["row 1, column yi: -inf; the OR cannot be computed for this study: yi = -inf, vi = inf "
      "(a zero cell with add=0.5, to='none': use metafor's default add=0.5, to='only0', or "
      "drop00=True)"]),
    # --- escalc: study table (schema) ------------------------------------------------------
    ("change SD needs a pre-post correlation",
     lambda: escalc("SMD", SCHEMA),
     ["row 2 (B 2012), column prepost_r: missing; a pre-post correlation is needed to impute "
      "the change SD of arm 1 from baseline_sd1 and post_sd1 (Cochrane Handbook 6.5.2.8); give "
      "it in the table's prepost_r column or as escalc(..., prepost_r=)"]),
    ("row with no outcome data",
     lambda: escalc("SMD", SCHEMA.assign(change_mean1=[-2.0, np.nan], baseline_sd1=np.nan)),
     ["row 2 (B 2012), column change_mean1: missing; give change_mean1, or baseline_mean1 and "
      "post_mean1, or the row's yi and vi (form C)",
      "row 2 (B 2012), column change_sd1: missing; give change_sd1, or baseline_sd1 and post_sd1 "
      "with a pre-post correlation (prepost_r)"]),
    ("ROM from change scores",
     lambda: escalc("ROM", SCHEMA),
     ["column measure: ROM; measure ROM cannot be computed from change scores; pass m1i, sd1i, "
      "n1i, m2i, sd2i, n2i explicitly"]),
    # --- escalc: arguments -----------------------------------------------------------------
    ("unknown measure",
     lambda: escalc("XYZ", TRIALS),
     [f"column measure: XYZ; unknown effect measure; known measures: {KNOWN_MEASURES}"]),
    ("lower-case measure",
     lambda: escalc("smd", TRIALS),
     ["column measure: smd; unknown effect measure (did you mean 'SMD'? names are upper case, "
      f"as in metafor); known measures: {KNOWN_MEASURES}"]),
    ("keyword missing for the measure",
     lambda: escalc("SMD", TRIALS, m1i="m_exp", sd1i="sd_exp", n1i="n_exp", m2i="m_ctl",
                    n2i="n_ctl"),
     [f"column sd2i; measure SMD needs {SMD_NEEDS}; missing: sd2i"]),
    ("no inputs at all",
     lambda: escalc("SMD"),
     [f"column measure: SMD; measure SMD needs {SMD_NEEDS}; none were given and no data= table "
      "was given"]),
    ("column not in data",
     lambda: escalc("SMD", TRIALS, **{**ARMS, "m1i": "mean_exp"}),
     ["column m1i: mean_exp; m1i= names a column that is not in data; available columns: "
      "study_id, m_exp, sd_exp, n_exp, m_ctl, sd_control, n_ctl"]),
    ("column name without data",
     lambda: escalc("OR", ai="a", bi=[1], ci=[1], di=[1]),
     ["column ai: a; ai= names a column but no data= table was given; pass data= or an array"]),
    ("length mismatch",
     lambda: escalc("MD", m1i=[1.0, 2, 3], sd1i=[1.0, 1], n1i=[10, 10, 10], m2i=[1.0, 2, 3],
                    sd2i=[1.0, 1, 1], n2i=[10, 10, 10]),
     ["column sd1i: 2; sd1i has 2 values but m1i has 3; every input needs one value per study"]),
    ("array length differs from data",
     lambda: escalc("MD", TRIALS, **{**ARMS, "sd1i": [1.0, 1.0]}),
     ["column sd1i: 2; sd1i has 2 values but data has 3 rows; every input needs one value per "
      "study"]),
    ("empty table",
     lambda: escalc("MD", TRIALS.iloc[:0], **ARMS),
     ["column data: 0; no studies: the input is empty"]),
    ("a single number for a per-study input",
     lambda: escalc("OR", ai=[2], n1i=10, ci=[1], n2i=[10]),
     ["column n1i: 10; n1i= needs one value per study (a column name of data or an array), not "
      "a single number"]),
    ("keyword the measure does not read",
     lambda: escalc("SMD", TRIALS, ri="m_exp", **ARMS),
     ["column ri: m_exp; not used by measure SMD, which reads m1i, sd1i, n1i, m2i, sd2i, n2i, "
      "baseline_sd1i, post_sd1i, baseline_sd2i, post_sd2i, prepost_r"]),
    ("vtype the measure lacks",
     lambda: escalc("OR", ai=[1], bi=[2], ci=[3], di=[4], vtype="UB"),
     ["column vtype: UB; vtype for OR must be one of: LS"]),
    ("unknown zero-cell rule",
     lambda: escalc("OR", ai=[1], bi=[2], ci=[3], di=[4], to="some"),
     ["column to: some; to must be one of: 'only0' (add to every cell of each table that has at "
      "least one zero cell (metafor default)); 'all' (add to every cell of every table); "
      "'if0all' (add to every cell of every table if any table has a zero cell); 'none' "
      "(never add anything)"]),
    ("sign other than +-1",
     lambda: escalc("OR", ai=[1], bi=[2], ci=[3], di=[4], sign=2),
     ["column sign: 2; sign must be +1 (yi = arm 1 - arm 2) or -1 (yi = arm 2 - arm 1)"]),
    ("drop00 for a means measure",
     lambda: escalc("SMD", TRIALS, drop00=True, **ARMS),
     ["column drop00: True; drop00 applies to 2x2 table measures (OR, RR, RD), not SMD"]),
    # --- to_vas / table_to_vas ---------------------------------------------------------------
    ("VAS value outside the instrument's range",
     lambda: to_vas([12, 25], "RMDQ_0_24", column="post_mean1", labels=["A 2010", "B 2012"]),
     ["row 2 (B 2012), column post_mean1: 25; outside the range 0 to 24 of RMDQ_0_24"]),
    ("unknown instrument",
     lambda: to_vas([12], "PainScale"),
     [f"column instrument: PainScale; unknown instrument; known instruments: "
      f"{KNOWN_INSTRUMENTS} (for another linear scale use 'custom' with scale_min and "
      f"scale_max)"]),
    ("custom instrument without its range",
     lambda: to_vas([3], "custom", scale_min=1),
     ["column scale_max; a custom instrument needs scale_min and scale_max"]),
    ("named instrument with another range",
     lambda: to_vas([1.0], "ODI_0_100", scale_max=50),
     ["column scale_max: 50; ODI_0_100 runs from 0 to 100; use instrument 'custom' for another "
      "range"]),
    ("negative SD on a scale",
     lambda: to_vas([-1.0], "VAS_0_100", kind="sd", column="post_sd2"),
     ["row 1, column post_sd2: -1; a standard deviation on VAS_0_100 must be between 0 and 100 "
      "(the width of its range 0 to 100)"]),
    ("unknown kind of value",
     lambda: to_vas([1.0], "VAS_0_100", kind="median"),
     ["column kind: median; kind must be one of: 'mean' (a mean or single score); 'sd' (a "
      "standard deviation); 'change' (a change or a difference of means)"]),
    ("study table: every bad row at once",
     lambda: table_to_vas(pd.DataFrame({"study_id": ["A 2010", "B 2012", "C 2014"],
                                        "instrument": ["RMDQ_0_24", "custom", "PainScale"],
                                        "post_mean1": [25, 5, 3]})),
     ["row 1 (A 2010), column post_mean1: 25; outside the range 0 to 24 of RMDQ_0_24",
      "row 2 (B 2012), column scale_min: missing; a custom instrument needs scale_min and "
      "scale_max",
      "row 2 (B 2012), column scale_max: missing; a custom instrument needs scale_min and "
      "scale_max",
      f"row 3 (C 2014), column instrument: PainScale; unknown instrument; known instruments: "
      f"{KNOWN_INSTRUMENTS} (for another linear scale use 'custom' with scale_min and "
      f"scale_max)"]),
    # --- split_shared_groups -------------------------------------------------------------------
    ("multi-arm check without study_id",
     lambda: split_shared_groups(pd.DataFrame({"n1": [1], "n2": [2]})),
     ["column study_id; the study table needs a study_id column to find multi-arm trials"]),
    ("unknown shared-arm rule",
     lambda: split_shared_groups(MULTI, shared="both"),
     ["column shared: both; shared must be one of: 'auto' (an arm whose data are identical in "
      "every comparison of the analysis); 'control' (arm 2 (control) of every study with "
      "several comparisons in one analysis); 'experimental' (arm 1 (experimental) of every "
      "study with several comparisons in one analysis)"]),
    ("analysis column not in the table",
     lambda: split_shared_groups(MULTI, by=["comparator"]),
     ["column by: comparator; by= names a column that is not in the table; available columns: "
      "study_id, comparison_id, outcome, follow_up, n1, n2, change_mean1, change_mean2"]),
    ("duplicated comparison",
     lambda: split_shared_groups(MULTI),
     ["study A 2010, column comparison_id: 1, 2; rows 1, 2 have identical data in both arms: a "
      "duplicated comparison? Give each comparison its own data or remove the copy"]),
    ("shared control with two sizes",
     lambda: split_shared_groups(MULTI.assign(n2=[30, 31]), shared="control"),
     ["study A 2010, column n2: 30; the shared control arm (arm 2) has different sizes in rows "
      "1, 2 (30, 31); a shared group has one size"]),
    ("not a table",
     lambda: split_shared_groups([1, 2]),
     ["column table: list; expected a pandas DataFrame (the study table)"]),
]


@pytest.mark.parametrize(("call", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_message(call, expected):
    with pytest.raises(InputError) as info:
        call()
    assert [str(p) for p in info.value.problems] == expected


def test_catalogue_size():
    assert len(CASES) >= 18


def test_problem_fields_are_structured():
    """The message is built from fields a program can read: row, study, column, value."""
    with pytest.raises(InputError) as info:
        escalc("SMD", TRIALS.assign(sd_control=[1.4, -1.2, 1.5]), **ARMS)
    (problem,) = info.value.problems
    assert (problem.row, problem.study, problem.column, problem.value) == (
        2, "Smith 2015", "sd_control", -1.2)
    assert str(info.value).startswith("1 problem in escalc(measure='SMD'):\n  row 2")


def test_study_labels_from_a_label_column_and_multi_arm_ids():
    table = SCHEMA.assign(study_id=["A 2010", "A 2010"], comparison_id=["1", "2"],
                          change_sd1=[2.0, -1.0])
    with pytest.raises(InputError) as info:
        escalc("MD", table)
    assert [str(p) for p in info.value.problems] == [
        "row 2 (A 2010 [2]), column change_sd1: -1; a standard deviation must be > 0"]
