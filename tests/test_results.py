"""BayesResult: predictions of a meta-regression at moderator values (both engines), to_dict,
printing, and the save / load integrity hash and diagnostics table.

The NUTS fit uses the HalfNormal(0.5) tau prior, capacity 64 and 4 coefficient slots like
tests/test_bayes_models.py, so a full-suite run reuses that module's compiled sampler. NUTS is
compared with the exact engine within max(4 MCSE, 1e-3 posterior SD) (issue 5's acceptance),
MCSEs from arviz on the chains. bmr() references: 1% of the posterior SD (as
tests/test_exact_regression.py).
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
import pandas as pd
import pytest
from refdata import reference_document, roberge_table

import bayesmeta
from bayesmeta import priors
from bayesmeta.bayes.prediction import PredictionPosterior
from bayesmeta.errors import InputError
from bayesmeta.results import FileIntegrityError, input_hash

NUTS = dict(engine="nuts", tau_prior=priors.HalfNormal(0.5), capacity=64, coef_slots=4,
            seed=20261125)
REG = dict(labels="label", mods="~ dose + onset", coef_prior=priors.Normal(0, 4))
EARLY, LATE = "up to wk 16", "after wk 16"
#: bmr() references: 1% of the posterior SD
BMR_TOL = 0.01


def reference() -> dict:
    return reference_document("RobergeEtAl2017")


#: the bmr() references' study table, read once per module
table = cache(roberge_table)


@cache
def exact_fit() -> bayesmeta.BayesResult:
    return bayesmeta.bayes_rma("yi", "vi", data=table(), engine="exact",
                               tau_prior=priors.HalfNormal(0.5), **REG)


@pytest.fixture(scope="module")
def nuts_fit():
    return bayesmeta.bayes_rma("yi", "vi", data=table(), **REG, **NUTS)


NEWMODS = pd.DataFrame({"dose": [100, 150], "onset": [EARLY, LATE]}, index=["early", "late"])


# ---------------------------------------------------------------------------------------------
# predictions


def test_prediction_matches_bmr_qpredict():
    """bmr(~ -1 + onset + onset:dose)'s qpredict (mean = TRUE, shortest 95% intervals) at
    doses 50, 100, 150, asked for by moderator values as the formula names them."""
    res = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                              mods="~ -1 + onset + onset:dose",
                              tau_prior=priors.ImproperUniform(), coef_prior=None)
    ref = reference()["extras"]["bmr02"]["predictions"]
    for group, level in (("early", EARLY), ("late", LATE)):
        new = pd.DataFrame({"onset": [level] * 3, "dose": ref["dose"]})
        pred = res.predict(new)
        assert pred.params == ("mu[1]", "theta_new[1]", "mu[2]", "theta_new[2]", "mu[3]",
                               "theta_new[3]")
        for i in range(3):
            mu = f"mu[{i + 1}]"
            sd = pred.sd(mu)
            assert pred.median(mu) == pytest.approx(ref[f"{group}_median"][i],
                                                    abs=BMR_TOL * sd)
            lo, hi = pred.interval(mu, 0.95, "shortest")
            assert lo == pytest.approx(ref[f"{group}_interval"][i][0], abs=BMR_TOL * sd)
            assert hi == pytest.approx(ref[f"{group}_interval"][i][1], abs=BMR_TOL * sd)


def test_prediction_is_the_posterior_of_the_design_row():
    res = exact_fit()
    pred = res.predict({"dose": 100, "onset": EARLY})
    assert pred.model == "prediction" and pred.params == ("mu", "theta_new")
    assert isinstance(pred.posterior, PredictionPosterior)
    row = [1.0, 100.0, 1.0]  # intercept, dose, onset[T.up to wk 16]
    assert res.extras["terms"] == ["intercept", "dose", f"onset[T.{EARLY}]"]
    assert pred.extras["design_rows"] == [row]
    for new_study, param in ((False, "mu"), (True, "theta_new")):
        dist = res.posterior.predict(row, new_study=new_study)
        np.testing.assert_array_equal(pred.quantile(param, [0.025, 0.5, 0.975]),
                                      dist.quantile([0.025, 0.5, 0.975]))
        assert pred.prob(param, "<", -0.5) == dist.cdf(-0.5)
    # linearity: the mean at x0 is x0' E[beta]
    expected = res.mean("intercept") + 100 * res.mean("dose") + res.mean(f"onset[T.{EARLY}]")
    assert pred.mean("mu") == pytest.approx(expected, rel=1e-12)
    # a new study adds tau: wider, same centre
    assert pred.mean("theta_new") == pytest.approx(pred.mean("mu"), rel=1e-12)
    assert pred.sd("theta_new") ** 2 == pytest.approx(
        pred.sd("mu") ** 2 + res.mean("tau") ** 2 + res.sd("tau") ** 2, rel=1e-9)
    # the same prediction from the design row (array), with or without the intercept column
    for arr in (row, row[1:]):
        again = res.predict(np.array(arr))
        assert again.quantile("mu", 0.3) == pred.quantile("mu", 0.3)


def test_several_rows_are_named_and_equal_single_predictions():
    res = exact_fit()
    pred = res.predict(NEWMODS)
    assert pred.params == ("mu[early]", "theta_new[early]", "mu[late]", "theta_new[late]")
    late = res.predict({"dose": 150, "onset": LATE})
    assert pred.quantile("theta_new[late]", 0.9) == late.quantile("theta_new", 0.9)
    assert pred.extras["rows"] == ["early", "late"]
    assert pred.extras["newmods"] == {"dose": [100, 150], "onset": [EARLY, LATE]}
    # lists in a dict: rows named 1, 2, ...
    listed = res.predict({"dose": [100, 150], "onset": [EARLY, LATE]})
    assert listed.params == ("mu[1]", "theta_new[1]", "mu[2]", "theta_new[2]")
    assert listed.mean("mu[2]") == pred.mean("mu[late]")


def test_frequentist_side_is_metafors_predict():
    """The prediction's REML twin is rma(...).predict(newmods) (metafor's predict)."""
    res = exact_fit()
    pred = res.predict(NEWMODS)
    reml = bayesmeta.rma("yi", "vi", data=table(), mods="~ dose + onset")
    want = reml.predict(NEWMODS)
    np.testing.assert_allclose(pred.frequentist.table[["pred", "ci_low", "ci_high", "pi_low",
                                                        "pi_high"]].to_numpy(),
                               want[["pred", "ci_low", "ci_high", "pi_low",
                                     "pi_high"]].to_numpy(), rtol=1e-12)
    one = res.predict({"dose": 100, "onset": EARLY}).frequentist.to_dict()
    assert one["estimate"] == pytest.approx(float(want["pred"].iloc[0]), rel=1e-12)
    assert one["level"] == 0.95


def test_prediction_input_errors():
    res = exact_fit()
    with pytest.raises(InputError, match=r"column onset: weekly; not a level of onset in the "
                                         r"fitted model; its levels are after wk 16, up to wk 16"):
        res.predict({"dose": 100, "onset": "weekly"})
    with pytest.raises(InputError, match="column onset; a value is needed for every moderator"):
        res.predict({"dose": 100})
    with pytest.raises(InputError, match="column intercept; not a moderator of the formula"):
        res.predict({"dose": 100, "onset": EARLY, "intercept": 1})
    with pytest.raises(InputError, match=r"a design row needs 3 finite values"):
        res.predict([1.0, 2.0, 3.0, 4.0])
    pooled = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                                 tau_prior=priors.HalfNormal(0.5))
    with pytest.raises(InputError, match="need a meta-regression result"):
        pooled.predict({"dose": 100})
    with pytest.raises(InputError, match="a prediction is derived from its meta-regression"):
        res.predict({"dose": 100, "onset": EARLY}).save("unused.nc")


def test_a_result_without_a_stored_formula_takes_design_rows():
    """Results saved before the formula was stored (or whose design cannot be restored) take
    design rows, and say so when given moderator values."""
    import dataclasses

    res = exact_fit()
    design = {k: v for k, v in res.extras["twin_design"].items()
              if k in ("terms", "matrix")}
    old = dataclasses.replace(res, extras={**res.extras, "twin_design": design})
    with pytest.raises(InputError, match=r"does not store a restorable moderator formula "
                                         r"\(saved by an older version\): pass design rows as "
                                         r"an array in the order intercept, dose"):
        old.predict({"dose": 100, "onset": EARLY})
    assert old.predict([100.0, 1.0]).median("mu") == \
        res.predict({"dose": 100, "onset": EARLY}).median("mu")


def test_prediction_survives_save_and_load(tmp_path):
    res = exact_fit()
    res.save(tmp_path / "reg.nc")
    back = bayesmeta.load(tmp_path / "reg.nc")
    assert back.extras == res.extras
    before, after = res.predict(NEWMODS), back.predict(NEWMODS)
    for p in before.params:
        assert after.quantile(p, 0.1) == before.quantile(p, 0.1)
    pd.testing.assert_frame_equal(after.frequentist.table, before.frequentist.table)
    # the REML twin is refitted from the stored formula and moderator columns: identical
    pd.testing.assert_frame_equal(back.frequentist.summary(), res.frequentist.summary())


def test_stateful_formula_and_table_moderators_are_restored(tmp_path):
    """center(dose) is centred on the fitted studies' mean: after save / load the same rows."""
    res = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                              mods="~ center(dose)", tau_prior=priors.HalfNormal(0.5),
                              coef_prior=priors.Normal(0, 4))
    mean_dose = float(table()["dose"].mean())
    pred = res.predict({"dose": mean_dose})
    assert pred.extras["design_rows"][0] == pytest.approx([1.0, 0.0], abs=1e-12)
    res.save(tmp_path / "c.nc")
    assert bayesmeta.load(tmp_path / "c.nc").predict({"dose": 120}).median("mu") == \
        res.predict({"dose": 120}).median("mu")
    # moderators given as a table (mods=DataFrame) predict by column name as well
    mods = table()[["dose"]]
    by_table = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                                   mods=mods, tau_prior=priors.HalfNormal(0.5),
                                   coef_prior=priors.Normal(0, 4))
    by_formula = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                                     mods="~ dose", tau_prior=priors.HalfNormal(0.5),
                                     coef_prior=priors.Normal(0, 4))
    assert by_table.predict({"dose": 120}).median("mu") == pytest.approx(
        by_formula.predict({"dose": 120}).median("mu"), rel=1e-12)


