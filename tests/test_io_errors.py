"""Bad study tables: each problem names row, study, column, value and expectation; all at once."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmeta.errors import InputError
from bayesmeta.io import read_studies

BASE = {
    "study_id": "Ford 2016", "comparison_id": "1", "outcome": "pain", "follow_up": "short",
    "n1": "30", "n2": "31", "change_mean1": "-2", "change_mean2": "-1", "change_sd1": "1.5",
    "change_sd2": "1.2", "instrument": "VAS_0_10",
}
OUTCOME_COLUMNS = ("n1", "n2", "change_mean1", "change_mean2", "change_sd1", "change_sd2")
FORMS_LISTING = (
    "A (change scores: n1/2, change_mean1/2, change_sd1/2), B (baseline and follow-up values: "
    "n1/2, baseline_mean1/2, baseline_sd1/2, post_mean1/2, post_sd1/2), C (effect already "
    "computed: yi, vi or sei, measure), binary (event counts: events1/2, n1/2), correlation "
    "(correlation: ri, ni)"
)


def write_table(path: Path, *rows: dict[str, str], drop: tuple[str, ...] = ()) -> Path:
    """A CSV of BASE rows with changes; the header is BASE's columns plus any added ones."""
    full = [{**BASE, **row} for row in rows]
    header = [c for c in dict.fromkeys(k for row in full for k in row) if c not in drop]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[row.get(c, "") for c in header] for row in full])
    return path


def problems_of(source, **kwargs) -> InputError:
    with pytest.raises(InputError) as caught:
        read_studies(source, **kwargs)
    return caught.value


NO_OUTCOME = dict.fromkeys(OUTCOME_COLUMNS, "")

