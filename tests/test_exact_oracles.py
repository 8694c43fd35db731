"""Exact identities of the normal-normal model, and the behaviour of the exact engine.

- tau fixed, flat mu prior: mu | tau, y ~ N(random-effects estimate, 1 / sum w_i) exactly, and
  the study posteriors are metafor's BLUPs;
- flat mu prior and improper uniform tau prior: the marginal posterior of tau is the restricted
  likelihood, so its mode is the REML estimate; the joint posterior is the likelihood, so its
  mode is the ML estimate. Both are computed here with a small scipy optimiser of the
  (restricted) likelihood written out in the test, and checked against metafor_tight too.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

import bayesmeta
from bayesmeta.bayes.exact import ExactPosterior, conditional_moments, exact_posterior
from bayesmeta.errors import InputError
from bayesmeta.inputs import as_effect_data

P = bayesmeta.priors
REF = Path(__file__).parent / "reference"

DATASETS = [("dat.bcg.json", "RR"), ("dat.raudenbush1985.json", "SMD"),
            ("dat.normand1999.json", "SMD"), ("dat.normand1999.json", "MD"),
            ("dat.curtis1998.json", "ROM_xtrt_NONE"), ("CrinsEtAl2014.json", "OR"),
            ("Rubin1981.json", "raw"), ("dat.li2007.json", "OR"), ("RobergeEtAl2017.json", "OR_PE"),
            ("BaetenEtAl2013.json", "PLO"), ("dat.pritz1997.json", "PLO"),
            ("HinksEtAl2010.json", "OR")]
IDS = [f"{f.removesuffix('.json')}-{k}" for f, k in DATASETS]


@cache
def analysis(fname: str, key: str) -> dict:
    return json.loads((REF / fname).read_text())["analyses"][key]


def data(fname: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    a = analysis(fname, key)
    return np.asarray(a["yi"], float), np.asarray(a["vi"], float)


# --- the likelihoods, written out here ---------------------------------------------------------


def restricted_loglik(tau: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / (v + tau * tau)
    mu = w @ y / w.sum()
    return -0.5 * (np.log(v + tau * tau).sum() + math.log(w.sum()) + w @ (y - mu) ** 2)


def profile_loglik(tau: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / (v + tau * tau)
    mu = w @ y / w.sum()
    return -0.5 * (np.log(v + tau * tau).sum() + w @ (y - mu) ** 2)


def maximise(f, y: np.ndarray, v: np.ndarray) -> float:
    """argmax over tau >= 0: grid scan, then bounded Brent around the best grid point."""
    grid = np.concatenate([[0.0], np.geomspace(1e-6, 100 * math.sqrt(v.max() + y.var()), 600)])
    values = np.array([f(t, y, v) for t in grid])
    j = int(np.argmax(values))
    if j == 0:
        return 0.0
    res = optimize.minimize_scalar(lambda t: -f(t, y, v), bounds=(grid[j - 1], grid[j + 1]),
                                   method="bounded", options={"xatol": 1e-13})
    return float(res.x)


# --- oracles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fname,key", DATASETS, ids=IDS)
def test_fixed_tau_flat_mu_is_the_random_effects_estimate(fname, key):
    y, v = data(fname, key)
    for tau in (0.0, 0.1, 0.7, 3.0):
        w = 1 / (v + tau**2)
        cond = conditional_moments(y, v, [tau])
        assert cond.mu_mean[0] == pytest.approx(w @ y / w.sum(), rel=1e-13, abs=1e-15)
        assert cond.mu_var[0] == pytest.approx(1 / w.sum(), rel=1e-13)
        assert cond.theta_new_var[0] == pytest.approx(1 / w.sum() + tau**2, rel=1e-13)
        # a normal mu prior is one more observation m0 with variance s0^2
        cond_n = conditional_moments(y, v, [tau], P.Normal(1.0, 4.0))
        prec = w.sum() + 1 / 16
        assert cond_n.mu_mean[0] == pytest.approx((w @ y + 1 / 16) / prec, rel=1e-13)
        assert cond_n.mu_var[0] == pytest.approx(1 / prec, rel=1e-13)


@pytest.mark.parametrize("fname,key", DATASETS, ids=IDS)
def test_fixed_tau_study_posteriors_are_metafor_blups(fname, key):
    a = analysis(fname, key)
    tight = a["metafor_tight"]
    y, v = data(fname, key)
    tau = math.sqrt(tight["rma"]["REML"]["tau2"])
    cond = conditional_moments(y, v, [tau])
    assert cond.mu_mean[0] == pytest.approx(tight["rma"]["REML"]["estimate"], rel=1e-6, abs=1e-8)
    assert math.sqrt(cond.mu_var[0]) == pytest.approx(tight["rma"]["REML"]["se"], rel=1e-6)
    np.testing.assert_allclose(cond.theta_mean[0], tight["blup_REML"]["pred"], rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(np.sqrt(cond.theta_var[0]), tight["blup_REML"]["se"], rtol=1e-6)


def test_engine_with_a_point_mass_tau_prior_gives_the_normal_posterior():
    """End to end: a log-normal prior of relative width 1e-7 pins tau; the engine's mu is then
    N(RE estimate, 1/sum w) to the width of the pin."""
    y, v = data("dat.bcg.json", "RR")
    tau0 = 0.5
    post = exact_posterior(as_effect_data(y, v), P.LogNormal(math.log(tau0), 1e-7), None)
    w = 1 / (v + tau0**2)
    mean, sd = w @ y / w.sum(), math.sqrt(1 / w.sum())
    q = np.array([0.001, 0.025, 0.5, 0.975, 0.999])
    np.testing.assert_allclose(post.quantile("mu", q), stats.norm.ppf(q, mean, sd), atol=1e-6 * sd)
    assert post.mean("mu") == pytest.approx(mean, abs=1e-7 * sd)
    assert post.sd("mu") == pytest.approx(sd, rel=1e-6)
    assert post.quantile("tau", 0.5) == pytest.approx(tau0, rel=1e-6)
    new_sd = math.sqrt(sd**2 + tau0**2)
    np.testing.assert_allclose(post.quantile("theta_new", q), stats.norm.ppf(q, mean, new_sd),
                               atol=1e-6 * new_sd)


@pytest.mark.parametrize("fname,key", DATASETS, ids=IDS)
def test_marginal_mode_of_tau_is_reml_and_joint_mode_is_ml(fname, key):
    y, v = data(fname, key)
    tight = analysis(fname, key)["metafor_tight"]["rma"]
    post = exact_posterior(as_effect_data(y, v), P.ImproperUniform(), None)
    tau_reml = maximise(restricted_loglik, y, v)
    tau_ml = maximise(profile_loglik, y, v)
    # optimiser precision: the log-likelihood is flat at its maximum, so the argmax is known to
    # ~sqrt(machine eps) relative
    tol = dict(rel=2e-7, abs=1e-9)
    assert post.mode("tau") == pytest.approx(tau_reml, **tol)
    assert post.mode("tau") == pytest.approx(math.sqrt(tight["REML"]["tau2"]), **tol)
    joint = post.joint_mode()
    assert joint["tau"] == pytest.approx(tau_ml, **tol)
    assert joint["tau"] == pytest.approx(math.sqrt(tight["ML"]["tau2"]), **tol)
    w = 1 / (v + tau_ml**2)
    assert joint["mu"] == pytest.approx(w @ y / w.sum(), rel=1e-6, abs=1e-9)
    assert joint["mu"] == pytest.approx(tight["ML"]["estimate"], rel=1e-6, abs=1e-9)


# --- existence of moments, propriety --------------------------------------------------------------


def test_moments_that_do_not_exist_are_none():
    y, v = data("HinksEtAl2010.json", "OR")  # k = 3
    flat = exact_posterior(as_effect_data(y, v), P.ImproperUniform(), None)
    for param in ("tau", "mu", "theta_new"):
        assert flat.mean(param) is None and flat.sd(param) is None
    assert flat.mean("study 1") is not None and flat.sd("study 1") is not None
    assert any("do not exist" in w for w in flat.warnings)
    normal = exact_posterior(as_effect_data(y, v), P.ImproperUniform(), P.Normal(0, 4))
    assert normal.mean("tau") is not None and normal.sd("tau") is None
    assert normal.sd("mu") is not None and normal.sd("theta_new") is None
    # quantiles always exist and are finite
    assert np.all(np.isfinite(flat.quantile("theta_new", [0.001, 0.999])))


def test_improper_posteriors_are_refused():
    effects2 = as_effect_data([0.1, 0.4], [0.04, 0.05])
    with pytest.raises(InputError, match="at least 3 studies are needed"):
        exact_posterior(effects2, P.ImproperUniform(), None)
    exact_posterior(effects2, P.ImproperUniform(), P.Normal(0, 4))  # proper with k = 2
    effects1 = as_effect_data([0.1], [0.04])
    with pytest.raises(InputError, match="at least 2 studies"):
        exact_posterior(effects1, P.ImproperUniform(), P.Normal(0, 4))
    # k = 1 with a proper tau prior and flat mu: the posterior of tau is the prior
    post = exact_posterior(effects1, P.HalfNormal(0.5), None)
    for q in (0.1, 0.5, 0.9):
        assert post.quantile("tau", q) == pytest.approx(P.HalfNormal(0.5).ppf(q), rel=1e-8)
    assert post.mean("mu") is not None and post.sd("mu") is not None


def test_bad_inputs():
    effects = as_effect_data([0.1, 0.3, 0.2], [0.04, 0.05, 0.02], labels=["a", "b", "mu"])
    with pytest.raises(InputError, match="row 3 .mu., column labels"):
        exact_posterior(effects, P.HalfNormal(0.5))
    good = as_effect_data([0.1, 0.3, 0.2], [0.04, 0.05, 0.02])
    with pytest.raises(InputError, match="tau_prior must be a prior on tau"):
        exact_posterior(good, P.Normal(0, 1))
    with pytest.raises(InputError, match="mu_prior must be"):
        exact_posterior(good, P.HalfNormal(0.5), P.HalfNormal(1))
    with pytest.raises(InputError, match="EffectData"):
        exact_posterior(([0.1], [0.2]), P.HalfNormal(0.5))
    post = exact_posterior(good, P.HalfNormal(0.5), P.Flat())  # Flat() is the same as None
    assert post.mu_prior is None
    with pytest.raises(InputError, match="unknown parameter; allowed: mu, tau, theta_new"):
        post.quantile("beta", 0.5)
    with pytest.raises(InputError, match="allowed: <, <=, >, >="):
        post.prob("mu", "=", 0)
    with pytest.raises(InputError, match="eti, shortest"):
        post.interval("mu", 0.95, "hpd")
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        post.interval("mu", 95)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        post.quantile("mu", 1.2)


# --- accessor consistency ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bcg():
    y, v = data("dat.bcg.json", "RR")
    a = analysis("dat.bcg.json", "RR")
    return exact_posterior(as_effect_data(y, v, labels=a["label"]), P.HalfCauchy(0.5),
                           P.Normal(0, 4))


def test_quantile_and_cdf_are_inverse(bcg):
    q = np.array([1e-6, 0.01, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999999])
    for param in ("tau", "mu", "theta_new", bcg.labels[3]):
        x = np.asarray(bcg.quantile(param, q))
        assert np.all(np.diff(x) > 0)
        lower = np.asarray(bcg.cdf(param, x))
        np.testing.assert_allclose(lower, q, rtol=1e-9)
        np.testing.assert_allclose(np.asarray(bcg.sf(param, x)), 1 - q, rtol=1e-9, atol=1e-15)
        assert bcg.prob(param, "<", x[3]) == pytest.approx(0.3, rel=1e-9)
        assert bcg.prob(param, ">=", x[3]) == pytest.approx(0.7, rel=1e-9)
    assert isinstance(bcg.quantile("mu", 0.5), float)
    assert np.shape(bcg.quantile("mu", [[0.1, 0.2]])) == (1, 2)


def test_density_integrates_to_the_cdf(bcg):
    for param in ("tau", "mu", "theta_new", bcg.labels[0]):
        a, b = np.asarray(bcg.quantile(param, [0.01, 0.9]))
        mass = integrate.quad(lambda x, p=param: float(bcg.pdf(p, x)), a, b, epsabs=0,
                              epsrel=1e-10, limit=200)[0]
        assert mass == pytest.approx(0.89, rel=1e-8)
    # tau: pdf at 0 is finite and positive for a half-Cauchy prior; P(tau < 0) = 0
    assert float(bcg.pdf("tau", 0.0)) > 0 and bcg.prob("tau", "<", -1.0) == 0.0


def test_intervals(bcg):
    for param in ("mu", "theta_new", "tau", bcg.labels[5]):
        lo, hi = bcg.interval(param, 0.9, "eti")
        assert bcg.cdf(param, lo) == pytest.approx(0.05, rel=1e-9)
        assert bcg.cdf(param, hi) == pytest.approx(0.95, rel=1e-9)
        slo, shi = bcg.interval(param, 0.9, "shortest")
        assert float(bcg.cdf(param, shi)) - float(bcg.cdf(param, slo)) == pytest.approx(0.9,
                                                                                         rel=1e-9)
        assert shi - slo <= hi - lo + 1e-12
        if slo > 0:  # an interior shortest interval has equal density at both ends
            assert float(bcg.pdf(param, slo)) == pytest.approx(float(bcg.pdf(param, shi)),
                                                               rel=1e-6)


def test_shortest_interval_of_tau_starts_at_zero_when_the_density_is_highest_there():
    y, v = data("HinksEtAl2010.json", "OR")
    post = exact_posterior(as_effect_data(y, v), P.HalfNormal(0.5), None)
    assert post.mode("tau") == 0.0
    lo, hi = post.interval("tau", 0.95, "shortest")
    assert lo == 0.0 and hi == pytest.approx(post.quantile("tau", 0.95), rel=1e-12)


def test_rhodes_prior_reports_the_interior_mode_and_warns():
    y, v = data("dat.raudenbush1985.json", "SMD")
    post = exact_posterior(as_effect_data(y, v), P.rhodes("pain_function"), P.Normal(0, 4))
    entry = analysis("dat.raudenbush1985.json", "SMD")["bayesmeta"]["grid"][
        "mu_normal_0_4__tau_rhodes_pain_nonpharm"]
    mode, bm_mode = post.mode("tau"), entry["tau"]["mode"]
    # bayesmeta's optimiser stops at ~5e-5 relative here; ours is the higher point
    assert mode == pytest.approx(bm_mode, rel=1e-4)
    assert float(post.pdf("tau", mode)) >= float(post.pdf("tau", bm_mode))
    for t in (mode * (1 - 1e-5), mode * (1 + 1e-5)):
        assert float(post.pdf("tau", mode)) >= float(post.pdf("tau", t))
    assert post.mode("mu") == pytest.approx(entry["mu"]["mode"], abs=1e-4)
    assert any("unbounded at tau = 0" in w for w in post.warnings)


def test_bounded_prior_keeps_tau_inside_its_support():
    y, v = data("dat.normand1999.json", "MD")  # raw scale: the data want tau >> 2
    post = exact_posterior(as_effect_data(y, v), P.Uniform(2.0), None)
    assert post.prob("tau", ">", 2.0) == 0.0
    assert post.quantile("tau", 0.999999) <= 2.0
    assert post.mode("tau") == 2.0  # the density increases up to the bound
    assert post.joint_mode()["tau"] == 2.0


def test_to_arrays_round_trip(bcg):
    arrays = bcg.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in arrays.values())
    again = ExactPosterior.from_arrays(arrays)
    assert again.labels == bcg.labels and again.tau_prior == bcg.tau_prior
    assert again.mu_prior == bcg.mu_prior and again.warnings == bcg.warnings
    for param in ("tau", "mu", "theta_new", bcg.labels[2]):
        assert again.quantile(param, 0.025) == bcg.quantile(param, 0.025)
        assert again.mean(param) == bcg.mean(param) and again.sd(param) == bcg.sd(param)
        assert again.cdf(param, 0.1) == bcg.cdf(param, 0.1)
    assert again.log_marginal_likelihood == bcg.log_marginal_likelihood
    # and with a flat mu prior, an improper tau prior and a preset with provenance
    y, v = data("HinksEtAl2010.json", "OR")
    flat = exact_posterior(as_effect_data(y, v), P.ImproperUniform(), None)
    again = ExactPosterior.from_arrays(flat.to_arrays())
    assert again.mu_prior is None and again.log_marginal_likelihood is None
    assert again.quantile("mu", 0.975) == flat.quantile("mu", 0.975)
    preset = exact_posterior(as_effect_data(y, v), P.turner(), None)
    assert ExactPosterior.from_arrays(preset.to_arrays()).tau_prior.citation == P.turner().citation


def test_log_marginal_likelihood_by_direct_integration():
    y, v = data("CrinsEtAl2014.json", "OR")
    post = exact_posterior(as_effect_data(y, v), P.HalfNormal(0.5), P.Normal(0, 4))
    cov = lambda t: np.diag(v + t * t) + 16.0  # noqa: E731  (y ~ N(0, diag(v + tau^2) + 16 J))
    f = lambda t: 2 * stats.norm.pdf(t, 0, 0.5) * stats.multivariate_normal.pdf(  # noqa: E731
        y, np.zeros(y.size), cov(t))
    z = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0]
    assert post.log_marginal_likelihood == pytest.approx(math.log(z), abs=1e-9)
    assert exact_posterior(as_effect_data(y, v), P.HalfNormal(0.5)).log_marginal_likelihood is None


def test_tiny_quantiles_of_tau_use_the_prior_mass_near_zero():
    # HinksEtAl2010 is compatible with tau = 0 and the log-t prior has mass ~1e-4 below tau_min,
    # where the engine integrates the prior CDF times p(y | 0)
    y, v = data("HinksEtAl2010.json", "OR")
    post = exact_posterior(as_effect_data(y, v), P.rhodes(), None)
    for q in (1e-12, 1e-8):
        t = float(post.quantile("tau", q))
        assert 0 < t < post.tau_min
        assert float(post.cdf("tau", t)) == pytest.approx(q, rel=1e-9)
    # continuity across tau_min: the lump formula and the panels meet
    below = float(post.cdf("tau", post.tau_min * (1 - 1e-12)))
    above = float(post.cdf("tau", post.tau_min * (1 + 1e-12)))
    assert above == pytest.approx(below, rel=1e-8)


def test_extreme_scales():
    """Data far from tau = 0 (p(y | 0) underflows relative to Z), a standard-error ratio of
    1e6, and k = 1 under the log-t prior (posterior of tau = prior, tail polynomial in log tau)."""
    far = exact_posterior(as_effect_data([-1000.0, 0.0, 1000.0, 500.0], [1.0] * 4),
                          P.ImproperUniform(), None)
    lo, hi = far.interval("tau", 0.95, "shortest")
    assert 0 < lo < hi and float(far.cdf("tau", hi)) - float(far.cdf("tau", lo)) == \
        pytest.approx(0.95, rel=1e-9)
    assert far.quantile("tau", 0.0) == 0.0 and far.quantile("tau", 1.0) == math.inf
    wide = exact_posterior(as_effect_data([0.1, 0.5, -0.2, 0.3], [1e-8, 1e4, 0.01, 1.0]),
                           P.HalfNormal(0.5), None)
    q = np.array([0.025, 0.5, 0.975])
    np.testing.assert_allclose(wide.cdf("mu", wide.quantile("mu", q)), q, rtol=1e-9)
    single = exact_posterior(as_effect_data([0.3], [0.04]), P.rhodes(), None)
    np.testing.assert_allclose(single.quantile("tau", q), P.rhodes().ppf(q), rtol=1e-7)
    assert single.mean("tau") is None and single.mean("study 1") is not None