def test_nuts_prediction_matches_exact(nuts_fit):
    assert nuts_fit.diagnostics.passed, nuts_fit.diagnostics.messages
    got, want = nuts_fit.predict(NEWMODS), exact_fit().predict(NEWMODS)
    post = got.posterior
    # mu from the draws of beta; theta_new the posterior-predictive mixture over draws
    assert set(post.draws) == {"mu[early]", "mu[late]"}
    assert set(post.mixtures) == {"theta_new[early]", "theta_new[late]"}
    failures = []
    for p in got.params:
        floor = 1e-3 * want.sd(p)
        for q in (0.025, 0.5, 0.975):
            tol = max(4 * post.mcse(p, "quantile", q), floor)
            if abs(got.quantile(p, q) - want.quantile(p, q)) > tol:
                failures.append(f"{p} q{q}: {got.quantile(p, q):.5g} vs "
                                f"{want.quantile(p, q):.5g} (tol {tol:.3g})")
        for c in (-0.5, 0.0):
            tol = max(4 * post.mcse(p, "prob", c), 1e-3)
            if abs(got.prob(p, "<", c) - want.prob(p, "<", c)) > tol:
                failures.append(f"P({p} < {c})")
        tol = max(4 * post.mcse(p, "mean"), floor)
        if abs(got.mean(p) - want.mean(p)) > tol:
            failures.append(f"mean {p}")
    assert not failures, failures
    # the summary carries the MCSE / ESS / R-hat of the predictions
    table_ = got.summary()
    assert {"mcse_mean", "ess_bulk", "r_hat"} <= set(table_.columns)
    assert table_["ess_bulk"].notna().all()
    assert got.diagnostics.passed == nuts_fit.diagnostics.passed


