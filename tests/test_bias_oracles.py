"""Exact identities for the small-study-effect tests and the case-deletion diagnostics, and their
errors on bad input.

- Egger's weighted regression (``model="lm"``) is ordinary weighted least squares of y on its
  standard error with weights 1/v and a residual-variance-scaled covariance (numpy lstsq here),
  and is the classical Egger regression of y/se on 1/se with the roles of slope and intercept
  swapped; with an equal-effects fit the mixed-effects version is the same regression with the
  unscaled covariance.
- Egger's mixed-effects version is rma() with the standard error as an extra moderator.
- The rank test's tau is Kendall's tau of the standardized deviates and the variances
  (scipy.stats.kendalltau, and a direct pair count); its exact p-value is the permutation
  distribution enumerated here.
- Trim and fill finds nothing to fill in a symmetric funnel; its final fit is rma() on the
  observed and imputed studies.
- Leave-one-out row i is rma() without study i; the externally studentized residual is the z
  (Knapp-Hartung: t) statistic of a mean-shift dummy for study i under REML.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REFERENCE, reference_document
from scipy import stats

from bayesmeta import egger_test, influence, leave_one_out, rank_test, rma, trimfill
from bayesmeta.errors import InputError


def _load(name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    analysis = reference_document(name)["analyses"][key]
    return np.asarray(analysis["yi"], dtype=float), np.asarray(analysis["vi"], dtype=float)


DATASETS = {"bcg": ("dat.bcg", "RR"), "li2007": ("dat.li2007", "OR"),
            "pritz1997": ("dat.pritz1997", "PLO"), "crins": ("CrinsEtAl2014", "OR"),
            "raudenbush": ("dat.raudenbush1985", "SMD")}


@pytest.fixture(params=sorted(DATASETS))
def data(request) -> tuple[np.ndarray, np.ndarray]:
    return _load(*DATASETS[request.param])


def _quiet_rma(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rma(*args, **kwargs)


# -- Egger -------------------------------------------------------------------------------------


def test_egger_lm_with_an_equal_effects_fit_is_weighted_least_squares(data):
    y, v = data
    k = y.size
    res = egger_test(rma(y, v, method="EE"), model="lm")
    sw = 1.0 / np.sqrt(v)
    design = np.column_stack([np.ones(k), np.sqrt(v)]) * sw[:, None]
    coef, rss, rank, _ = np.linalg.lstsq(design, y * sw, rcond=None)
    assert rank == 2
    sigma2 = float(rss[0]) / (k - 2)
    se = np.sqrt(sigma2 * np.diag(np.linalg.inv(design.T @ design)))
    t = coef[1] / se[1]
    assert res.statistic == pytest.approx(t, rel=1e-10)
    assert res.df == k - 2
    assert res.pval == pytest.approx(2 * stats.t.sf(abs(t), k - 2), rel=1e-10)
    crit = stats.t.ppf(0.975, k - 2)
    assert res.limit_estimate == pytest.approx(coef[0], rel=1e-10)
    assert res.limit_ci_low == pytest.approx(coef[0] - crit * se[0], rel=1e-10)
    assert res.limit_ci_high == pytest.approx(coef[0] + crit * se[0], rel=1e-10)
    # the tau2 method of the fit does not enter the weighted regression
    again = egger_test(_quiet_rma(y, v, method="REML"), model="lm")
    assert again.statistic == pytest.approx(res.statistic, rel=1e-12)


def test_egger_lm_is_the_classical_regression_of_standard_normal_deviates(data):
    # Egger et al. (1997): y/se = b0 + b1 / se; b0 (bias) is our slope on se, b1 the limit
    y, v = data
    se = np.sqrt(v)
    design = np.column_stack([np.ones(y.size), 1.0 / se])
    coef, rss, _, _ = np.linalg.lstsq(design, y / se, rcond=None)
    sigma2 = float(rss[0]) / (y.size - 2)
    cov = sigma2 * np.linalg.inv(design.T @ design)
    res = egger_test(_quiet_rma(y, v), model="lm")
    assert res.slope == pytest.approx(coef[0], rel=1e-10)
    assert res.statistic == pytest.approx(coef[0] / math.sqrt(cov[0, 0]), rel=1e-10)
    assert res.limit_estimate == pytest.approx(coef[1], rel=1e-10)


def test_egger_rma_with_an_equal_effects_fit_uses_the_unscaled_covariance(data):
    y, v = data
    res = egger_test(rma(y, v, method="EE"))
    w = 1.0 / v
    X = np.column_stack([np.ones(y.size), np.sqrt(v)])
    cov = np.linalg.inv((X * w[:, None]).T @ X)
    beta = cov @ (X.T @ (w * y))
    assert res.df is None and res.tau2 == 0.0
    assert res.statistic == pytest.approx(beta[1] / math.sqrt(cov[1, 1]), rel=1e-10)
    z = stats.norm.ppf(0.975)
    assert res.limit_ci_low == pytest.approx(beta[0] - z * math.sqrt(cov[0, 0]), rel=1e-10)


@pytest.mark.parametrize("test", ["z", "knha"])
def test_egger_rma_is_rma_with_the_standard_error_as_moderator(data, test):
    y, v = data
    res = egger_test(_quiet_rma(y, v, test=test))
    direct = _quiet_rma(y, v, mods=pd.DataFrame({"sei": np.sqrt(v)}), test=test)
    assert res.statistic == pytest.approx(direct.stat[1], rel=1e-9)
    assert res.pval == pytest.approx(direct.pval[1], rel=1e-9)
    assert res.tau2 == pytest.approx(direct.tau2, rel=1e-9, abs=1e-12)
    assert res.limit_ci_low == pytest.approx(direct.ci_low[0], rel=1e-9)
    assert res.df == direct.df
    assert ("tval" in res.to_dict()) is (test == "knha")


def test_egger_on_a_meta_regression_adds_the_predictor_and_has_no_limit_estimate():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    fit = rma("yi", "vi", data=data, mods="~ ablat")
    res = egger_test(fit)
    direct = rma(data["yi"].to_numpy(), data["vi"].to_numpy(),
                 mods=pd.DataFrame({"ablat": data["ablat"], "sei": np.sqrt(data["vi"])}))
    assert res.terms == ("intercept", "ablat", "sei")
    assert res.statistic == pytest.approx(direct.stat[2], rel=1e-9)
    assert res.limit_estimate is None
    assert "meta-regression" in res.to_dict()["none_reasons"]["limit_estimate"]
    lm = egger_test(fit, model="lm")
    assert lm.df == 13 - 3


def test_egger_with_the_variance_as_predictor():
    y, v = _load("dat.bcg", "RR")
    res = egger_test(_quiet_rma(y, v), predictor="vi")
    direct = _quiet_rma(y, v, mods=pd.DataFrame({"vi": v}))
    assert res.terms == ("intercept", "vi")
    assert res.statistic == pytest.approx(direct.stat[1], rel=1e-9)


# -- rank test ---------------------------------------------------------------------------------


def _deviates(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    w = 1.0 / v
    theta = np.sum(w * y) / np.sum(w)
    return (y - theta) / np.sqrt(v - 1.0 / np.sum(w))


def test_rank_test_tau_is_kendalls_tau_of_deviates_and_variances(data):
    y, v = data
    res = rank_test(_quiet_rma(y, v))
    x = _deviates(y, v)
    assert res.tau == pytest.approx(stats.kendalltau(x, v).statistic, rel=1e-12, abs=1e-15)
    if res.exact:  # no ties: tau-a, a direct count of concordant minus discordant pairs
        k = y.size
        s = sum(np.sign(x[i] - x[j]) * np.sign(v[i] - v[j])
                for i, j in itertools.combinations(range(k), 2))
        assert res.tau == pytest.approx(s / (k * (k - 1) / 2), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("name", "key"), [("CrinsEtAl2014", "OR"), ("Rubin1981", "raw")])
def test_rank_test_exact_p_value_is_the_permutation_distribution(name, key):
    y, v = _load(name, key)
    res = rank_test(_quiet_rma(y, v))
    assert res.exact
    x_rank = stats.rankdata(_deviates(y, v))
    concordance = np.sign(x_rank[:, None] - x_rank[None, :])
    perms = np.array(list(itertools.permutations(stats.rankdata(v))))
    # Kendall's S of every permutation of the variances' ranks (each pair counted twice)
    scores = np.abs(np.einsum("pij,ij->p", np.sign(perms[:, :, None] - perms[:, None, :]),
                              concordance)) / 2
    observed = scores[0]  # the identity permutation comes first
    assert res.pval == pytest.approx(min(1.0, np.mean(scores >= observed - 1e-9)), rel=1e-10)


def test_rank_test_with_ties_uses_the_normal_approximation():
    y, v = _load("dat.raudenbush1985", "SMD")  # tied variances
    res = rank_test(_quiet_rma(y, v))
    assert not res.exact and "tie" in res.notes[0]
    assert res.pval == pytest.approx(
        stats.kendalltau(_deviates(y, v), v, method="asymptotic").pvalue, rel=1e-12)


def test_rank_test_above_the_exact_size_limit_uses_the_normal_approximation():
    rng = np.random.default_rng(3)
    k = 400
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.2, np.sqrt(v))
    res = rank_test(rma(y, v, method="DL"))
    assert not res.exact and "normal approximation" in res.notes[0]
    assert res.pval == pytest.approx(
        stats.kendalltau(_deviates(y, v), v, method="asymptotic").pvalue, rel=1e-12)


# -- trim and fill -----------------------------------------------------------------------------


def _symmetric() -> tuple[np.ndarray, np.ndarray]:
    # a symmetric funnel: at each precision the effects balance about 0.3 (so the pooled
    # estimate is 0.3 whatever tau2), at distinct distances. Exact mirror pairs would tie in
    # |y - estimate|, and the rank rule metafor uses (ties by position) then gives L0 = 1.
    offsets = np.array([0.10, -0.25, -0.45, 0.60,
                        -0.15, 0.30, 0.50, -0.65,
                        0.20, -0.35, -0.55, 0.70])
    v = np.repeat([0.01, 0.04, 0.09], 4)
    return 0.3 + offsets, v


@pytest.mark.parametrize("side", [None, "left", "right"])
@pytest.mark.parametrize("estimator", ["L0", "R0", "Q0"])
def test_trimfill_on_a_symmetric_funnel_fills_nothing(estimator, side):
    y, v = _symmetric()
    fit = rma(y, v)
    res = trimfill(fit, estimator=estimator, side=side)
    assert res.k0 == 0
    assert res.filled_yi == () and res.fit is fit
    assert res.estimate == pytest.approx(0.3, rel=1e-12)


def test_trimfill_final_fit_is_rma_on_observed_and_imputed_studies():
    y, v = _load("dat.li2007", "OR")
    res = trimfill(_quiet_rma(y, v))
    assert res.k0 == 7
    direct = _quiet_rma(np.concatenate([y, res.filled_yi]), np.concatenate([v, res.filled_vi]))
    assert res.estimate == pytest.approx(direct.beta[0], rel=1e-12)
    assert res.tau2 == pytest.approx(direct.tau2, rel=1e-12)
    # the side metafor's rule chose, given explicitly, gives the same analysis
    again = trimfill(_quiet_rma(y, v), side=res.side)
    assert again.to_dict() == res.to_dict()


def test_trimfill_imputes_mirror_images_of_the_most_extreme_studies():
    y, v = _load("dat.pritz1997", "PLO")
    res = trimfill(_quiet_rma(y, v))
    assert res.side == "left" and res.k0 == 4
    # the imputed variances are those of the k0 largest effects
    largest = np.argsort(y, kind="stable")[-res.k0:]
    assert sorted(res.filled_vi) == sorted(v[largest])
    # mirror images about one centre (the trimmed estimate): y_fill + y_extreme is constant
    centre = np.asarray(res.filled_yi) + y[largest]
    assert np.ptp(centre) < 1e-12


def test_trimfill_r0_test_of_k0_is_metafors_sum():
    y, v = _load("dat.li2007", "OR")
    res = trimfill(_quiet_rma(y, v), estimator="R0")
    m = np.arange(-1, res.k0)
    metafor = 1 - np.sum([math.comb(int(j) + 1, int(j) + 1) * 0.5 ** (j + 2) for j in m])
    assert res.p_k0 == pytest.approx(metafor, rel=1e-12)
    assert res.se_k0 == pytest.approx(math.sqrt(2 * res.k0 + 2), rel=1e-12)
    assert trimfill(_quiet_rma(y, v)).to_dict()["p_k0"] is None


# -- leave one out and the studentized residual ------------------------------------------------


@pytest.mark.parametrize("method", ["REML", "DL", "PM", "EE"])
def test_leave_one_out_row_is_rma_without_that_study(method):
    y, v = _load("dat.bcg", "RR")
    table = leave_one_out(rma(y, v, method=method))
    for i in range(y.size):
        keep = np.arange(y.size) != i
        out = rma(y[keep], v[keep], method=method).to_dict()
        row = table.iloc[i]
        for col in ("estimate", "se", "zval", "pval", "ci_low", "ci_high", "qe", "qe_p", "tau2",
                    "i2", "h2"):
            assert row[col] == pytest.approx(out[col], rel=1e-12, abs=1e-15), (i, col)


@pytest.mark.parametrize("test", ["z", "knha"])
def test_studentized_residual_is_the_mean_shift_outlier_statistic(test):
    # under REML, adding a dummy for study i fits it exactly and leaves the others' likelihood:
    # the dummy's coefficient is y_i minus the deleted prediction, with the deleted variance
    # (and, under Knapp-Hartung, the deleted fit's scale factor: metafor's seresid)
    y, v = _load("dat.bcg", "RR")
    table = influence(rma(y, v, test=test))
    for i in (0, 3, 7):
        shift = np.zeros(y.size)
        shift[i] = 1.0
        direct = rma(y, v, mods=pd.DataFrame({"shift": shift}), test=test)
        assert table["rstudent"].iloc[i] == pytest.approx(direct.stat[1], rel=1e-9)
        assert table["tau2_del"].iloc[i] == pytest.approx(direct.tau2, rel=1e-9)


def test_studentized_residual_in_a_meta_regression_is_the_mean_shift_statistic():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    table = influence(rma("yi", "vi", data=data, mods="~ ablat"))
    i = 7
    shift = np.zeros(len(data))
    shift[i] = 1.0
    direct = rma(data["yi"].to_numpy(), data["vi"].to_numpy(),
                 mods=pd.DataFrame({"ablat": data["ablat"], "shift": shift}))
    assert table["rstudent"].iloc[i] == pytest.approx(direct.stat[2], rel=1e-9)


# -- bad input ---------------------------------------------------------------------------------


def _two() -> object:
    return rma(np.array([0.1, 0.4]), np.array([0.02, 0.05]))


def test_egger_needs_three_studies():
    for model in ("rma", "lm"):
        with pytest.raises(InputError, match=r"Egger's test needs at least 3 studies \(k = 2"):
            egger_test(_two(), model=model)


def test_rank_test_needs_three_studies():
    with pytest.raises(InputError, match=r"rank test needs at least 3 studies \(k = 2"):
        rank_test(_two())


def test_trimfill_needs_two_studies():
    fit = rma(np.array([0.1]), np.array([0.02]))
    with pytest.raises(InputError, match=r"trim and fill needs at least 2 studies \(k = 1\)"):
        trimfill(fit)


def test_trimfill_and_rank_test_refuse_a_meta_regression():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    fit = rma("yi", "vi", data=data, mods="~ ablat")
    with pytest.raises(InputError, match="trim and fill is only defined for pooled models"):
        trimfill(fit)
    with pytest.raises(InputError, match="rank test is for pooled models"):
        rank_test(fit)


def test_equal_standard_errors_leave_no_slope():
    fit = rma(np.array([0.1, 0.4, 0.2, 0.3]), np.full(4, 0.05))
    with pytest.raises(InputError, match="collinear"):
        egger_test(fit)
    with pytest.raises(InputError, match="same standard error.*side="):
        trimfill(fit)
    assert trimfill(fit, side="left").side == "left"


@pytest.mark.parametrize(("call", "message"), [
    (lambda fit: egger_test(fit, model="glm"), "column model: glm; expected one of rma, lm"),
    (lambda fit: egger_test(fit, predictor="ni"), "column predictor: ni; expected one of sei"),
    (lambda fit: trimfill(fit, estimator="L1"), "column estimator: L1; expected one of L0"),
    (lambda fit: trimfill(fit, side="up"), "column side: up; expected one of left, right"),
])
def test_bad_settings_are_errors(call, message):
    y, v = _load("dat.bcg", "RR")
    with pytest.raises(InputError, match=message):
        call(_quiet_rma(y, v))


def test_a_subgroup_result_is_refused():
    data = pd.read_csv(REFERENCE / "data" / "dat.bcg.csv")
    sub = rma("yi", "vi", data=data, subgroup="alloc_random")
    for func in (egger_test, rank_test, trimfill):
        with pytest.raises(InputError, match="needs a fitted model from rma"):
            func(sub)
