"""bayesmeta.simulate: reproducibility, schema validity, the model it draws from, bad settings."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmeta
from bayesmeta import InputError, escalc, read_studies
from bayesmeta.effects import find_shared_groups, table_to_vas
from bayesmeta.simulation import SIMULATION_ATTR, TRUE_EFFECT_COLUMN, SimulationSettings, simulate
from bayesmeta.simulation.draws import (
    allocate,
    largest_remainder,
    quantile_matched,
    summary_statistics,
)


def _smd(table: pd.DataFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        # multi-arm trials share their individualized arm: escalc warns, as it should
        warnings.simplefilter("ignore")
        return escalc("SMD", data=table)


def test_same_seed_same_table_other_seed_other_table():
    a = simulate(seed=11)
    b = simulate(seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs[SIMULATION_ATTR] == b.attrs[SIMULATION_ATTR]
    c = simulate(seed=12)
    assert not c["n1"].equals(a["n1"]) or not c["change_mean1"].equals(a["change_mean1"])


def test_no_seed_records_the_entropy_that_regenerates_the_table():
    a = simulate(n_studies=6)
    seed = a.attrs[SIMULATION_ATTR]["seed"]
    pd.testing.assert_frame_equal(a, simulate(n_studies=6, seed=seed))


def test_the_public_name_is_the_function():
    import bayesmeta.simulation as package

    assert bayesmeta.simulate is package.simulate
    from bayesmeta import simulate as name

    pd.testing.assert_frame_equal(name(n_studies=4, seed=3), simulate(n_studies=4, seed=3))


def test_table_is_schema_valid_and_survives_a_csv_round_trip(tmp_path):
    table = simulate(seed=5, instruments={"pain": {"VAS_0_100": 1.0},
                                          "disability": {"RMDQ_0_24": 0.5, "ODI_0_100": 0.5}})
    path = tmp_path / "sim.csv"
    table.to_csv(path, index=False)
    again = read_studies(path)
    assert len(again) == len(table)
    assert list(again.columns) == list(table.columns)
    np.testing.assert_array_equal(again["n1"].to_numpy(), table["n1"].to_numpy())
    np.testing.assert_allclose(again["post_mean2"], table["post_mean2"], rtol=0, atol=0)
    # the key is unique and the row's source says SYNTHETIC
    assert not table.duplicated(["study_id", "comparison_id", "outcome", "follow_up"]).any()
    assert table["source"].str.startswith("SYNTHETIC").all()


def test_values_are_rounded_to_extraction_precision_and_within_the_scale():
    table = simulate(seed=2, decimals=1)
    for column in ("baseline_mean1", "post_sd2", "change_mean1"):
        values = table[column].dropna().to_numpy()
        np.testing.assert_array_equal(values, np.round(values, 1))
    levels = table[["baseline_mean1", "baseline_mean2", "post_mean1", "post_mean2"]]
    assert levels.min().min() >= 0 and levels.max().max() <= 10


def test_observed_effects_scatter_around_the_true_ones_with_their_sampling_variance():
    # 400 trials, one cell: (yi - theta_i) / sqrt(vi) is standard normal if the arm-level
    # sampling is right. Mean: SE 0.05 -> 4 SE = 0.2; mean square: SE ~ sqrt(2/400) = 0.07.
    table = simulate(seed=21, n_studies=400, outcomes=("pain",), follow_ups=("short",),
                     control_groups={1: 1.0})
    effects = _smd(table)
    z = (effects["yi"] - effects[TRUE_EFFECT_COLUMN]) / np.sqrt(effects["vi"])
    assert len(z) == 400
    assert abs(z.mean()) < 0.2
    assert abs((z ** 2).mean() - 1.0) < 0.28


def test_reml_recovers_mu_and_tau_of_the_generating_model():
    from bayesmeta.frequentist import rma

    table = simulate(seed=8, n_studies=300, outcomes=("pain",), follow_ups=("short",),
                     control_groups={1: 1.0}, mu=-0.4, tau=0.3)
    effects = _smd(table)
    fit = rma(effects["yi"].to_numpy(), effects["vi"].to_numpy(), method="REML")
    # SE(mu) ~ sqrt((0.09 + 0.03) / 300) = 0.02; SE(tau) ~ 0.02: 4 SE each
    assert abs(fit.beta[0] - (-0.4)) < 0.08
    assert abs(np.sqrt(fit.tau2) - 0.3) < 0.08


def test_subgroup_effects_slopes_and_cell_shifts_enter_the_true_effects_exactly():
    table = simulate(seed=4, n_studies=30, tau=0.0, mu=-0.2,
                     subgroup_effects={"comparator": {"passive": -0.3},
                                       "matched_control": {True: 0.1}},
                     slopes={"duration_weeks": -0.02},
                     outcome_effects={"disability": 0.05}, follow_up_effects={"long": 0.15})
    expected = (-0.2 - 0.3 * (table["comparator"] == "passive")
                + 0.1 * table["matched_control"].astype(bool)
                - 0.02 * (table["duration_weeks"] - 8.0)
                + 0.05 * (table["outcome"] == "disability")
                + 0.15 * (table["follow_up"] == "long"))
    np.testing.assert_allclose(table[TRUE_EFFECT_COLUMN], expected.astype(float), rtol=0,
                               atol=1e-12)
    truth = table.attrs[SIMULATION_ATTR]["truth"]
    assert truth["slope_centres"] == {"duration_weeks": 8.0}
    assert truth["subgroup_effects"]["comparator"] == {"passive": -0.3}


def test_cell_correlation_one_gives_a_comparison_the_same_random_effect_in_every_cell():
    table = simulate(seed=9, n_studies=25, tau=0.3, cell_correlation=1.0)
    spread = table.groupby(["study_id", "comparison_id"])[TRUE_EFFECT_COLUMN].agg(np.ptp)
    assert spread.max() < 1e-12
    assert table[TRUE_EFFECT_COLUMN].std() > 0.1


def test_exact_allocation_matches_counts_and_quartiles():
    settings = SimulationSettings(n_studies=58, allocation="exact")
    table = simulate(settings, seed=1)
    trials = table.drop_duplicates("study_id")
    assert len(trials) == 58
    counts = trials["exercise_type"].value_counts()
    expected = largest_remainder(58, list(settings.exercise_types.values()))
    for level, count in zip(settings.exercise_types, expected, strict=True):
        assert counts.get(level, 0) == count
    assert (trials["rob_overall"] == "some_concerns").sum() == 26
    assert (trials["rob_overall"] == "high").sum() == 32
    for column, quartiles in (("n_total", (69, 121, 238)), ("duration_weeks", (6, 8, 12)),
                              ("mean_age", (41.7, 45.4, 49.4))):
        values = trials[column].astype(float).to_numpy()
        np.testing.assert_allclose(np.quantile(values, [0.25, 0.5, 0.75]), quartiles, atol=1e-9)
        # SPSS's definition (R type 6) gives the same quartiles
        np.testing.assert_allclose(np.quantile(values, [0.25, 0.5, 0.75], method="weibull"),
                                   quartiles, atol=1e-9)


def test_reports_without_change_sds_are_imputed_by_escalc():
    table = simulate(seed=3, n_studies=40, missing_change_sd=0.3, form_b_share=0.1,
                     allocation="exact")
    no_sd = table["change_sd1"].isna()
    values_only = table["change_mean1"].isna()
    assert no_sd.any() and values_only.any()
    assert (table.loc[no_sd, "prepost_r"] == 0.5).all()
    assert table.loc[~no_sd, "prepost_r"].isna().all()
    effects = _smd(table)
    record = effects.attrs["escalc"]
    assert {d["row"] for d in record["imputed_change_sd"]} == {
        i + 1 for i in np.flatnonzero(no_sd.to_numpy())}
    assert len(record["derived_change_mean"]) == 2 * int(values_only.sum())
    assert np.isfinite(effects["yi"]).all()


def test_other_instruments_convert_back_to_the_same_vas_values():
    vas = simulate(seed=6, n_studies=10)
    rmdq = simulate(seed=6, n_studies=10, instruments={"pain": {"VAS_0_10": 1.0},
                                                      "disability": {"RMDQ_0_24": 1.0}})
    assert (rmdq.loc[rmdq["outcome"] == "disability", "instrument"] == "RMDQ_0_24").all()
    back = table_to_vas(rmdq)
    # the same draws, reported on 0-24 and rounded there: back on the VAS within rounding
    diff = (back["baseline_mean1"] - vas["baseline_mean1"]).abs()
    assert diff.max() <= 0.005 + 0.005 * 10 / 24 + 1e-12
    smd_vas, smd_rmdq = _smd(vas), _smd(back)
    np.testing.assert_allclose(smd_rmdq["yi"], smd_vas["yi"], atol=0.01)


def test_multi_arm_trials_share_their_individualized_arm():
    table = simulate(seed=10, n_studies=20, control_groups={3: 1.0}, allocation="exact")
    assert set(table["comparison_id"]) == {"1", "2", "3"}
    groups = find_shared_groups(table)
    assert groups and all(g.arm == 1 and len(g.comparisons) == 3 for g in groups)
    # randomised sizes add up: three controls and one individualized arm
    first = table.drop_duplicates(["study_id", "follow_up"])
    assert (first["n1"] <= first["n_total"] // 4 + 1).all()


def test_exact_summary_statistics_have_the_right_moments():
    rng = np.random.default_rng(0)
    m = 20000
    n = np.full(m, 10)
    out = summary_statistics(rng, n, np.full(m, 5.0), np.full(m, 3.0), np.full(m, 2.0),
                             np.full(m, 1.0), np.full(m, 0.6))
    sigma2_change = 4.0 + 1.0 - 2 * 0.6 * 2.0 * 1.0
    # E[s^2] = sigma^2; Var[s^2] = 2 sigma^4 / (n - 1): SE of the mean 0.013 for the change
    assert abs(np.mean(out["change_sd"] ** 2) - sigma2_change) < 4 * np.sqrt(
        2 * sigma2_change ** 2 / 9 / m)
    assert abs(np.mean(out["baseline_sd"] ** 2) - 4.0) < 4 * np.sqrt(2 * 16 / 9 / m)
    assert abs(np.mean(out["change_mean"]) + 2.0) < 4 * np.sqrt(sigma2_change / 10 / m)
    assert abs(np.var(out["post_mean"]) - 0.1) < 0.01


def test_allocation_helpers():
    assert largest_remainder(58, [24, 22, 5, 4, 4, 1, 1]).tolist() == [23, 21, 4, 4, 4, 1, 1]
    rng = np.random.default_rng(1)
    drawn = allocate(rng, 10, {"a": 0.3, "b": 0.7}, exact=True)
    assert sorted(drawn.tolist()) == ["a"] * 3 + ["b"] * 7
    x = quantile_matched(rng, 7, 1.0, 2.0, 5.0, log=True, decimals=2, exact=True)
    assert np.quantile(x, 0.5) == 2.0 and np.quantile(x, 0.25) == 1.0


@pytest.mark.parametrize(("overrides", "column"), [
    ({"tau": -0.1}, "tau"),
    ({"n_studies": 2.5}, "n_studies"),
    ({"mu": float("nan")}, "mu"),
    ({"subgroup_effects": {"comparator": {"pasive": -0.2}}},
     "subgroup_effects['comparator']['pasive']"),
    ({"subgroup_effects": {"colour": {"red": 1.0}}}, "subgroup_effects['colour']"),
    ({"slopes": {"age": 0.1}}, "slopes['age']"),
    ({"size_quartiles": (100.0, 50.0, 200.0)}, "size_quartiles"),
    ({"passive_share": 1.5}, "passive_share"),
    ({"instruments": {"pain": {"VAS": 1.0}, "disability": {"VAS_0_10": 1.0}}},
     "instruments['pain']['VAS']"),
    ({"follow_ups": ("medium",)}, "follow_ups"),
    ({"allocation": "stratified"}, "allocation"),
    ({"missing_change_sd": 0.8, "form_b_share": 0.5}, "form_b_share"),
    ({"retention": {"short": 0.9}}, "retention"),
    ({"arm_sd": (2.0, 1.0)}, "arm_sd"),
    ({"no_such_setting": 1}, "no_such_setting"),
])
def test_bad_settings_name_the_setting(overrides, column):
    with pytest.raises(InputError) as info:
        simulate(seed=1, **overrides)
    assert column in [p.column for p in info.value.problems]


def test_every_bad_setting_is_reported_at_once():
    with pytest.raises(InputError) as info:
        SimulationSettings(tau=-1.0, n_studies=0, decimals=-1)
    assert {p.column for p in info.value.problems} == {"tau", "n_studies", "decimals"}
    assert "tau: -1; expected a number >= 0" in str(info.value)


def test_bad_seed_and_settings_type():
    with pytest.raises(InputError, match="column seed"):
        simulate(seed=-3)
    with pytest.raises(InputError, match="column settings"):
        simulate({"tau": 0.1})


def test_settings_are_frozen_and_serialisable():
    s = SimulationSettings(subgroup_effects={"comparator": {"passive": -0.1}})
    with pytest.raises(AttributeError):
        s.tau = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.subgroup_effects["comparator"]["passive"] = 0.0  # type: ignore[index]
    d = s.to_dict()
    assert d["subgroup_effects"] == {"comparator": {"passive": -0.1}}
    assert SimulationSettings(**d) == s
