"""Subgroup analyses against metafor 3.8-1 (``subgroups[]`` in tests/reference/*.json).

Per level: REML, REML with Knapp-Hartung and DL fits. Between levels: QM of the common-tau2
moderator model (``rma(yi, vi, mods = ~ factor(var))``), its cell-means version, and Q-between
from the separate fits (``rma(estimates, sei = ses, method = "EE")$QE``).
"""

from __future__ import annotations

import warnings

import pytest
from refdata import assert_close, reference_document, reference_documents, study_table

from bayesmeta import rma
from bayesmeta.errors import InputError
from bayesmeta.frequentist import SubgroupResult

FITS = {"REML": ("REML", "z"), "REML_knha": ("REML", "knha"), "DL": ("DL", "z")}
CASES = [pytest.param(doc, analysis, entry, fit_key,
                      id=f"{name}-{key}-{entry['variable']}-{fit_key}")
         for name, doc in reference_documents() for key, analysis in doc["analyses"].items()
         for entry in analysis.get("metafor_tight", {}).get("subgroups", [])
         for fit_key in FITS]


def _run(doc, analysis, variable, method, test) -> SubgroupResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = rma("yi_ref", "vi_ref", data=study_table(doc, analysis), subgroup=variable,
                     method=method, test=test)
    assert isinstance(result, SubgroupResult)
    return result


def test_all_subgroup_analyses_are_collected():
    assert len(CASES) == 3 * 9  # 9 subgroup variables over 6 analyses, three fits each


@pytest.mark.parametrize(("doc", "analysis", "entry", "fit_key"), CASES)
def test_subgroups_match_metafor_tight(doc, analysis, entry, fit_key):
    method, test = FITS[fit_key]
    result = _run(doc, analysis, entry["variable"], method, test)
    assert [str(lv) for lv in result.levels] == entry["levels"]
    assert list(result.k_per_level) == entry["k_per_level"]
    for level, per_level in zip(result.levels, entry["per_level"], strict=True):
        ref = per_level[fit_key]
        out = result.fits[level].to_dict()
        for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("pval", "pval"),
                             ("ci_low", "ci.lb"), ("ci_high", "ci.ub"), ("tau2", "tau2"),
                             ("se_tau2", "se.tau2"), ("i2", "I2"), ("h2", "H2"), ("qe", "QE"),
                             ("qe_p", "QEp"), ("pi_low", "pi.lb"), ("pi_high", "pi.ub")):
            assert_close(f"{level} {ours}", out[ours], ref[theirs])
    if fit_key in ("REML", "REML_knha"):
        ref = entry[f"test_common_tau2_{fit_key}"]
        mod = result.moderator_fit
        assert mod.terms[1:] == tuple(f"{entry['variable']}[T.{lv}]" for lv in result.levels[1:])
        for i in range(mod.p):
            assert_close("beta", float(mod.beta[i]), ref["coefficients"]["estimate"][i])
            assert_close("se", float(mod.se[i]), ref["coefficients"]["se"][i])
        for ours, theirs in (("tau2", "tau2"), ("i2", "I2"), ("r2", "R2"), ("qe", "QE")):
            assert_close(ours, getattr(mod, ours), ref[theirs])
        assert_close("qm", result.qm, ref["QM"])
        assert_close("qm_p", result.qm_p, ref["QMp"])
        assert list(result.qm_df) == [d for d in ref["QMdf"] if d is not None]
    if test == "z":
        ref = entry[f"test_separate_tau2_{fit_key}"]
        assert_close("Q_between", result.q_between, ref["Q_between"])
        assert_close("Q_between p", result.q_between_p, ref["pval"])
        assert result.q_between_df == ref["df"]
    if fit_key == "REML":
        ref = entry["cell_means_common_tau2_REML"]
        cells = result.cell_means_fit
        for i in range(cells.p):
            assert_close("cell mean", float(cells.beta[i]), ref["coefficients"]["estimate"][i])
            assert_close("cell se", float(cells.se[i]), ref["coefficients"]["se"][i])
        assert_close("cell QM", cells.qm, ref["QM"])
        assert cells.r2 is None and ref["R2"] is None


def test_subgroup_to_dict_and_summary():
    doc = reference_document("dat.bcg")
    result = _run(doc, doc["analyses"]["RR"], "alloc", "REML", "z")
    out = result.to_dict()
    assert out["levels"] == ["alternate", "random", "systematic"]
    assert out["k_per_level"] == [2, 7, 4]
    assert set(out["subgroups"]) == set(out["levels"])
    assert out["qm_df"] == [2] and out["q_between_df"] == 2
    assert out["overall"]["tau2"] == pytest.approx(0.313243258136481, rel=1e-6)
    table = result.summary()
    assert list(table.index) == ["alternate", "random", "systematic", "overall"]
    assert table.loc["random", "k"] == 7


def test_subgroup_reference_level_and_missing_subgroup():
    doc = reference_document("dat.bcg")
    data = study_table(doc, doc["analyses"]["RR"])
    chosen = rma("yi_ref", "vi_ref", data=data, subgroup="alloc", reference="random")
    assert chosen.levels[0] == "random"
    default = rma("yi_ref", "vi_ref", data=data, subgroup="alloc")
    assert chosen.qm == pytest.approx(default.qm, rel=1e-9)
    gap = data.copy()
    gap.loc[3, "alloc"] = None
    with pytest.raises(InputError, match=r"row 4 \(Hart & Sutherland 1977\), column alloc"):
        rma("yi_ref", "vi_ref", data=gap, subgroup="alloc")
    with pytest.warns(UserWarning, match="excluded"):
        kept = rma("yi_ref", "vi_ref", data=gap, subgroup="alloc", missing="exclude")
    assert kept.overall.k == 12 and len(kept.excluded) == 1
    with pytest.raises(InputError, match="not both"):
        rma("yi_ref", "vi_ref", data=data, subgroup="alloc", mods="~ ablat")


def test_subgroup_with_one_study_in_a_level():
    # curtis1998 fungrp: N2FIX has 2 studies; a level with a single study still fits (tau2 = 0
    # with a note), and Knapp-Hartung on it is a clear error naming the level
    doc = reference_document("dat.bcg")
    data = study_table(doc, doc["analyses"]["RR"])
    data["one"] = ["solo"] + ["rest"] * 12
    result = rma("yi_ref", "vi_ref", data=data, subgroup="one")
    solo = result.fits["solo"]
    assert solo.k == 1 and solo.tau2 == 0.0 and solo.i2 is None
    assert any("k = 1" in n for n in solo.notes)
    with pytest.raises(InputError, match="one = solo"):
        rma("yi_ref", "vi_ref", data=data, subgroup="one", test="knha")
