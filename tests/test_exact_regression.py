"""The exact engine of subgroup and meta-regression models (bayesmeta.bayes.exact_regression).

- bmr() references (tests/reference/RobergeEtAl2017.json ``extras``: bmr01 ~ dose with bmr()'s
  defaults, bmr02 ~ -1 + onset + onset:dose with predictions, bmr01 under HalfNormal(0.5) and
  Normal(0, 4) coefficients): quantiles, P(coefficient < 0), moments, modes, shortest
  intervals, tau summaries, study shrinkage and predictions, each to 1% of that parameter's
  posterior SD. bmr() approximates each mixture on a coarse DIRECT grid of tau (delta = 0.01),
  which moves its coefficient quantiles by up to ~2e-3 SD; an independent quadrature written
  here (dense-matrix likelihoods, scipy quad_vec) settles that our values are the exact ones.
  Its tau summaries use adaptive integration and agree with ours to ~1e-11, so tau is held to
  TAU_TOL. bmr()'s ``ML`` table is not compared: in all three fits its "joint" row holds the
  posterior medians (e.g. bmr01 tau 0.5319 = the median, while the maximum-likelihood tau is
  0.4747 = bmr()'s own joint MAP under these flat priors, which we match), and its "marginal"
  row is NA under flat priors.
- Oracles: flat coefficients and the improper uniform tau prior make the marginal posterior
  of tau the restricted likelihood (mode = REML tau, metafor_tight) and the joint posterior the
  likelihood (joint mode = ML); the conditional posterior of beta at the REML tau is metafor's
  fit (coefficients and standard errors).
- Structure: a shared-tau subgroup model is a meta-regression on the level indicators without
  intercept; separate taus are independent pooled fits (exact_posterior) per subgroup; the CDF
  of a difference across separate taus is a numerical convolution of the two marginals.
- NUTS (one compiled sampler with the other NUTS tests) matches the exact engine within
  max(4 MCSE, 1e-3 posterior SD) for a meta-regression and both kinds of subgroup model.
- Exact posterior draws (``sample``), posterior predictive checks on exact results,
  persistence, improper posteriors and moments that do not exist.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
from refdata import reference_document, roberge_table
from scipy import integrate, stats

import bayesmeta
from bayesmeta import priors
from bayesmeta.bayes.api import Layout
from bayesmeta.bayes.exact import exact_posterior
from bayesmeta.bayes.exact_regression import ExactRegressionPosterior, exact_regression_posterior
from bayesmeta.errors import InputError
from bayesmeta.inputs import resolve_effects
from bayesmeta.ppc import cochran_q, posterior_predictive_check
from bayesmeta.results import BayesResult

#: the acceptance: our value vs bmr(), in units of the parameter's posterior SD
BMR_TOL = 1e-2
#: tau summaries vs bmr() (both integrate p(tau | y) adaptively; observed ~5e-12 SD). bmr()'s
#: mode and shortest interval come from optimize() with its default tolerance (observed 5e-5
#: SD), so those are held to BMR_TOL.
TAU_TOL = 1e-8
#: P(coefficient < 0) vs bmr(), absolute: bmr()'s DIRECT grid of tau moves it by at most
#: 4.7e-5 in these fits; 1e-3 is the pooled model's acceptance for tail probabilities
PROB_TOL = 1e-3
#: our quantiles vs the independent quadrature, in posterior SDs (observed ~1e-10)
QUADRATURE_TOL = 1e-7
#: REML / ML oracles: metafor_tight to 1e-6 relative (house rule); the marginal mode is found
#: by a bounded scalar optimiser on log tau whose precision is ~sqrt(eps) (observed 4e-8)
ORACLE_RTOL = 1e-6
#: identities between two exact computations (same numbers by different routes)
IDENTITY_TOL = 1e-9
#: NUTS tests share one compiled sampler with tests/test_bayes_models.py and test_nuts.py
NUTS = dict(engine="nuts", capacity=64, coef_slots=4, tau_prior=priors.HalfNormal(0.5),
            seed=20261126)

CASES = {
    "bmr01": dict(mods="~ dose", tau_prior=priors.ImproperUniform(), coef_prior=None),
    "bmr02": dict(mods="~ -1 + onset + onset:dose", tau_prior=priors.ImproperUniform(),
                  coef_prior=None),
    "bmr01_halfnormal0.5_beta_normal0_4": dict(mods="~ dose", tau_prior=priors.HalfNormal(0.5),
                                               coef_prior=priors.Normal(0, 4)),
}
QUANTILES = (("central95.lb", 0.025), ("median", 0.5), ("central95.ub", 0.975))


def reference() -> dict:
    return reference_document("RobergeEtAl2017")


#: the bmr() references' study table, read once per module
table = cache(roberge_table)


@cache
def fit(case: str) -> BayesResult:
    return bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                               **CASES[case])


def bmr_names(case: str) -> dict[str, str]:
    """bmr()'s column names -> ours, matched by the design columns themselves."""
    entry = reference()["extras"][case]
    X = np.asarray(entry["X"], float)
    X = X.T if X.shape[0] == len(entry["X_colnames"]) else X
    post = fit(case).posterior
    out = {"tau": "tau"}
    for j, name in enumerate(entry["X_colnames"]):
        match = [post.coef_names[i] for i in range(X.shape[1])
                 if np.array_equal(post.X[:, i], X[:, j])]
        assert len(match) == 1, (name, match)
        out[name] = match[0]
    return out


