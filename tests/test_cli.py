"""The command line: run, fit, validate; exit codes 0 / 1 / 2 / 3 as documented in cli.py."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

import bayesmeta
from bayesmeta import cli
from bayesmeta.frequentist import rma

ROOT = Path(__file__).parents[1]
SPEC = ROOT / "models" / "lbp_review.toml"
DATA = ROOT / "data" / "lbp_review_synthetic.csv"
PUBLISHED = ROOT / "data" / "published" / "fleckenstein2022_pooled.csv"


def small_spec(tmp_path: Path, published: Path | None = None) -> Path:
    """The review's plan cut to its two long-term active-comparator cells (fast): no
    sensitivity analyses, no meta-regressions; ``published`` replaces the published table."""
    text = SPEC.read_text().split("# Sensitivity analyses of the review")[0]
    text = text.replace('data = "../data/lbp_review_synthetic.csv"', f'data = "{DATA}"')
    text = text.replace('comparators = ["active", "passive"]', 'comparators = ["active"]')
    text = text.replace('follow_ups = ["short", "long"]', 'follow_ups = ["long"]')
    line = 'published = "../data/published/fleckenstein2022_pooled.csv"'
    assert line in text
    text = text.replace(line, f'published = "{published}"' if published else "")
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("validate", "run", "fit"):
        assert command in out
    assert "Exit codes" in out


def test_usage_error_is_2(capsys):
    assert cli.main(["run"]) == 2
    assert "the following arguments are required: spec" in capsys.readouterr().err


def test_validate():
    assert cli.main(["validate", str(DATA)]) == 0


def test_run_exact(tmp_path, capsys):
    spec = small_spec(tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    (out / "run.json").write_text("{}")  # an earlier report: replaced, not refused
    assert cli.main(["run", str(spec), "--engine", "exact", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"report: {out / 'index.html'}" in captured.out
    assert "SYNTHETIC" in captured.out
    assert "[ 2/2] disability_active_long" in captured.err  # progress lines on stderr
    info = json.loads((out / "run.json").read_text())
    assert info["engine"]["primary"] == "exact" and info["compile_stats"]["compilations"] == 0
    assert info["passed"] is True and info["published"] is None
    assert [a["name"] for a in info["analyses"]] == ["pain_active_long",
                                                    "disability_active_long"]


def test_run_exit_1_when_a_published_cell_is_not_reproduced(tmp_path, capsys):
    published = pd.read_csv(PUBLISHED)
    published = published[published.analysis_id.isin(["pain_active_long",
                                                      "disability_active_long"])].copy()
    published.loc[published.analysis_id == "pain_active_long", "smd"] = -0.12
    altered = tmp_path / "published.csv"
    published.to_csv(altered, index=False)
    code = cli.main(["run", str(small_spec(tmp_path, altered)), "--engine", "exact",
                     "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "CHECK FAILED: published pain_active_long: differs in smd" in err
    rows = pd.read_csv(tmp_path / "r" / "tables" / "published_vs_reproduced.csv")
    assert rows.set_index("analysis_id")["match"].to_dict() == {
        "pain_active_long": False, "disability_active_long": True}


def test_run_refuses_to_write_over_inputs(capsys):
    assert cli.main(["run", str(SPEC), "--out", str(SPEC.parent), "--quiet"]) == 2
    assert "contains an input file" in capsys.readouterr().err


def test_run_missing_spec(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_internal_error_is_3(monkeypatch, tmp_path, capsys):
    import bayesmeta.pipeline as pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "run_spec", broken)
    assert cli.main(["run", str(SPEC), "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and "internal error (exit code 3)" in err


def test_fit_one_off(tmp_path, capsys):
    out = tmp_path / "fit"
    code = cli.main(["fit", str(DATA), "--measure", "SMD", "--outcome", "pain",
                     "--comparator", "active", "--follow-up", "long", "--engine", "exact",
                     "--tau-prior", "HalfNormal:scale=0.5", "--mcid", "1.5", "--sd-ref", "2",
                     "--out", str(out), "--quiet"])
    assert code == 0
    stdout = capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = bayesmeta.escalc("SMD", data=bayesmeta.read_studies(DATA))
    cell = es[(es.outcome == "pain") & (es.comparator == "active") & (es.follow_up == "long")]
    fit = rma(cell.yi.to_numpy(), cell.vi.to_numpy())
    assert f"k = {fit.k}; REML {fit.beta[0]:.3f} [{fit.ci_low[0]:.3f}, {fit.ci_high[0]:.3f}]" \
        in stdout
    assert "P(mu beyond the MCID)" in stdout
    html = (out / "index.html").read_text()
    assert 'id="synthetic-banner"' in html and "half-normal(scale=0.5) on tau" in html
    relevance = pd.read_csv(out / "tables" / "clinical_relevance.csv")
    assert relevance["sd_ref"].tolist() == [2.0] and relevance["mcid_points"].tolist() == [1.5]


@pytest.mark.parametrize("args, message", [
    (["--tau-prior", "HalfNormals:scale=0.5"], "unknown prior family; allowed: HalfNormal"),
    (["--tau-prior", "HalfNormal:scale=-1"], "must be > 0"),
    (["--tau-prior", "HalfNormal:0.5"], "expected family or family:key=value"),
    (["--mcid", "1.5"], "--mcid on the SMD scale needs --sd-ref"),
    (["--comparator", "sham"], "no rows match"),
])
def test_fit_bad_input(tmp_path, capsys, args, message):
    code = cli.main(["fit", str(DATA), "--measure", "SMD", "--outcome", "pain", "--engine",
                     "exact", "--follow-up", "short", "--out", str(tmp_path / "o"), "--quiet",
                     *args])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err


def test_fit_raw_measure_needs_a_tau_prior(tmp_path, capsys):
    code = cli.main(["fit", str(DATA), "--measure", "MD", "--outcome", "pain",
                     "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "--tau-prior is required for the raw-scale measure MD" in capsys.readouterr().err
