"""Multi-arm trials: shared groups are found, warned about, and split (Cochrane Handbook 23.3.4)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesmeta import escalc, split_shared_groups
from bayesmeta.effects import check_shared_groups, find_shared_groups
from bayesmeta.errors import BayesmetaWarning, InputError


def _three_arm() -> pd.DataFrame:
    """Smith 2015: two individualized arms against one control of 50 (rows 2 and 3)."""
    return pd.DataFrame({
        "study_id": ["Ford 2016", "Smith 2015", "Smith 2015"],
        "comparison_id": ["1", "1", "2"],
        "outcome": ["pain"] * 3, "follow_up": ["short"] * 3,
        "n1": [30, 25, 26], "n2": [31, 50, 50],
        "change_mean1": [-2.0, -1.5, -2.2], "change_mean2": [-1.0, -0.5, -0.5],
        "change_sd1": [1.5, 1.4, 1.4], "change_sd2": [1.6, 1.2, 1.2],
    })


def test_shared_control_is_found_and_warned_about():
    with pytest.warns(BayesmetaWarning, match=r"study Smith 2015: the control arm \(arm 2\) "
                                              r"\(n=50\) is used by 2 comparisons \(1, 2; rows "
                                              r"2, 3\) of the analysis outcome=pain, "
                                              r"follow_up=short"):
        found = check_shared_groups(_three_arm())
    assert [g.to_dict() for g in found] == [{
        "study": "Smith 2015", "arm": 2, "comparisons": ["1", "2"], "rows": [2, 3], "n": 50.0,
        "analysis": {"outcome": "pain", "follow_up": "short"}}]


def test_split_halves_the_shared_control_and_records_it():
    table = _three_arm()
    before = table.copy()
    out = split_shared_groups(table)
    pd.testing.assert_frame_equal(table, before)
    assert out["n2"].tolist() == [31.0, 25.0, 25.0]
    assert out["n1"].tolist() == [30, 25, 26]           # the individualized arms are untouched
    assert out["change_sd2"].tolist() == [1.6, 1.2, 1.2]  # means and SDs unchanged
    assert out["shared_group_split"].tolist() == [
        "", *["control n 50 split over 2 comparisons -> 25 (Cochrane Handbook 23.3.4)"] * 2]
    (record,) = out.attrs["split_shared_groups"]
    assert (record["n_before"], record["n_after"], record["rows"]) == (50.0, 25.0, [2, 3])
    # A split table raises no further warning, and splitting again changes nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesmetaWarning)
        assert check_shared_groups(out) == []
        again = split_shared_groups(out)
    assert again["n2"].tolist() == [31.0, 25.0, 25.0]


def test_split_increases_the_variance_of_the_shared_comparisons_only():
    table = _three_arm()
    with pytest.warns(BayesmetaWarning, match="double-counts"):
        raw = escalc("MD", table)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesmetaWarning)  # no double-counting warning after
        split = escalc("MD", split_shared_groups(table))
    # MD variance of Smith 2015 [1]: 1.4^2/25 + 1.2^2/n2 with n2 = 50 before and 25 after
    assert raw["vi"][1] == pytest.approx(1.96 / 25 + 1.44 / 50, rel=1e-14)
    assert split["vi"][1] == pytest.approx(1.96 / 25 + 1.44 / 25, rel=1e-14)
    assert split["vi"][0] == raw["vi"][0]
    np.testing.assert_array_equal(split["yi"], raw["yi"])
    assert len(raw.attrs["escalc"]["warnings"]) == 1


def test_shared_experimental_arm_and_events_are_split():
    # One individualized arm (40 participants, 12 events) against two controls.
    table = pd.DataFrame({
        "study_id": ["Ng 2020"] * 2, "comparison_id": ["active", "passive"],
        "outcome": ["pain"] * 2, "follow_up": ["long"] * 2,
        "events1": [12, 12], "n1": [40, 40], "events2": [15, 20], "n2": [41, 39],
    })
    (group,) = find_shared_groups(table)
    assert group.arm == 1 and group.comparisons == ("active", "passive")
    out = split_shared_groups(table)
    assert out["n1"].tolist() == [20.0, 20.0]
    assert out["events1"].tolist() == [6.0, 6.0]
    assert out["n2"].tolist() == [41, 39]
    assert out.attrs["split_shared_groups"][0]["events_before"] == [12.0, 12.0]
    # log OR after splitting: 6/14 vs 15/26 -> log((6*26)/(14*15))
    res = escalc("OR", out)
    assert res["yi"][0] == pytest.approx(np.log(6 * 26 / (14 * 15)), rel=1e-13)


def test_three_comparisons_split_in_three_and_other_analyses_are_separate():
    table = pd.DataFrame({
        "study_id": ["Kim 2018"] * 4, "comparison_id": ["1", "2", "3", "1"],
        "outcome": ["pain", "pain", "pain", "disability"], "follow_up": ["short"] * 4,
        "n1": [20, 21, 22, 20], "n2": [45, 45, 45, 45],
        "change_mean1": [-1.0, -1.2, -0.8, -0.5], "change_mean2": [-0.2] * 4,
        "change_sd1": [1.0, 1.1, 1.2, 0.9], "change_sd2": [1.0] * 4,
    })
    out = split_shared_groups(table)
    # pain: 45 / 3 = 15 each; the disability row is its own analysis and keeps 45
    assert out["n2"].tolist() == [15.0, 15.0, 15.0, 45.0]


def test_by_separates_analyses_that_never_pool_the_shared_arm():
    # The review pools active and passive comparators separately: a shared individualized arm
    # then never meets itself within one analysis, so with by=comparator nothing is split.
    table = pd.DataFrame({
        "study_id": ["Ng 2020"] * 2, "comparison_id": ["a", "b"], "outcome": ["pain"] * 2,
        "follow_up": ["short"] * 2, "comparator": ["active", "passive"],
        "n1": [40, 40], "n2": [41, 39], "change_mean1": [-2.0, -2.0],
        "change_mean2": [-1.0, -0.2], "change_sd1": [1.5, 1.5], "change_sd2": [1.4, 1.6],
    })
    assert len(find_shared_groups(table)) == 1
    assert find_shared_groups(table, by=["outcome", "follow_up", "comparator"]) == []
    out = split_shared_groups(table, by=["outcome", "follow_up", "comparator"])
    assert out["n1"].tolist() == [40, 40]
    assert out.attrs["split_shared_groups"] == []


def test_independent_comparisons_are_not_flagged_in_auto_mode():
    # Two comparisons of one trial that share no arm (e.g. a 2x2 factorial analysed in pairs)
    table = pd.DataFrame({
        "study_id": ["F 2019"] * 2, "comparison_id": ["1", "2"], "n1": [20, 22],
        "n2": [21, 23], "change_mean1": [-1.0, -1.1], "change_mean2": [0.0, 0.1],
    })
    assert find_shared_groups(table) == []
    # ... while the caller can insist that arm 2 is shared (sizes then must agree)
    forced = find_shared_groups(table.assign(n2=[21, 21]), shared="control")
    assert [g.arm for g in forced] == [2]


# escalc runs the same check when the arms come from metafor keywords: the columns may have any
# name, so it reads the values escalc itself read (issue 2: a shared control was missed when the
# multi-arm table was passed with m1i=..., n2i=...).
KEYWORDS = dict(m1i="change_mean1", sd1i="change_sd1", n1i="n1", m2i="change_mean2",
                sd2i="change_sd2", n2i="n2")


def test_escalc_with_metafor_keywords_warns_about_the_shared_control():
    with pytest.warns(BayesmetaWarning) as caught:
        out = escalc("SMD", _three_arm(), **KEYWORDS)
    (text,) = out.attrs["escalc"]["warnings"]
    assert text == (
        "study Smith 2015: the control arm (arm 2) (n=50) is used by 2 comparisons (1, 2; rows "
        "2, 3) of the analysis outcome=pain, follow_up=short; pooling them double-counts its "
        "participants (Cochrane Handbook 23.3.4: split_shared_groups divides its n across the "
        "comparisons)")
    assert [str(w.message) for w in caught] == [text]
    # columns named as in the study table: split_shared_groups applies, and silences the check
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesmetaWarning)
        split = escalc("SMD", split_shared_groups(_three_arm()), **KEYWORDS)
    assert split["vi"][1] > out["vi"][1]


def test_keyword_columns_of_other_names_are_checked_and_the_remedy_named():
    table = _three_arm().rename(columns={"n1": "n_exp", "n2": "n_ctl", "change_sd2": "sd_ctl"})
    with pytest.warns(BayesmetaWarning, match="double-counts"):
        out = escalc("MD", table, **{**KEYWORDS, "n1i": "n_exp", "n2i": "n_ctl",
                                     "sd2i": "sd_ctl"})
    (text,) = out.attrs["escalc"]["warnings"]
    assert text.startswith("study Smith 2015: the control arm (arm 2) (n=50) is used by 2 "
                           "comparisons (1, 2; rows 2, 3)")
    assert text.endswith(
        ". split_shared_groups reads the study-table columns n1, n2, but escalc read the arms "
        "from m1i=change_mean1, sd1i=change_sd1, n1i=n_exp, m2i=change_mean2, sd2i=sd_ctl, "
        "n2i=n_ctl: divide the shared arm's n by the number of comparisons before escalc "
        "instead")


def test_keyword_2x2_tables_with_non_events_find_the_shared_arm():
    # one individualized arm (12/40) against two controls, given as events and non-events
    table = pd.DataFrame({"study_id": ["Ng 2020"] * 2, "comparison_id": ["active", "passive"],
                          "ev_i": [12, 12], "no_i": [28, 28], "ev_c": [15, 20], "no_c": [26, 19]})
    with pytest.warns(BayesmetaWarning, match=r"study Ng 2020: the experimental arm \(arm 1\) "
                                              r"\(n=40\) is used by 2 comparisons \(active, "
                                              r"passive; rows 1, 2\)"):
        out = escalc("OR", table, ai="ev_i", bi="no_i", ci="ev_c", di="no_c")
    assert out.attrs["escalc"]["warnings"][0].endswith(
        "divide the shared arm's counts (events and non-events) by the number of comparisons "
        "before escalc instead")


def test_keyword_tables_without_study_id_or_shared_arms_stay_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesmetaWarning)
        no_ids = escalc("MD", _three_arm().drop(columns=["study_id"]), **KEYWORDS)
        arrays = escalc("MD", m1i=[-1.5, -2.2], sd1i=[1.4, 1.4], n1i=[25, 26],
                        m2i=[-0.5, -0.5], sd2i=[1.2, 1.2], n2i=[50, 50])
        ford = escalc("MD", _three_arm().iloc[:2], **KEYWORDS)
    assert no_ids.attrs["escalc"]["warnings"] == arrays.attrs["escalc"]["warnings"] == []
    assert ford.attrs["escalc"]["warnings"] == []


def test_keyword_table_with_a_duplicated_comparison_is_an_error():
    table = _three_arm()
    table.loc[2, ["n1", "change_mean1"]] = [25, -1.5]  # comparison 2 now copies comparison 1
    with pytest.raises(InputError, match=r"study Smith 2015, column comparison_id: 1, 2; rows "
                                         r"2, 3 have identical data in both arms"):
        escalc("MD", table, **KEYWORDS)