# ---------------------------------------------------------------------------------------------
# bmr() references


@pytest.mark.parametrize("case", list(CASES))
def test_matches_bmr_summaries(case):
    res, ref = fit(case), reference()["extras"][case]["summary"]
    failures = []
    for theirs, ours in bmr_names(case).items():
        r = ref[theirs]
        sd = res.sd(ours)
        tight = BMR_TOL if ours != "tau" else TAU_TOL
        checks = [(f"q{q}", res.quantile(ours, q), r[key], tight) for key, q in QUANTILES]
        checks += [("mean", res.mean(ours), r["mean"], tight), ("sd", sd, r["sd"], tight),
                   ("mode", res.posterior.mode(ours), r["mode"], BMR_TOL)]
        lo, hi = res.interval(ours, 0.95, "shortest")
        checks += [("shortest.lb", lo, r["shortest95.lb"], BMR_TOL),
                   ("shortest.ub", hi, r["shortest95.ub"], BMR_TOL)]
        for label, got, want, tol in checks:
            if abs(got - want) > tol * sd:
                failures.append(f"{ours} {label}: {got:.10g} vs bmr {want:.10g} "
                                f"({abs(got - want) / sd:.2g} SD)")
        # A probability is not in SD units: held to PROB_TOL absolute (observed <= 4.7e-5).
        if "P_lt_0" in r and abs(res.prob(ours, "<", 0) - r["P_lt_0"]) > PROB_TOL:
            failures.append(f"P({ours} < 0): {res.prob(ours, '<', 0)} vs {r['P_lt_0']}")
    assert not failures, failures


@pytest.mark.parametrize("case", list(CASES))
def test_matches_bmr_shrinkage(case):
    res, ts = fit(case), reference()["extras"][case]["theta_shrinkage"]
    assert list(ts["label"]) == list(res.labels)
    # Shortest intervals cost ~30 ms each: all 40 studies for bmr()'s default priors, every
    # fourth one under the proper priors (the same mixture code, other weights).
    every = 1 if CASES[case]["coef_prior"] is None else 4
    failures = []
    for i, label in enumerate(ts["label"]):
        sd = res.sd(label)
        checks = [("median", res.quantile(label, 0.5)), ("mean", res.mean(label)), ("sd", sd),
                  ("mode", res.posterior.mode(label))]
        if i % every == 0:
            lo, hi = res.interval(label, 0.95, "shortest")
            checks += [("shortest95.lb", lo), ("shortest95.ub", hi)]
        for key, got in checks:
            if abs(got - ts[key][i]) > BMR_TOL * sd:
                failures.append(f"{label} {key}: {got:.8g} vs {ts[key][i]:.8g}")
    assert not failures, failures


