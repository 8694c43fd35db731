"""Normalisation of pain/disability scores to the 0-10 VAS (values worked out by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmeta import escalc, to_vas
from bayesmeta.effects import INSTRUMENTS, from_vas, table_to_vas


@pytest.mark.parametrize(
    ("value", "instrument", "expected"),
    [
        (45.0, "VAS_0_100", 4.5),   # 45 mm / 10
        (6.2, "VAS_0_10", 6.2),     # already on the target scale
        (7.0, "NRS_0_10", 7.0),
        (12.0, "RMDQ_0_24", 5.0),   # 12 * 10/24
        (18.0, "RMDQ_0_24", 7.5),
        (30.0, "ODI_0_100", 3.0),   # 30 % / 10
        (0.0, "RMDQ_0_24", 0.0),    # the ends map to the ends
        (24.0, "RMDQ_0_24", 10.0),
    ],
)
def test_named_instruments_means(value, instrument, expected):
    assert to_vas(value, instrument) == pytest.approx(expected, rel=1e-15)


def test_sd_and_change_are_scaled_not_shifted():
    # RMDQ: factor 10/24. SD 4.8 -> 2.0; change -6 -> -2.5; custom 1-7: factor 10/6
    assert to_vas(4.8, "RMDQ_0_24", kind="sd") == pytest.approx(2.0, rel=1e-15)
    assert to_vas(-6.0, "RMDQ_0_24", kind="change") == pytest.approx(-2.5, rel=1e-15)
    assert to_vas(1.2, "custom", scale_min=1, scale_max=7, kind="sd") == pytest.approx(2.0)
    # a mean of 1 on a 1-7 scale is the bottom (0), not 1 * 10/6
    assert to_vas(1.0, "custom", scale_min=1, scale_max=7) == 0.0


def test_higher_is_better_scales_are_mirrored():
    # A 1-7 function scale where 7 = best: 7 -> 0 (no burden), 1 -> 10, 4 -> 5
    got = to_vas([7.0, 1.0, 4.0], "custom", scale_min=1, scale_max=7, higher_is_worse=False)
    np.testing.assert_allclose(got, [0.0, 10.0, 5.0], atol=1e-14)
    # an improvement (+3 points on the function scale) is a reduction in burden: -5 VAS
    assert to_vas(3.0, "custom", scale_min=1, scale_max=7, kind="change",
                  higher_is_worse=False) == pytest.approx(-5.0)
    # SDs keep their sign
    assert to_vas(1.5, "custom", scale_min=1, scale_max=7, kind="sd",
                  higher_is_worse=False) == pytest.approx(2.5)


def test_shape_of_the_result_follows_the_input():
    series = pd.Series([12.0, np.nan, 6.0], index=["a", "b", "c"], name="post_mean1")
    out = to_vas(series, "RMDQ_0_24")
    assert isinstance(out, pd.Series) and list(out.index) == ["a", "b", "c"]
    assert out.name == "post_mean1"
    assert out["a"] == pytest.approx(5.0) and np.isnan(out["b"])  # missing stays missing
    assert isinstance(to_vas(12, "RMDQ_0_24"), float)
    assert isinstance(to_vas([12], "RMDQ_0_24"), np.ndarray)


def test_from_vas_inverts_each_kind():
    assert from_vas(5.0, "RMDQ_0_24") == pytest.approx(12.0)
    assert from_vas(2.0, "RMDQ_0_24", kind="sd") == pytest.approx(4.8)
    assert from_vas(0.0, "custom", scale_min=1, scale_max=7, higher_is_worse=False) == 7.0


def test_instrument_registry():
    assert set(INSTRUMENTS) == {"VAS_0_10", "VAS_0_100", "NRS_0_10", "RMDQ_0_24", "ODI_0_100"}
    assert INSTRUMENTS["RMDQ_0_24"].width == 24.0


def _mixed_table() -> pd.DataFrame:
    return pd.DataFrame({
        "study_id": ["Pain VAS", "RMDQ", "Function"],
        "instrument": ["VAS_0_100", "RMDQ_0_24", "custom"],
        "scale_min": [np.nan, np.nan, 0.0], "scale_max": [np.nan, np.nan, 20.0],
        "higher_is_worse": [True, True, False],
        "n1": [40, 50, 30], "n2": [40, 50, 30],
        "baseline_mean1": [62.0, 12.0, 8.0], "post_mean1": [40.0, 8.0, 14.0],
        "baseline_sd1": [20.0, 4.8, 4.0], "post_sd1": [22.0, 4.8, 4.0],
        "change_mean2": [-10.0, -2.4, 2.0], "change_sd2": [15.0, 3.6, 3.0],
        "change_mean1": [np.nan, np.nan, np.nan], "change_sd1": [np.nan, np.nan, np.nan],
        "prepost_r": [0.5, 0.5, 0.5],
    })


def test_table_to_vas_converts_each_row_by_its_instrument():
    table = _mixed_table()
    before = table.copy()
    out = table_to_vas(table)
    pd.testing.assert_frame_equal(table, before)  # a new table; the input is untouched
    # VAS 0-100: /10
    assert out.loc[0, "baseline_mean1"] == pytest.approx(6.2)
    assert out.loc[0, "change_sd2"] == pytest.approx(1.5)
    # RMDQ: *10/24
    assert out.loc[1, "post_mean1"] == pytest.approx(80 / 24)
    assert out.loc[1, "change_mean2"] == pytest.approx(-1.0)
    # custom 0-20, higher is better: mean 8 -> 10 - 4 = 6; +2 change -> -1; SD 4 -> 2
    assert out.loc[2, "baseline_mean1"] == pytest.approx(6.0)
    assert out.loc[2, "post_mean1"] == pytest.approx(3.0)
    assert out.loc[2, "change_mean2"] == pytest.approx(-1.0)
    assert out.loc[2, "post_sd1"] == pytest.approx(2.0)
    assert list(out["instrument"]) == ["VAS_0_10"] * 3
    assert list(out["instrument_original"]) == ["VAS_0_100", "RMDQ_0_24", "custom"]
    assert list(out["higher_is_worse"]) == [True, True, True]
    assert [r["factor"] for r in out.attrs["to_vas"]] == pytest.approx([0.1, 10 / 24, 0.5])
    assert out.attrs["to_vas"][2]["higher_is_worse"] is False


def test_md_after_normalisation_is_in_vas_points_and_smd_is_unchanged():
    table = _mixed_table().iloc[[1]].reset_index(drop=True)  # the RMDQ row
    vas = table_to_vas(table)
    raw_md = escalc("MD", table)
    vas_md = escalc("MD", vas)
    factor = 10 / 24
    assert vas_md["yi"][0] == pytest.approx(raw_md["yi"][0] * factor, rel=1e-13)
    assert vas_md["vi"][0] == pytest.approx(raw_md["vi"][0] * factor**2, rel=1e-13)
    # SMD is invariant under a linear map that keeps the direction
    assert escalc("SMD", vas)["yi"][0] == pytest.approx(escalc("SMD", table)["yi"][0], rel=1e-12)
    # ... and flips sign when the direction is mirrored (higher_is_worse=False)
    mirrored = table_to_vas(table.assign(higher_is_worse=False))
    assert escalc("SMD", mirrored)["yi"][0] == pytest.approx(-escalc("SMD", table)["yi"][0],
                                                             rel=1e-12)


def test_table_to_vas_handles_form_c_rows_by_measure():
    table = pd.DataFrame({"study_id": ["MD row", "SMD row"],
                          "instrument": ["VAS_0_100", "custom"],
                          "scale_min": [np.nan, 0], "scale_max": [np.nan, 20],
                          "higher_is_worse": ["true", "false"],
                          "yi": [-12.0, -0.4], "vi": [16.0, 0.05], "measure": ["MD", "SMD"]})
    out = table_to_vas(table)
    # MD in mm -> VAS points: yi / 10, vi / 100; SMD only changes sign on a mirrored scale
    assert out["yi"].tolist() == pytest.approx([-1.2, 0.4])
    assert out["vi"].tolist() == pytest.approx([0.16, 0.05])


def test_rows_without_outcome_values_are_left_alone():
    table = pd.DataFrame({"study_id": ["A"], "instrument": [None], "post_mean1": [np.nan]})
    out = table_to_vas(table)
    assert out.attrs["to_vas"] == []
    assert out["instrument"].tolist() == [None]
