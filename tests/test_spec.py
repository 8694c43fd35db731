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