def test_matches_bmr02_predictions():
    """bmr()'s qpredict / pred.interval (mean = TRUE, shortest intervals): x' beta at doses
    50, 100, 150 in the early- and late-onset groups."""
    post = fit("bmr02").posterior
    names = bmr_names("bmr02")
    pred = reference()["extras"]["bmr02"]["predictions"]
    for group, (intercept, slope) in (("early", ("intEarly", "slopeEarly")),
                                      ("late", ("intLate", "slopeLate"))):
        for i, dose in enumerate(pred["dose"]):
            dist = post.predict({names[intercept]: 1.0, names[slope]: dose})
            sd = dist.sd()
            assert dist.quantile(0.5) == pytest.approx(pred[f"{group}_median"][i],
                                                        abs=BMR_TOL * sd)
            lo, hi = dist.interval(0.95, "shortest")
            want_lo, want_hi = pred[f"{group}_interval"][i]
            assert lo == pytest.approx(want_lo, abs=BMR_TOL * sd)
            assert hi == pytest.approx(want_hi, abs=BMR_TOL * sd)
            # the same row as a design vector; a new study's effect is wider by tau
            row = np.zeros(len(post.coef_names))
            row[post.coef_names.index(names[intercept])] = 1.0
            row[post.coef_names.index(names[slope])] = dose
            assert post.predict(row).quantile(0.3) == dist.quantile(0.3)
            assert post.predict(row, new_study=True).sd() > sd


@pytest.mark.parametrize("case", list(CASES))
def test_matches_bmr_map_and_marginal_likelihood(case):
    res, entry = fit(case), reference()["extras"][case]
    names = bmr_names(case)
    MAP = dict(zip(entry["MAP"]["rows"], entry["MAP"]["values"], strict=True))
    joint = res.posterior.joint_mode()
    for j, col in enumerate(entry["MAP"]["cols"]):
        ours = names[col]
        sd = res.sd(ours)
        assert joint[ours] == pytest.approx(MAP["joint"][j], abs=BMR_TOL * sd), ours
    assert res.posterior.mode("tau") == pytest.approx(
        MAP["marginal"][0], abs=BMR_TOL * res.sd("tau"))
    lml = res.posterior.log_marginal_likelihood
    if entry["marginal_likelihood"] is None:
        assert lml is None  # an improper prior: p(y) is not defined
    else:
        assert lml == pytest.approx(math.log(entry["marginal_likelihood"]), abs=1e-8)


# ---------------------------------------------------------------------------------------------
# independent quadrature: settles the coefficient quantiles where bmr() is approximate


def _log_likelihood_dense(tau: float, y, v, X, prior):
    """log p(y | tau) (up to a constant) and the moments of beta | tau, y, by dense algebra
    written out here: for flat coefficients the restricted likelihood with its projection
    matrix (Harville 1977); for normal ones a QR least-squares solve of the whitened system
    [Sigma^-1/2 X; S^-1/2] beta = [Sigma^-1/2 y; S^-1/2 m] (the prior as extra observations),
    with log p(y | tau) = -1/2 (log|Sigma| + 2 log|det R| + |whitened residual|^2). (The
    textbook marginal N(X m, Sigma + X S X') with Gaussian conditioning loses ~1e-3 of the
    slope's variance to cancellation here: S = 16 against a posterior variance of 3e-5.)"""
    Sigma = np.diag(v + tau * tau)
    if prior is None:
        Si = np.linalg.inv(Sigma)
        XtSiX = X.T @ Si @ X
        cov = np.linalg.inv(XtSiX)
        mean = cov @ X.T @ Si @ y
        Pm = Si - Si @ X @ cov @ X.T @ Si
        loglik = -0.5 * (np.linalg.slogdet(Sigma)[1] + np.linalg.slogdet(XtSiX)[1] + y @ Pm @ y)
        return loglik, mean, cov
    m, S = prior
    w = 1 / np.sqrt(v + tau * tau)
    s = 1 / np.sqrt(np.diag(S))
    A = np.vstack([X * w[:, None], np.diag(s)])
    b = np.concatenate([y * w, m * s])
    Q, R = np.linalg.qr(A)
    mean = np.linalg.solve(R, Q.T @ b)
    R_inv = np.linalg.inv(R)
    resid = b - A @ mean
    loglik = -0.5 * (np.sum(np.log(v + tau * tau)) + 2 * np.sum(np.log(np.abs(np.diag(R))))
                     + resid @ resid)
    return loglik, mean, R_inv @ R_inv.T


