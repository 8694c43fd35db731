"""Edge cases: boundary tau2 = 0, k = 1 and 2, extreme variance ratios, a bimodal likelihood,
non-convergence, bad input. Nothing may be NaN, tau2 is never negative, and every fallback is
recorded (method_used, a warning)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesmeta import rma
from bayesmeta.errors import ConvergenceWarning, InputError
from bayesmeta.frequentist.estimators import (
    METHODS,
    FitControl,
    fisher_scoring,
    likelihood_score,
    profile_loglik,
)

BCG = Path(__file__).parent / "reference" / "dat.bcg.json"

# dat.gibson2002 (metadat 1.2-0; Gibson et al. 2002, Cochrane Database Syst Rev CD001117):
# mean days off work/school, the 13 trials with means and SDs: n1, m1, sd1, n2, m2, sd2.
# Raw mean differences (MD, vi = sd1^2/n1 + sd2^2/n2) have a bimodal REML likelihood: a local
# maximum at tau2 = 0 and the global one near 9.68.
GIBSON2002 = np.array([
    [50, 2.20, 12.73, 54, 5.20, 12.50],
    [140, 17.60, 24.20, 136, 34.10, 38.80],
    [23, 0.38, 0.56, 19, 0.23, 0.29],
    [97, 2.09, 5.93, 94, 2.66, 4.95],
    [35, 4.92, 6.05, 35, 20.00, 26.34],
    [45, 0.85, 4.75, 55, 2.31, 9.16],
    [56, 2.80, 9.00, 59, 4.80, 7.20],
    [20, 24.10, 11.80, 20, 31.80, 17.90],
    [128, 1.40, 3.30, 143, 2.30, 7.60],
    [119, 6.23, 12.20, 100, 5.71, 8.57],
    [32, 2.10, 8.00, 33, 5.10, 14.00],
    [86, 0.73, 1.48, 100, 0.47, 1.20],
    [25, 8.00, 32.00, 24, 26.00, 70.00],
])


def gibson_md():
    n1, m1, s1, n2, m2, s2 = GIBSON2002.T
    return m1 - m2, s1**2 / n1 + s2**2 / n2


def no_nan(out: dict) -> None:
    text = json.dumps(out)
    assert "NaN" not in text and "Infinity" not in text
    for key, value in out.items():
        if value is None:
            assert key in out["none_reasons"], f"{key} is None without a reason"


def test_bimodal_reml_likelihood_global_maximum_is_found():
    y, v = gibson_md()
    X = np.ones((y.size, 1))
    yc = y - y.mean()
    # the premise: tau2 = 0 is a local maximum (the score is negative there) ...
    assert likelihood_score(yc, v, X, 0.0, reml=True) < 0
    stuck, ok, _ = fisher_scoring(yc, v, X, "REML", 0.0)
    assert ok and stuck == 0.0
    # ... and the global one lies near 9.7
    fit = rma(y, v)
    assert fit.tau2 == pytest.approx(9.6792, rel=1e-4)
    assert likelihood_score(yc, v, X, fit.tau2, reml=True) == pytest.approx(0.0, abs=1e-9)
    ll = profile_loglik(yc, v, X, np.array([0.0, fit.tau2]), reml=True)
    assert ll[1] > ll[0] + 1.0
    assert any("more than one local maximum" in n for n in fit.notes)


def test_global_check_replaces_the_default_starts_local_maximum():
    # ML on the same data: Fisher scoring from the HE start reaches a local maximum near 0.69,
    # the global maximum is at the boundary tau2 = 0
    y, v = gibson_md()
    X = np.ones((y.size, 1))
    yc = y - y.mean()
    local = rma(y, v, method="ML", control=FitControl(global_check=False))
    fit = rma(y, v, method="ML")
    assert local.tau2 == pytest.approx(0.6947, rel=1e-3)
    assert fit.tau2 == 0.0
    ll = profile_loglik(yc, v, X, np.array([0.0, local.tau2]), reml=False)
    assert ll[0] > ll[1]
    assert any("global maximum at 0" in n for n in fit.notes)


@pytest.mark.parametrize("method", ["REML", "ML", "EB"])
def test_non_convergence_falls_back_and_says_so(method):
    doc = json.loads(BCG.read_text())
    analysis = doc["analyses"]["RR"]
    y, v = np.asarray(analysis["yi"]), np.asarray(analysis["vi"])
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        fit = rma(y, v, method=method, control=FitControl(maxiter=2))
    assert fit.method == method
    assert fit.method_used != method
    assert ("bounded profile-likelihood" in fit.method_used
            or "Paule-Mandel root finding" in fit.method_used)
    assert any("did not converge" in w for w in fit.warnings)
    tight = analysis["metafor_tight"]["rma"][method]["tau2"]
    assert fit.tau2 == pytest.approx(tight, rel=1e-6)
    no_nan(fit.to_dict())


@pytest.mark.parametrize("method", METHODS)
def test_homogeneous_data_give_tau2_zero_exactly(method):
    # spread far below the sampling error: every estimator truncates at (or lands on) 0
    y = np.array([0.20, 0.21, 0.19, 0.20, 0.205, 0.195])
    v = np.full(6, 0.04)
    fit = rma(y, v, method=method)
    if method == "SJ":  # SJ is positive whenever the yi differ (tau0^2 * Q / (k - 1))
        assert 0.0 < fit.tau2 < 1e-3
    else:
        assert fit.tau2 == 0.0
        assert fit.i2 == 0.0  # EE: max(0, (QE - (k - 1)) / QE) with QE < k - 1
        if method != "EE":
            assert fit.h2 == 1.0
    no_nan(fit.to_dict())
    if method not in ("EE", "SJ"):
        assert fit.pi_low == pytest.approx(fit.ci_low[0])


def test_q_profile_null_set_is_reported_as_metafor_does():
    # Q far below the lower chi-square quantile even at tau2 = 0: metafor's ci.null with
    # lb.sign = ub.sign = "<"
    y = np.array([0.20, 0.21, 0.19, 0.20, 0.205, 0.195])
    ci = rma(y, np.full(6, 0.04)).confint()
    assert ci.attrs["null_set"] and ci.attrs["lb_sign"] == ci.attrs["ub_sign"] == "<"
    assert ci.loc["tau2", "ci_low"] == ci.loc["tau2", "ci_high"] == 0.0
    assert ci.loc["tau2", "note"].startswith("null set")


def test_identical_effects_are_handled_without_nan():
    y = np.full(5, 0.3)
    v = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    for method in METHODS:
        for test in ("z", "knha"):
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                fit = rma(y, v, method=method, test=test)
            assert fit.tau2 == 0.0
            assert fit.qe == 0.0 and fit.i2 == 0.0
            no_nan(fit.to_dict())
            if test == "knha":
                assert fit.s2w == 0.0
                assert any("scale factor is 0" in w for w in fit.warnings)


def test_k_equal_1_sets_tau2_to_zero_with_a_note():
    fit = rma(np.array([0.4]), np.array([0.09]))
    out = fit.to_dict()
    assert out["tau2"] == 0.0 and out["se_tau2"] is None
    assert out["estimate"] == 0.4 and out["se"] == pytest.approx(0.3)
    assert out["ci_low"] == pytest.approx(0.4 - 1.959963984540054 * 0.3)
    for key in ("qe", "qe_p", "i2", "h2", "pi_low", "pi_high"):
        assert out[key] is None and key in out["none_reasons"]
    assert any("k = 1" in n for n in out["notes"])
    no_nan(out)
    with pytest.raises(InputError, match="Knapp-Hartung"):
        rma(np.array([0.4]), np.array([0.09]), test="knha")
    with pytest.raises(InputError, match="k = 1"):
        fit.confint()


def test_saturated_meta_regression_has_no_heterogeneity_estimates():
    import pandas as pd

    data = pd.DataFrame({"yi": [0.1, 0.4, 0.2], "vi": [0.02, 0.03, 0.04], "x": [1.0, 2.0, 4.0],
                         "z": [0.0, 1.0, 0.0]})
    fit = rma("yi", "vi", data=data, mods="~ x + z")
    assert fit.k == fit.p == 3 and fit.tau2 == 0.0
    for key in ("qe", "i2", "h2", "r2", "se_tau2"):
        assert getattr(fit, key) is None and key in fit.none_reasons
    assert fit.qm is not None  # the coefficients themselves are still estimable
    no_nan(fit.to_dict())
    with pytest.raises(InputError, match="Knapp-Hartung"):
        rma("yi", "vi", data=data, mods="~ x + z", test="knha")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", ["z", "knha"])
def test_k_equal_2_works_for_every_method(method, test):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        fit = rma(np.array([0.1, 0.9]), np.array([0.04, 0.05]), method=method, test=test)
    assert fit.k == 2 and fit.tau2 >= 0.0
    assert fit.qe_df == 1
    no_nan(fit.to_dict())
    if test == "knha":
        assert fit.df == 1


def test_extreme_variance_ratio_warns_and_still_fits():
    y = np.array([0.1, 0.5, 0.3, 0.9, -0.2])
    v = np.array([1e-6, 1e2, 0.5, 1.0, 0.2])  # ratio 1e8
    with pytest.warns(UserWarning, match="largest standard error"):
        fit = rma(y, v)
    assert fit.converged and fit.tau2 >= 0.0
    w = 1.0 / (v + fit.tau2)
    assert fit.beta[0] == pytest.approx(np.sum(w * y) / np.sum(w), rel=1e-10)
    no_nan(fit.to_dict())


def test_fixed_tau2():
    y = np.array([0.1, 0.5, 0.3, 0.9, -0.2])
    v = np.array([0.05, 0.1, 0.08, 0.12, 0.07])
    fit = rma(y, v, tau2=0.1)
    assert fit.tau2 == 0.1 and fit.tau2_fixed and fit.method_used == "fixed"
    assert fit.se_tau2 is None
    w = 1.0 / (v + 0.1)
    assert fit.beta[0] == pytest.approx(np.sum(w * y) / np.sum(w))
    with pytest.raises(InputError, match="fixed"):
        fit.confint()
    with pytest.raises(InputError, match="tau2"):
        rma(y, v, tau2=-1.0)


def test_refit_on_a_subset_and_with_fixed_tau2():
    doc = json.loads(BCG.read_text())
    analysis = doc["analyses"]["RR"]
    y, v = np.asarray(analysis["yi"]), np.asarray(analysis["vi"])
    fit = rma(y, v, labels=analysis["label"])
    keep = np.ones(fit.k, dtype=bool)
    keep[0] = False
    sub = fit.refit(keep)
    direct = rma(y[1:], v[1:])
    assert sub.tau2 == pytest.approx(direct.tau2, rel=1e-12)
    assert sub.labels == tuple(analysis["label"][1:])
    fixed = fit.refit(tau2=fit.tau2)
    assert fixed.beta[0] == pytest.approx(fit.beta[0], rel=1e-12)
    assert fixed.tau2_fixed


def test_bad_input_names_row_study_and_column():
    import pandas as pd

    data = pd.DataFrame({"study_id": ["A", "B", "C"], "yi": [0.1, np.nan, 0.3],
                         "vi": [0.1, 0.2, -0.1]})
    with pytest.raises(InputError) as err:
        rma("yi", "vi", data=data)
    text = str(err.value)
    assert "row 2 (B), column yi" in text and "row 3 (C), column vi" in text
    with pytest.raises(InputError, match="unknown tau2 estimator"):
        rma(np.array([0.1, 0.2]), np.array([0.1, 0.1]), method="XX")
    with pytest.raises(InputError, match="between 0 and 1"):
        rma(np.array([0.1, 0.2]), np.array([0.1, 0.1]), level=95)
    with pytest.raises(InputError, match="knha"):
        rma(np.array([0.1, 0.2]), np.array([0.1, 0.1]), test="t")
    fe = rma(np.array([0.1, 0.2]), np.array([0.1, 0.1]), method="fe")
    assert fe.method == "EE"


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(min_value=2, max_value=15),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    tau=st.sampled_from([0.0, 0.1, 1.0]),
    spread=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_random_data_never_give_nan_or_negative_tau2(k, seed, tau, spread):
    rng = np.random.default_rng(seed)
    v = spread * rng.uniform(0.01, 1.0, k)
    y = rng.normal(0.0, np.sqrt(v + tau**2 * spread))
    for method in ("REML", "ML", "PM", "DL", "EB"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = rma(y, v, method=method, test="knha")
        assert fit.tau2 >= 0.0 and math.isfinite(fit.tau2)
        no_nan(fit.to_dict())
        if method == "REML":
            t = fit.tau2
            score = likelihood_score(y - y.mean(), v, np.ones((k, 1)), t, reml=True)
            # interior: score zero (relative to its scale); boundary: score <= 0
            scale = np.sum(1.0 / (v + t))
            assert (abs(score) <= 1e-6 * scale) if t > 0 else (score <= 1e-9 * scale)
