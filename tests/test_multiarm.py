"""Multi-arm trials: shared groups are found, warned about, and split (Cochrane Handbook 23.3.4)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesmeta import escalc, split_shared_groups
from bayesmeta.effects import check_shared_groups, find_shared_groups
from bayesmeta.errors import BayesmetaWarning


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