def _independent_cdf(case: str, combos: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """P(c' beta <= x) for each (c, x) by quad_vec over tau, with the density of c' beta at x
    (to express a probability error as an error in x)."""
    t = table()
    y, v = t["yi"].to_numpy(float), t["vi"].to_numpy(float)
    X = fit(case).posterior.X
    spec = CASES[case]
    prior = None
    if spec["coef_prior"] is not None:
        s = spec["coef_prior"].sd
        prior = (np.full(X.shape[1], spec["coef_prior"].mean), np.eye(X.shape[1]) * s * s)
    half_normal = isinstance(spec["tau_prior"], priors.HalfNormal)

    def log_post(tau):
        lp = stats.halfnorm(scale=0.5).logpdf(tau) if half_normal else 0.0
        return lp + _log_likelihood_dense(tau, y, v, X, prior)[0]

    peak = max(log_post(t_) for t_ in np.linspace(0.05, 2, 60))

    def integrand(tau):
        loglik, mean, cov = _log_likelihood_dense(tau, y, v, X, prior)
        w = math.exp((stats.halfnorm(scale=0.5).logpdf(tau) if half_normal else 0.0)
                     + loglik - peak)
        out = [w]
        for c, x in combos:
            m, s = c @ mean, math.sqrt(c @ cov @ c)
            out += [w * stats.norm.cdf(x, m, s), w * stats.norm.pdf(x, m, s)]
        return np.array(out)

    kw = dict(epsabs=0.0, epsrel=1e-11, norm="max", limit=500)
    total = integrate.quad_vec(integrand, 0.0, 0.5, **kw)[0]
    total += integrate.quad_vec(integrand, 0.5, 6.0, **kw)[0]
    return total[1:] / total[0]


@pytest.mark.parametrize("case", ["bmr01", "bmr01_halfnormal0.5_beta_normal0_4"])
def test_quantiles_agree_with_independent_quadrature(case):
    """Where bmr() differs from us most (the slope's tail quantiles, ~2e-3 SD), an independent
    quadrature confirms our values to QUADRATURE_TOL SD, and bmr()'s error is its own."""
    res = fit(case)
    post = res.posterior
    combos, want = [], []
    for name in post.coef_names:
        c = np.eye(len(post.coef_names))[post.coef_names.index(name)]
        for q in (0.025, 0.975):
            combos.append((c, res.quantile(name, q)))
            want.append((name, q))
    values = _independent_cdf(case, combos).reshape(-1, 2)
    for (name, q), (cdf, dens) in zip(want, values, strict=True):
        error_x = abs(cdf - q) / dens  # how far our quantile is from the true one
        assert error_x < QUADRATURE_TOL * res.sd(name), (name, q, error_x / res.sd(name))


# ---------------------------------------------------------------------------------------------
# oracles: REML and ML


@pytest.mark.parametrize("index", [0, 1])
def test_reml_oracle(index):
    """Flat coefficients, improper uniform tau prior: mode of p(tau | y) = REML tau, and
    beta | tau_REML, y = the REML fit (metafor_tight meta_regression[] and our rma)."""
    entry = reference()["analyses"]["OR_PE"]["metafor_tight"]["meta_regression"][index]
    reml = entry["REML"]
    res = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", mods=entry["mods"],
                              engine="exact", tau_prior=priors.ImproperUniform(),
                              coef_prior=None)
    post = res.posterior
    tau = post.mode("tau")
    assert tau**2 == pytest.approx(reml["tau2"], rel=ORACLE_RTOL)
    assert tau**2 == pytest.approx(res.frequentist.tau2, rel=ORACLE_RTOL)
    cond = post.blocks[0].conditional([math.sqrt(reml["tau2"])])
    np.testing.assert_allclose(cond.beta_mean[0], reml["coefficients"]["estimate"],
                               rtol=ORACLE_RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(cond.beta_cov[0])), reml["coefficients"]["se"],
                               rtol=ORACLE_RTOL)
    # ... and the conditional mean at our own mode is the REML fit to the mode's precision
    at_mode = post.blocks[0].conditional([tau]).beta_mean[0]
    np.testing.assert_allclose(at_mode, res.frequentist.beta, rtol=ORACLE_RTOL)
    # the joint mode of (beta, tau) is the ML fit
    ml = bayesmeta.rma("yi", "vi", data=table(), mods=entry["mods"], method="ML")
    joint = post.joint_mode()
    assert joint["tau"] ** 2 == pytest.approx(ml.tau2, rel=ORACLE_RTOL)
    np.testing.assert_allclose([joint[n] for n in post.coef_names], ml.beta, rtol=ORACLE_RTOL)


# ---------------------------------------------------------------------------------------------
# structure: subgroups as regressions, separate taus as pooled fits, differences as convolutions


