"""Bayesian subgroup models and meta-regression (NUTS), their input checks, LOO comparison and
posterior predictive checks.

Every NUTS fit here uses the HalfNormal(0.5) tau prior, capacity 64 and 4 coefficient slots, so
the module compiles one sampler for the pooled, subgroup and regression fits and reuses it (the
compile-once design under test as well); partially pooled subgroup means are a graph of their
own, one per omega prior (two here). MCMC tolerances are max(4 MCSE, 1e-3 posterior SD), with
arviz MCSEs from the chains; comparing two NUTS fits, 4 x the root sum of squares of their
MCSEs.
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
    # a meta-regression has coefficient priors, no mu prior: none is reported as applied
    assert not any(n.startswith("mu prior") for n in metareg.settings["defaults_applied"])
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
    # derived parameters carry their Monte Carlo diagnostics too (never a silent NaN)
    table = subgroup.summary()
    assert np.isfinite(table.loc[[diff, f"theta_new[{levels[0]}]"], ["mcse_mean", "ess_bulk",
                                                                     "r_hat"]]).all().all()


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
    # mean is informed by one study and the shared tau, and is flagged as such.
    assert res.extras["levels"] == ["rest", "solo"]
    assert res.extras["k_per_subgroup"] == {"rest": len(t) - 1, "solo": 1}
    assert res.sd("mu[solo]") > res.sd("mu[rest]")
    assert res.extras["flagged"] == ["solo"]
    assert ("subgroup solo: only 1 study with a shared tau; its mean rests on one study and "
            "the shared tau") in " ".join(res.warnings)
    only_one = t[t["arm"] == "rest"]
    with pytest.raises(InputError, match="a subgroup model needs at least two levels"):
        bayesmeta.bayes_rma("yi", "vi", data=only_one, labels="label", subgroup="arm",
                            engine="exact", tau_prior=priors.HalfNormal(0.5))


def test_shared_tau_flags_subgroups_below_the_threshold(roberge):
    """Under a shared tau, subgroups with fewer than DEFAULTS.subgroup_min_k_shared_tau (3)
    studies are flagged; the flags do not depend on the engine (exact here, no sampling)."""
    from bayesmeta.config import DEFAULTS

    assert DEFAULTS.subgroup_min_k_shared_tau == 3
    table, _ = roberge
    t = table.copy()
    k = len(t)
    t["arm"] = ["one"] + ["two"] * 2 + ["three"] * 3 + ["many"] * (k - 6)
    res = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", subgroup="arm",
                              engine="exact", tau_prior=priors.HalfNormal(0.5))
    assert res.extras["k_per_subgroup"] == {"many": k - 6, "one": 1, "three": 3, "two": 2}
    assert sorted(res.extras["flagged"]) == ["one", "two"]
    text = " ".join(res.warnings)
    assert "subgroup one: only 1 study with a shared tau; its mean rests on one study" in text
    assert "subgroup two: only 2 studies with a shared tau; its mean rests on 2 studies" in text
    assert "subgroup three" not in text and "subgroup many" not in text
    # Separate taus keep their own, larger threshold (5): three is flagged there as well.
    sep = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", subgroup="arm",
                              engine="exact", tau="separate",
                              tau_prior=priors.HalfNormal(0.5))
    assert sorted(sep.extras["flagged"]) == ["one", "three", "two"]
    assert all("separate tau" in m for m in sep.extras["flag_messages"])


# ---------------------------------------------------------------------------------------------
# Partially pooled subgroup means: mu[g] ~ N(mu_overall, omega)

#: omega concentrated near 0 (subgroup means pooled into one) and held far from 0 (omega ~ 20,
#: 100 times the subgroup means' posterior SDs: the means are effectively unpooled). A wide
#: prior that reaches down to 0, e.g. HalfNormal(50), would not do: with two subgroups the
#: likelihood of omega decays only like 1/omega, so it keeps real mass near 0 and shrinks.
OMEGA_TIGHT = priors.HalfNormal(0.01)
OMEGA_FAR = priors.LogNormal(float(np.log(20.0)), 0.1)


def _partially_pooled(roberge, omega_prior):
    table, _ = roberge
    return bayesmeta.bayes_rma("yi", "vi", data=table, labels="label", subgroup="onset",
                               mu_prior=priors.Normal(0, 4), subgroup_pooling=True,
                               omega_prior=omega_prior, **SHARED)


@pytest.fixture(scope="module")
def pooled_tight(roberge):
    return _partially_pooled(roberge, OMEGA_TIGHT)


@pytest.fixture(scope="module")
def pooled_far(roberge):
    return _partially_pooled(roberge, OMEGA_FAR)


def _within_mcse(a, b, param: str, stat: str = "mean", q: float | None = None) -> tuple:
    """(|difference|, tolerance) of a statistic of two NUTS fits: 4 x the root sum of squares
    of their MCSEs (two independent Monte Carlo estimates)."""
    get = {"mean": lambda r: r.mean(param), "quantile": lambda r: r.quantile(param, q)}[stat]
    mcse = np.hypot(a.posterior.mcse(param, stat, q), b.posterior.mcse(param, stat, q))
    return abs(get(a) - get(b)), 4 * mcse


def test_partial_pooling_near_zero_omega_shrinks_to_one_mean(pooled_tight, roberge):
    res = pooled_tight
    assert res.diagnostics.passed, res.diagnostics.messages
    a, b = (f"mu[{lv}]" for lv in res.extras["levels"])
    # The unpooled means differ by ~0.42 (posterior SD of the difference ~0.24); with
    # omega ~ HalfNormal(0.01) they coincide up to omega's scale.
    assert abs(res.mean(f"{b} - {a}")) < 0.01 and res.sd(f"{b} - {a}") < 0.02
    # ... and every subgroup mean, like mu_overall, is then the pooled model's mu (exact
    # engine, same priors), within Monte Carlo error and omega's few hundredths.
    table, _ = roberge
    exact = bayesmeta.bayes_rma("yi", "vi", data=table, labels="label", engine="exact",
                                tau_prior=priors.HalfNormal(0.5),
                                mu_prior=priors.Normal(0, 4))
    for param in (a, b, "mu_overall"):
        for q in (0.025, 0.5, 0.975):
            tol = max(4 * res.posterior.mcse(param, "quantile", q), 1e-3)
            assert abs(res.quantile(param, q) - exact.quantile("mu", q)) <= tol, (param, q)
    assert res.quantile("omega", 0.975) < 0.03


def test_partial_pooling_far_omega_approaches_unpooled_model(pooled_far, subgroup):
    res = pooled_far
    assert res.diagnostics.passed, res.diagnostics.messages
    failures = []
    for lv in res.extras["levels"]:
        for param in (f"mu[{lv}]", f"theta_new[{lv}]"):
            for stat, q in (("mean", None), ("quantile", 0.025), ("quantile", 0.975)):
                diff, tol = _within_mcse(res, subgroup, param, stat, q)
                if diff > tol:
                    failures.append(f"{param} {stat} {q}: {diff:.4f} > {tol:.4f}")
    diff, tol = _within_mcse(res, subgroup, "tau", "quantile", 0.5)
    if diff > tol:
        failures.append(f"tau median: {diff:.4f} > {tol:.4f}")
    assert not failures, failures
    # omega is what its prior says (the data cannot tell 20 from 25 with two subgroups)
    assert res.mean("omega") == pytest.approx(20.0 * np.exp(0.1**2 / 2), rel=0.02)


def test_partial_pooling_result_contract(pooled_tight, subgroup, tmp_path):
    res = pooled_tight
    assert {"mu_overall", "omega"} <= set(res.params)
    assert res.settings["subgroup_pooling"] and res.extras["subgroup_pooling"]
    assert res.priors["omega"] == OMEGA_TIGHT.to_dict()
    assert res.priors["mu"] == priors.Normal(0, 4).to_dict()
    post = res.idata.posterior
    assert post["mu"].dims == ("chain", "draw", "subgroup")
    assert post["mu_overall"].dims == ("chain", "draw") and "omega" in post
    # the hierarchy in the prior group: omega's prior draws, subgroup means around mu_overall
    prior = res.idata.prior
    assert float(prior["omega"].mean()) == pytest.approx(0.01 * np.sqrt(2 / np.pi), rel=0.05)
    spread = (prior["mu"] - prior["mu_overall"]).values
    assert np.std(spread) == pytest.approx(0.01, rel=0.05)
    # The REML twin stays the subgroup model (metafor has no partial pooling across subgroups).
    twin, plain = res.frequentist.to_dict(), subgroup.frequentist.to_dict()
    assert twin["variable"] == "onset" and twin["levels"] == res.extras["levels"]
    assert json.dumps(twin, sort_keys=True) == json.dumps(plain, sort_keys=True)
    # saved and loaded with the hyper-parameters and the omega prior
    res.save(tmp_path / "pooled.nc")
    back = bayesmeta.load(tmp_path / "pooled.nc")
    assert back.priors["omega"] == OMEGA_TIGHT.to_dict()
    for param in ("mu_overall", "omega"):
        assert back.quantile(param, 0.975) == pytest.approx(res.quantile(param, 0.975),
                                                            rel=1e-12)


def test_partial_pooling_input_checks(roberge):
    table, _ = roberge
    kw = dict(data=table, labels="label", tau_prior=priors.HalfNormal(0.5))
    with pytest.raises(InputError, match='partially pooled subgroup means need engine="nuts"'):
        bayesmeta.bayes_rma("yi", "vi", subgroup="onset", subgroup_pooling=True,
                            engine="exact", **kw)
    with pytest.raises(InputError, match="subgroup_pooling pools subgroup means: pass "
                                         "subgroup= too"):
        bayesmeta.bayes_rma("yi", "vi", subgroup_pooling=True, **kw)
    with pytest.raises(InputError, match="omega_prior .* needs subgroup_pooling=True"):
        bayesmeta.bayes_rma("yi", "vi", subgroup="onset", omega_prior=priors.HalfNormal(1),
                            engine="exact", **kw)
    with pytest.raises(InputError, match="omega_prior must be proper"):
        bayesmeta.bayes_rma("yi", "vi", subgroup="onset", subgroup_pooling=True,
                            omega_prior=priors.ImproperUniform(), **kw)


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
