"""Bayesian subgroup models and meta-regression (NUTS), their input checks, LOO comparison and
posterior predictive checks.

Every NUTS fit here uses the HalfNormal(0.5) tau prior, capacity 64 and 4 coefficient slots, so
the module compiles one sampler and reuses it (the compile-once design under test as well).
MCMC tolerances are max(4 MCSE, 1e-3 posterior SD), with arviz MCSEs from the chains.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmeta
from bayesmeta import priors
from bayesmeta.bayes import sampling
from bayesmeta.errors import InputError
from bayesmeta.ppc import compare_loo, posterior_predictive_check

REF = Path(__file__).parent / "reference"
SHARED = dict(tau_prior=priors.HalfNormal(0.5), capacity=64, coef_slots=4, seed=20261125)


@pytest.fixture(scope="module")
def roberge() -> tuple[pd.DataFrame, dict]:
    ref = json.loads((REF / "RobergeEtAl2017.json").read_text())
    table = pd.read_csv(REF / "data" / "RobergeEtAl2017.csv")
    a = ref["analyses"]["OR_PE"]
    table["yi"], table["vi"] = a["yi"], a["vi"]
    table.attrs["measure"] = "OR"
    return table, ref["extras"]


@pytest.fixture(scope="module")
def metareg(roberge):
    table, _ = roberge
    return bayesmeta.bayes_rma("yi", "vi", data=table, mods="~ dose", labels="label",
                               coef_prior=priors.Normal(0, 4), **SHARED)


@pytest.fixture(scope="module")
def pooled(roberge):
    table, _ = roberge
    return bayesmeta.bayes_rma("yi", "vi", data=table, labels="label",
                               mu_prior=priors.Normal(0, 4), **SHARED)


@pytest.fixture(scope="module")
def subgroup(roberge):
    table, _ = roberge
    return bayesmeta.bayes_rma("yi", "vi", data=table, labels="label", subgroup="onset",
                               mu_prior=priors.Normal(0, 4), **SHARED)


def test_metaregression_matches_bmr(metareg, roberge):
    """bmr(es.pe, X=model.matrix(~dose), tau.prior=half-normal(0.5), beta ~ N(0, 4^2))."""
    _, extras = roberge
    ref = extras["bmr01_halfnormal0.5_beta_normal0_4"]["summary"]
    assert metareg.diagnostics.passed, metareg.diagnostics.messages
    post = metareg.posterior
    failures = []
    for ours, theirs in (("intercept", "intercept"), ("dose", "slope"), ("tau", "tau")):
        r = ref[theirs]
        for q, key in ((0.025, "central95.lb"), (0.5, "median"), (0.975, "central95.ub")):
            tol = max(4 * post.mcse(ours, "quantile", q), 1e-3 * r["sd"])
            got = metareg.quantile(ours, q)
            if abs(got - r[key]) > tol:
                failures.append(f"{ours} q{q}: {got:.6g} vs bmr {r[key]:.6g} (tol {tol:.3g})")
        if "P_lt_0" in r:
            tol = max(4 * post.mcse(ours, "prob", 0.0), 1e-3)
            if abs(metareg.prob(ours, "<", 0) - r["P_lt_0"]) > tol:
                failures.append(f"P({ours} < 0)")
    assert not failures, failures


def test_metaregression_result_vocabulary(metareg):
    assert metareg.model == "meta_regression"
    assert metareg.extras["terms"] == ["intercept", "dose"]
    assert set(metareg.priors["coefficients"]) == {"intercept", "dose"}
    assert metareg.idata.posterior["beta"].dims == ("chain", "draw", "moderator")
    assert list(metareg.idata.posterior["moderator"].values) == ["intercept", "dose"]
    # The REML twin is the mixed-effects model of the same formula (metafor's R2 in percent).
    twin = metareg.frequentist.to_dict()
    assert "r2" in twin and twin["qm"] is not None
    assert isinstance(metareg.extras["r2_bayes"], float)
    # Coefficients are reported for the design as written, not the sampler's QR basis: the
    # posterior mean of intercept + dose * 100 is the mean effect at dose 100.
    at100 = metareg.mean("intercept") + 100 * metareg.mean("dose")
    assert at100 == pytest.approx(-0.65, abs=0.15)


def test_one_compilation_serves_pooled_subgroup_and_regression(metareg, pooled, subgroup):
    for res in (metareg, pooled, subgroup):
        assert res.settings["capacity"] == 64 and res.settings["coef_slots"] == 4
    # one structure (HalfNormal(0.5), non-centred, 64 x 4): compiled at most once in this module
    structures = {json.dumps([r.priors["tau"], r.settings["parametrisation"]], sort_keys=True)
                  for r in (metareg, pooled, subgroup)}
    assert len(structures) == 1
    assert sampling.COMPILE_STATS["cache_hits"] >= 2


def test_subgroup_posteriors_and_differences(subgroup):
    levels = subgroup.extras["levels"]
    assert levels == ["after wk 16", "up to wk 16"]
    a, b = (f"mu[{lv}]" for lv in levels)
    diff = f"{b} - {a}"
    for p in (a, b, diff, "tau", f"theta_new[{levels[0]}]", f"theta_new[{levels[1]}]"):
        assert p in subgroup.params
    d = subgroup.posterior
    np.testing.assert_allclose(d.flat(diff), d.flat(b) - d.flat(a))
    assert subgroup.prob(diff, "<", 0) == pytest.approx(np.mean(d.flat(diff) < 0))
    # Predictive effects are wider than the means they are centred on.
    assert subgroup.sd(f"theta_new[{levels[0]}]") > subgroup.sd(a)
    twin = subgroup.frequentist
    assert twin is not None and twin.to_dict()


def test_separate_taus_flag_small_subgroups(roberge):
    table, _ = roberge
    small = table.copy()
    small["arm"] = ["rare"] * 3 + ["common"] * (len(small) - 3)
    res = bayesmeta.bayes_rma("yi", "vi", data=small, labels="label", subgroup="arm",
                              tau="separate", mu_prior=priors.Normal(0, 4), **SHARED)
    assert res.extras["flagged"] == ["rare"]
    assert any("subgroup rare: only 3 studies with a separate tau" in w for w in res.warnings)
    assert {"tau[rare]", "tau[common]"} <= set(res.params)
    assert res.idata.posterior["tau"].dims == ("chain", "draw", "subgroup")


def test_single_study_subgroup_and_level_present_in_one_analysis(roberge):
    table, _ = roberge
    t = table.copy()
    t["arm"] = pd.Categorical(["solo"] + ["rest"] * (len(t) - 1),
                              categories=["rest", "solo", "never_used"])
    res = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", subgroup="arm",
                              mu_prior=priors.Normal(0, 4), **SHARED)
    # A level unused in this analysis is not a subgroup of it; the single-study subgroup's
    # mean is informed by one study and the shared tau.
    assert res.extras["levels"] == ["rest", "solo"]
    assert res.extras["k_per_subgroup"] == {"rest": len(t) - 1, "solo": 1}
    assert res.sd("mu[solo]") > res.sd("mu[rest]")
    only_one = t[t["arm"] == "rest"]
    with pytest.raises(InputError, match="a subgroup model needs at least two levels"):
        bayesmeta.bayes_rma("yi", "vi", data=only_one, labels="label", subgroup="arm",
                            engine="exact", tau_prior=priors.HalfNormal(0.5))


def test_collinear_and_missing_moderators(roberge):
    table, _ = roberge
    t = table.copy()
    t["dose_mg"] = t["dose"] * 1.0
    with pytest.raises(InputError, match="dose"):
        bayesmeta.bayes_rma("yi", "vi", data=t, mods="~ dose + dose_mg", **SHARED)
    t = table.copy()
    t.loc[3, "dose"] = np.nan
    with pytest.raises(InputError, match=r"row 4 \(Sibai \(1993a\)\), column dose"):
        bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", mods="~ dose", **SHARED)
    res = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", mods="~ dose",
                              missing="exclude", **SHARED)
    assert res.k == len(t) - 1
    assert any("Sibai (1993a)" in w and "excluded" in w for w in res.warnings)


def test_coefficient_prior_names_are_checked(roberge):
    table, _ = roberge
    with pytest.raises(InputError, match="column coef_prior: slope; not a term of the model; "
                                         "terms: intercept, dose"):
        bayesmeta.bayes_rma("yi", "vi", data=table, mods="~ dose",
                            coef_prior={"slope": priors.Normal(0, 1)}, **SHARED)


def test_loo_comparison(metareg, pooled, subgroup, roberge):
    table = compare_loo({"pooled": pooled, "dose": metareg, "onset": subgroup})
    assert set(table.index) == {"pooled", "dose", "onset"}
    assert {"elpd_loo", "p_loo", "elpd_diff", "dse", "weight"} <= set(table.columns)
    assert table["elpd_diff"].min() == 0.0 and (table["dse"] >= 0).all()
    exact = bayesmeta.bayes_rma("yi", "vi", data=roberge[0], engine="exact",
                                tau_prior=priors.HalfNormal(0.5))
    with pytest.raises(InputError, match="needs NUTS draws"):
        compare_loo({"pooled": pooled, "exact": exact})


def test_ppc_flags_an_outlier_and_a_homogeneity_misfit(roberge):
    table, _ = roberge
    t = table.copy()
    t.loc[5, "yi"] = 6.0   # a gross outlier with a moderate variance
    res = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label",
                              mu_prior=priors.Normal(0, 4), **SHARED)
    ppc = posterior_predictive_check(res, seed=1)
    assert ppc.studies.loc["Ebrashi (2005)", "ppp_mixed"] > 0.99
    assert ppc.studies.loc["Ebrashi (2005)", "loo_pit"] > 0.99
    assert ppc.to_dict()["ppp_mixed_extreme"] >= 1
    # A prior forcing near-homogeneity cannot reproduce these studies' spread: P(Q_rep >= Q_obs)
    # is small; the fitted model's is not.
    ok = posterior_predictive_check(
        bayesmeta.bayes_rma("yi", "vi", data=table, labels="label",
                            mu_prior=priors.Normal(0, 4), **SHARED), seed=1)
    assert 0.05 < ok.ppp_q < 0.95
    tight = bayesmeta.bayes_rma("yi", "vi", data=table, labels="label",
                                mu_prior=priors.Normal(0, 4),
                                **{**SHARED, "tau_prior": priors.HalfNormal(0.02)})
    assert posterior_predictive_check(tight, seed=1).ppp_q < 0.01
