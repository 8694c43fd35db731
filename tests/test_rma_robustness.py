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


# ---------------------------------------------------------------------------------------------
# degenerate inputs: Knapp-Hartung with every residual zero, tr(PP) lost to rounding, the
# input's row numbers in the diagnostic tables, trim and fill that cycles


def _exact_traces(v, X, tau2=0.0) -> tuple[float, float]:
    """tr(P) and tr(PP), P = W - WX(X'WX)^-1X'W, in exact rational arithmetic (the oracle for
    the cancellation tests)."""
    from fractions import Fraction

    k, p = X.shape
    w = [1 / (Fraction(float(a)) + Fraction(tau2)) for a in v]
    x = [[Fraction(float(a)) for a in row] for row in X]
    m = [[sum(w[i] * x[i][a] * x[i][b] for i in range(k)) for b in range(p)]
         + [Fraction(int(a == b)) for b in range(p)] for a in range(p)]
    for c in range(p):  # Gauss-Jordan: m becomes [I | (X'WX)^-1]
        piv = next(r for r in range(c, p) if m[r][c] != 0)
        m[c], m[piv] = m[piv], m[c]
        m[c] = [e / m[c][c] for e in m[c]]
        for r in range(p):
            if r != c:
                m[r] = [e - m[r][c] * f for e, f in zip(m[r], m[c], strict=True)]
    inv = [row[p:] for row in m]
    P = [[(w[i] if i == j else 0) - w[i] * w[j] * sum(x[i][a] * inv[a][b] * x[j][b]
                                                      for a in range(p) for b in range(p))
          for j in range(k)] for i in range(k)]
    return (float(sum(P[i][i] for i in range(k))),
            float(sum(P[i][j] * P[j][i] for i in range(k) for j in range(k))))


def _exact_trace_pp(v, X, tau2=0.0) -> float:
    return _exact_traces(v, X, tau2)[1]


V5 = np.array([0.01, 0.02, 0.03, 0.04, 0.05])


@pytest.mark.parametrize("shape", ["equal", "linear"])
def test_knha_meta_regression_with_zero_residuals_has_no_omnibus_test(shape):
    import pandas as pd

    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.full(5, 0.3) if shape == "equal" else 0.1 + 0.2 * x
    data = pd.DataFrame({"yi": y, "vi": V5, "x": x})
    with pytest.warns(UserWarning, match="scale factor is 0"):
        fit = rma("yi", "vi", data=data, mods="~ x", test="knha")
    assert fit.s2w == 0.0
    assert fit.beta == pytest.approx([0.3, 0.0] if shape == "equal" else [0.1, 0.2], abs=1e-12)
    assert np.all(fit.se == 0.0) and np.all(fit.ci_low == fit.beta)
    # metafor: vb = 0, chol() fails, QM = NA; the F test's df still exist
    assert fit.qm is None and fit.qm_p is None and fit.qm_df == (1, 3)
    assert "Knapp-Hartung scale factor" in fit.none_reasons["qm"]
    out = fit.to_dict()
    no_nan(out)
    assert out["qm"] is None and out["qm_df"] == [1, 3]
    assert out["tval"]["x" if shape == "linear" else "intercept"] is None
    assert "tval" in out["none_reasons"]
    # the Wald test on the same data exists (and is finite)
    z = rma("yi", "vi", data=data, mods="~ x")
    assert z.qm is not None and math.isfinite(z.qm)


