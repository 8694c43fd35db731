"""Meta-regression against metafor 3.8-1 (``meta_regression[]`` in tests/reference/*.json).

Each formula x {REML, REML with Knapp-Hartung, DL} is a test id; coefficients (names mapped by
position: metafor's ``allocrandom`` is our ``alloc[T.random]``), tau2, I2, H2, R2, QM and QE to
1e-6 relative (1e-8 absolute near zero).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import assert_close, reference_document, reference_documents, study_table

from bayesmeta import rma
from bayesmeta.errors import InputError

FITS = {"REML": ("REML", "z"), "REML_knha": ("REML", "knha"), "DL": ("DL", "z")}
CASES = [pytest.param(doc, analysis, entry, fit_key,
                      id=f"{name}-{key}-{entry['mods']}-{fit_key}")
         for name, doc in reference_documents() for key, analysis in doc["analyses"].items()
         for entry in analysis.get("metafor_tight", {}).get("meta_regression", [])
         for fit_key in FITS]


def test_all_meta_regressions_are_collected():
    assert len(CASES) == 3 * 14  # 14 formulas over 6 analyses, three fits each


@pytest.mark.parametrize(("doc", "analysis", "entry", "fit_key"), CASES)
def test_meta_regression_matches_metafor_tight(doc, analysis, entry, fit_key):
    method, test = FITS[fit_key]
    ref = entry[fit_key]
    fit = rma("yi_ref", "vi_ref", data=study_table(doc, analysis), mods=entry["mods"],
              method=method, test=test)
    coefs = ref["coefficients"]
    assert fit.p == ref["p"] == len(coefs["name"])
    assert fit.k == ref["k"]
    if coefs["name"][0] == "intrcpt":
        assert fit.terms[0] == "intercept"
    for i, name in enumerate(coefs["name"]):
        for ours, theirs in (("beta", "estimate"), ("se", "se"), ("stat", "stat"),
                             ("pval", "pval"), ("ci_low", "ci.lb"), ("ci_high", "ci.ub")):
            assert_close(f"{name} {ours}", float(getattr(fit, ours)[i]), coefs[theirs][i])
    for ours, theirs in (("tau2", "tau2"), ("se_tau2", "se.tau2"), ("i2", "I2"), ("h2", "H2"),
                         ("r2", "R2"), ("qm", "QM"), ("qm_p", "QMp"), ("qe", "QE"),
                         ("qe_p", "QEp"), ("loglik", "logLik")):
        assert_close(ours, getattr(fit, ours), ref[theirs])
    assert list(fit.qm_df) == [d for d in ref["QMdf"] if d is not None]
    assert fit.qe_df == ref["QEdf"]
    assert fit.df == ref["df"]
    table = fit.coefficients
    assert list(table.index) == list(fit.terms)
    assert list(table.columns) == ["estimate", "se", "tval" if test == "knha" else "zval",
                                   "pval", "ci_low", "ci_high"]
    out = fit.to_dict()
    assert set(out["estimate"]) == set(fit.terms)
    assert out["qm"] == fit.qm and out["r2"] == fit.r2
    assert out["pi_low"] is None and "predict" in out["none_reasons"]["pi_low"]


def _bcg() -> pd.DataFrame:
    doc = reference_document("dat.bcg")
    return study_table(doc, doc["analyses"]["RR"])


def test_categorical_terms_are_named_as_formulaic_names_them():
    fit = rma("yi_ref", "vi_ref", data=_bcg(), mods="~ ablat + year + alloc")
    assert fit.terms == ("intercept", "ablat", "year", "alloc[T.random]", "alloc[T.systematic]")


def test_moderator_table_equals_formula():
    data = _bcg()
    by_formula = rma("yi_ref", "vi_ref", data=data, mods="~ ablat + alloc")
    by_table = rma("yi_ref", "vi_ref", data=data, mods=data[["ablat", "alloc"]])
    assert by_table.terms == by_formula.terms
    np.testing.assert_allclose(by_table.beta, by_formula.beta, rtol=1e-12)
    assert by_table.tau2 == pytest.approx(by_formula.tau2, rel=1e-12)


def test_reference_level_changes_parametrisation_not_fit():
    data = _bcg()
    default = rma("yi_ref", "vi_ref", data=data, mods="~ alloc")
    chosen = rma("yi_ref", "vi_ref", data=data, mods="~ alloc", reference={"alloc": "random"})
    assert chosen.terms == ("intercept", "alloc[T.alternate]", "alloc[T.systematic]")
    assert chosen.tau2 == pytest.approx(default.tau2, rel=1e-9)
    assert chosen.qm == pytest.approx(default.qm, rel=1e-9)
    # intercept = the reference level's mean: random in `chosen`
    assert chosen.beta[0] == pytest.approx(default.beta[0] + default.beta[1], rel=1e-9)


def test_predict_matches_hand_computation_and_fitted_values():
    data = _bcg()
    fit = rma("yi_ref", "vi_ref", data=data, mods="~ ablat + alloc")
    new = pd.DataFrame({"ablat": [20.0, 40.0], "alloc": ["random", "systematic"]})
    pred = fit.predict(new)
    rows = np.array([[1.0, 20.0, 1.0, 0.0], [1.0, 40.0, 0.0, 1.0]])
    np.testing.assert_allclose(pred["pred"], rows @ fit.beta, rtol=1e-12)
    se = np.sqrt(np.einsum("ij,jk,ik->i", rows, fit.cov, rows))
    np.testing.assert_allclose(pred["se"], se, rtol=1e-12)
    np.testing.assert_allclose(pred["pi_high"] - pred["pred"],
                               1.959963984540054 * np.sqrt(se**2 + fit.tau2), rtol=1e-9)
    # the same rows given as an array of the non-intercept columns
    np.testing.assert_allclose(fit.predict(rows[:, 1:])["pred"], pred["pred"], rtol=1e-12)
    fitted = fit.predict()
    np.testing.assert_allclose(fitted["pred"], fit.X @ fit.beta, rtol=1e-12)
    with pytest.raises(InputError, match="alloc"):
        fit.predict(pd.DataFrame({"ablat": [20.0]}))


def test_r2_is_zero_when_moderators_explain_nothing_and_none_without_intercept():
    doc = reference_document("RobergeEtAl2017")
    data = study_table(doc, doc["analyses"]["OR_PE"])
    fit = rma("yi_ref", "vi_ref", data=data, mods="~ dose")
    assert fit.r2 == 0.0  # metafor: 0 (tau2 larger than in the intercept-only model)
    no_intercept = rma("yi_ref", "vi_ref", data=data, mods="~ -1 + onset + onset:dose")
    assert no_intercept.r2 is None and "intercept" in no_intercept.none_reasons["r2"]
    assert no_intercept.qm_df == (4,)  # all coefficients tested without an intercept


def test_equal_effects_meta_regression_has_no_r2_and_warns_with_knha():
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        fit = rma("yi_ref", "vi_ref", data=_bcg(), mods="~ ablat", method="EE", test="knha")
    assert fit.r2 is None and fit.tau2 == 0.0
    assert any("Knapp-Hartung" in w for w in fit.warnings)
