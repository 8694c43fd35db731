"""End to end: the review's plan (models/lbp_review.toml) run in quick mode into a report.

The quick run is made once per test session (``quick_report``) and shared with
tests/test_report_browser.py. Quick mode uses the exact engine wherever it exists, so the
only NUTS fits are the models the exact engine cannot fit (they share one compiled sampler).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmeta
from bayesmeta.cli import main
from bayesmeta.errors import InputError
from bayesmeta.pipeline import run_spec
from bayesmeta.pipeline.plan import seed_for
from bayesmeta.pipeline.runner import check_out_dir
from bayesmeta.spec import parse_spec

ROOT = Path(__file__).parents[1]
MODELS = ROOT / "models"
SPEC = MODELS / "lbp_review.toml"
PUBLISHED = ROOT / "data" / "published" / "fleckenstein2022_pooled.csv"

_RUNS: dict[str, object] = {}


def quick_report(tmp_path_factory: pytest.TempPathFactory):
    """The quick run of the review's plan, written once per session (shared by modules)."""
    if "quick" not in _RUNS:
        out = tmp_path_factory.getbasetemp() / "lbp_quick"
        _RUNS["quick"] = run_spec(SPEC, out_dir=out, quick=True, progress=False)
    return _RUNS["quick"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return quick_report(tmp_path_factory)


class _TableRows(HTMLParser):
    """Text of each <tbody> row of the <table id=...> wanted."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.in_body = table_id, False, False
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
        elif self.in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody" and self.in_body:
            self.in_body = self.inside = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, table_id: str) -> list[list[str]]:
    parser = _TableRows(table_id)
    parser.feed(html)
    return parser.rows


def test_report_files_exist(run):
    out = run.out_dir
    for name in ("index.html", "report.md", "run.json"):
        assert (out / name).stat().st_size > 1000, name
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png")))
    assert len(list((out / "figures").glob("*.png"))) >= 40
    # self-contained: no resource is fetched from anywhere
    for attr in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert attr not in html


def test_published_vs_reproduced_rows(run):
    published = pd.read_csv(PUBLISHED)
    table = run.published
    assert list(table["analysis_id"]) == list(published["analysis_id"])
    assert table["match"].all(), table[~table["match"]]
    for col in ("smd", "ci_low", "ci_high"):
        assert np.allclose(table[f"{col}_reproduced"], published[col], atol=1e-9)
    assert (table["k_reproduced"] == published["k"]).all()
    # the reproduced numbers are the REML fits of the main cells, rounded as the paper
    fit = run.analysis("pain_active_short").reml
    row = table.set_index("analysis_id").loc["pain_active_short"]
    assert row["smd_unrounded"] == pytest.approx(float(fit.beta[0]), abs=1e-12)
    assert row["i2_percent_unrounded"] == pytest.approx(fit.i2, abs=1e-9)

    rows = table_rows((run.out_dir / "index.html").read_text(), "published_vs_reproduced")
    assert len(rows) == 8
    by_id = {r[0]: r for r in rows}
    assert set(by_id) == set(published["analysis_id"])
    cells = by_id["pain_active_short"]
    assert cells[1:11] == ["32", "32", "-0.28", "-0.28", "-0.42", "-0.42", "-0.14", "-0.14",
                           "73", "73"]
    assert cells[11] == "yes"
    md = (run.out_dir / "report.md").read_text()
    assert md.count("| disability_passive_short |") >= 2  # published table and reanalysis


def test_run_json(run):
    info = json.loads((run.out_dir / "run.json").read_text())
    for key in ("versions", "seed", "spec", "data", "timings", "compile_stats", "engine",
                "gate", "checks", "analyses", "outputs", "quick", "passed"):
        assert key in info, key
    assert info["seed"] == 20261125
    assert info["spec"]["sha256"] == hashlib.sha256(SPEC.read_bytes()).hexdigest()
    assert info["data"]["synthetic"] is True
    assert info["quick"] is True
    for name in ("bayesmeta", "numpy", "pymc", "nutpie", "arviz", "python"):
        assert info["versions"][name]
    t = info["timings"]
    assert t["wall_seconds"] >= t["analysis_seconds"] > 0
    assert set(t["report"]) == {"tables", "idata", "figures", "render"}
    assert t["steps"]["reml"] > 0 and "bayes_exact" in t["steps"]
    # one compiled sampler for every NUTS fit: sized by the plan's largest k (64 = pain, short
    # term, both comparators) and p (9 meta-regression terms), rounded up to powers of two
    assert info["engine"]["max_k"] == 64 and info["engine"]["capacity"] == 64
    assert info["engine"]["max_p"] == 9 and info["engine"]["coef_slots"] == 16
    n_nuts = sum(a["engine"] == "nuts" for a in info["analyses"])
    cs = info["compile_stats"]
    assert cs["compilations"] <= 1
    assert cs["compilations"] + cs["cache_hits"] == n_nuts  # quick mode: no retries
    assert len(info["gate"]) == n_nuts
    assert len(info["analyses"]) == 32  # 8 main + 18 subsets + 4 subgroup + 2 meta-regressions
    assert info["passed"] is True  # quick mode enforces the published cells only


def test_every_csv_readable(run):
    folder = run.out_dir / "tables"
    names = {p.stem for p in folder.glob("*.csv")}
    for required in ("published_vs_reproduced", "reanalysis", "pooled_summary",
                     "reml_vs_bayes", "clinical_relevance", "prior_sensitivity", "bias_tests",
                     "outliers", "subgroups", "metaregression_coefficients",
                     "metaregression_fit", "diagnostics", "warnings", "effect_sizes",
                     "imputed_change_sd", "analyses"):
        assert required in names, required
    for path in folder.glob("*.csv"):
        if path.stat().st_size > 1:
            pd.read_csv(path)
    summary = pd.read_csv(folder / "pooled_summary.csv").set_index("analysis")
    r = run.analysis("pain_active_short")
    assert summary.loc["pain_active_short", "p_mu_benefit"] == pytest.approx(
        r.bayes.prob("mu", "<", 0.0), abs=1e-12)
    assert summary.loc["pain_active_short", "p_mu_mcid"] == pytest.approx(
        r.bayes.prob("mu", "<", -1.5 / 2.0), abs=1e-12)
    imputed = pd.read_csv(folder / "imputed_change_sd.csv")
    assert len(imputed) == len(run.effects.attrs["escalc"]["imputed_change_sd"]) > 0
    assert (imputed["prepost_r"] == 0.5).all()


def test_idata_files_load(run):
    folder = run.out_dir / "idata"
    primary = bayesmeta.load(folder / "pain_active_short__primary.nc")
    assert primary.engine == "exact"
    assert primary.median("mu") == pytest.approx(run.analysis("pain_active_short").bayes
                                                 .median("mu"), abs=1e-9)
    assert (folder / "pain_active_short__tau-half_cauchy_0.5.nc").exists()
    assert len(list(folder.glob("*.nc"))) == sum(len(a.bayes_fits()) for a in run.analyses)


def test_synthetic_banner_and_quick_mode(run):
    html = (run.out_dir / "index.html").read_text()
    assert 'id="synthetic-banner"' in html
    assert "SYNTHETIC DATA: these are not the trials&#39; data" in html
    assert "Quick mode" in html
    md = (run.out_dir / "report.md").read_text()
    assert md.startswith("# Individualized exercise") and "> **SYNTHETIC DATA" in md
    assert "Ostelo et al. 2008" in html  # the MCID caveat


def test_main_cell_contents(run):
    r = run.analysis("pain_active_short")
    assert r.ok and r.k == 32
    assert r.egger is not None and r.rank is not None and r.outliers is not None
    assert set(r.sensitivity) == {"tau: half_normal_0.5", "tau: half_normal_1.0",
                                  "tau: half_cauchy_0.5", "mu: flat"}
    assert r.sensitivity["mu: flat"].priors["mu"] is None
    cr = r.relevance
    assert cr.sd_ref == 2.0 and cr.mcid_smd == pytest.approx(0.75)
    assert list(cr.sd_ref_sensitivity["sd_ref"]) == [1.5, 2.0, 2.5]
    assert len(cr.prior_sensitivity) == 5
    assert cr.frequentist.category == "probably meaningful"  # CI excludes 0, |-0.56| < 1.5
    # quick mode: exact engine. Its posterior checks run on independent draws from the exact
    # posterior when the engine can draw them (no LOO: no pointwise log-likelihood draws);
    # otherwise their absence is a recorded note, never silent.
    if callable(getattr(r.bayes.posterior, "sample", None)):
        assert r.ppc is not None and r.ppc.elpd_loo is None
        assert r.ppc.q_rep.size == run.settings.draws * run.settings.chains
    else:
        assert r.ppc is None
        assert any("posterior predictive checks not computed" in n for n in r.notes)


def test_reanalysis_of_published_cells(run):
    published = pd.read_csv(PUBLISHED).set_index("analysis_id")
    by_id = {re.analysis_id: re for re in run.reanalyses}
    assert set(by_id) == set(published.index)
    # the printed CI is rounded to 2 decimals and may be asymmetric by up to one unit of the
    # last decimal, so a flat-prior interval centred on the estimate lands within half a unit
    # (0.005) of each printed bound; 1e-9 absorbs the floating-point error of that boundary
    for cell, re in by_id.items():
        lo, hi = re.result.interval("mu")
        assert lo == pytest.approx(published.loc[cell, "ci_low"], abs=0.005 + 1e-9)
        assert hi == pytest.approx(published.loc[cell, "ci_high"], abs=0.005 + 1e-9)
        assert re.sign_conflict is (cell == "disability_passive_short")
        assert re.relevance.p_mu_mcid < 0.5  # no published cell is near the MCID
        assert 0 < re.sceptical_relevance.p_mu_mcid <= re.relevance.p_mu_mcid + 1e-12


def test_subgroup_and_meta_regression(run):
    sub = run.analysis("by_comparator_pain_short")
    assert sub.ok and sub.bayes.model == "subgroup"
    assert set(sub.subgroup_relevance) == {"active", "passive"}
    assert sub.reml.qm_p is not None and math.isfinite(sub.reml.q_between)
    reg = run.analysis("metareg_pain")
    assert reg.ok and reg.bayes.model == "meta_regression"
    assert reg.bayes.extras["r2_bayes"] is not None and reg.reml.qm is not None
    coefs = pd.read_csv(run.out_dir / "tables" / "metaregression_coefficients.csv")
    row = coefs[(coefs.analysis == "metareg_pain") & (coefs.term == "duration_weeks")].iloc[0]
    assert row["p_below_0"] == pytest.approx(reg.bayes.prob("duration_weeks", "<", 0.0))
    assert row["reml_estimate"] == pytest.approx(
        float(reg.reml.coefficients.loc["duration_weeks", "estimate"]))


def test_subsets_with_k_0_1_2(tmp_path):
    raw = tomllib.loads(SPEC.read_text())
    raw["sensitivity"] = [
        {"name": "none", "comparators": ["active"], "follow_ups": ["short"],
         "outcomes": ["pain"], "where": {"exercise_type": ["no_such_type"]}},
        {"name": "one", "comparators": ["active"], "follow_ups": ["short"],
         "outcomes": ["pain"], "where": {"study_id": ["Synthetic 03"]}},
        {"name": "two", "comparators": ["active"], "follow_ups": ["short"],
         "outcomes": ["pain"], "where": {"study_id": ["Synthetic 02"]}},
    ]
    raw.pop("meta_regression")
    spec = parse_spec(raw, base_dir=MODELS)
    run = run_spec(spec, quick=True, write=False, progress=False)
    none, one, two = (run.analysis(f"{n}_pain_short") for n in ("none", "one", "two"))
    assert none.status == "skipped" and none.k == 0
    assert any("no rows match" in n for n in none.notes)
    assert any("no_such_type never occur" in n for n in none.notes)
    assert one.ok and one.k == 1 and two.ok and two.k == 2
    assert any("k = 1" in w for w in one.warnings)
    assert any("k = 2" in w for w in two.warnings)
    assert one.bayes.median("mu") == pytest.approx(one.bayes.yi[0], abs=0.2)
    notes = dict(run.notes)
    assert "none_pain_short" in notes


def test_seeds_are_derived_and_stable():
    assert seed_for(20261125, "pain_active_short") == seed_for(20261125, "pain_active_short")
    assert seed_for(20261125, "pain_active_short") != seed_for(20261125, "pain_active_long")
    assert seed_for(1, "pain_active_short") != seed_for(2, "pain_active_short")
    assert 0 <= seed_for(20261125, "x") < 2**31


def test_bad_spec_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    text = SPEC.read_text().replace('data = "../data/', f'data = "{ROOT}/data/')
    bad.write_text(text.replace("mcid = 1.5", "mcdi = 1.5"))
    assert main(["run", str(bad), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "column outcome.pain.mcdi; unknown key; allowed in [outcome.pain]: mcid" in err
    assert not (tmp_path / "out").exists()


def test_output_folder_guard(tmp_path):
    with pytest.raises(InputError, match="contains an input file"):
        check_out_dir(MODELS, [SPEC])
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no earlier report"):
        check_out_dir(tmp_path, [SPEC])


def _slow(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return f"slept {seconds}"


def _fail() -> None:
    raise ValueError("job failed")


def test_output_jobs_in_parallel_keep_order_and_errors():
    import functools
    import os

    from bayesmeta.pipeline.parallel import run_jobs

    jobs = [functools.partial(_slow, 0.01 * (5 - i)) for i in range(5)] + [os.getpid]
    results, notes = run_jobs(jobs, workers=2)
    assert results[:5] == [f"slept {0.01 * (5 - i)}" for i in range(5)]
    assert results[5] != os.getpid()  # ran in a worker process
    assert notes == []
    with pytest.raises(ValueError, match="job failed"):
        run_jobs([_fail, os.getpid], workers=2)
    # a worker that does not finish in time: the job runs here instead, and that is recorded
    results, notes = run_jobs([functools.partial(_slow, 1.0), os.getpid], workers=2,
                              timeout=0.3)
    assert results[0] == "slept 1.0" and "no progress for 0.3 s" in notes[0]
    # the timeout bounds a stall, not the whole pool: 8 x 0.4 s on 2 workers take ~1.6 s in
    # all but never 1.2 s without a job finishing
    jobs = [functools.partial(_slow, 0.4)] * 8
    results, notes = run_jobs(jobs, workers=2, timeout=1.2)
    assert results == ["slept 0.4"] * 8 and notes == []


def test_loo_groups_models_of_the_same_rows():
    import arviz as az
    import xarray as xr

    from bayesmeta.pipeline.analyses import AnalysisResult
    from bayesmeta.pipeline.compare import compare_models
    from bayesmeta.pipeline.plan import Analysis
    from bayesmeta.pipeline.record import Recorder
    from bayesmeta.results import BayesResult, DrawsPosterior

    rng = np.random.default_rng(1)
    labels = tuple(f"s{i}" for i in range(6))
    yi = rng.normal(size=6)

    def result(name: str, kind: str, shift: float, labs=labels) -> AnalysisResult:
        loglik = rng.normal(-1.0 - shift, 0.1, size=(2, 200, len(labs)))
        idata = az.InferenceData(
            posterior=xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, 200)))}),
            log_likelihood=xr.Dataset({"y": (("chain", "draw", "study"), loglik)},
                                      coords={"study": list(labs)}))
        model = {"subgroup": "subgroup", "meta_regression": "meta_regression"}.get(kind,
                                                                                   "pooled")
        bayes = BayesResult(posterior=DrawsPosterior({}), engine="nuts", model=model,
                            yi=yi[:len(labs)], vi=np.ones(len(labs)), labels=labs,
                            measure="SMD", priors={}, idata=idata)
        analysis = Analysis(name, name, kind, "g", "pain", "short", {"outcome": ("pain",)})
        return AnalysisResult(analysis=analysis, k=len(labs), seed=0, status="ok", bayes=bayes)

    results = [result("main", "main", 0.0), result("subset_same_rows", "subset", 0.1),
               result("by_x", "subgroup", 0.3), result("other", "main", 0.0, labels[:4]),
               result("metareg_other_rows", "meta_regression", 0.0, labels[:5])]
    comparisons = compare_models(results, Recorder("test"))
    assert len(comparisons) == 1
    c = comparisons[0]
    assert c.analyses == ("main", "by_x")  # the main cell stands for the pooled model
    table = c.table.set_index("model")
    assert table.loc["main", "rank"] == 0 and table.loc["main", "elpd_diff"] == 0
    assert table.loc["by_x", "elpd_diff"] == pytest.approx(0.3 * 6, rel=0.05)
    assert table.loc["by_x", "dse"] > 0


def test_nuts_fits_share_one_compiled_sampler():
    """The compile-once design: every NUTS fit of a plan (pooled, subgroup, meta-regression)
    uses one sampler sized by the plan's largest k and p, so the plan compiles once."""
    from bayesmeta.bayes.sampling import COMPILE_STATS

    raw = tomllib.loads(SPEC.read_text())
    raw["main"].update(comparators=["active"], follow_ups=["long"])
    raw["main"].pop("published")
    raw["sensitivity"] = [{"name": "by_comparator", "outcomes": ["pain"],
                           "comparators": ["active", "passive"], "follow_ups": ["long"],
                           "subgroup": "comparator"}]
    raw["meta_regression"] = [{"name": "metareg_pain_long", "outcome": "pain",
                               "comparators": ["active", "passive"], "follow_ups": ["long"],
                               "mods": "~ duration_weeks + comparator"}]
    spec = parse_spec(raw, base_dir=MODELS)
    before = dict(COMPILE_STATS)
    run = run_spec(spec, write=False, progress=False)
    fits = [f for a in run.analyses for f in a.bayes_fits().values() if f.engine == "nuts"]
    # 2 main cells, the subgroup model, the meta-regression and the pooled model of their rows
    assert [a.name for a in run.analyses] == [
        "pain_active_long", "disability_active_long", "by_comparator_pain_long",
        "metareg_pain_long", "pooled_pain_active_passive_long"]
    assert len(fits) == 5
    assert run.settings.capacity == 64 and run.settings.coef_slots == 4  # k = 33, p = 3
    assert {f.settings["capacity"] for f in fits} == {64}
    assert {f.settings["coef_slots"] for f in fits} == {4}
    attempts = [a for f in fits for a in f.diagnostics.attempts]
    compiled = COMPILE_STATS["compilations"] - before["compilations"]
    hits = COMPILE_STATS["cache_hits"] - before["cache_hits"]
    # every sampling run compiled or reused; a fit redrawn for the plan's ESS target ran its
    # sampler once more (or more, if the gate retried) on the same compiled structure
    redrawn = sum("redrawn with" in n for a in run.analyses for n in a.notes)
    assert len(attempts) + redrawn <= compiled + hits <= len(attempts) + 4 * redrawn
    # one structure per parametrisation the gate used (the retry ladder may switch once)
    assert compiled <= len({a["parametrisation"] for a in attempts})
    assert run.info["compile_stats"]["compilations"] == compiled
    # the models of the same rows are compared by LOO
    (comparison,) = run.comparisons
    assert comparison.analyses == ("pooled_pain_active_passive_long",
                                   "by_comparator_pain_long", "metareg_pain_long")
    assert set(comparison.table["model"]) == set(comparison.analyses)
    assert all(c.passed for c in run.checks if c.name.startswith("gate"))


def _ar1_draws(rho: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((4, n))
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + rng.normal(size=4)
    return x


def test_primary_fit_below_the_plans_ess_is_redrawn_with_more_draws():
    from types import SimpleNamespace

    from bayesmeta.pipeline.analyses import _headline_ess, _reach_ess
    from bayesmeta.pipeline.record import Recorder

    def fake(draws: int, rho: float) -> SimpleNamespace:
        post = SimpleNamespace(draws={"mu": _ar1_draws(rho, draws, 1),
                                      "tau": np.abs(_ar1_draws(0.0, draws, 2)),
                                      "Study A": _ar1_draws(0.99, draws, 3)})
        return SimpleNamespace(params=("mu", "tau", "Study A"), extras={}, posterior=post,
                               diagnostics=SimpleNamespace(passed=True))

    sticky = fake(1000, 0.8)           # ESS of mu ~ 4000 x 0.2 / 1.8 ~ 450
    ess, worst = _headline_ess(sticky)
    assert ess < 1000 and worst == "mu"  # study effects are not headline parameters
    asked = []
    rec = Recorder("test")
    better = _reach_ess(sticky, rec, "primary", {"draws": 1000},
                        lambda draws: asked.append(draws) or fake(draws, 0.8))
    assert len(asked) == 1 and 2000 < asked[0] <= 4000   # proportional, capped at 4x
    assert _headline_ess(better)[0] >= 1000
    assert "redrawn with" in rec.notes[0] and "still short" not in rec.notes[0]
    # a fit that already reaches it is kept as it is, without a note
    fine = fake(1000, 0.0)
    rec = Recorder("test")
    assert _reach_ess(fine, rec, "primary", {"draws": 1000}, lambda d: 1 / 0) is fine
    assert rec.notes == []
    # draws are counted from the fit in hand (a gate retry may already have drawn 4x), and a
    # redraw that is worse or fails the gate is not kept
    long = fake(4000, 0.95)            # ESS of mu ~ 16000 x 0.05 / 1.95 ~ 410
    rec = Recorder("test")
    asked = []

    def worse(draws):
        asked.append(draws)
        out = fake(draws, 0.99)
        out.diagnostics.passed = False
        return out

    assert _reach_ess(long, rec, "primary", {"draws": 1000}, worse) is long
    assert asked == [] and "most the plan allows" in rec.notes[0]
    rec = Recorder("test")
    assert _reach_ess(sticky, rec, "primary", {"draws": 1000}, worse) is sticky
    assert len(asked) == 1 and "first fit is kept" in rec.notes[0]


def test_benefit_follows_the_declared_direction_without_an_mcid():
    """models/rubin1981.toml declares benefit = higher and no MCID: P(mu: benefit) of the
    pooled summary and of the prior-sensitivity table is P(mu > 0) (not the default side
    below 0); without a declared outcome there is no direction, hence no P(benefit) and no
    'benefit =' in the title. The column label is the run's measure, not SMD."""
    import dataclasses
    from types import SimpleNamespace

    from bayesmeta.pipeline import tables

    spec = parse_spec(MODELS / "rubin1981.toml")
    schools = pd.read_csv(ROOT / "data" / "examples" / "Rubin1981.csv")
    fit = bayesmeta.bayes_rma(schools["effect"].to_numpy(), schools["stderr"].to_numpy() ** 2,
                              tau_prior=spec.prior(spec.priors.tau), mu_prior=None,
                              engine="exact")
    analysis = SimpleNamespace(name="sat_v", kind="main", model="pooled", group="main",
                               outcome="sat_v")
    result = SimpleNamespace(name="sat_v", analysis=analysis, k=8, status="ok", reml=None,
                             bayes=fit, relevance=None, notes=(), sensitivity={})

    def run_of(plan):
        return SimpleNamespace(spec=plan, analyses=[result],
                               settings=SimpleNamespace(level=0.95, primary_label="primary"))

    above = fit.prob("mu", ">", 0.0)
    assert 0.9 < above < 0.99  # eight schools: mu is positive with probability about 0.95
    pooled = tables.pooled_summary(run_of(spec))
    assert pooled.loc[0, "p_mu_benefit"] == pytest.approx(above, abs=1e-12)
    assert tables.prior_sensitivity(run_of(spec)).loc[0, "p_mu_benefit"] == pytest.approx(
        above, abs=1e-12)
    assert pooled.attrs["labels"]["reml_estimate"] == "effect (REML)"
    assert pooled.attrs["title"].endswith("benefit = SAT-V coaching effect (points): above 0")
    lower = dataclasses.replace(spec, outcomes={"sat_v": dataclasses.replace(
        spec.outcomes["sat_v"], direction="lower")})
    assert tables.pooled_summary(run_of(lower)).loc[0, "p_mu_benefit"] == pytest.approx(
        1 - above, abs=1e-9)
    undeclared = dataclasses.replace(spec, outcomes={})
    pooled = tables.pooled_summary(run_of(undeclared))
    assert "p_mu_benefit" not in pooled.columns
    assert "p_mu_benefit" not in tables.prior_sensitivity(run_of(undeclared)).columns
    assert "benefit" not in pooled.attrs["title"]
    log_rr = dataclasses.replace(undeclared, effect=dataclasses.replace(spec.effect,
                                                                        measure="RR"))
    pooled = tables.pooled_summary(run_of(log_rr))
    assert pooled.attrs["labels"]["reml_estimate"] == "log RR (REML)"
    assert pooled.attrs["title"].endswith("estimates on the log scale (log RR, as metafor "
                                          "reports yi: exp() gives the ratio)")


def test_review_report_keeps_the_plans_methods_texts(run):
    """The review's plan (SMD from change scores, MCIDs with sd_ref grids, published cells):
    the texts that apply to it are all there; those of plans without them are not."""
    md = (run.out_dir / "report.md").read_text()
    n_imputed = len(pd.read_csv(run.out_dir / "tables" / "imputed_change_sd.csv"))
    assert n_imputed > 0
    for text in ("Standardized mean difference, Hedges' g (exact bias correction) (SMD; "
                 "yi = +1 x (arm 1 - arm 2); Hedges 1981), computed once by escalc from the "
                 "arm-level summaries.",
                 "Missing change-score SDs were imputed from baseline and follow-up SDs with a "
                 f"pre-post correlation r = 0.5 in {n_imputed} arm(s) (Cochrane 2022)",
                 "confidence intervals, as the review (Viechtbauer 2010)",
                 "SMDs are converted to points with the declared reference SD sd_ref",
                 "- Pain: MCID 1.5 points, benefit = lower, sd_ref 2 points (MCID on the SMD "
                 "scale 0.750; sensitivity grid 1.5, 2, 2.5)",
                 "> **Published MCIDs for low back pain (Ostelo et al. 2008",
                 "The frequentist reading of each REML result uses the review's categories",
                 "The published results are reanalysed as in Spiegelhalter et al. 2004.",
                 "All 8 enforced checks passed (every published cell reproduced).",
                 "Published vs reproduced (8 main cells)",
                 "| analysis | k | SMD (REML) |",
                 "benefit = Pain: below 0; Disability: below 0**",
                 "- Hedges LV (1981)", "- Cochrane (2022)"):
        assert text in md, text
    for text in ("No MCID", "No enforced checks", "Precomputed effects", "log scale",
                 "every row of the table"):
        assert text not in md, text


def test_plan_can_ask_for_partially_pooled_subgroup_means():
    raw = tomllib.loads(SPEC.read_text())
    raw["main"].update(comparators=["active"], follow_ups=["long"], outcomes=["pain"])
    raw["main"].pop("published")
    raw["sensitivity"] = [{"name": "by_comparator", "comparators": ["active", "passive"],
                           "subgroup": "comparator", "subgroup_pooling": True}]
    raw.pop("meta_regression")
    spec = parse_spec(raw, base_dir=MODELS)
    assert spec.sensitivity[0].subgroup_pooling is True
    run = run_spec(spec, quick=True, write=False, progress=False)
    fit = run.analysis("by_comparator_pain_long").bayes
    # quick mode would use the exact engine, which has no partially pooled model: NUTS, said so
    assert fit.engine == "nuts" and fit.settings["subgroup_pooling"] is True
    assert {"omega", "mu_overall"} <= set(fit.params)
    assert any("partially pooled" in n for n in run.analysis("by_comparator_pain_long").notes)
    bad = dict(raw, sensitivity=[{"name": "x", "subgroup": "comparator",
                                  "subgroup_pooling": "yes"}])
    with pytest.raises(InputError, match="subgroup_pooling"):
        parse_spec(bad, base_dir=MODELS)


def test_outlier_rows_name_the_study_tables_rows(run):
    from bayesmeta.io import read_studies

    table = read_studies(ROOT / "data" / "lbp_review_synthetic.csv")
    out = run.analysis("pain_passive_long").outliers
    rows = table.loc[out["row"].astype(int).tolist()]
    # each row number points at that study's pain / long / passive row of the file
    assert [lab.split(" [")[0] for lab in out.index] == rows["study_id"].astype(str).tolist()
    assert set(rows["outcome"]) == {"pain"} and set(rows["follow_up"]) == {"long"}
    assert set(rows["comparator"]) == {"passive"}