def test_mixture_mcse_is_smaller_than_indicator_mcse(nuts_fit):
    """The mixture over draws (Rao-Blackwellised) is no noisier than counting draws of
    x0' beta + tau z: its MCSE of P(theta_new < c) is below the indicator's."""
    pred = nuts_fit.predict({"dose": 100, "onset": EARLY})
    lin = nuts_fit.posterior.draws["intercept"] + 100 * nuts_fit.posterior.draws["dose"] + \
        nuts_fit.posterior.draws[f"onset[T.{EARLY}]"]
    z = np.random.default_rng(5).standard_normal(lin.shape)
    from bayesmeta.results import DrawsPosterior

    counted = DrawsPosterior({"x": lin + nuts_fit.posterior.draws["tau"] * z})
    assert pred.posterior.mcse("theta_new", "prob", -0.5) < counted.mcse("x", "prob", -0.5)
    np.testing.assert_allclose(pred.posterior.draws["mu"], lin, rtol=1e-12)


def test_clinical_relevance_of_a_prediction_agrees_between_engines(nuts_fit):
    new = {"dose": 100, "onset": EARLY}
    got = bayesmeta.clinical_relevance(nuts_fit.predict(new), mcid=0.5, sd_ref=1.0)
    want = bayesmeta.clinical_relevance(exact_fit().predict(new), mcid=0.5, sd_ref=1.0)
    post = nuts_fit.predict(new).posterior
    for key, param in (("p_mu_mcid", "mu"), ("p_new_mcid", "theta_new")):
        tol = max(4 * post.mcse(param, "prob", -0.5), 1e-3)
        assert getattr(got, key) == pytest.approx(getattr(want, key), abs=tol), key
    # both read the same REML prediction
    assert got.frequentist == want.frequentist


