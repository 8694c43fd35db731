"""The command line: run, fit, validate; exit codes 0 / 1 / 2 / 3 as documented in cli.py."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------------------------------------
# worked examples on real datasets: any table, effects named by column

EXAMPLES = ROOT / "data" / "examples"


def _main_captured(args: list[str]) -> tuple[int, str, str]:
    """``cli.main(args)`` with its stdout and stderr (for module-scoped runs, where capsys is
    not available)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bcg_quick(tmp_path_factory):
    """models/dat_bcg.toml run once in quick mode: (exit code, output folder, stdout+stderr)."""
    out = tmp_path_factory.mktemp("bcg") / "bcg"
    code, stdout, stderr = _main_captured(["run", str(ROOT / "models" / "dat_bcg.toml"),
                                           "--quick", "--out", str(out), "--quiet"])
    return code, out, stdout + stderr


def test_run_example_spec_end_to_end(bcg_quick):
    """models/dat_bcg.toml (escalc inputs, a subgroup model, a meta-regression) through the
    command line in quick mode: the report cites the trials' source, carries no SYNTHETIC
    banner, and its numbers are the REML fit pinned from metafor and the bayesmeta posterior
    under the same priors."""
    from refdata import RTOL, assert_close, reference_document

    code, out, captured = bcg_quick
    assert code == 0
    assert "SYNTHETIC" not in captured
    html = (out / "index.html").read_text()
    assert "Colditz, G. A." in html and "doi.org/10.1001/jama.1994.03510330076038" in html
    assert 'id="synthetic-banner"' not in html and "SYNTHETIC" not in html
    assert "Main analyses (1 cell)" in html and "Main analyses (8 cells)" not in html
    assert "clinical relevance not computed: no MCID declared for this outcome" in html
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["synthetic"] is False
    assert info["effect"]["source"] == "escalc(RR, ai=tpos, bi=tneg, ci=cpos, di=cneg)"
    assert [(a["name"], a["kind"], a["k"], a["status"]) for a in info["analyses"]] == [
        ("tuberculosis", "main", 13, "ok"), ("by_allocation_tuberculosis", "subgroup", 13, "ok"),
        ("latitude", "meta_regression", 13, "ok")]

    ref = reference_document("dat.bcg")["analyses"]["RR"]
    pooled = pd.read_csv(out / "tables" / "pooled_summary.csv").set_index("analysis")
    reml = ref["metafor_tight"]["rma"]["REML"]
    assert_close("bcg REML", pooled.loc["tuberculosis", "reml_estimate"], reml["estimate"])
    assert_close("bcg tau2", pooled.loc["tuberculosis", "tau2"], reml["tau2"])
    # the sensitivity prior HalfNormal(0.5) with the primary mu prior Normal(0, 4) is a cell
    # of the pinned bayesmeta grid; exact posteriors agree to 1e-3 (tests/reference/README.md)
    grid = ref["bayesmeta"]["grid"]["mu_normal_0_4__tau_half_normal_0.5"]
    sens = pd.read_csv(out / "tables" / "prior_sensitivity.csv").set_index("prior")
    row = sens.loc["tau: half_normal_0.5"]
    assert row["mu_median"] == pytest.approx(grid["mu"]["median"], abs=1e-3)
    assert row["tau_median"] == pytest.approx(grid["tau"]["median"], abs=1e-3)
    # the meta-regression's REML twin is rma(yi, vi, mods = ~ ablat) of the same effects
    es = bayesmeta.escalc("RR", data=pd.read_csv(EXAMPLES / "dat.bcg.csv"), ai="tpos",
                          bi="tneg", ci="cpos", di="cneg")
    fit = rma("yi", "vi", data=es, mods="~ ablat", method="REML")
    coefs = pd.read_csv(out / "tables" / "metaregression_coefficients.csv")
    slope = coefs[(coefs.analysis == "latitude") & (coefs.term == "ablat")].iloc[0]
    assert slope["reml_estimate"] == pytest.approx(
        float(fit.coefficients.loc["ablat", "estimate"]), rel=RTOL)
    assert slope["reml_estimate"] == pytest.approx(-0.0291, abs=5e-5)  # metafor's printout
    levels = pd.read_csv(out / "tables" / "subgroups.csv")
    assert sorted(levels["subgroup"]) == ["alternate", "random", "systematic"]
    assert levels["k"].sum() == 13


