"""Design matrices: named columns, reference levels, and clear errors for collinear moderators
and missing values (never a silent drop)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmeta import rma
from bayesmeta.design import INTERCEPT, check_full_rank, design_matrix, grouping, intercept_only
from bayesmeta.errors import InputError


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({
        "study_id": [f"S{i}" for i in range(1, 9)],
        "yi": [0.10, 0.30, 0.35, 0.60, 0.20, 0.45, 0.50, 0.15],
        "vi": [0.02, 0.03, 0.04, 0.05, 0.02, 0.03, 0.06, 0.04],
        "weeks": [4.0, 8.0, 12.0, 6.0, 10.0, 12.0, 8.0, 4.0],
        "comparator": ["active", "passive", "active", "passive", "active", "passive",
                       "active", "usual"],
    })


def test_intercept_only_design():
    d = intercept_only(5)
    assert d.terms == (INTERCEPT,) and d.intercept_only and d.matrix.shape == (5, 1)
    assert not d.matrix.flags.writeable


def test_formula_terms_are_named_and_intercept_is_called_intercept(table):
    d = design_matrix("~ weeks + comparator", table)
    assert d.terms == ("intercept", "weeks", "comparator[T.passive]", "comparator[T.usual]")
    np.testing.assert_array_equal(d.matrix[:, 2], (table["comparator"] == "passive") * 1.0)
    assert d.levels == {"comparator": ("active", "passive", "usual")}
    assert d.formula == "~ weeks + comparator"


def test_reference_level_choice(table):
    d = design_matrix("~ comparator", table, reference={"comparator": "passive"})
    assert d.terms == ("intercept", "comparator[T.active]", "comparator[T.usual]")
    ordered = table.assign(comparator=pd.Categorical(table["comparator"],
                                                     ["usual", "active", "passive"]))
    d2 = design_matrix("~ comparator", ordered)
    assert d2.terms == ("intercept", "comparator[T.active]", "comparator[T.passive]")
    with pytest.raises(InputError, match="not a level of comparator; its levels are active, "
                                         "passive, usual"):
        design_matrix("~ comparator", table, reference={"comparator": "sham"})
    with pytest.raises(InputError, match="does not use"):
        design_matrix("~ weeks", table, reference={"comparator": "active"})


def test_level_present_in_only_one_row_works(table):
    # "usual" occurs once: its dummy has a single 1 and the model still fits
    d = design_matrix("~ comparator", table)
    assert d.matrix[:, 2].sum() == 1.0
    fit = rma("yi", "vi", data=table, mods="~ comparator")
    assert fit.p == 3 and np.all(np.isfinite(fit.se))


def test_collinear_moderators_error_names_the_columns(table):
    doubled = table.assign(weeks2=2 * table["weeks"] + 1)
    with pytest.raises(InputError) as err:
        design_matrix("~ weeks + weeks2", doubled)
    assert "intercept, weeks, weeks2 are collinear" in str(err.value)
    with pytest.raises(InputError, match="intercept, constant are collinear"):
        design_matrix("~ constant", table.assign(constant=3.0))
    with pytest.raises(InputError, match="zero for every study"):
        check_full_rank(np.column_stack([np.ones(4), np.zeros(4)]), ("intercept", "nothing"))


def test_more_coefficients_than_studies(table):
    small = table.iloc[:3]
    with pytest.raises(InputError, match="only 3 studies"):
        design_matrix("~ weeks + comparator", small.assign(comparator=["a", "b", "c"]))


def test_missing_moderator_is_an_error_naming_rows(table):
    gaps = table.copy()
    gaps.loc[2, "weeks"] = np.nan
    gaps.loc[5, "comparator"] = None
    labels = gaps["study_id"].tolist()
    with pytest.raises(InputError) as err:
        design_matrix("~ weeks + comparator", gaps, labels=labels)
    problems = err.value.problems
    assert [(p.row, p.study, p.column) for p in problems] == [(3, "S3", "weeks"),
                                                               (6, "S6", "comparator")]
    assert "missing='exclude'" in str(err.value)
    # the same through rma: the error names the row and study
    with pytest.raises(InputError, match=r"row 3 \(S3\), column weeks"):
        rma("yi", "vi", data=gaps, mods="~ weeks + comparator")


def test_missing_moderator_explicit_exclusion_is_recorded(table):
    gaps = table.copy()
    gaps.loc[2, "weeks"] = np.nan
    d = design_matrix("~ weeks", gaps, labels=gaps["study_id"].tolist(), missing="exclude")
    assert list(d.rows) == [0, 1, 3, 4, 5, 6, 7]
    assert len(d.excluded) == 1 and d.excluded[0].row == 3 and d.excluded[0].study == "S3"
    assert "excluded" in str(d.excluded[0])
    with pytest.warns(UserWarning, match=r"row 3 \(S3\).*excluded"):
        fit = rma("yi", "vi", data=gaps, mods="~ weeks", missing="exclude")
    assert fit.k == 7 and "S3" not in fit.labels
    assert fit.to_dict()["excluded"] == [str(d.excluded[0])]
    with pytest.raises(InputError, match="missing must be one of"):
        design_matrix("~ weeks", gaps, missing="drop")


def test_excluding_rows_re_derives_levels(table):
    gaps = table.copy()
    gaps.loc[7, "weeks"] = np.nan  # the only "usual" row goes: no all-zero column remains
    d = design_matrix("~ weeks + comparator", gaps, missing="exclude")
    assert d.terms == ("intercept", "weeks", "comparator[T.passive]")


def test_single_level_categorical_is_an_error(table):
    with pytest.raises(InputError, match="at least two levels"):
        design_matrix("~ arm", table.assign(arm="x"))


def test_formula_errors(table):
    with pytest.raises(InputError, match="no_such"):
        design_matrix("~ no_such", table)
    with pytest.raises(InputError, match="right-hand side"):
        design_matrix("yi ~ weeks", table)
    with pytest.raises(InputError, match="needs data"):
        design_matrix("~ weeks", None)
    with pytest.raises(InputError, match="formula string"):
        design_matrix(42, table)


def test_moderator_table_text_bool_and_string_dtypes(table):
    mods = pd.DataFrame({"weeks": table["weeks"],
                         "comparator": table["comparator"].astype("string"),
                         "flag": [True, False, None, True, False, True, False, True]})
    with pytest.raises(InputError, match=r"row 3, column flag"):
        design_matrix(mods, k=8)
    mods.loc[2, "flag"] = False
    d = design_matrix(mods)
    assert d.terms == ("intercept", "weeks", "comparator[T.passive]", "comparator[T.usual]",
                       "flag")


def test_dotted_column_names(table):
    d = design_matrix("~ weeks.c", table.assign(**{"weeks.c": table["weeks"] - 8}))
    assert d.terms == ("intercept", "weeks.c")


def test_new_rows_for_prediction(table):
    d = design_matrix("~ weeks + comparator", table)
    rows = d.new_rows(pd.DataFrame({"weeks": [5.0], "comparator": ["usual"]}))
    np.testing.assert_array_equal(rows, [[1.0, 5.0, 0.0, 1.0]])
    np.testing.assert_array_equal(d.new_rows({"weeks": 5.0, "comparator": "passive"}),
                                  [[1.0, 5.0, 1.0, 0.0]])
    np.testing.assert_array_equal(d.new_rows(np.array([[5.0, 0.0, 1.0]])),
                                  [[1.0, 5.0, 0.0, 1.0]])
    with pytest.raises(InputError, match="expected 3 moderator value"):
        d.new_rows(np.array([[5.0]]))


def test_grouping_levels_reference_and_missing(table):
    g = grouping(table, "comparator", labels=table["study_id"].tolist())
    assert g.levels == ("active", "passive", "usual")
    assert list(g.codes) == [0, 1, 0, 1, 0, 1, 0, 2]
    g2 = grouping(table, "comparator", reference="usual")
    assert g2.levels[0] == "usual"
    gaps = table.copy()
    gaps.loc[0, "comparator"] = None
    with pytest.raises(InputError, match=r"row 1 \(S1\), column comparator"):
        grouping(gaps, "comparator", labels=gaps["study_id"].tolist())
    kept = grouping(gaps, "comparator", missing="exclude")
    assert list(kept.rows) == list(range(1, 8)) and len(kept.excluded) == 1
    with pytest.raises(InputError, match="no such column"):
        grouping(table, "nope")


def test_categorical_with_an_unused_category_recodes_without_pandas_deprecation():
    import warnings

    data = pd.DataFrame({"rob": pd.Categorical(["high", "some", "high", "some"],
                                               categories=["low", "some", "high"])})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas deprecates recoding into fewer categories
        design = design_matrix("~ rob", data)
    assert design.terms == ("intercept", "rob[T.high]")
    np.testing.assert_array_equal(design.matrix[:, 1], [1, 0, 1, 0])