# ---------------------------------------------------------------------------------------------
# to_dict and printing


def test_to_dict_has_extras_defaults_and_tail_probabilities():
    res = exact_fit()
    d = res.to_dict()
    json.dumps(d)  # plain JSON
    assert d["extras"]["terms"] == res.extras["terms"]
    assert d["extras"]["r2_bayes"] == res.extras["r2_bayes"]
    assert "twin_design" not in d["extras"]
    assert d["defaults_applied"] == list(res.settings["defaults_applied"])
    for term in res.extras["terms"]:
        assert d[term]["p_lt_0"] == res.prob(term, "<", 0.0)
    assert "p_lt_0" not in d["tau"]
    sg = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", subgroup="onset",
                             engine="exact", tau_prior=priors.HalfNormal(0.5),
                             mu_prior=priors.Normal(0, 4), tau="separate")
    ds = sg.to_dict()
    diff = f"mu[{EARLY}] - mu[{LATE}]"
    assert ds[diff]["p_lt_0"] == sg.prob(diff, "<", 0.0)
    assert 0.5 < ds[diff]["p_lt_0"] < 1
    assert ds["extras"]["k_per_subgroup"] == sg.extras["k_per_subgroup"]
    assert ds["extras"]["flagged"] == [] and "p_lt_0" not in ds[f"tau[{EARLY}]"]


def test_str_is_short_and_states_priors_defaults_level_and_diagnostics(nuts_fit):
    data = bayesmeta.escalc("RR", ai=[4, 6, 3, 62, 33], bi=[119, 300, 228, 13536, 5036],
                            ci=[11, 29, 11, 248, 47], di=[128, 274, 209, 12619, 5761])
    pooled = bayesmeta.bayes_rma("yi", "vi", data=data, engine="exact")
    text = str(pooled)
    assert len(text) < 3000
    assert "engine exact" in text and "k = 5" in text and "measure RR" in text
    assert priors.HalfNormal(0.5).describe() in text and priors.Normal(0, 4).describe() in text
    for note in pooled.settings["defaults_applied"]:
        assert note in text
    assert "95% equal-tailed" in text
    assert "no sampling" in text
    assert "theta_new" in text and "(5 study effects" in text
    # repr: one line
    assert "\n" not in repr(pooled) and "model='pooled'" in repr(pooled)
    nuts_text = str(nuts_fit)
    assert len(nuts_text) < 3000
    assert "gate passed" in nuts_text and "R-hat max" in nuts_text
    assert "coefficient dose: normal(mean=0, sd=4)" in nuts_text
    assert "r_hat" in nuts_text  # the summary's diagnostics columns
    pred = str(nuts_fit.predict(NEWMODS))
    assert "row early: dose=100, onset=up to wk 16" in pred
    small = bayesmeta.bayes_rma("yi", "vi", data=data.iloc[:2], engine="exact")
    assert "Warnings:\n  - k = 2" in str(small)


# ---------------------------------------------------------------------------------------------
# save / load: the hash covers everything in the file; the diagnostics table is kept


def _saved(result, tmp_path, name):
    path = tmp_path / name
    result.save(path)
    return path


@pytest.fixture(scope="module")
def nuts_file(nuts_fit, tmp_path_factory):
    """The NUTS fit saved once; tests edit copies of it."""
    return _saved(nuts_fit, tmp_path_factory.mktemp("saved"), "nuts.nc")


def test_loaded_nuts_result_keeps_its_diagnostics_table(nuts_fit, nuts_file):
    back = bayesmeta.load(nuts_file)
    pd.testing.assert_frame_equal(back.diagnostics.table, nuts_fit.diagnostics.table,
                                  check_names=False)
    pd.testing.assert_frame_equal(back.summary(), nuts_fit.summary())
    assert not any("format-1" in w for w in back.warnings)


@pytest.mark.parametrize("edit", ["measure", "level", "extras", "warnings", "posterior",
                                  "coordinate", "group"])
