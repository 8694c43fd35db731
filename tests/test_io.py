"""The study-table reader: formats, dtypes, aliases, unknown columns, exclusions, the template."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import bayesmeta
from bayesmeta.cli import main as cli_main
from bayesmeta.errors import InputError
from bayesmeta.io import STUDY_TABLE, StudyTable, excluded, read_studies
from bayesmeta.io.template import example_row, schema_markdown, write_csv, write_xlsx

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "data" / "templates"


def _source_table() -> pd.DataFrame:
    """Every outcome form, a multi-arm trial, missing cells and a user moderator, typed as a
    user's own DataFrame would be (so parquet keeps the types and CSV turns them into text)."""
    nan, na = np.nan, pd.NA
    return pd.DataFrame({
        "study_id": ["Ford 2016", "Ford 2016", "Lee 2019", "Kim 2020", "Park 2021", "Cho 2018"],
        "comparison_id": ["1", "2", na, na, na, na],
        "outcome": ["pain", "pain", "disability", "pain", "pain", "disability"],
        "follow_up": ["short", "short", "long", "short", "long", "short"],
        "n1": pd.array([30, 30, 40, 25, na, na], dtype="Int64"),
        "n2": pd.array([31, 29, 41, 26, na, na], dtype="Int64"),
        "change_mean1": [-2.25, -2.25, nan, nan, nan, nan],
        "change_mean2": [-1.0, -1.5, nan, nan, nan, nan],
        "change_sd1": [1.5, 1.5, nan, nan, nan, nan],
        "change_sd2": [nan, 1.4, nan, nan, nan, nan],
        "baseline_mean1": [5.5, nan, 48.0, nan, nan, nan],
        "baseline_sd1": [2.0, nan, 15.0, nan, nan, nan],
        "baseline_mean2": [5.0, nan, 47.0, nan, nan, nan],
        "baseline_sd2": [2.1, nan, 14.0, nan, nan, nan],
        "post_mean1": [3.25, nan, 30.0, nan, nan, nan],
        "post_sd1": [2.2, nan, 16.0, nan, nan, nan],
        "post_mean2": [4.0, nan, 40.0, nan, nan, nan],
        "post_sd2": [2.3, nan, 15.5, nan, nan, nan],
        "prepost_r": [0.5, nan, nan, nan, nan, nan],
        "yi": [nan, nan, nan, nan, -0.31, nan],
        "sei": [nan, nan, nan, nan, 0.125, nan],
        "measure": [na, na, na, na, "SMD", na],
        "events1": pd.array([na, na, na, 12, na, na], dtype="Int64"),
        "events2": pd.array([na, na, na, 7, na, na], dtype="Int64"),
        "ri": [nan, nan, nan, nan, nan, 0.42],
        "ni": pd.array([na, na, na, na, na, 80], dtype="Int64"),
        "instrument": ["VAS_0_10", "VAS_0_10", "ODI_0_100", na, na, "custom"],
        "scale_min": [nan, nan, nan, nan, nan, 1.0],
        "scale_max": [nan, nan, nan, nan, nan, 7.0],
        "higher_is_worse": pd.array([True, True, True, na, na, False], dtype="boolean"),
        "comparator": ["active", "passive", "active", na, "passive", "active"],
        "behavioural": pd.array([False, False, True, na, na, na], dtype="boolean"),
        "duration_weeks": [8.0, 8.0, 12.5, nan, 6.0, nan],
        "n_total": pd.array([95, 95, 90, na, na, 85], dtype="Int64"),
        "sessions_per_week": [2.0, 2.0, 3.0, nan, 1.5, 2.0],
        "setting": ["clinic", "clinic", "home", na, "clinic", na],
    })


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".xlsx":
        frame.to_excel(path, index=False, sheet_name="studies", engine="openpyxl")
    else:
        frame.to_parquet(path, index=False)
    return path


def test_csv_xlsx_parquet_and_dataframe_give_identical_tables(tmp_path):
    source = _source_table()
    tables = {"DataFrame": read_studies(source)}
    for suffix in (".csv", ".xlsx", ".parquet"):
        tables[suffix] = read_studies(_write(source, tmp_path / f"studies{suffix}"))
    reference = tables["DataFrame"]
    assert reference.shape == (6, 36)
    for name, table in tables.items():
        assert_frame_equal(table, reference, check_exact=True, obj=name)
        assert table.attrs["source"] == (
            "DataFrame" if name == "DataFrame" else str(tmp_path / f"studies{name}"))
        assert {k: v for k, v in table.attrs.items() if k != "source"} == {
            "schema_version": STUDY_TABLE.version,
            "column_aliases": {},
            "unknown_columns": ["sessions_per_week", "setting"],
            "excluded": [],
            "blank_rows": [],
        }