@cache
def subgroup_fit(tau: str) -> BayesResult:
    return bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", subgroup="onset",
                               tau=tau, engine="exact", tau_prior=priors.HalfNormal(0.5),
                               mu_prior=priors.Normal(0, 4))


def test_shared_tau_subgroups_equal_regression_on_indicators():
    sg = subgroup_fit("shared")
    mr = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", mods="~ -1 + onset",
                             engine="exact", tau_prior=priors.HalfNormal(0.5),
                             coef_prior=priors.Normal(0, 4))
    levels = sg.extras["levels"]
    q = [0.01, 0.3, 0.5, 0.9]
    for lv in levels:
        np.testing.assert_allclose(sg.quantile(f"mu[{lv}]", q), mr.quantile(f"onset[{lv}]", q),
                                   atol=IDENTITY_TOL)
        new = mr.posterior.predict({f"onset[{lv}]": 1.0}, new_study=True)
        np.testing.assert_allclose(sg.quantile(f"theta_new[{lv}]", q), new.quantile(q),
                                   atol=IDENTITY_TOL)
    np.testing.assert_allclose(sg.quantile("tau", q), mr.quantile("tau", q), atol=IDENTITY_TOL)
    for label in sg.labels[:5]:
        assert sg.mean(label) == pytest.approx(mr.mean(label), abs=IDENTITY_TOL)
    a, b = levels
    diff = mr.posterior.predict({f"onset[{b}]": 1.0, f"onset[{a}]": -1.0})
    name = f"mu[{b}] - mu[{a}]"
    np.testing.assert_allclose(sg.quantile(name, q), diff.quantile(q), atol=IDENTITY_TOL)
    assert sg.prob(name, "<", 0) == pytest.approx(diff.prob("<", 0), abs=IDENTITY_TOL)


@cache
def pooled_groups() -> dict[str, object]:
    out = {}
    t = table()
    for lv in subgroup_fit("separate").extras["levels"]:
        sub = t[t["onset"] == lv]
        effects = resolve_effects(sub["yi"].to_numpy(), sub["vi"].to_numpy(),
                                  labels=list(sub["label"]))
        out[lv] = exact_posterior(effects, priors.HalfNormal(0.5), priors.Normal(0, 4))
    return out


def test_separate_taus_equal_pooled_fits_per_subgroup():
    sep = subgroup_fit("separate")
    q = [0.025, 0.5, 0.975]
    for lv, pooled in pooled_groups().items():
        first, last = pooled.labels[0], pooled.labels[-1]
        for ours, theirs in ((f"mu[{lv}]", "mu"), (f"tau[{lv}]", "tau"),
                             (f"theta_new[{lv}]", "theta_new"), (first, first), (last, last)):
            np.testing.assert_allclose(sep.quantile(ours, q), pooled.quantile(theirs, q),
                                       atol=IDENTITY_TOL)
            assert sep.mean(ours) == pytest.approx(pooled.mean(theirs), abs=IDENTITY_TOL)
            assert sep.sd(ours) == pytest.approx(pooled.sd(theirs), abs=IDENTITY_TOL)
    assert sep.extras["flagged"] == []  # both subgroups have >= 5 studies


def test_difference_across_separate_taus_is_a_convolution():
    sep = subgroup_fit("separate")
    a, b = sep.extras["levels"]
    name = f"mu[{b}] - mu[{a}]"
    pa, pb = pooled_groups()[a], pooled_groups()[b]
    lo, hi = pa.quantile("mu", [1e-13, 1 - 1e-13])
    for d in (-1.0, -0.5, -0.2, 0.0):
        # P(mu_b - mu_a <= d) = integral of f_a(x) F_b(d + x) dx
        direct = integrate.quad(lambda x, d=d: pa.pdf("mu", x) * pb.cdf("mu", d + x), lo, hi,
                                epsabs=1e-13, epsrel=1e-11, limit=200)[0]
        assert sep.cdf(name, d) == pytest.approx(direct, abs=1e-9)
    mean = pb.mean("mu") - pa.mean("mu")
    sd = math.hypot(pb.sd("mu"), pa.sd("mu"))
    assert sep.mean(name) == pytest.approx(mean, abs=IDENTITY_TOL)
    assert sep.sd(name) == pytest.approx(sd, abs=IDENTITY_TOL)