@pytest.fixture(scope="module")
def rubin_fit(tmp_path_factory):
    """``bayesmeta fit`` of the eight schools (no outcome declared), run once:
    (exit code, output folder, stdout)."""
    out = tmp_path_factory.mktemp("rubin") / "rubin"
    code, stdout, _ = _main_captured([
        "fit", str(EXAMPLES / "Rubin1981.csv"), "--measure", "GEN", "--yi", "effect", "--sei",
        "stderr", "--tau-prior", "HalfCauchy:scale=25", "--mu-prior", "Flat", "--engine",
        "exact", "--out", str(out), "--quiet"])
    return code, out, stdout


def test_fit_precomputed_effects_with_standard_errors(rubin_fit):
    """The eight schools (effect and its standard error, not recomputed) as bayesmeta's help
    page fits them: half-Cauchy(25) on tau, flat mu; the exact posterior against the pinned
    bayesmeta values."""
    from refdata import reference_document

    code, out, stdout = rubin_fit
    assert code == 0
    assert stdout.startswith("pooled: k = 8; REML 7.871 [-0.294, 16.035]")  # no outcome
    ref = reference_document("Rubin1981")["extras"]["help_page_halfcauchy25"]
    pooled = pd.read_csv(out / "tables" / "pooled_summary.csv").iloc[0]
    assert pooled["analysis"] == "pooled" and pooled["k"] == 8
    assert pooled["mu_median"] == pytest.approx(ref["mu"]["median"], abs=1e-3)
    assert pooled["tau_median"] == pytest.approx(ref["tau"]["median"], abs=1e-3)
    effects = pd.read_csv(out / "tables" / "effect_sizes.csv")
    table = pd.read_csv(EXAMPLES / "Rubin1981.csv")
    assert np.allclose(effects["vi"], table["stderr"] ** 2, rtol=1e-12)
    html = (out / "index.html").read_text()
    assert "Main analyses (1 cell)" in html and 'id="synthetic-banner"' not in html


def _methods_paragraph(md: str, lead: str) -> str:
    """The methods paragraph of report.md that starts with ``**<lead>**``."""
    start = md.index(f"**{lead}**")
    return md[start:md.index("\n", start)]


def test_example_report_says_what_was_done(bcg_quick):
    """dat.bcg (RR by escalc from a 2x2 table, an outcome with a direction but no MCID, a
    subgroup model, a meta-regression without row filters): no text of the review's plan
    (Hedges' g, change-score imputation, the LBP MCID caveat, SMD labels) leaks into the
    report; the run's measure, scale, checks and rows are named instead."""
    code, out, _ = bcg_quick
    assert code == 0
    md = (out / "report.md").read_text()
    effects = _methods_paragraph(md, "Effect sizes.")
    assert effects == (
        "**Effect sizes.** Log risk ratio (RR; yi = +1 x (arm 1 vs arm 2)), computed once by "
        "escalc from the columns ai = tpos, bi = tneg, ci = cpos, di = cneg. No row had a "
        "zero cell, so no continuity correction was applied.")
    for text in ("Hedges", "change-score", "Cochrane", "pre-post", "low back pain", "MCID_SMD",
                 "SMD (REML)", "All 0 enforced", "rows: .", "as the review", "Ostelo"):
        assert text not in md, text
    relevance = _methods_paragraph(md, "Clinical relevance.")
    assert relevance.startswith("**Clinical relevance.** No MCID (minimal clinically important "
                                "difference) was declared, so no clinical-relevance "
                                "probabilities are computed.")
    assert relevance.endswith("benefit the plan declares: Tuberculosis (log risk ratio): "
                              "below 0.")
    assert md.count("No MCID (minimal clinically important difference) was declared") == 1
    assert ("No enforced checks in this run (no NUTS fit to gate; no published results to "
            "reproduce).") in md
    assert "Formula ~ ablat; rows: every row of the table." in md
    assert "_Posterior and tau. Top: posterior densities of mu and theta_new (no MCID " in md
    # metafor's yi of RR is the log risk ratio: the column says so, the title too
    assert "| analysis | k | log RR (REML) |" in md
    assert ("estimates on the log scale (log RR, as metafor reports yi: exp() gives the "
            "ratio); benefit = Tuberculosis (log risk ratio): below 0**") in md
    pooled = pd.read_csv(out / "tables" / "pooled_summary.csv").set_index("analysis")
    sens = pd.read_csv(out / "tables" / "prior_sensitivity.csv")
    primary = sens[sens["prior"].str.endswith("(primary)")].iloc[0]
    # P(benefit) from the declared direction (lower) without an MCID, as in the prior table
    assert pooled.loc["tuberculosis", "p_mu_benefit"] == pytest.approx(
        primary["p_mu_benefit"], abs=1e-12)
    assert pooled.loc["tuberculosis", "p_mu_benefit"] > 0.999
    levels = pd.read_csv(out / "tables" / "subgroups.csv")
    assert set(levels["variable"]) == {"alloc"}
    assert levels["p_mu_benefit"].between(0, 1).all()