def test_tampered_file_is_refused(nuts_fit, nuts_file, tmp_path, edit):
    # (the intact file loads: test_loaded_nuts_result_keeps_its_diagnostics_table)
    path = Path(shutil.copy(nuts_file, tmp_path / f"{edit}.nc"))
    if edit in ("measure", "level", "extras", "warnings"):
        new = {"measure": "MD", "level": 0.9,
               "extras": json.dumps({**nuts_fit.extras, "r2_bayes": 0.99}),
               "warnings": json.dumps(["edited"])}[edit]
        with h5netcdf.File(path, "a") as f:
            f.attrs[edit] = new
    elif edit == "posterior":
        with h5netcdf.File(path, "a") as f:
            var = f["idata/posterior"].variables["tau"]
            var[0, 0] = var[0, 0] + 0.01
    elif edit == "coordinate":
        with h5netcdf.File(path, "a") as f:
            var = f["idata/log_likelihood"].variables["draw"]
            var[1] = var[0]
    else:
        with h5py.File(path, "a") as f:
            del f["idata/prior"]
    with pytest.raises(FileIntegrityError, match="does not match its recorded input hash"):
        bayesmeta.load(path)


def test_format_1_files_load_with_a_warning_and_a_recomputed_table(nuts_fit, nuts_file,
                                                                    tmp_path):
    path = Path(shutil.copy(nuts_file, tmp_path / "old.nc"))
    back = bayesmeta.load(path)
    payload = dict(back.posterior.draws)
    old = input_hash(back.yi, back.vi, back.labels, back.priors, back.settings, payload)
    with h5netcdf.File(path, "a") as f:
        f.attrs["bayesmeta_format"] = 1
        f.attrs["input_hash"] = old
        del f.attrs["diagnostics_table"]
    loaded = bayesmeta.load(path)
    assert any(w.startswith("loaded from a format-1 file") for w in loaded.warnings)
    rows = nuts_fit.diagnostics.table.index
    np.testing.assert_allclose(loaded.diagnostics.table.loc[rows].to_numpy(),
                               nuts_fit.diagnostics.table.to_numpy(), rtol=1e-12)
    # format 1 never covered the measure: such an edit goes unnoticed, hence the warning
    with h5netcdf.File(path, "a") as f:
        f.attrs["measure"] = "MD"
    assert bayesmeta.load(path).measure == "MD"
    with h5netcdf.File(path, "a") as f:
        f.attrs["bayesmeta_format"] = 3
    with pytest.raises(InputError, match="not a bayesmeta result file of a known format"):
        bayesmeta.load(path)


def test_exact_result_hash_covers_measure(tmp_path):
    path = _saved(exact_fit(), tmp_path, "e.nc")
    assert bayesmeta.load(path).measure == "OR"
    with h5netcdf.File(path, "a") as f:
        f.attrs["measure"] = "SMD"
    with pytest.raises(FileIntegrityError):
        bayesmeta.load(path)


def test_loaded_numeric_subgroup_twin_keeps_the_fits_level_order(tmp_path):
    import bayesmeta
    from bayesmeta import priors

    rng = np.random.default_rng(2)
    data = pd.DataFrame({"yi": rng.normal(-0.3, 0.3, 12), "vi": rng.uniform(0.02, 0.1, 12),
                         "dose": [2, 10, 30] * 4})
    fit = bayesmeta.bayes_rma("yi", "vi", data=data, subgroup="dose", engine="exact",
                              tau_prior=priors.HalfNormal(0.5))
    fit.save(tmp_path / "fit.nc")
    back = bayesmeta.load(tmp_path / "fit.nc")
    # the numeric order 2 < 10 < 30 (reference 2), not the text order of stored labels
    assert list(back.frequentist.summary().index) == list(fit.frequentist.summary().index)
    assert [str(x) for x in back.frequentist.levels] == ["2", "10", "30"]


def test_prediction_at_an_unseen_level_of_a_numeric_factor_is_an_error():
    import bayesmeta
    from bayesmeta import priors
    from bayesmeta.errors import InputError

    rng = np.random.default_rng(2)
    data = pd.DataFrame({"yi": rng.normal(-0.3, 0.3, 12), "vi": rng.uniform(0.02, 0.1, 12),
                         "dose": [2, 10, 30] * 4})
    fit = bayesmeta.bayes_rma("yi", "vi", data=data, mods="~ C(dose)", engine="exact",
                              tau_prior=priors.HalfNormal(0.5))
    at10 = fit.predict({"dose": 10})
    assert at10.mean("mu") == pytest.approx(fit.mean("intercept") + fit.mean("C(dose)[T.10]"))
    # formulaic would encode dose = 7 as the reference level (dose 2) with only a warning
    with pytest.raises(InputError, match="outside of the nominated levels"):
        fit.predict({"dose": 7})
