"""Influence diagnostics, leave-one-out and outliers against metafor 3.8-1.

``influence(res_REML)`` and ``leave1out(res_REML)`` (``influence_REML``, ``leave1out_REML`` in
tests/reference/*.json) for every reference analysis, each its own test id: every column to 1e-6
relative (1e-8 absolute near zero, ``metafor_tight``), metafor's ``inf`` flags exactly. Then the
outlier screen's rule, and bad input.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REFERENCE, assert_close, reference_documents
from scipy import stats

from bayesmeta import influence, leave_one_out, outliers, rma
from bayesmeta.errors import InputError
from bayesmeta.inputs import study_labels

INFLUENCE = {"rstudent": "rstudent", "cooks_d": "cook.d", "hat": "hat", "dffits": "dffits",
             "cov_r": "cov.r", "tau2_del": "tau2.del", "qe_del": "QE.del", "weight": "weight",
             "dfbetas_intercept": "dfbs_intrcpt"}
LEAVE_ONE_OUT = {"estimate": "estimate", "se": "se", "zval": "zval", "pval": "pval",
                 "ci_low": "ci.lb", "ci_high": "ci.ub", "qe": "Q", "qe_p": "Qp", "tau2": "tau2",
                 "i2": "I2", "h2": "H2"}


ANALYSES = [pytest.param(analysis, id=f"{name}-{key}") for name, doc in reference_documents()
            for key, analysis in doc["analyses"].items()]


def _fit(analysis: dict, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rma(np.asarray(analysis["yi"], dtype=float),
                   np.asarray(analysis["vi"], dtype=float), labels=analysis["label"], **kwargs)


def _labels(ref: dict) -> list[str]:
    # duplicated labels (dat.raudenbush1985) are made unique by the input layer ("... #2")
    return list(study_labels(None, len(ref["label"]), ref["label"]))


@pytest.mark.parametrize("analysis", ANALYSES)
def test_influence_matches_metafor(analysis):
    ref = analysis["metafor_tight"]["influence_REML"]
    table = influence(_fit(analysis))
    assert list(table.index) == _labels(ref)
    assert list(table.columns) == ["row", *INFLUENCE, "influential"]
    assert table["row"].tolist() == list(range(1, len(ref["label"]) + 1))  # arrays: positions
    for ours, theirs in INFLUENCE.items():
        assert table[ours].dtype == np.float64
        assert_close(ours, table[ours], ref[theirs])
    assert table["influential"].dtype == bool
    assert table["influential"].tolist() == ref["influential"]


@pytest.mark.parametrize("analysis", ANALYSES)
def test_leave_one_out_matches_metafor(analysis):
    ref = analysis["metafor_tight"]["leave1out_REML"]
    table = leave_one_out(_fit(analysis))
    assert list(table.index) == _labels(ref)
    assert list(table.columns) == ["row", *LEAVE_ONE_OUT]
    assert table["row"].tolist() == list(range(1, len(ref["label"]) + 1))
    for ours, theirs in LEAVE_ONE_OUT.items():
        assert_close(ours, table[ours], ref[theirs])


@pytest.mark.parametrize("analysis", ANALYSES)
def test_outliers_flags_influence_as_metafor_and_residuals_by_bonferroni(analysis):
    ref = analysis["metafor_tight"]["influence_REML"]
    k = analysis["k"]
    table = outliers(_fit(analysis))
    assert table["influential"].tolist() == ref["influential"]
    z = stats.norm.ppf(1 - 0.05 / (2 * k))
    assert table.attrs["thresholds"]["rstudent"] == pytest.approx(z, rel=1e-12)
    assert table["outlier"].tolist() == [abs(r) > z for r in ref["rstudent"]]
    thresholds = table.attrs["thresholds"]
    assert thresholds["cooks_d"] == pytest.approx(stats.chi2.median(1), rel=1e-12)
    assert thresholds["hat"] == pytest.approx(3 / k)
    assert thresholds["dffits"] == pytest.approx(3 * np.sqrt(1 / (k - 1)))
    assert thresholds["cov_r"] is None
    # the flags are the rules applied to metafor's own diagnostics
    assert table["flag_cooks_d"].tolist() == [c > thresholds["cooks_d"] for c in ref["cook.d"]]
    assert table["flag_hat"].tolist() == [h > thresholds["hat"] for h in ref["hat"]]
    assert table["flag_dffits"].tolist() == [abs(d) > thresholds["dffits"]
                                             for d in ref["dffits"]]
    assert table["flag_dfbetas"].tolist() == [abs(d) > 1 for d in ref["dfbs_intrcpt"]]
    any_rule = (table[["flag_cooks_d", "flag_hat", "flag_dffits", "flag_dfbetas"]]
                .any(axis=1))
    assert (any_rule == table["influential"]).all()


def test_covariance_ratio_rule_is_not_part_of_metafors_flag():
    # metafor 3.8-1 comments out the rule cov.r outside 1 +/- 3p/(k - p); had it been used,
    # several reference studies would be flagged that metafor does not flag
    extra = 0
    for param in ANALYSES:
        ref = param.values[0]["metafor_tight"]["influence_REML"]
        k = len(ref["label"])
        cov_r = np.asarray(ref["cov.r"])
        flagged = (cov_r > 1 + 3 / (k - 1)) | (cov_r < 1 - 3 / (k - 1))
        extra += int(np.sum(flagged & ~np.asarray(ref["influential"])))
        table = outliers(_fit(param.values[0]))
        assert table["influential"].tolist() == ref["influential"]
    assert extra > 0


# metafor's default control (|delta tau2| < 1e-5) leaves an error in each refit's tau2: up to
# 3.5e-3 relative in tau2.del/tau2 and 2.5e-3 in I2 (dat.raudenbush1985, tau2 ~ 0.013), which is
# 1e-3 or less in every other column. Near-zero Cook's distances and DFFITS (dat.curtis1998) are
# compared on the scale of their column.
@pytest.mark.parametrize("analysis", ANALYSES)
def test_default_control_metafor_agrees_to_its_stopping_error(analysis):
    fit = _fit(analysis)
    ref = analysis["metafor"]
    table = influence(fit)
    assert table["influential"].tolist() == ref["influence_REML"]["influential"]
    loo = leave_one_out(fit)
    for frame, block, names in [(table, "influence_REML", INFLUENCE),
                                (loo, "leave1out_REML", LEAVE_ONE_OUT)]:
        for ours, theirs in names.items():
            value = frame[ours].to_numpy()
            other = np.asarray(ref[block][theirs], dtype=float)
            scale = np.maximum(np.abs(other), np.abs(other).max())
            assert np.all(np.abs(value - other) <= 5e-3 * scale), (block, ours)


def test_influence_with_fixed_tau2_keeps_it_in_every_refit():
    analysis = ANALYSES[0].values[0]
    fit = _fit(analysis, tau2=0.1)
    table = influence(fit)
    assert np.all(table["tau2_del"] == 0.1)
    loo = leave_one_out(fit)
    assert np.all(loo["tau2"] == 0.1)
    # the refit without study 0 at the same fixed tau2
    direct = _fit({**analysis, "yi": analysis["yi"][1:], "vi": analysis["vi"][1:],
                   "label": analysis["label"][1:]}, tau2=0.1)
    assert loo["estimate"].iloc[0] == pytest.approx(direct.beta[0], rel=1e-12)


def test_knapp_hartung_leave_one_out_reports_t_statistics():
    analysis = ANALYSES[5].values[0]  # dat.bcg
    fit = _fit(analysis, test="knha")
    loo = leave_one_out(fit)
    assert "tval" in loo.columns and "zval" not in loo.columns
    direct = _fit({**analysis, "yi": analysis["yi"][1:], "vi": analysis["vi"][1:],
                   "label": analysis["label"][1:]}, test="knha")
    assert loo["tval"].iloc[0] == pytest.approx(direct.stat[0], rel=1e-10)
    assert loo["ci_low"].iloc[0] == pytest.approx(direct.ci_low[0], rel=1e-10)


def test_influence_of_a_meta_regression_has_one_dfbetas_column_per_coefficient():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    fit = rma("yi", "vi", data=data, mods="~ ablat", labels="label")
    table = influence(fit)
    assert [c for c in table.columns if c.startswith("dfbetas_")] == [
        "dfbetas_intercept", "dfbetas_ablat"]
    assert table.attrs["thresholds"]["hat"] == pytest.approx(3 * 2 / 13)
    # Cook's distance is the squared change in the coefficients in the metric of their
    # covariance: check one study by a direct refit
    i = 3
    keep = np.arange(13) != i
    direct = rma(data["yi"].to_numpy()[keep], data["vi"].to_numpy()[keep],
                 mods=data[["ablat"]].iloc[keep].reset_index(drop=True))
    change = fit.beta - direct.beta
    cook = change @ np.linalg.inv(fit.cov) @ change
    assert table["cooks_d"].iloc[i] == pytest.approx(cook, rel=1e-9)
    assert table["tau2_del"].iloc[i] == pytest.approx(direct.tau2, rel=1e-9)
    assert table["cov_r"].iloc[i] == pytest.approx(
        np.linalg.det(direct.cov) / np.linalg.det(fit.cov), rel=1e-9)


def test_a_deletion_that_makes_the_moderators_collinear_gives_na_with_a_note():
    data = pd.DataFrame({"yi": [0.1, 0.3, 0.2, 0.5, 0.4, 0.9, 0.35],
                         "vi": [0.05, 0.04, 0.06, 0.05, 0.03, 0.04, 0.05],
                         "group": ["a", "a", "a", "a", "a", "a", "b"],
                         "label": [f"s{i}" for i in range(7)]})
    fit = rma("yi", "vi", data=data, mods="~ group", labels="label")
    table = influence(fit)
    assert table.loc["s6", "rstudent"] is pd.NA
    assert table["rstudent"].dtype == "Float64"
    assert table.loc["s0", "rstudent"] is not pd.NA
    assert any(note.startswith("s6:") and "collinear" in note for note in table.attrs["notes"])
    assert not table["influential"].isna().any()


def test_a_gross_outlier_is_flagged_and_the_correction_matters():
    yi = np.array([0.10, 0.15, 0.05, 0.12, 0.08, 0.11, 0.09, 0.14, 0.07, 2.5])
    vi = np.full(10, 0.01)
    fit = rma(yi, vi)
    table = outliers(fit)
    assert table["outlier"].tolist() == [False] * 9 + [True]
    assert table.attrs["correction"] == "bonferroni"
    loose = outliers(fit, alpha=0.05, correction="none")
    assert loose.attrs["thresholds"]["rstudent"] == pytest.approx(stats.norm.ppf(0.975))
    assert loose.attrs["thresholds"]["rstudent"] < table.attrs["thresholds"]["rstudent"]


def test_influence_on_102_studies_is_fast():
    analysis = next(p.values[0] for p in ANALYSES if p.values[0]["k"] == 102)
    fit = _fit(analysis)
    start = time.perf_counter()
    influence(fit)
    elapsed = time.perf_counter() - start
    # 102 refits; about 0.2 s on the 2-core test machine (metafor takes several seconds)
    assert elapsed < 3.0


# -- bad input ---------------------------------------------------------------------------------


def test_too_few_studies_is_an_error_naming_the_analysis_and_k():
    fit = rma(np.array([0.1, 0.3]), np.array([0.02, 0.03]))
    with pytest.raises(InputError, match=r"influence diagnostics needs at least .*k = 2"):
        influence(fit)
    with pytest.raises(InputError, match=r"leave-one-out analysis needs at least .*k = 2"):
        leave_one_out(fit)


def test_leave_one_out_refuses_a_meta_regression():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    fit = rma("yi", "vi", data=data, mods="~ ablat")
    with pytest.raises(InputError, match="pooled models .* influence"):
        leave_one_out(fit)


def test_a_subgroup_result_is_refused():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    sub = rma("yi", "vi", data=data, subgroup="alloc_random")
    with pytest.raises(InputError, match="needs a fitted model from rma"):
        influence(sub)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": 0.0}, "alpha.*between 0 and 1"),
    ({"alpha": "a lot"}, "alpha.*between 0 and 1"),
    ({"correction": "holm"}, "correction.*bonferroni, none"),
])
def test_bad_outlier_settings_are_errors(kwargs, message):
    fit = _fit(ANALYSES[0].values[0])
    with pytest.raises(InputError, match=message):
        outliers(fit, **kwargs)