def test_validated_table_reads_back_unchanged_with_its_row_numbers():
    source = _source_table()
    source.loc[6] = source.loc[0]  # to be excluded below: row 7 of the source
    source.loc[6, ["change_mean1", "change_mean2", "n1", "n2"]] = [np.nan, np.nan, pd.NA, pd.NA]
    source.loc[6, "comparison_id"] = "3"
    first = read_studies(source, missing="exclude")
    assert first.index.tolist() == [1, 2, 3, 4, 5, 6]
    again = read_studies(first)
    assert_frame_equal(again, first, check_exact=True)


def test_dtypes_follow_the_schema():
    table = read_studies(_source_table())
    assert table.index.name == "row" and table.index.tolist() == [1, 2, 3, 4, 5, 6]
    expected = {
        "study_id": "string", "comparison_id": "string", "n1": "Int64", "events1": "Int64",
        "ni": "Int64", "n_total": "Int64", "change_mean1": "float64", "prepost_r": "float64",
        "yi": "float64", "scale_min": "float64", "higher_is_worse": "boolean",
        "behavioural": "boolean", "sessions_per_week": "float64", "setting": "string",
    }
    assert {c: str(table[c].dtype) for c in expected} == expected
    # closed categories carry all the schema's levels, in the schema's order
    assert list(table["comparator"].cat.categories) == ["active", "passive"]
    assert list(table["measure"].cat.categories) == list(STUDY_TABLE["measure"].levels)
    assert list(table["instrument"].cat.categories) == [
        "VAS_0_10", "VAS_0_100", "NRS_0_10", "RMDQ_0_24", "ODI_0_100", "custom"]
    # open categories: the schema's suggested levels that occur, in schema order
    assert list(table["outcome"].cat.categories) == ["pain", "disability"]
    assert list(table["follow_up"].cat.categories) == ["short", "long"]
    assert table["comparison_id"].tolist() == ["1", "2", "1", "1", "1", "1"]
    assert table["n1"].tolist()[:4] == [30, 30, 40, 25] and table["n1"].isna().sum() == 2
    assert table.loc[4, "events1"] == 12 and table.loc[6, "ri"] == 0.42
    assert table.loc[5, "measure"] == "SMD" and table.loc[5, "sei"] == 0.125
    flags = table["higher_is_worse"].tolist()
    assert flags[:3] == [True, True, True] and flags[3] is pd.NA and flags[5] is False


def test_open_category_keeps_other_values_after_the_suggested_levels():
    source = _source_table()
    source["outcome"] = ["function", "pain", "disability", "anxiety", "pain", "function"]
    table = read_studies(source)
    assert list(table["outcome"].cat.categories) == ["pain", "disability", "anxiety", "function"]


def test_values_are_normalised_case_and_whitespace():
    source = _source_table()
    source["study_id"] = [" Ford 2016", "Ford 2016 ", "Lee 2019", "Kim 2020", "Park 2021", "Cho"]
    source["comparator"] = ["Active", "PASSIVE", "active", pd.NA, "passive", "active"]
    source["instrument"] = ["vas_0_10", "VAS_0_10", "odi_0_100", pd.NA, pd.NA, "Custom"]
    source["outcome"] = ["Pain", "pain", "Disability", "pain", "pain", "disability"]
    table = read_studies(source)
    assert table["study_id"].tolist()[:2] == ["Ford 2016", "Ford 2016"]
    assert table["comparator"].tolist()[:2] == ["active", "passive"]
    assert table["instrument"].tolist()[0] == "VAS_0_10" and table.loc[6, "instrument"] == "custom"
    assert list(table["outcome"].cat.categories) == ["pain", "disability"]


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("TRUE", True), ("Yes", True), ("1", True),
    ("false", False), ("No", False), ("0", False), ("FALSE", False),
])
def test_boolean_spellings(text, value):
    source = _source_table().astype({"behavioural": object})
    source["behavioural"] = text
    assert read_studies(source)["behavioural"].tolist() == [value] * 6


def test_missing_tokens_read_as_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("study_id,outcome,follow_up,n1,n2,change_mean1,change_mean2,change_sd1,"
                    "change_sd2,mean_age\n"
                    "A 2001,pain,short,20,20,-1,-0.5,1,1,NA\n"
                    "B 2002,pain,short,20,20,-1,-0.5,1,1,NR\n"
                    "C 2003,pain,short,20,20,-1,-0.5,1,1,n/a\n", encoding="utf-8")
    assert read_studies(path)["mean_age"].isna().all()


