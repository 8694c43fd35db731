"""The SYNTHETIC low-back-pain dataset: schema-valid, shaped like the review, and calibrated.

Acceptance test of the calibration: each of the 8 main cells of
``data/lbp_review_synthetic.csv``, analysed as Fleckenstein et al. (2022) did (Hedges' g of change
scores, REML, z-based 95% CI), reproduces the published k exactly and the published SMD, CI bounds
(2 decimals) and I2 (whole percent) of ``data/published/fleckenstein2022_pooled.csv`` when
rounded as the paper rounds.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmeta import escalc, read_studies, table_to_vas
from bayesmeta.errors import BayesmetaWarning
from bayesmeta.frequentist import rma

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "lbp_review_synthetic.csv"
DATASHEET = ROOT / "data" / "lbp_review_synthetic.DATASHEET.md"
PUBLISHED = pd.read_csv(ROOT / "data" / "published" / "fleckenstein2022_pooled.csv")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_studies(DATA)


@pytest.fixture(scope="module")
def effects(table: pd.DataFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        # the multi-arm trials' shared individualized arm: escalc warns, the paper pooled them
        warnings.filterwarnings("ignore", message=".*double-counts its participants.*",
                                category=BayesmetaWarning)
        return escalc("SMD", data=table_to_vas(table))


@pytest.mark.parametrize("cell", list(PUBLISHED.itertuples(index=False)),
                         ids=PUBLISHED["analysis_id"].tolist())
def test_each_main_cell_reproduces_the_published_result(effects, cell):
    rows = effects[(effects["outcome"] == cell.outcome)
                   & (effects["comparator"] == cell.comparator)
                   & (effects["follow_up"] == cell.follow_up)]
    assert len(rows) == cell.k
    fit = rma(rows["yi"].to_numpy(), rows["vi"].to_numpy(), method="REML", test="z")
    got = (round(float(fit.beta[0]), 2), round(float(fit.ci_low[0]), 2),
           round(float(fit.ci_high[0]), 2), round(float(fit.i2)))
    assert got == (cell.smd, cell.ci_low, cell.ci_high, cell.i2_percent)


def test_schema_valid_and_marked_synthetic(table):
    assert len(table) == PUBLISHED["k"].sum()
    assert table["source"].str.contains("SYNTHETIC").all()
    first = DATASHEET.read_text(encoding="utf-8").split("\n\n")[1]
    assert "SYNTHETIC" in first and "not the trials' data" in first


def test_trials_comparisons_and_published_counts(table):
    trials = table.drop_duplicates("study_id")
    comps = table.drop_duplicates(["study_id", "comparison_id"])
    assert len(trials) == 58
    assert (comps.groupby("study_id").size() > 1).sum() == 11
    assert (comps["comparator"] == "active").sum() == 42
    assert (comps["comparator"] == "passive").sum() == 32  # 30 printed; see the datasheet
    assert comps["matched_control"].sum() == 11
    assert (comps.loc[comps["matched_control"].astype(bool), "comparator"] == "active").all()
    assert trials["rob_overall"].value_counts().to_dict() == {
        "high": 32, "some_concerns": 26, "low": 0}
    assert (trials["psych_component"] != "none").sum() == 34
    assert (trials["psych_component"] == "cbt").sum() == 9
    counts = trials["exercise_type"].value_counts()
    assert (counts["mixed"], counts["smt"], counts["pilates"], counts["yoga"]) == (23, 21, 1, 1)
    assert int(trials["n_total"].sum()) == 10084
    for column, quartiles in (("n_total", (69, 121, 238)), ("duration_weeks", (6, 8, 12)),
                              ("mean_age", (41.7, 45.4, 49.4))):
        np.testing.assert_allclose(
            np.quantile(trials[column].astype(float), [0.25, 0.5, 0.75]), quartiles, atol=1e-9)


def test_arms_are_consistent(table):
    # a multi-arm trial's individualized arm is one arm: identical in all its comparisons
    arm1 = ["n1", "baseline_mean1", "baseline_sd1", "post_mean1", "post_sd1", "change_mean1",
            "change_sd1"]
    spread = table.groupby(["study_id", "outcome", "follow_up"], observed=True)[arm1].nunique(
        dropna=False)
    assert (spread <= 1).all().all()
    # analysed never exceeds randomised; long-term n never exceeds short-term n of the arm
    first = table.drop_duplicates(["study_id", "outcome", "follow_up"])
    n2_sum = table.groupby(["study_id", "outcome", "follow_up"], observed=True)["n2"].sum()
    total = first.set_index(["study_id", "outcome", "follow_up"])
    assert ((total["n1"] + n2_sum.loc[total.index]) <= total["n_total"]).all()
    wide = table.pivot_table(index=["study_id", "comparison_id", "outcome"],
                             columns="follow_up", values="n2", observed=True).dropna()
    assert (wide["long"] <= wide["short"]).all()
    # follow-up = baseline + change wherever a change mean is given, to the last digit
    given = table["change_mean2"].notna()
    np.testing.assert_allclose(table.loc[given, "post_mean2"] - table.loc[given, "baseline_mean2"],
                               table.loc[given, "change_mean2"], atol=1e-9)


def test_every_sensitivity_subset_of_the_plan_has_two_studies(effects):
    # models/lbp_review.toml re-pools these subsets at short term; k = 1 would be degenerate
    subsets = {"rob_overall": ["some_concerns"], "exercise_type": ["mixed"],
               "psych_component": ["cbt"], "matched_control": [True],
               "lbp_12_weeks": [True], "behavioural": [True]}
    for outcome in ("pain", "disability"):
        short = effects[(effects["outcome"] == outcome) & (effects["follow_up"] == "short")]
        active = short[short["comparator"] == "active"]
        for column, levels in subsets.items():
            assert active[column].isin(levels).sum() >= 2, (outcome, column)
        assert (short["comparator_detail"] == "no_treatment").sum() >= 2


def test_funnel_of_pain_passive_short_leans_as_published(effects):
    from bayesmeta.frequentist import egger_test

    # shaped, not calibrated: the paper reports Egger z = -3.313 (publication bias suspected)
    rows = effects[(effects["outcome"] == "pain") & (effects["comparator"] == "passive")
                   & (effects["follow_up"] == "short")]
    test = egger_test(rma(rows["yi"].to_numpy(), rows["vi"].to_numpy(), method="REML"))
    assert test.statistic == pytest.approx(-3.313, abs=0.5)
    assert test.pval < 0.01


def test_imputation_and_instruments_are_exercised(table, effects):
    record = effects.attrs["escalc"]
    assert len(record["imputed_change_sd"]) > 20
    assert len(record["derived_change_mean"]) > 10
    assert (table.loc[table["change_sd1"].isna(), "prepost_r"] == 0.5).all()
    assert set(table["instrument"].astype(str)) == {
        "VAS_0_10", "NRS_0_10", "VAS_0_100", "RMDQ_0_24", "ODI_0_100"}
    # the SMD does not depend on the scale: the raw table gives the same effects
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmetaWarning)
        raw = escalc("SMD", data=table)
    np.testing.assert_allclose(raw["yi"], effects["yi"], rtol=1e-12, atol=1e-14)


def _generator():
    path = ROOT / "scripts" / "make_lbp_synthetic.py"
    spec = importlib.util.spec_from_file_location("make_lbp_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_generator_reproduces_the_committed_file_byte_for_byte():
    generator = _generator()
    seeded = re.search(r"seeded `\[(\d+), (\d+)\]`", DATASHEET.read_text(encoding="utf-8"))
    assert seeded is not None and int(seeded.group(1)) == generator.SEED
    table, _ = generator.build(int(seeded.group(2)))  # the attempt that succeeded
    assert generator.to_csv_text(table) == DATA.read_text(encoding="utf-8")


# ---------------------------------------------------------------- the real example datasets

EXAMPLES = ("dat.bcg", "dat.normand1999", "RobergeEtAl2017", "Rubin1981", "CrinsEtAl2014")


@pytest.mark.parametrize("name", EXAMPLES)
def test_real_examples_are_the_reference_data_with_a_datasheet(name):
    copy = ROOT / "data" / "examples" / f"{name}.csv"
    assert copy.read_bytes() == (ROOT / "tests" / "reference" / "data" / f"{name}.csv").read_bytes()
    sheet = (ROOT / "data" / "examples" / f"{name}.DATASHEET.md").read_text(encoding="utf-8")
    for field in ("| real or synthetic | **real**", "| source |", "| measure |", "| units |",
                  "| licence | GPL (>= 2), as distributed in the R package"):
        assert field in sheet, (name, field)
    assert "https://doi.org/" in sheet


def test_example_datasheet_code_reproduces_the_stored_effects():
    # the datasheet's escalc call gives the yi the R reference computed (escalc: 1e-10 relative)
    sheet = (ROOT / "data" / "examples" / "dat.bcg.DATASHEET.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", sheet, re.S).group(1)
    scope: dict = {}
    exec(code.replace("data/examples/", f"{ROOT}/data/examples/"), scope)
    np.testing.assert_allclose(scope["es"]["yi"], scope["bcg"]["yi"], rtol=1e-10)
    # metafor 3.8-1, tests/reference/dat.bcg.json: metafor_tight.rma.REML.tau2
    assert scope["fit"].tau2 == pytest.approx(0.313243258136481, rel=1e-6)
