"""Clinical relevance probabilities and the reanalysis of published pooled results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmeta
from bayesmeta.clinical import (
    MCID_CAVEAT,
    clinical_relevance,
    frequentist_reading,
    reanalyse,
    reanalysis_prior,
)
from bayesmeta.errors import InputError

PUBLISHED = Path(__file__).parents[1] / "data" / "published" / "fleckenstein2022_pooled.csv"


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED)


def test_probabilities_equal_closed_form_normal_cdf():
    # A flat-prior reanalysis has an exactly normal posterior: N(est, se^2).
    res = reanalyse(-0.28, -0.42, -0.14, k=32, i2_percent=73)
    se = 0.28 / (2 * stats.norm.ppf(0.975))
    tau2 = 0.73 * 32 * se**2
    rel = clinical_relevance(res, mcid=1.5, sd_ref=2.0)
    assert rel.mcid_smd == pytest.approx(0.75)
    assert rel.p_mu_mcid == pytest.approx(stats.norm.cdf(-0.75, -0.28, se), abs=1e-12)
    assert rel.p_new_mcid == pytest.approx(
        stats.norm.cdf(-0.75, -0.28, np.sqrt(se**2 + tau2)), abs=1e-12)
    assert rel.p_mu_benefit == pytest.approx(stats.norm.cdf(0, -0.28, se), abs=1e-12)
    d = rel.to_dict()
    for key in ("p_mu_mcid", "p_new_mcid", "p_mu_benefit", "mcid_smd", "sd_ref"):
        assert key in d
    assert d["sd_ref"] == 2.0


def test_direction_higher_mirrors_lower():
    lower = clinical_relevance(reanalyse(-0.3, -0.5, -0.1), mcid=0.5, sd_ref=1.0)
    higher = clinical_relevance(reanalyse(0.3, 0.1, 0.5), mcid=0.5, sd_ref=1.0,
                                direction="higher")
    assert higher.p_mu_mcid == pytest.approx(lower.p_mu_mcid, abs=1e-12)
    assert higher.p_mu_benefit == pytest.approx(lower.p_mu_benefit, abs=1e-12)


def test_curve_is_monotone_and_rescales_with_sd_ref():
    res = reanalyse(-0.40, -0.58, -0.22, k=32, i2_percent=89)
    rel = clinical_relevance(res, mcid=1.5, sd_ref=2.0)
    curve = rel.curve
    assert curve["threshold_vas"].iloc[0] == 0.0
    assert curve["threshold_vas"].iloc[-1] == pytest.approx(3.0)
    assert np.all(np.diff(curve["p_mu"]) <= 0)
    assert np.all(np.diff(curve["p_new"]) <= 0)
    assert curve["p_mu"].iloc[0] > curve["p_mu"].iloc[-1]
    # VAS and SMD curves are one curve rescaled by sd_ref.
    np.testing.assert_allclose(curve["threshold_vas"], 2.0 * curve["threshold_smd"])
    rel25 = clinical_relevance(res, mcid=1.5 * 1.25, sd_ref=2.5)
    np.testing.assert_allclose(rel25.curve["p_mu"], curve["p_mu"], atol=1e-12)


def test_sd_ref_grid_and_rope():
    res = reanalyse(-0.28, -0.42, -0.14, k=32, i2_percent=73)
    rel = clinical_relevance(res, mcid=1.5, sd_ref=2.0, sd_ref_grid=[1.5, 2.0, 2.5],
                             rope=(-0.5, 0.5))
    tab = rel.sd_ref_sensitivity
    assert list(tab["sd_ref"]) == [1.5, 2.0, 2.5]
    # A larger reference SD makes the SMD threshold smaller, hence more probable to exceed.
    assert tab["p_mu_mcid"].is_monotonic_increasing
    assert tab.loc[tab.sd_ref == 2.0, "p_mu_mcid"].item() == pytest.approx(rel.p_mu_mcid)
    se = 0.28 / (2 * stats.norm.ppf(0.975))
    expected = stats.norm.cdf(0.25, -0.28, se) - stats.norm.cdf(-0.25, -0.28, se)
    assert rel.p_mu_rope == pytest.approx(expected, abs=1e-12)


def test_scale_checks_name_the_argument():
    smd = reanalyse(-0.28, -0.42, -0.14)
    with pytest.raises(InputError, match="column sd_ref; the result is on the SMD scale"):
        clinical_relevance(smd, mcid=1.5)
    md = reanalyse(-0.67, -1.0, -0.34, measure="MD")
    with pytest.raises(InputError, match=r"column sd_ref: 2; the result is on the raw MD scale"):
        clinical_relevance(md, mcid=1.5, sd_ref=2.0)
    with pytest.raises(InputError, match="column mcid: -1.5; must be a positive number"):
        clinical_relevance(md, mcid=-1.5)
    with pytest.raises(InputError, match="column direction: down"):
        clinical_relevance(md, mcid=1.5, direction="down")
    # On the VAS scale (MD) no conversion happens: the threshold is the MCID itself.
    rel = clinical_relevance(md, mcid=1.5)
    assert rel.mcid_smd == 1.5 and rel.sd_ref is None
    assert rel.p_new_mcid is None and "p_new" not in rel.curve
    assert any("not reported" in n for n in rel.notes)


def test_frequentist_reading_categories():
    # CI excludes 0 but the point estimate (0.3 SMD = 0.6 VAS points) is below the MCID.
    r = frequentist_reading(-0.30, -0.45, -0.15, mcid=1.5, sd_ref=2.0)
    assert (r.significant, r.beyond_mcid, r.category) == (True, False, "probably meaningful")
    r = frequentist_reading(-0.90, -1.2, -0.6, mcid=1.5, sd_ref=2.0)
    assert r.category == "clinically important" and r.estimate_vas == pytest.approx(-1.8)
    r = frequentist_reading(-0.10, -0.21, 0.01, mcid=1.5, sd_ref=2.0)
    assert r.category == "not significant" and not r.significant
    r = frequentist_reading(-0.90, -2.0, 0.2, mcid=1.5, sd_ref=2.0)
    assert r.category == "not significant (point estimate beyond the MCID)"


def test_reanalysis_reproduces_every_published_ci(published):
    for row in published.itertuples():
        res = reanalyse(row.smd, row.ci_low, row.ci_high, k=row.k, i2_percent=row.i2_percent)
        lo, hi = res.interval("mu", 0.95)
        # Centred on the printed estimate, the interval can differ from the printed bounds by
        # the printed rounding (0.005) when the printed CI is not symmetric; 1e-12 covers the
        # floating-point representation of 0.005 itself.
        assert abs(lo - row.ci_low) <= 0.005 + 1e-12, row.analysis_id
        assert abs(hi - row.ci_high) <= 0.005 + 1e-12, row.analysis_id
        assert res.median("mu") == pytest.approx(row.smd)
        assert res.sd("theta_new") > res.sd("mu")


def test_reanalysis_warnings():
    within = reanalyse(-0.14, -0.22, -0.07, k=17, i2_percent=29)
    assert any("within rounding" in w for w in within.warnings)
    beyond = reanalyse(-0.14, -0.30, -0.07)
    assert any("asymmetric around the estimate beyond rounding" in w for w in beyond.warnings)
    frac = reanalyse(-0.14, -0.22, -0.06, k=17, i2_percent=0.29)
    assert any("was a fraction passed" in w for w in frac.warnings)
    plug = reanalyse(-0.14, -0.22, -0.06, k=17, i2_percent=29)
    assert any("not propagated" in w for w in plug.warnings)
    with pytest.raises(InputError, match="column estimate: 0.5; the estimate must lie inside"):
        reanalyse(0.5, -0.2, 0.1)


def test_reanalysis_priors_shrink_as_documented():
    flat = reanalyse(-0.40, -0.58, -0.22)
    sceptical = reanalyse(-0.40, -0.58, -0.22, prior="sceptical", mcid_effect=0.75)
    enthusiastic = reanalyse(-0.40, -0.58, -0.22, prior="enthusiastic", mcid_effect=0.75)
    assert sceptical.mean("mu") > flat.mean("mu") > enthusiastic.mean("mu")
    m, s = reanalysis_prior("sceptical", mcid_effect=0.75)
    # Sceptical: 5% prior probability of an effect beyond the MCID.
    assert stats.norm.cdf(-0.75, m, s) == pytest.approx(0.05)
    m, s = reanalysis_prior("enthusiastic", mcid_effect=0.75)
    assert stats.norm.sf(0, m, s) == pytest.approx(0.05)
    with pytest.raises(InputError, match="pass mcid_effect > 0"):
        reanalyse(-0.4, -0.58, -0.22, prior="sceptical")


def test_caveat_is_carried():
    rel = clinical_relevance(reanalyse(-0.28, -0.42, -0.14), mcid=1.5, sd_ref=2.0)
    assert MCID_CAVEAT in rel.notes and "within-person" in MCID_CAVEAT


def test_public_names():
    assert bayesmeta.clinical_relevance is clinical_relevance
    assert bayesmeta.reanalyse is reanalyse


# ---------------------------------------------------------------------------------------------
# clinical relevance of a meta-regression at chosen moderator values (issue 6: "any Bayesian
# result, pooled, subgroup, meta-regression prediction")

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def roberge_regression():
    import json

    from bayesmeta import priors

    t = pd.read_csv(REF / "data" / "RobergeEtAl2017.csv")
    a = json.loads((REF / "RobergeEtAl2017.json").read_text())["analyses"]["OR_PE"]
    t["yi"], t["vi"] = a["yi"], a["vi"]
    t.attrs["measure"] = "OR"
    return bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", mods="~ dose + onset",
                               engine="exact", tau_prior=priors.HalfNormal(0.5),
                               coef_prior=priors.Normal(0, 4))


def test_clinical_relevance_of_a_meta_regression_prediction(roberge_regression):
    res = roberge_regression
    pred = res.predict({"dose": 150, "onset": "after wk 16"})
    rel = clinical_relevance(pred, mcid=1.0, sd_ref=2.0, rope=(-0.2, 0.2))
    row = [1.0, 150.0, 0.0]  # intercept, dose, onset[T.up to wk 16]
    mean = res.posterior.predict(row)
    new = res.posterior.predict(row, new_study=True)
    # exact mixtures: the same numbers as asking the posterior for the design row directly
    assert rel.p_mu_mcid == mean.cdf(-0.5)
    assert rel.p_new_mcid == new.cdf(-0.5)
    assert rel.p_mu_benefit == mean.cdf(0.0)
    assert rel.p_mu_rope == pytest.approx(mean.cdf(0.1) - mean.cdf(-0.1), abs=1e-15)
    assert rel.p_new_mcid < rel.p_mu_mcid  # a new study is more uncertain, mu well below
    # the frequentist reading is the REML prediction at the same moderator values
    reml = res.frequentist.predict(pd.DataFrame({"dose": [150], "onset": ["after wk 16"]}))
    assert rel.frequentist.estimate == pytest.approx(float(reml["pred"].iloc[0]), rel=1e-12)
    assert rel.frequentist.ci_high == pytest.approx(float(reml["ci_high"].iloc[0]), rel=1e-12)
    assert rel.frequentist.estimate_vas == pytest.approx(2.0 * rel.frequentist.estimate)
    # several rows: choose the row by name
    both = res.predict(pd.DataFrame({"dose": [150, 50], "onset": ["after wk 16"] * 2},
                                    index=["high", "low"]))
    again = clinical_relevance(both, mcid=1.0, sd_ref=2.0, param="mu[high]",
                               new_param="theta_new[high]")
    assert again.p_mu_mcid == rel.p_mu_mcid and again.p_new_mcid == rel.p_new_mcid
    assert again.frequentist is None  # the REML reading is made for param "mu" (one row)


def test_clinical_relevance_names_what_to_pass(roberge_regression):
    res = roberge_regression
    with pytest.raises(InputError, match=r"column result: NormalMixture; clinical_relevance "
                                         r"takes a Bayesian result"):
        clinical_relevance(res.posterior.predict([1.0, 150.0, 0.0]), mcid=1.0, sd_ref=2.0)
    with pytest.raises(InputError, match=r"column param: mu; not a parameter of this result.*"
                                         r"use result\.predict\(newmods\)"):
        clinical_relevance(res, mcid=1.0, sd_ref=2.0)
    # a coefficient can still be read directly (its REML twin has no single estimate)
    slope = clinical_relevance(res, mcid=1.0, sd_ref=2.0, param="dose", new_param=None)
    assert slope.p_mu_benefit == res.prob("dose", "<", 0) and slope.frequentist is None


def test_subgroup_mean_is_read_beside_its_own_reml_fit():
    rng = np.random.default_rng(7)
    k = 12
    table = pd.DataFrame({
        "yi": np.r_[rng.normal(-2.0, 0.4, 6), rng.normal(-0.5, 0.4, 6)],
        "vi": rng.uniform(0.05, 0.2, k),
        "arm": ["exercise"] * 6 + ["advice"] * 6,
        "label": [f"trial {i + 1}" for i in range(k)]})
    fit = bayesmeta.bayes_rma("yi", "vi", data=table, labels="label", measure="MD",
                              subgroup="arm", engine="exact",
                              tau_prior=bayesmeta.priors.HalfNormal(1.0))
    for level in ("exercise", "advice"):
        cr = bayesmeta.clinical_relevance(fit, mcid=1.5, param=f"mu[{level}]",
                                          new_param=f"theta_new[{level}]")
        own = bayesmeta.rma("yi", "vi", data=table[table["arm"] == level]).to_dict()
        assert cr.frequentist is not None
        assert cr.frequentist.to_dict()["estimate"] == pytest.approx(own["estimate"], rel=1e-12)
    # exercise (about -2 points) is clinically important by the point estimate; advice is not
    ex = bayesmeta.clinical_relevance(fit, mcid=1.5, param="mu[exercise]",
                                      new_param="theta_new[exercise]").frequentist.to_dict()
    ad = bayesmeta.clinical_relevance(fit, mcid=1.5, param="mu[advice]",
                                      new_param="theta_new[advice]").frequentist.to_dict()
    assert ex["category"] != ad["category"]


@pytest.mark.parametrize(("mu", "n_studies", "tau", "seed", "category"), [
    # many precise trials around -0.3 SMD (0.6 VAS points): CI excludes 0, below the MCID
    (-0.3, 150, 0.05, 3, "probably meaningful"),
    # around -1.0 SMD (2 VAS points): beyond the 1.5-point MCID and significant
    (-1.0, 60, 0.05, 3, "clinically important"),
    # a null effect in a few trials
    (-0.05, 8, 0.05, 3, "not significant"),
    # a large but heterogeneous effect in five comparisons: estimate beyond, CI includes 0
    (-0.9, 3, 0.8, 12, "not significant (point estimate beyond the MCID)"),
])
def test_frequentist_reading_of_reml_fits_known_by_construction(mu, n_studies, tau, seed,
                                                                 category):
    table = bayesmeta.simulate(n_studies=n_studies, mu=mu, tau=tau, seed=seed)
    effects = bayesmeta.escalc("SMD", data=table)
    cell = effects[(effects["outcome"] == "pain") & (effects["follow_up"] == "short")]
    fit = bayesmeta.bayes_rma("yi", "vi", data=cell, engine="exact")
    reading = bayesmeta.clinical_relevance(fit, mcid=1.5, sd_ref=2.0).frequentist
    reml = bayesmeta.rma("yi", "vi", data=cell).to_dict()
    assert reading.estimate == pytest.approx(reml["estimate"], rel=1e-12)
    assert reading.category == category