def test_aliases_are_mapped_and_reported():
    source = _source_table().rename(columns={
        "study_id": "Study", "follow_up": "Follow-up", "n1": "n.e", "n2": "n.c", "sei": "SE",
        "prepost_r": "pre_post_r", "setting": "Care Setting"})
    table = read_studies(source)
    assert table.attrs["column_aliases"] == {
        "Study": "study_id", "Follow-up": "follow_up", "n.e": "n1", "n.c": "n2", "SE": "sei",
        "pre_post_r": "prepost_r", "Care Setting": "care_setting"}
    assert table.attrs["unknown_columns"] == ["sessions_per_week", "care_setting"]
    assert_frame_equal(table.drop(columns="care_setting"),
                       read_studies(_source_table()).drop(columns="setting"))


def test_user_aliases_come_before_the_built_in_ones():
    source = _source_table().rename(columns={"study_id": "Trial name", "n_total": "Randomised"})
    table = read_studies(source, aliases={"Trial name": "study_id", "randomised": "n_total"})
    assert table.attrs["column_aliases"] == {"Trial name": "study_id", "Randomised": "n_total"}
    assert table["n_total"].tolist()[:3] == [95, 95, 90]


def test_unknown_columns_are_kept_with_inferred_types(tmp_path):
    source = _source_table()
    source["supervised"] = ["yes", "no", "yes", "yes", pd.NA, "no"]
    source["funding"] = ["public", "public", "industry", pd.NA, "none", "public"]
    table = read_studies(_write(source, tmp_path / "t.csv"))
    assert table.attrs["unknown_columns"] == [
        "sessions_per_week", "setting", "supervised", "funding"]
    assert list(table.columns[-4:]) == table.attrs["unknown_columns"]
    assert str(table["supervised"].dtype) == "boolean"
    assert table["supervised"].tolist()[:3] == [True, False, True]
    assert table["funding"].tolist()[:3] == ["public", "public", "industry"]
    assert table["sessions_per_week"].tolist()[:3] == [2.0, 2.0, 3.0]


def test_the_callers_dataframe_is_not_modified():
    source = _source_table().set_index("study_id")
    source.attrs["mine"] = [1]
    before = source.copy(deep=True)
    attrs = copy.deepcopy(source.attrs)
    table = read_studies(source)  # a named index is read as a column
    assert table["study_id"].tolist()[0] == "Ford 2016"
    assert_frame_equal(source, before, check_exact=True)
    assert source.attrs == attrs


def test_missing_exclude_records_reasons_and_keeps_the_rest():
    source = _source_table()
    source.loc[1, ["change_sd1", "change_sd2"]] = np.nan  # no SD, nothing to impute from
    source.loc[3, ["events1", "events2"]] = pd.NA  # only n1, n2 left
    with pytest.raises(InputError):
        read_studies(source)
    table = read_studies(source, missing="exclude")
    assert table.index.tolist() == [1, 3, 5, 6]
    kept_out = excluded(table)
    assert kept_out.columns.tolist() == ["row", "study_id", "reason"]
    assert kept_out["row"].tolist() == [2, 4]
    assert kept_out["study_id"].tolist() == ["Ford 2016", "Kim 2020"]
    assert kept_out["reason"][0] == (
        "incomplete outcome data: form A (change scores) also needs change_sd1 (or baseline_sd1,"
        " post_sd1 and prepost_r), change_sd2 (or baseline_sd2, post_sd2 and prepost_r), and no"
        " other form is complete")
    assert kept_out["reason"][1].startswith(
        "no complete outcome form (only n1, n2 given); fill one complete outcome form: "
        "A (change scores: n1/2, change_mean1/2, change_sd1/2), B (baseline and follow-up")
    assert table.attrs["excluded"] == kept_out.to_dict("records")


def test_excluded_is_empty_when_nothing_was_kept_out_and_refuses_foreign_tables():
    assert excluded(read_studies(_source_table())).shape == (0, 3)
    with pytest.raises(InputError, match=r"expected a table returned by read_studies"):
        excluded(pd.DataFrame({"study_id": ["a"]}))