def test_single_study_subgroup_with_separate_tau_returns_its_prior():
    t = table().copy()
    t["arm"] = ["solo"] + ["rest"] * (len(t) - 1)
    res = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", subgroup="arm", tau="separate",
                              engine="exact", tau_prior=priors.HalfNormal(0.5), mu_prior=None)
    # with one study and a flat mean, p(y | tau) is constant: tau's posterior is its prior
    q = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(res.quantile("tau[solo]", q), priors.HalfNormal(0.5).ppf(q),
                               rtol=1e-9)
    assert res.extras["flagged"] == ["solo"]
    # ... and the improper uniform prior makes that subgroup's posterior improper
    with pytest.raises(InputError, match=r"at least 3 studies are needed in the studies of "
                                         r"tau\[solo\] \(k = 1\)"):
        bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", subgroup="arm",
                            tau="separate", engine="exact", tau_prior=priors.ImproperUniform(),
                            mu_prior=None)


# ---------------------------------------------------------------------------------------------
# improper posteriors, bad layouts, moments that do not exist


def _layout(X, names, tau_index=None, tau_names=("tau",), coef_priors=None, kind="meta_regression"):
    k = X.shape[0]
    return Layout(kind=kind, X=np.asarray(X, float), coef_names=tuple(names),
                  coef_priors=coef_priors or (None,) * len(names),
                  tau_index=np.zeros(k, int) if tau_index is None else np.asarray(tau_index),
                  tau_names=tuple(tau_names),
                  tau_priors=(priors.HalfNormal(0.5),) * len(tau_names))


def _effects(k: int):
    t = table().iloc[:k]
    return resolve_effects(t["yi"].to_numpy(), t["vi"].to_numpy(), labels=list(t["label"]))


def test_improper_posteriors_are_clear_errors():
    few = table().iloc[:3]
    with pytest.raises(InputError, match=r"improper uniform tau prior and 2 coefficients with "
                                         r"a flat prior \(intercept, dose\), at least 4 studies "
                                         r"are needed \(k = 3\)"):
        bayesmeta.bayes_rma("yi", "vi", data=few, labels="label", mods="~ dose",
                            engine="exact", tau_prior=priors.ImproperUniform())
    # a proper coefficient prior on one of them is enough for k = 3
    ok = bayesmeta.bayes_rma("yi", "vi", data=few, labels="label", mods="~ dose",
                             engine="exact", tau_prior=priors.ImproperUniform(),
                             coef_prior={"dose": priors.Normal(0, 1)})
    assert ok.quantile("tau", 0.5) > 0
    # collinear flat columns (the design layer refuses them for formulas; the engine checks too)
    x = table()["dose"].to_numpy()[:10]
    X = np.column_stack([np.ones(10), x, 2 * x])
    with pytest.raises(InputError, match=r"column mods: dose2; the posterior is improper: these "
                                         r"coefficients with a flat prior are not identified"):
        exact_regression_posterior(_effects(10), _layout(X, ["intercept", "dose", "dose2"]))
    # ... which a normal prior on that coefficient makes proper: the data say nothing about
    # dose2 beside a flat dose (its posterior is its prior), only about dose + 2 dose2
    fine = exact_regression_posterior(
        _effects(10), _layout(X, ["intercept", "dose", "dose2"],
                              coef_priors=(None, None, priors.Normal(0, 1))))
    assert fine.sd("dose2") == pytest.approx(1.0, rel=1e-9)
    assert fine.quantile("dose2", 0.975) == pytest.approx(1.959963984540054, rel=1e-9)
    assert fine.predict({"dose": 1.0, "dose2": 2.0}).sd() < 0.1
    # separate taus need every coefficient inside one tau group
    with pytest.raises(InputError, match=r"column X: intercept; with separate taus the "
                                         r"exact engine needs each coefficient informed by the "
                                         r"studies of one tau group only; this one spans "
                                         r"tau\[a\], tau\[b\]"):
        exact_regression_posterior(_effects(10), _layout(
            np.ones((10, 1)), ["intercept"], tau_index=[0] * 5 + [1] * 5,
            tau_names=("tau[a]", "tau[b]")))
    # a study label that is a parameter name would make the vocabulary ambiguous
    eff = resolve_effects(table()["yi"].to_numpy()[:10], table()["vi"].to_numpy()[:10],
                          labels=["dose", *map(str, range(9))])
    with pytest.raises(InputError, match=r"row 1 \(dose\), column labels: dose; a study label "
                                         r"may not be the name of a model parameter"):
        exact_regression_posterior(eff, _layout(np.column_stack([np.ones(10), x]),
                                                ["intercept", "dose"]))


