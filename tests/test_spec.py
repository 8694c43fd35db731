"""The closed schema of analysis specs (models/*.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bayesmeta.errors import InputError
from bayesmeta.spec import parse_spec

MODELS = Path(__file__).parents[1] / "models"


def lbp() -> dict:
    return tomllib.loads((MODELS / "lbp_review.toml").read_text())


def test_lbp_review_plan_parses():
    spec = parse_spec(MODELS / "lbp_review.toml")
    assert spec.name == "lbp_review"
    assert spec.main.outcomes == ("pain", "disability")
    assert len(spec.main.comparators) * len(spec.main.follow_ups) * 2 == 8
    assert spec.priors.tau == "rhodes_pain_function"
    rhodes = spec.prior("rhodes_pain_function")
    assert rhodes.to_dict()["loc"] == -3.02 and rhodes.to_dict()["scale"] == 2.27
    assert spec.prior("flat") is None
    assert spec.outcomes["pain"].mcid == 1.5 and spec.outcomes["disability"].mcid == 1.0
    assert spec.outcomes["pain"].sd_ref_grid == (1.5, 2.0, 2.5)
    assert len(spec.meta_regression) == 2
    assert spec.data.name == "lbp_review_synthetic.csv"
    assert len(spec.sha256) == 64


def test_unknown_key_names_the_allowed_ones():
    raw = lbp()
    raw["outcome"]["pain"]["mcdi"] = 1.5
    with pytest.raises(InputError, match=r"column outcome\.pain\.mcdi; unknown key; allowed in "
                                         r"\[outcome\.pain\]: mcid, sd_ref"):
        parse_spec(raw, base_dir=MODELS)


def test_unknown_prior_family_names_the_allowed_ones():
    raw = lbp()
    raw["prior"]["half_normal_0.5"]["family"] = "HalfNormals"
    with pytest.raises(InputError, match=r"column prior\.half_normal_0\.5\.family: HalfNormals; "
                                         r"unknown prior family; allowed: HalfNormal, HalfCauchy"):
        parse_spec(raw, base_dir=MODELS)


def test_undefined_prior_and_outcome_are_reported_together():
    raw = lbp()
    raw["priors"]["tau"] = "rhodes_pain"
    raw["main"]["outcomes"] = ["pain", "function"]
    with pytest.raises(InputError) as err:
        parse_spec(raw, base_dir=MODELS)
    text = str(err.value)
    assert "column priors.tau: rhodes_pain; no [prior.rhodes_pain] table" in text
    assert "column main.outcomes: function; no [outcome.function] table" in text
    assert text.startswith("2 problems in spec")


def test_bad_prior_parameter_and_engine():
    raw = lbp()
    raw["prior"]["half_normal_1.0"]["scale"] = -1
    raw["engine"]["primary"] = "hmc"
    with pytest.raises(InputError) as err:
        parse_spec(raw, base_dir=MODELS)
    text = str(err.value)
    assert "prior.half_normal_1.0; invalid prior" in text and "must be > 0" in text
    assert "column engine.primary: hmc; engine must be 'nuts' or 'exact'" in text


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match="no such spec file"):
        parse_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        parse_spec(bad)


# ---------------------------------------------------------------------------------------------
# the worked examples on real datasets (models/<example>.toml, data/examples/)

EXAMPLES = Path(__file__).parents[1] / "data" / "examples"


def example_specs() -> list[Path]:
    return sorted(p for p in MODELS.glob("*.toml") if p.name != "lbp_review.toml")


def test_every_real_example_dataset_has_a_spec_that_parses():
    specs = {parse_spec(p).data.resolve(): parse_spec(p) for p in example_specs()}
    datasets = {p.resolve() for p in EXAMPLES.glob("*.csv")}
    assert len(datasets) == 5 and set(specs) == datasets
    for data, spec in specs.items():
        assert data.with_name(data.stem + ".DATASHEET.md").exists()
        assert not spec.effect.schema_table  # metafor-style tables, named columns
        assert len(spec.main.outcomes) == 1 and not spec.main.comparators
        assert all(o.mcid is None for o in spec.outcomes.values())
        assert spec.prior(spec.priors.tau) is not None and spec.path is not None


def test_example_specs_declare_the_classic_analyses():
    from bayesmeta.pipeline.plan import expand

    bcg = parse_spec(MODELS / "dat_bcg.toml")
    assert bcg.effect.measure == "RR" and dict(bcg.effect.inputs) == {
        "ai": "tpos", "bi": "tneg", "ci": "cpos", "di": "cneg"}
    analyses = expand(bcg)
    assert [(a.name, a.kind) for a in analyses] == [
        ("tuberculosis", "main"), ("by_allocation_tuberculosis", "subgroup"),
        ("latitude", "meta_regression")]
    # a metafor-style table holds one outcome: no analysis filters on an outcome column
    assert [dict(a.filters) for a in analyses] == [{}, {}, {}]
    assert analyses[1].subgroup == "alloc" and analyses[2].mods == "~ ablat"
    assert analyses[2].outcome == "tuberculosis"  # the main outcome, by default
    rubin = parse_spec(MODELS / "rubin1981.toml")
    assert (rubin.effect.yi, rubin.effect.vi, rubin.effect.sei) == ("effect", None, "stderr")
    assert rubin.effect.measure == "GEN" and rubin.prior("half_cauchy_25").to_dict()["scale"] == 25
    normand = parse_spec(MODELS / "normand1999.toml")
    assert (normand.effect.yi, normand.effect.vi) == ("yi_MD", "vi_MD")


def generic(**overrides) -> dict:
    raw = {"name": "bcg", "data": str(EXAMPLES / "dat.bcg.csv"),
           "effect": {"measure": "RR", "inputs": {"ai": "tpos", "bi": "tneg", "ci": "cpos",
                                                   "di": "cneg"}},
           "priors": {"tau": "hn", "mu": "flat"},
           "prior": {"hn": {"family": "HalfNormal", "scale": 0.5}, "flat": {"family": "Flat"}}}
    raw.update(overrides)
    return raw


def test_generic_table_needs_no_outcome_and_no_main():
    from bayesmeta.pipeline.plan import expand, reference_analysis

    spec = parse_spec(generic(meta_regression=[{"name": "lat", "mods": "~ ablat"}],
                              sensitivity=[{"name": "by_alloc", "subgroup": "alloc"}]))
    assert spec.outcomes == {} and spec.main.outcomes == ()
    main, sub, reg = expand(spec)
    assert (main.name, main.outcome, dict(main.filters)) == ("pooled", None, {})
    assert main.label == "Pooled analysis of every row"
    assert (sub.name, sub.label, sub.kind) == ("by_alloc", "by_alloc", "subgroup")
    assert (reg.name, reg.outcome) == ("lat", None)
    assert reference_analysis(reg).name == "pooled_rows_of_lat"


def test_schema_table_still_requires_main_and_outcome():
    raw = lbp()
    del raw["main"], raw["outcome"]
    with pytest.raises(InputError) as err:
        parse_spec(raw, base_dir=MODELS)
    text = str(err.value)
    assert "column outcome; required key is missing" in text
    assert "column main; required key is missing" in text


@pytest.mark.parametrize("effect, message", [
    ({"measure": "GEN", "yi": "effect"},
     "column effect.vi; effect.yi needs exactly one of effect.vi (sampling variances) and "
     "effect.sei"),
    ({"measure": "GEN", "yi": "effect", "vi": "vi", "sei": "stderr"},
     "column effect.vi: vi; effect.yi needs exactly one of effect.vi"),
    ({"measure": "RR", "yi": "yi", "vi": "vi", "inputs": {"ai": "tpos"}},
     "column effect.inputs; give either precomputed effects"),
    ({"measure": "RR", "inputs": {"ai": "tpos", "m1i": "x"}},
     "column effect.inputs.m1i: x; not an escalc input of measure RR; allowed: ai, bi, ci, di, "
     "n1i, n2i"),
    ({"measure": "LOGRR", "inputs": {"ai": "tpos"}},
     "column effect.measure: LOGRR; unknown effect measure; escalc computes SMD, SMDH, MD"),
    ({"measure": "logOR", "yi": "yi", "vi": "vi"},
     "column effect.measure: logOR; unknown effect measure of precomputed effects; allowed "
     "(metafor's names): SMD"),
    ({"measure": "GEN", "yi": "yi", "vi": "vi", "prepost_r": 0.5},
     "column effect.prepost_r: 0.5; used only when escalc computes the effects"),
    ({"measure": "RR", "vi": "vi", "inputs": {"ai": "tpos"}},
     "column effect.vi: vi; only used with effect.yi"),
    ({"measure": "SMD", "prepost_r": 1.5}, "column effect.prepost_r: 1.5; must be between -1"),
    ({"measure": "RR", "inputs": {"ai": 3}}, "column effect.inputs.ai: 3; expected a column "
                                              "name"),
    ({"measure": "RR", "input": {"ai": "tpos"}}, "column effect.input; unknown key; allowed in "
                                                  "[effect]: measure, prepost_r, sign, yi, vi, "
                                                  "sei, inputs"),
])
def test_effect_problems(effect, message):
    with pytest.raises(InputError) as err:
        parse_spec(generic(effect=effect))
    assert message in str(err.value)


def test_generic_table_holds_one_outcome():
    raw = generic(outcome={"tb": {"direction": "lower"}, "death": {}},
                  main={"outcomes": ["tb", "death"]})
    with pytest.raises(InputError, match=r"column main\.outcomes: tb, death; a table of "
                                         r"precomputed effects or escalc inputs holds one "
                                         r"outcome"):
        parse_spec(raw)
    spec = parse_spec(generic(outcome={"tb": {"label": "TB", "direction": "lower"}}))
    assert spec.main.outcomes == ("tb",) and spec.outcomes["tb"].mcid is None


# ---------------------------------------------------------------------------------------------
# values of the closed schema: wrong kind or out of range is an error naming key and value


def test_bad_values_are_reported_together_with_key_path_and_expectation():
    raw = lbp()
    raw["outcome"]["pain"].update(rope=0.5, sd_ref_grid=2.0, mcid=0)
    raw["outcome"]["disability"].update(sd_ref=-1, rope=[1.0, -1.0], sd_ref_grid=[2.0, 0.0])
    raw["engine"].update(draws=-5, tune=-1, chains=0, target_accept=1.2)
    raw["meta_regression"][0]["outcome"] = "qol"
    raw["sensitivity"][0]["outcomes"] = ["pain", "function"]
    with pytest.raises(InputError) as err:
        parse_spec(raw, base_dir=MODELS)
    text = str(err.value)
    expected = [
        "column outcome.pain.mcid: 0; must be > 0 (in outcome points",
        "column outcome.pain.sd_ref_grid: 2; expected a list of SDs > 0 in outcome points",
        "column outcome.pain.rope: 0.5; expected a list of two numbers [low, high]",
        "column outcome.disability.sd_ref: -1; must be > 0 (an SD in outcome points)",
        "column outcome.disability.sd_ref_grid: [2.0, 0.0]; expected a list of SDs > 0",
        "column outcome.disability.rope: [1.0, -1.0]; expected a list of two numbers [low, "
        "high] in outcome points, low < high",
        "column engine.draws: -5; must be a whole number >= 1",
        "column engine.tune: -1; must be a whole number >= 0",
        "column engine.chains: 0; must be a whole number >= 1",
        "column engine.target_accept: 1.2; must be between 0 and 1",
        "column meta_regression[0].outcome: qol; no [outcome.qol] table; defined: pain, "
        "disability",
        "column sensitivity[0].outcomes: function; no [outcome.function] table",
    ]
    for line in expected:
        assert line in text, line
    assert text.startswith(f"{len(expected)} problems in spec")


def test_mcid_is_optional_and_sd_ref_rules_follow_the_measure():
    raw = lbp()
    del raw["outcome"]["pain"]["mcid"]
    raw["main"].pop("published")
    spec = parse_spec(raw, base_dir=MODELS)
    assert spec.outcomes["pain"].mcid is None and spec.outcomes["disability"].mcid == 1.0
    # the reanalysis of published results needs MCIDs
    raw = lbp()
    del raw["outcome"]["pain"]["mcid"]
    with pytest.raises(InputError, match=r"column outcome\.pain\.mcid; the reanalysis of the "
                                         r"published results needs an MCID"):
        parse_spec(raw, base_dir=MODELS)
    # an MCID on the SMD scale needs sd_ref; a raw-scale measure takes none
    raw = lbp()
    del raw["outcome"]["pain"]["sd_ref"]
    with pytest.raises(InputError, match=r"column outcome\.pain\.sd_ref; required with mcid on "
                                         r"the SMD scale"):
        parse_spec(raw, base_dir=MODELS)
    raw = generic(effect={"measure": "MD", "yi": "yi", "vi": "vi"},
                  outcome={"days": {"mcid": 2.0, "sd_ref": 10.0}})
    with pytest.raises(InputError, match=r"column outcome\.days\.sd_ref: 10; converts "
                                         r"standardised effects to points; the measure MD"):
        parse_spec(raw)


def test_tables_of_the_wrong_kind():
    raw = lbp()
    raw["outcome"]["pain"] = 1.5
    raw["engine"] = "nuts"
    raw["sensitivity"] = {"name": "x"}
    with pytest.raises(InputError) as err:
        parse_spec(raw, base_dir=MODELS)
    text = str(err.value)
    assert "column outcome.pain: 1.5; expected a table [outcome.pain]" in text
    assert "column engine: nuts; expected a table [engine]" in text
    assert "column sensitivity: {'name': 'x'}; expected an array of tables [[sensitivity]]" \
        in text


def test_selected_values_must_occur_in_the_study_table():
    """A typo in an outcome, comparator or follow-up would leave an analysis with k = 0: it is
    a spec error naming the key, the value and the values the table holds (checked after the
    table is read, before anything is fitted)."""
    from bayesmeta.pipeline import run_spec

    raw = lbp()
    raw["main"]["follow_ups"] = ["short", "medium"]
    raw["main"].pop("published")
    raw["sensitivity"][0]["comparators"] = ["activ"]
    raw["sensitivity"][1]["where"] = {"exercise_kind": ["mixed"]}
    raw["sensitivity"][9]["subgroup"] = "comparators"
    raw["meta_regression"][0]["follow_ups"] = ["medium"]  # the same typo: reported once
    spec = parse_spec(raw, base_dir=MODELS)
    with pytest.raises(InputError) as err:
        run_spec(spec, quick=True, write=False, progress=False)
    text = str(err.value)
    assert "column main.follow_ups: medium; never occurs in the study table's follow_up " \
           "column, so no rows match it; values there: long, short" in text
    assert "column sensitivity[0].comparators: activ; never occurs in the study table's " \
           "comparator column, so no rows match it; values there: active, passive" in text
    assert "column sensitivity[1].where.exercise_kind: exercise_kind; no such column in the " \
           "study table; its columns: study_id" in text
    assert "column sensitivity[9].subgroup: comparators; no such column" in text
    assert text.startswith("4 problems in spec")
    assert "meta_regression[0]" not in text