def test_semicolon_csv_with_byte_order_mark_and_blank_rows(tmp_path):
    path = tmp_path / "excel_export.csv"
    path.write_bytes(
        "\ufeffStudy;outcome;follow_up;n1;n2;yi;vi;measure\n"
        "A 2001;pain;short;20;20;-0.5;0.1;SMD\n"
        ";;;;;;;\n"
        "B 2002;pain;short;20;20;-0.25;0.2;SMD\n".encode())
    table = read_studies(path)
    assert table.index.tolist() == [1, 3]
    assert table.attrs["blank_rows"] == [2]
    assert table.attrs["column_aliases"] == {"Study": "study_id"}
    assert table["yi"].tolist() == [-0.5, -0.25]


def test_excel_sheet_by_name_and_index(tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        pd.DataFrame({"notes": ["not the table"]}).to_excel(writer, sheet_name="readme",
                                                            index=False)
        _source_table().to_excel(writer, sheet_name="studies", index=False)
    reference = read_studies(_source_table())
    assert_frame_equal(read_studies(path, sheet="studies"), reference)
    assert_frame_equal(read_studies(path, sheet=1), reference)


def test_public_names():
    assert bayesmeta.read_studies is read_studies
    assert bayesmeta.StudyTable is StudyTable
    assert STUDY_TABLE.key == ("study_id", "comparison_id", "outcome", "follow_up")
    assert STUDY_TABLE.required == ("study_id", "outcome", "follow_up")
    assert "n1" in STUDY_TABLE and "N1" not in STUDY_TABLE
    with pytest.raises(KeyError, match="not a column"):
        STUDY_TABLE["sd_control"]


def test_template_files_pass_the_reader_and_match_the_schema(tmp_path):
    for name in ("extraction_template.csv", "extraction_template.xlsx"):
        table = read_studies(TEMPLATES / name)
        assert list(table.columns) == list(STUDY_TABLE.names), name
        assert table.loc[1, "study_id"] == "Example 2020"
        assert table.loc[1, "notes"] == "example row, not real data"
        assert table.attrs["unknown_columns"] == [] and table.attrs["column_aliases"] == {}
    # the committed files are what scripts/make_template.py writes today
    csv_path = write_csv(tmp_path / "t.csv")
    assert csv_path.read_bytes() == (TEMPLATES / "extraction_template.csv").read_bytes()
    fresh = openpyxl.load_workbook(write_xlsx(tmp_path / "t.xlsx"))
    committed = openpyxl.load_workbook(TEMPLATES / "extraction_template.xlsx")
    assert committed.sheetnames == fresh.sheetnames == ["studies", "schema"]
    for sheet in fresh.sheetnames:
        assert list(committed[sheet].values) == list(fresh[sheet].values), sheet
    datasheet = (TEMPLATES / "DATASHEET.md").read_text(encoding="utf-8")
    assert schema_markdown() in datasheet
    assert "CC0" in datasheet and "not data" in datasheet


def test_template_example_row_fills_form_a_consistently_with_form_b():
    row = example_row()
    for arm in (1, 2):
        change = row[f"post_mean{arm}"] - row[f"baseline_mean{arm}"]
        assert change == pytest.approx(row[f"change_mean{arm}"], abs=1e-12)
        # change SD rounded to 0.1 from the Cochrane Handbook 6.5.2.8 identity with r = 0.5
        sd_b, sd_p, r = row[f"baseline_sd{arm}"], row[f"post_sd{arm}"], row["prepost_r"]
        imputed = math.sqrt(sd_b**2 + sd_p**2 - 2 * r * sd_b * sd_p)
        assert round(imputed, 1) == row[f"change_sd{arm}"]


def test_cli_validate(tmp_path, capsys):
    good = _write(_source_table().rename(columns={"study_id": "Study"}), tmp_path / "ok.csv")
    assert cli_main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: 6 rows valid (schema {STUDY_TABLE.version})" in out
    assert "column 'Study' read as study_id" in out
    assert "kept, outside the schema: sessions_per_week, setting" in out
    bad = _source_table()
    bad.loc[2, "n1"] = 1
    assert cli_main(["validate", str(_write(bad, tmp_path / "bad.csv"))]) == 2
    err = capsys.readouterr().err
    assert ("1 problem in bad.csv:\n  row 3 (Lee 2019), column n1: 1; a sample size must be "
            ">= 2") in err


def test_a_saved_validated_table_keeps_its_row_numbers_in_parquet(tmp_path):
    source = _source_table()
    source.loc[1, ["change_sd1", "change_sd2"]] = np.nan
    first = read_studies(source, missing="exclude")
    first.to_parquet(tmp_path / "validated.parquet")  # with its index "row"
    again = read_studies(tmp_path / "validated.parquet")
    assert again.index.tolist() == [1, 3, 4, 5, 6]
    assert_frame_equal(again, first, check_exact=True)