def test_moments_that_do_not_exist_are_none():
    """Improper uniform tau prior, 2 flat coefficients, k = 4: p(tau | y) ~ tau^-2, so tau and
    every quantity whose conditional SD grows like tau (the flat coefficients, new studies) has
    no mean; study effects keep theirs."""
    res = bayesmeta.bayes_rma("yi", "vi", data=table().iloc[:4], labels="label", mods="~ dose",
                              engine="exact", tau_prior=priors.ImproperUniform())
    assert res.mean("tau") is None and res.sd("tau") is None
    assert res.mean("dose") is None and res.sd("intercept") is None
    assert np.isfinite(res.quantile("dose", 0.5))
    label = res.labels[0]
    assert res.mean(label) is not None and res.sd(label) > 0
    assert any("do not exist" in w for w in res.warnings)
    assert res.posterior.predict({"intercept": 1.0, "dose": 80.0}).mean() is None


# ---------------------------------------------------------------------------------------------
# exact draws, posterior predictive checks, persistence


def test_exact_draws_follow_the_exact_posterior():
    rng = np.random.default_rng(7)
    res = fit("bmr01_halfnormal0.5_beta_normal0_4")
    n = 2000
    d = res.posterior.sample(rng, n)
    assert d["tau"].shape == (n,) and d["theta"].shape == (n, res.k)
    np.testing.assert_allclose(d["linpred"], d["beta"] @ res.posterior.X.T)
    post = res.posterior
    # Kolmogorov-Smirnov against the exact marginal CDFs (a wrong conditional would show)
    for name, draws in (("tau", d["tau"]), ("dose", d["beta"][:, 1]),
                        (res.labels[2], d["theta"][:, 2])):
        p = stats.kstest(draws, lambda x, name=name: post.cdf(name, x)).pvalue
        assert p > 1e-3, (name, p)
    # the joint structure: the draws' correlation of intercept and slope is the exact one
    # (E[cov(beta | tau)] + cov(E[beta | tau]) over the tau grid), within sampling error
    block = post.blocks[0]
    w = block._weights
    mean = w @ block.beta_mean
    cov = np.einsum("j,jab->ab", w, block.beta_cov) + np.einsum(
        "j,ja,jb->ab", w, block.beta_mean - mean, block.beta_mean - mean)
    exact_corr = cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])
    draws_corr = np.corrcoef(d["beta"].T)[0, 1]
    assert abs(draws_corr - exact_corr) < 4 * (1 - exact_corr**2) / math.sqrt(n)
    # separate taus: one tau per study, constant within a subgroup
    sep = subgroup_fit("separate").posterior.sample(rng, 500)
    groups = subgroup_fit("separate").posterior.tau_index
    assert sep["tau"].shape == (500, len(groups))
    for g in (0, 1):
        assert np.ptp(sep["tau"][:, groups == g], axis=1).max() == 0
    # the pooled engine draws as well
    pooled = pooled_groups()["after wk 16"]
    dp = pooled.sample(rng, 2000)
    assert stats.kstest(dp["mu"], lambda x: pooled.cdf("mu", x)).pvalue > 1e-3
    assert stats.kstest(dp["theta"][:, 0],
                        lambda x: pooled.cdf(pooled.labels[0], x)).pvalue > 1e-3
    np.testing.assert_array_equal(dp["linpred"][:, 3], dp["mu"])


def test_posterior_predictive_check_on_exact_results():
    t = table().copy()
    t.loc[5, "yi"] = 6.0   # a gross outlier (Ebrashi 2005)
    res = bayesmeta.bayes_rma("yi", "vi", data=t, labels="label", mods="~ dose",
                              engine="exact", tau_prior=priors.HalfNormal(0.5),
                              coef_prior=priors.Normal(0, 4))
    # 1000 exact draws suffice for these checks (each costs one inversion of tau's CDF)
    ppc = posterior_predictive_check(res, seed=1, n_draws=1000)
    assert ppc.studies.loc["Ebrashi (2005)", "ppp_mixed"] > 0.99
    assert ppc.q_obs == pytest.approx(float(cochran_q(res.yi, res.vi)))
    assert ppc.elpd_loo is None and "loo_pit" not in ppc.studies  # LOO needs NUTS draws
    sep = posterior_predictive_check(subgroup_fit("separate"), seed=2, n_draws=1000)
    assert 0.05 < sep.ppp_q < 0.95
    pooled = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                                 tau_prior=priors.HalfNormal(0.5))
    assert 0.05 < posterior_predictive_check(pooled, seed=3, n_draws=1000).ppp_q < 0.95