def test_knha_subgroups_with_zero_residuals_report_missing_tests():
    import pandas as pd

    data = pd.DataFrame({"yi": [0.3, 0.3, 0.3, 0.5, 0.5, 0.5], "vi": np.arange(1, 7) / 100,
                         "g": list("aaabbb")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rma("yi", "vi", data=data, subgroup="g", test="knha")
    assert res.qm is None and res.qm_p is None and res.qm_df == (1, 4)
    assert res.q_between is None and res.q_between_p is None
    assert "g = a, b have standard error 0" in res.none_reasons["q_between"]
    assert "omnibus F test does not exist" in res.none_reasons["qm"]
    assert "QM(1, 4) does not exist" in res.summary().attrs["header"]
    out = res.to_dict()
    assert out["q_between"] is None and set(out["none_reasons"]) == {
        "qm", "qm_p", "q_between", "q_between_p"}
    assert "NaN" not in json.dumps(out) and "Infinity" not in json.dumps(out)
    # one level with zero residuals is enough to lose Q-between, and only that level is named
    data.loc[3, "yi"] = 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rma("yi", "vi", data=data, subgroup="g", test="knha")
    assert res.q_between is None and "g = a has standard error 0" in res.none_reasons[
        "q_between"]
    assert res.qm is not None and math.isfinite(res.qm)


def test_influence_under_knha_with_zero_residuals_reports_what_exists():
    from bayesmeta import influence, leave_one_out, outliers

    y = np.full(5, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = rma(y, V5, test="knha")
        table = influence(fit)
        screen = outliers(fit)
        loo = leave_one_out(fit)
    for col in ("rstudent", "cooks_d", "dffits", "cov_r", "dfbetas_intercept"):
        assert table[col].isna().all(), col
    # what does not depend on the scale factor is there: hat = w / sum(w) for a pooled model
    w = 1.0 / V5
    assert table["hat"].to_numpy() == pytest.approx(w / w.sum(), rel=1e-12)
    assert table["weight"].to_numpy() == pytest.approx(100 * w / w.sum(), rel=1e-12)
    assert (table["tau2_del"] == 0.0).all() and (table["qe_del"] == 0.0).all()
    assert table["influential"].tolist() == (table["hat"] > 3 / 5).tolist()
    assert any("every residual of the model is zero" in n for n in table.attrs["notes"])
    assert not screen["outlier"].any()
    # leave-one-out: the t statistic is infinite, shown as <NA> with a note, like to_dict()
    assert loo["tval"].isna().all() and (loo["se"] == 0.0).all()
    assert loo["estimate"].to_numpy() == pytest.approx(np.full(5, 0.3), rel=1e-12)
    assert len([n for n in loo.attrs["notes"] if "infinite" in n]) == 5


def test_study_whose_deletion_leaves_an_exact_fit_is_an_outlier_under_knha():
    from bayesmeta import influence, outliers

    y = np.array([0.1, 0.1, 0.1, 0.1, 0.9])
    fit = rma(y, V5, test="knha")
    assert fit.s2w > 0.0
    screen = outliers(fit)
    table = influence(fit)
    # without study 5 the others fit exactly: its rstudent is infinite (metafor: Inf)
    assert screen["outlier"].tolist() == [False, False, False, False, True]
    assert pd_isna(screen["rstudent"].iloc[4]) and pd_isna(table["dffits"].iloc[4])
    assert pd_isna(table["dfbetas_intercept"].iloc[4])
    assert table["cov_r"].iloc[4] == 0.0  # det of the deleted (zero) covariance
    assert table[["rstudent", "dffits", "cooks_d"]].iloc[:4].notna().all().all()
    assert any(n.startswith("study 5: without this study every residual is zero")
               for n in screen.attrs["notes"])
    # the other studies' values are the ordinary ones: rstudent of study 1 by a direct refit
    # (mean-shift form: y_1 - mu_(1) over sqrt(s2w_(1) (v_1 + tau2_(1)) + var(mu_(1))))
    direct = rma(y[1:], V5[1:], test="knha")
    num = y[0] - direct.beta[0]
    den = math.sqrt(direct.s2w * (V5[0] + direct.tau2) + direct.se[0] ** 2)
    assert table["rstudent"].iloc[0] == pytest.approx(num / den, rel=1e-10)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_reml_standard_error_survives_cancellation_in_tr_pp():
    import pandas as pd

    # pooled: the moment formula sum w^2 - 2 sum w^3 / sum w + (sum w^2 / sum w)^2 cancels to
    # rounding noise (-2 here) when one sampling variance is 1e-8 and the rest are O(1-50);
    # sqrt(2 / tr(PP)) used to raise "math domain error"
    v = np.array([1e-8, 3.0, 7.0, 20.0, 50.0])
    w = 1.0 / v
    sw, sw2, sw3 = w.sum(), (w**2).sum(), (w**3).sum()
    naive = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    exact = _exact_trace_pp(v, np.ones((5, 1)))
    assert naive <= 0.0 < exact  # the premise
    with pytest.warns(UserWarning, match="largest standard error"):
        fit = rma(np.full(5, -0.3), v)
    assert fit.tau2 == 0.0
    assert fit.se_tau2 == pytest.approx(math.sqrt(2.0 / exact), rel=1e-8)
    # the meta-regression of the audit (k = 5, p = 3)
    data = pd.DataFrame({"yi": [-0.3] * 5, "vi": [48.8, 3.45e-5, 1648.0, 52346.0, 1.2e-5],
                         "x": [0.35, 0.82, 0.33, -1.3, 0.91], "g": list("ababb")})
    with pytest.warns(UserWarning, match="largest standard error"):
        fit = rma("yi", "vi", data=data, mods="~ x + g")
    exact = _exact_trace_pp(data["vi"].to_numpy(), fit.X)
    assert fit.tau2 == 0.0
    assert fit.se_tau2 == pytest.approx(math.sqrt(2.0 / exact), rel=1e-8)
    no_nan(fit.to_dict())


@pytest.mark.parametrize("method", ["DL", "HS", "HE", "SJ", "PM", "EB", "ML", "REML"])
def test_tau2_standard_errors_with_extreme_variances_are_finite(method):
    v = np.array([1e-8, 3.0, 7.0, 20.0, 50.0])
    y = np.array([0.1, 2.5, -3.0, 6.0, -9.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = rma(y, v, method=method)
    assert fit.se_tau2 is not None and math.isfinite(fit.se_tau2) and fit.se_tau2 > 0.0
    no_nan(fit.to_dict())
    if method == "DL":  # metafor's formula with the exact tr(P) and tr(PP) at weights 1/v
        tr_p, tr_pp = _exact_traces(v, np.ones((5, 1)))
        t = fit.tau2
        assert t > 0.0
        expected = math.sqrt((2.0 * 4 + 4.0 * t * tr_p + 2.0 * t**2 * tr_pp) / tr_p**2)
        # 1e-6, not 1e-8: tr(P) = sum w (1 - h) keeps an absolute error of ~eps * max(w) = 1e-8
        # relative here (w = 1e8 at leverage ~1; metafor's own formula shares it)
        assert fit.se_tau2 == pytest.approx(expected, rel=1e-6)


def test_standard_error_that_does_not_exist_is_none_with_its_reason(monkeypatch):
    import importlib

    from bayesmeta.frequentist import estimators

    rma_module = importlib.import_module("bayesmeta.frequentist.rma")

    est = estimators._estimate(0.2, -1e-3, "REML", what="2 / the information tr(PP)")
    assert est.se is None and est.tau2 == 0.2
    assert "2 / the information tr(PP) gives -0.001" in est.se_reason
    assert estimators._estimate(0.2, math.nan, "DL").se is None
    assert estimators._estimate(0.2, 0.04, "DL").se == pytest.approx(0.2)
    # rma() reports it under none_reasons
    monkeypatch.setattr(rma_module, "estimate_tau2", lambda *a, **k: est)
    fit = rma(np.array([0.1, 0.5, 0.3]), np.array([0.1, 0.2, 0.3]))
    out = fit.to_dict()
    assert out["se_tau2"] is None and out["none_reasons"]["se_tau2"] == est.se_reason
    no_nan(out)


def test_diagnostic_tables_give_each_studys_row_in_the_input_table(tmp_path):
    import pandas as pd

    from bayesmeta import influence, leave_one_out, outliers, read_studies, trimfill

    y = np.array([0.40, 0.55, 0.20, 0.10, 1.40, 0.30])
    v = np.array([0.05, 0.04, 0.08, 0.03, 0.06, 0.05])
    # arrays: positions
    assert influence(rma(y, v))["row"].tolist() == [1, 2, 3, 4, 5, 6]
    # a table from read_studies: the source's data rows (row 3 is blank in the file)
    lines = ["study_id,outcome,follow_up,yi,vi,measure"]
    lines += [f"S{i},pain,short,{a},{b},SMD" for i, (a, b) in enumerate(zip(y, v, strict=True))]
    lines.insert(3, "")
    path = tmp_path / "studies.csv"
    path.write_text("\n".join(lines) + "\n")
    table = read_studies(path)
    assert table.index.tolist() == [1, 2, 4, 5, 6, 7]
    fit = rma("yi", "vi", data=table)
    assert fit.data_rows == (1, 2, 4, 5, 6, 7)
    for frame in (influence(fit), leave_one_out(fit), outliers(fit)):
        assert frame.columns[0] == "row" and frame["row"].dtype == "Int64"
        assert frame["row"].tolist() == [1, 2, 4, 5, 6, 7]
        assert list(frame.index) == ["S0", "S1", "S2", "S3", "S4", "S5"]  # unchanged
    # a plain DataFrame: positions, skipping studies excluded for a missing moderator
    data = pd.DataFrame({"yi": y, "vi": v, "x": [1.0, np.nan, 3.0, 4.0, 5.0, 7.0]})
    with pytest.warns(UserWarning, match="excluded"):
        fit = rma("yi", "vi", data=data, mods="~ x", missing="exclude")
    assert influence(fit)["row"].tolist() == [1, 3, 4, 5, 6]
    assert fit.refit([0, 2, 3, 4]).data_rows == (1, 4, 5, 6)
    # subgroups: each level's fit keeps its studies' rows
    data["g"] = list("ababab")
    res = rma("yi", "vi", data=table.assign(g=list("ababab")), subgroup="g")
    assert res.fits["a"].data_rows == (1, 4, 6) and res.fits["b"].data_rows == (2, 5, 7)
    assert res.moderator_fit.data_rows == res.overall.data_rows == (1, 2, 4, 5, 6, 7)
    # trim and fill: the imputed studies are in no table
    sv = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    frame = pd.DataFrame({"yi": 0.1 + 0.5 * np.sqrt(sv), "vi": sv},
                         index=pd.Index([2, 3, 5, 8, 9], name="row"))
    tf = trimfill(rma("yi", "vi", data=frame))
    assert tf.k0 == 2
    rows = influence(tf.fit)["row"]
    assert rows.iloc[:5].tolist() == [2, 3, 5, 8, 9] and rows.iloc[5:].isna().all()


def test_trimfill_is_not_thrown_into_a_cycle_by_rounding():
    from bayesmeta import trimfill

    y = np.array([0.06, 0.3, 0.3, 0.16, -0.16])
    v = np.array([0.059, 0.016, 0.031, 0.094, 0.292])
    fit = rma(y, v)
    # filling on the right, Q0: trimming 3 studies leaves the two effects 0.3, whose estimate
    # is 0.3; they are then on neither side and k0 = 3 again, a fixed point. Computed, their
    # weighted mean misses 0.3 by an ulp, which made both count as positive, k0 = 4, and the
    # iteration alternated 3, 4, 3, ... until it gave up (metafor would decide by its own
    # rounding).
    flipped = np.sort(-y)
    vs = v[np.argsort(-y, kind="stable")]

    def q0(k0: int, exact: bool) -> int:
        k = y.size
        fit_k0 = rma(flipped[:k - k0], vs[:k - k0])
        w = 1.0 / (vs[:k - k0] + fit_k0.tau2)
        beta = -0.3 if exact and k0 == 3 else float(w @ flipped[:k - k0]) / float(w.sum())
        c = flipped - beta
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(c), kind="stable")] = np.arange(1, k + 1)
        sr = ranks[c > 0].sum()
        return max(0, round(k - 0.5 - math.sqrt(max(0.0, 2 * k * k - 4 * sr + 0.25))))

    assert q0(0, True) == 3 and q0(3, True) == 3  # the exact iteration stops at 3
    assert q0(3, False) == 4  # the premise: rounding alone moved it
    tf = trimfill(fit, estimator="Q0", side="right")
    assert tf.k0 == 3 and tf.iterations == 2
    assert trimfill(fit, estimator="L0", side="right").k0 == 2


def test_trimfill_that_does_not_converge_is_an_error_as_in_metafor(monkeypatch):
    import dataclasses
    import importlib

    from bayesmeta import trimfill

    bias = importlib.import_module("bayesmeta.frequentist.bias")
    y = np.array([0.06, 0.3, 0.3, 0.16, -0.16])
    v = np.array([0.059, 0.016, 0.031, 0.094, 0.292])
    fit = rma(y, v)
    assert trimfill(fit, estimator="Q0", side="right").iterations == 2
    # metafor's trimfill stop()s with "Trim and fill algorithm did not converge." after
    # maxiter iterations; with a cap of 1 the second iteration is never reached
    monkeypatch.setattr(bias, "DEFAULTS", dataclasses.replace(bias.DEFAULTS,
                                                              trimfill_maxiter=1))
    with pytest.raises(InputError, match="did not converge in 1 iterations") as err:
        trimfill(fit, estimator="Q0", side="right")
    text = str(err.value)
    assert "was still changing (last values 3)" in text
    assert "metafor stops with an error as well" in text and "column estimator" in text


def test_bias_tests_on_degenerate_data_are_clear():
    from bayesmeta import egger_test, rank_test, trimfill

    y = np.full(5, 0.3)
    with pytest.raises(InputError, match="same effect"):
        rank_test(rma(y, V5))
    with pytest.raises(InputError, match="same sampling variance"):
        rank_test(rma(np.array([0.1, 0.4, 0.2, 0.3]), np.full(4, 0.02)))
    exact = 0.1 + 0.5 * np.sqrt(V5)  # effects exactly linear in the standard error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        knha = rma(exact, V5, test="knha")
        with pytest.raises(InputError, match="scale factor and the slope's standard error"):
            egger_test(knha)
        z = egger_test(rma(exact, V5))
        assert z.slope == pytest.approx(0.5, rel=1e-9) and math.isfinite(z.statistic)
        tf = trimfill(rma(y, V5, test="knha"))
    out = tf.to_dict()
    assert tf.se == 0.0 and out["tval"] is None and "tval" in out["none_reasons"]
    assert "Infinity" not in json.dumps(out)