# (case, changes to row 1, expected problem lines)
CATALOGUE = [
    ("negative SD", {"change_sd2": "-1.2"},
     ["row 1 (Ford 2016), column change_sd2: -1.2; a standard deviation must be > 0"]),
    ("zero SD", {"change_sd1": "0"},
     ["row 1 (Ford 2016), column change_sd1: 0; a standard deviation must be > 0"]),
    ("text in a number column", {"change_mean1": "about 2"},
     ["row 1 (Ford 2016), column change_mean1: about 2; a mean change must be a number"]),
    ("decimal comma", {"change_mean2": "-1,5"},
     ["row 1 (Ford 2016), column change_mean2: -1,5; a mean change must be a number written "
      "with a decimal point (e.g. 1.5)"]),
    ("infinite number as text", {"change_mean1": "inf"},
     ["row 1 (Ford 2016), column change_mean1: inf; a mean change must be a number"]),
    ("n below 2", {"n2": "1"},
     ["row 1 (Ford 2016), column n2: 1; a sample size must be >= 2"]),
    ("n not a whole number", {"n1": "30.5"},
     ["row 1 (Ford 2016), column n1: 30.5; a sample size must be a whole number"]),
    ("events above n", {"events1": "35", "events2": "3"},
     ["row 1 (Ford 2016), column events1: 35; events cannot exceed the arm's n1 (30)"]),
    ("negative events", {"events1": "3", "events2": "-1"},
     ["row 1 (Ford 2016), column events2: -1; an event count must be >= 0"]),
    ("unknown category value", {"comparator": "activ"},
     ["row 1 (Ford 2016), column comparator: activ; a comparator must be one of: active, passive"]),
    ("unknown instrument", {"instrument": "VAS 0-10"},
     ["row 1 (Ford 2016), column instrument: VAS 0-10; an instrument must be one of: VAS_0_10, "
      "VAS_0_100, NRS_0_10, RMDQ_0_24, ODI_0_100, custom"]),
    ("boolean not parseable", {"behavioural": "maybe"},
     ["row 1 (Ford 2016), column behavioural: maybe; a yes/no flag must be true/false, yes/no "
      "or 1/0 (any case)"]),
    ("no outcome data", NO_OUTCOME,
     [f"row 1 (Ford 2016); no outcome data; fill one complete outcome form: {FORMS_LISTING}"]),
    ("only arm sizes", {**NO_OUTCOME, "n1": "30", "n2": "31"},
     ["row 1 (Ford 2016); no complete outcome form (only n1, n2 given); fill one complete "
      f"outcome form: {FORMS_LISTING}"]),
    ("form A without an SD", {"change_sd2": ""},
     ["row 1 (Ford 2016), column change_sd2: missing; incomplete outcome data: form A (change "
      "scores) also needs change_sd2 (or baseline_sd2, post_sd2 and prepost_r), and no other "
      "form is complete"]),
    ("form C without a measure", {**NO_OUTCOME, "yi": "-0.3", "vi": "0.04"},
     ["row 1 (Ford 2016), column measure: missing; incomplete outcome data: form C (effect "
      "already computed) also needs measure, and no other form is complete"]),
    ("custom instrument without its ends", {"instrument": "custom"},
     ["row 1 (Ford 2016), column scale_min: missing; instrument custom needs scale_min and "
      "scale_max",
      "row 1 (Ford 2016), column scale_max: missing; instrument custom needs scale_min and "
      "scale_max"]),
    ("scale_min not below scale_max", {"instrument": "custom", "scale_min": "10", "scale_max": "0"},
     ["row 1 (Ford 2016), column scale_max: 0; scale_max must be greater than scale_min (10)"]),
    ("scale end contradicting the instrument", {"scale_max": "100"},
     ["row 1 (Ford 2016), column scale_max: 100; VAS_0_10 runs from 0 to 10; leave scale_max "
      "empty or use instrument custom"]),
    ("baseline mean outside VAS 0-10", {"baseline_mean1": "55"},
     ["row 1 (Ford 2016), column baseline_mean1: 55; a mean on VAS_0_10 must be between 0 "
      "and 10"]),
    ("change outside RMDQ range", {"instrument": "RMDQ_0_24", "change_mean1": "-30"},
     ["row 1 (Ford 2016), column change_mean1: -30; a mean change on RMDQ_0_24 must be between "
      "-24 and 24"]),
    ("post mean outside a custom scale",
     {"instrument": "custom", "scale_min": "1", "scale_max": "7", "post_mean2": "8"},
     ["row 1 (Ford 2016), column post_mean2: 8; a mean on the custom scale must be between 1 "
      "and 7"]),
    ("prepost_r above 1", {"prepost_r": "1.2"},
     ["row 1 (Ford 2016), column prepost_r: 1.2; a correlation must be between -1 and 1"]),
    ("unknown measure", {**NO_OUTCOME, "yi": "-0.3", "vi": "0.04", "measure": "SMDX"},
     ["row 1 (Ford 2016), column measure: SMDX; a measure must be one of: SMD, SMDH, SMCC, "
      "SMCR, MD, MC, ROM, OR, RR, RD, PLO, PLN, PR, COR, ZCOR, GEN"]),
    ("zero sampling variance", {**NO_OUTCOME, "yi": "-0.3", "vi": "0", "measure": "SMD"},
     ["row 1 (Ford 2016), column vi: 0; a sampling variance must be > 0"]),
    ("negative standard error", {**NO_OUTCOME, "yi": "-0.3", "sei": "-0.2", "measure": "SMD"},
     ["row 1 (Ford 2016), column sei: -0.2; a standard error must be > 0"]),
    ("missing study label", {"study_id": ""},
     ["row 1, column study_id: missing; a study label is required"]),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_catalogue_of_bad_cells(tmp_path, changes, expected):
    error = problems_of(write_table(tmp_path / "studies.csv", changes))
    assert [str(p) for p in error.problems] == expected
    assert error.context == "studies.csv"
    n = len(expected)
    assert str(error) == (f"{n} problem{'s' if n > 1 else ''} in studies.csv:\n"
                          + "\n".join(f"  {line}" for line in expected))
    first = error.problems[0]
    assert first.row == 1
    assert first.study == (changes.get("study_id", "Ford 2016") or None)


def test_problem_fields_name_row_study_column_and_value(tmp_path):
    path = write_table(tmp_path / "studies.csv", {}, {"study_id": "Lee 2019", "change_sd1": "-3"})
    (problem,) = problems_of(path).problems
    assert (problem.row, problem.study, problem.column, problem.value) == (
        2, "Lee 2019", "change_sd1", "-3")
    assert problem.expected == "a standard deviation must be > 0"


def test_duplicated_key_names_both_rows(tmp_path):
    path = write_table(tmp_path / "studies.csv", {}, {"study_id": "Lee 2019"}, {})
    assert [str(p) for p in problems_of(path).problems] == [
        "row 3 (Ford 2016), column study_id, comparison_id, outcome, follow_up: Ford 2016, 1, "
        "pain, short; the same key as row 1; the key must be unique (a multi-arm trial gives "
        "each comparison its own comparison_id)"]
    # an empty comparison_id is "1", so it collides with an explicit "1"
    path = write_table(tmp_path / "b.csv", {}, {"comparison_id": ""})
    assert problems_of(path).problems[0].expected.startswith("the same key as row 1")
    # different comparison_ids of a multi-arm trial are fine
    assert len(read_studies(write_table(tmp_path / "c.csv", {}, {"comparison_id": "2"}))) == 2


def test_non_finite_number_in_a_dataframe():
    frame = pd.DataFrame([{**BASE, "change_mean1": np.inf, "n1": 30, "n2": True}])
    assert [str(p) for p in problems_of(frame).problems] == [
        "row 1 (Ford 2016), column n2: True; a sample size must be a number, not a yes/no value",
        "row 1 (Ford 2016), column change_mean1: inf; a mean change must be a finite number",
    ]
    assert problems_of(frame).context == "the DataFrame"


def test_missing_required_column(tmp_path):
    error = problems_of(write_table(tmp_path / "studies.csv", {}, drop=("outcome",)))
    assert [str(p) for p in error.problems] == [
        "column outcome; a required column is missing; the table has study_id, comparison_id, "
        "follow_up, n1, n2, change_mean1, change_mean2, change_sd1, change_sd2, instrument"]


def test_empty_table_and_empty_file(tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(BASE) + "\n", encoding="utf-8")
    assert str(problems_of(header_only)) == (
        "1 problem in header.csv:\n  the table has no data rows: add one row per comparison "
        "below the header")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert str(problems_of(empty)) == (
        "1 problem in empty.csv:\n  the table is empty: expected a header row naming the "
        "columns, then one row per comparison")
    assert [str(p) for p in problems_of(pd.DataFrame(columns=list(BASE))).problems] == [
        "the table has no data rows: add one row per comparison below the header"]


def test_two_columns_meaning_the_same(tmp_path):
    path = write_table(tmp_path / "studies.csv", {"Study": "Ford"})
    assert [str(p) for p in problems_of(path).problems] == [
        "column study_id: Study; columns 'study_id' and 'Study' both mean study_id; keep one "
        "of them"]


def test_ragged_row_and_unnamed_column(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text(",".join(BASE) + ",\n" + ",".join(BASE.values()) + ",extra\n"
                    + ",".join(BASE.values()).replace("Ford 2016", "Lee 2019") + ",,surplus\n",
                    encoding="utf-8")
    assert [str(p) for p in problems_of(path).problems] == [
        "row 1: extra; column 12 has no name in the header but holds data; name it or delete it",
        "row 2: surplus; the row has cells beyond the 12 columns the header names",
    ]


def test_bad_arguments_are_reported_together():
    error = problems_of(pd.DataFrame([BASE]), aliases={"Trial": "trial_name", "n": "n1"},
                        missing="drop")
    assert error.context == "read_studies arguments"
    assert [str(p) for p in error.problems] == [
        "column aliases: 'Trial': 'trial_name'; aliases= must map a column name onto a schema "
        "column (e.g. 'study_id', 'n1'); 'trial_name' is not one",
        "column missing: drop; missing= must be 'error' or 'exclude'",
    ]


def test_alias_for_a_column_the_table_lacks():
    error = problems_of(pd.DataFrame([BASE]), aliases={"Trial": "study_id"})
    assert [str(p) for p in error.problems] == [
        "column aliases: Trial; aliases= names a column the table does not have; its columns are "
        + ", ".join(BASE)]


def test_unreadable_sources(tmp_path):
    old_excel = tmp_path / "x.xls"
    old_excel.write_bytes(b"x")
    assert str(problems_of(old_excel)).endswith("; save it as .xlsx or CSV")
    odt = tmp_path / "studies.ods"
    odt.write_bytes(b"x")
    assert [str(p) for p in problems_of(odt).problems] == [
        "column source: studies.ods; expected a file ending in .csv, .tsv, .txt, .xlsx, .xlsm, "
        ".parquet, .pq"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_studies(tmp_path / "absent.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("study_id,outcome,follow_up,yi,vi,measure\nMüller 2019,pain,short,"
                      "-0.2,0.05,SMD\n".encode("latin-1"))
    assert str(problems_of(latin).problems[0]).startswith(
        "column encoding: utf-8-sig; the file is not utf-8-sig text")
    assert read_studies(latin, encoding="latin-1")["study_id"].tolist() == ["Müller 2019"]
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"not a zip")
    assert problems_of(fake).problems[0].expected.startswith("not a readable .xlsx workbook")
    assert [str(p) for p in problems_of(write_table(tmp_path / "s.csv", {}), sheet=1).problems] == [
        "column sheet: 1; sheet= applies to Excel files only, not s.csv"]


def test_unknown_sheet(tmp_path):
    path = tmp_path / "book.xlsx"
    pd.DataFrame([BASE]).to_excel(path, sheet_name="studies", index=False)
    assert [str(p) for p in problems_of(path, sheet="Sheet1").problems] == [
        "column sheet: Sheet1; no such sheet; the workbook has 'studies' (or an index 0-0)"]


def test_all_problems_of_a_file_in_one_error_in_row_order(tmp_path):
    path = write_table(
        tmp_path / "many.csv",
        {"change_sd2": "-1"},
        {"study_id": "Lee 2019", "comparator": "sham", "n1": "x"},
        {"study_id": "Kim 2020", **NO_OUTCOME},
        {"study_id": "Lee 2019", "comparator": "passive", "n1": "x"},  # same key as row 2
        {"study_id": "", "prepost_r": "-2"},
        drop=(),
    )
    error = problems_of(path)
    assert [(p.row, p.column) for p in error.problems] == [
        (1, "change_sd2"),
        (2, "n1"),
        (2, "comparator"),
        (3, None),
        (4, "n1"),
        (4, "study_id, comparison_id, outcome, follow_up"),
        (5, "prepost_r"),
        (5, "study_id"),
    ]
    assert str(error).startswith("8 problems in many.csv:\n  row 1 (Ford 2016), column change_sd2")
    assert str(error).count("\n") == 8


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_input_file_is_byte_identical_after_reading(tmp_path, suffix):
    good = pd.DataFrame([BASE, {**BASE, "study_id": "Lee 2019"}])
    bad = pd.DataFrame([BASE, {**BASE, "study_id": "Lee 2019", "change_sd1": "-1"}])
    for name, frame in (("good", good), ("bad", bad)):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".xlsx":
            frame.to_excel(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        before = _fingerprint(path)
        if name == "good":
            assert len(read_studies(path)) == 2
        else:
            assert problems_of(path).problems[0].column == "change_sd1"
        assert _fingerprint(path) == before