@pytest.mark.parametrize("which", ["bmr02", "separate"])
def test_save_load_round_trip(which, tmp_path):
    res = fit(which) if which != "separate" else subgroup_fit("separate")
    path = tmp_path / "result.nc"
    res.save(path)
    back = bayesmeta.load(path)
    assert isinstance(back.posterior, ExactRegressionPosterior)
    assert back.params == res.params and back.model == res.model
    assert back.warnings == res.warnings and back.extras == res.extras
    for p in res.params[:9]:
        np.testing.assert_array_equal(back.quantile(p, [0.05, 0.5]), res.quantile(p, [0.05, 0.5]))
        assert back.mean(p) == res.mean(p)
    assert back.posterior.log_marginal_likelihood == res.posterior.log_marginal_likelihood
    # the REML twin is refitted from the stored design: the same model, not a pooled one
    pd.testing.assert_frame_equal(back.frequentist.summary(), res.frequentist.summary())
    assert type(back.frequentist) is type(res.frequentist)
    if which == "bmr02":
        row = res.posterior.X[0]
        assert back.posterior.predict(row).quantile(0.9) == res.posterior.predict(row).quantile(0.9)
    else:
        assert back.posterior.new == () or all(
            np.array_equal(a[1], b[1]) for a, b in zip(back.posterior.new, res.posterior.new,
                                                       strict=True))


def test_result_tables_and_r2_for_exact_regression():
    res = fit("bmr01_halfnormal0.5_beta_normal0_4")
    summary = res.summary()
    assert list(summary.index[:3]) == ["intercept", "dose", "tau"]
    assert summary.attrs["engine"] == "exact"
    d = res.to_dict()
    assert {"intercept", "dose", "tau"} <= set(d)
    # 1 - E[tau^2 | dose] / E[tau^2 | intercept only]: dose explains little here
    assert -0.2 < res.extras["r2_bayes"] < 0.2
    sg = subgroup_fit("separate")
    a, b = sg.extras["levels"]
    assert f"mu[{b}] - mu[{a}]" in sg.to_dict()


# ---------------------------------------------------------------------------------------------
# NUTS agrees with the exact engine


NUTS_CASES = {
    "meta_regression": dict(mods="~ dose", coef_prior=priors.Normal(0, 4)),
    "subgroup_shared": dict(subgroup="onset", mu_prior=priors.Normal(0, 4)),
    "subgroup_separate": dict(subgroup="onset", tau="separate", mu_prior=priors.Normal(0, 4)),
}


@pytest.mark.parametrize("case", list(NUTS_CASES))
def test_nuts_matches_exact(case):
    kw = NUTS_CASES[case]
    nuts = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", **NUTS, **kw)
    exact = bayesmeta.bayes_rma("yi", "vi", data=table(), labels="label", engine="exact",
                                tau_prior=NUTS["tau_prior"], **kw)
    assert nuts.diagnostics.passed, nuts.diagnostics.messages
    assert nuts.params == exact.params
    post = nuts.posterior
    failures = []
    params = [p for p in exact.params if p not in exact.labels] + list(exact.labels[:3])
    for p in params:
        sd = exact.sd(p)
        for q in (0.025, 0.5, 0.975):
            tol = max(4 * post.mcse(p, "quantile", q), 1e-3 * sd)
            got, want = nuts.quantile(p, q), exact.quantile(p, q)
            if abs(got - want) > tol:
                failures.append(f"{p} q{q}: NUTS {got:.5g} vs exact {want:.5g} (tol {tol:.3g})")
        if p not in exact.posterior.tau_names:
            tol = max(4 * post.mcse(p, "prob", 0.0), 1e-3)
            if abs(nuts.prob(p, "<", 0) - exact.prob(p, "<", 0)) > tol:
                failures.append(f"P({p} < 0): NUTS {nuts.prob(p, '<', 0):.4f} vs exact "
                                f"{exact.prob(p, '<', 0):.4f}")
    assert not failures, failures