def test_one_off_without_outcome_report_says_what_was_done(rubin_fit):
    """The eight schools by ``bayesmeta fit`` (precomputed GEN effects with standard errors,
    no outcome, hence no direction of benefit and no MCID)."""
    code, out, _ = rubin_fit
    assert code == 0
    md = (out / "report.md").read_text()
    assert _methods_paragraph(md, "Effect sizes.") == (
        "**Effect sizes.** Precomputed effects: generic effect on the outcome's own scale (GEN) "
        "taken as given from column effect, with their standard errors in column stderr "
        "(squared into sampling variances); not recomputed.")
    relevance = _methods_paragraph(md, "Clinical relevance.")
    assert "No outcome and no direction of benefit were declared either" in relevance
    for text in ("Hedges", "escalc from", "Cochrane", "benefit = ", "P(mu: benefit)",
                 "SMD (REML)", "low back pain", "All 0 enforced"):
        assert text not in md, text
    assert "| analysis | k | effect (REML) |" in md
    assert "No enforced checks in this run (no NUTS fit to gate" in md
    pooled = pd.read_csv(out / "tables" / "pooled_summary.csv")
    assert "p_mu_benefit" not in pooled.columns


@pytest.mark.parametrize("data, args, message", [
    ("dat.normand1999.csv", ["--measure", "SMD"],
     "column --outcome; required for a study table of the extraction schema"),
    ("dat.normand1999.csv", ["--measure", "SMD", "--inputs", "m1i,sd1i,n1i,m2i,sd2i,n2i,ai"],
     "column --inputs.ai: ai; not an escalc input of measure SMD"),
    ("dat.normand1999.csv", ["--measure", "MD", "--yi", "yi_MD"],
     "column --vi; --yi needs exactly one of --vi (sampling variances) and --sei"),
    ("dat.bcg.csv", ["--measure", "RR", "--inputs", "ai=,bi=tneg"],
     "column --inputs: ai=,bi=tneg; expected keyword=column"),
    ("dat.bcg.csv", ["--measure", "RR", "--yi", "logrr", "--vi", "vi"],
     "column effect.yi: logrr; no such column in dat.bcg.csv; its columns: label, trial"),
    ("dat.bcg.csv", ["--measure", "RR", "--yi", "author", "--vi", "vi"],
     "column effect.yi: author; column author holds text, not numbers"),
    ("dat.bcg.csv", ["--measure", "RR", "--yi", "yi", "--vi", "vi", "--comparator", "active"],
     "column main.comparators: active; selects rows by the column comparator, which the "
     "study table does not have"),
    ("dat.bcg.csv", ["--measure", "RR", "--yi", "yi", "--vi", "vi", "--mcid", "0.2"],
     "column --mcid: 0.2; needs --outcome"),
])
def test_fit_generic_table_bad_input(tmp_path, capsys, data, args, message):
    code = cli.main(["fit", str(EXAMPLES / data), *args, "--engine", "exact", "--out",
                     str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fit_given_effects_must_be_complete(tmp_path, capsys):
    table = pd.read_csv(EXAMPLES / "Rubin1981.csv")
    table.loc[2, "stderr"] = -1.0
    table.loc[5, "effect"] = np.nan
    path = tmp_path / "schools.csv"
    table.to_csv(path, index=False)
    code = cli.main(["fit", str(path), "--measure", "GEN", "--yi", "effect", "--sei", "stderr",
                     "--tau-prior", "HalfCauchy:scale=25", "--engine", "exact", "--out",
                     str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "2 problems in schools.csv" in err
    assert "row 3 (C), column stderr: -1; a standard error must be a finite number > 0" in err
    assert "row 6 (F), column effect: missing (NaN); an effect size must be a finite number" \
        in err


def test_parse_inputs_option():
    assert cli.parse_inputs_option("ai=tpos, bi = tneg,ci=cpos,di=cneg") == {
        "ai": "tpos", "bi": "tneg", "ci": "cpos", "di": "cneg"}
    assert cli.parse_inputs_option("m1i,sd1i=sd_1") == {"m1i": "m1i", "sd1i": "sd_1"}
    with pytest.raises(bayesmeta.errors.InputError, match="each escalc keyword once"):
        cli.parse_inputs_option("ai=tpos,ai=x")
