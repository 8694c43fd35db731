"""``run_spec``: an analysis plan end to end, from the study table to the report.

Order of work: read and validate the study table, compute the effect sizes once (recording the
pre-post correlation and every imputed change-score SD; or take them from the columns the spec
names, for a table outside the extraction schema), check that every outcome, comparator and
follow-up the plan selects occurs in the table, expand the plan into analyses, size
the one compiled NUTS sampler that every fit shares (the largest k and the largest number of
coefficients over the plan, each rounded up to a power of two), run every analysis, compare
the published cells with their reproduction, reanalyse the published results, compare models
by LOO, then write the outputs. Seeds derive from the plan's seed and each analysis's name.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import DEFAULTS
from ..errors import InputError, Problem, raise_if
from ..inputs import ESCALC_ATTR, MEASURE_ATTR
from ..spec import Spec, parse_spec
from .analyses import (
    AnalysisResult,
    FitSettings,
    check_outcome,
    run_meta_regression,
    run_pooled,
    run_subgroup,
    skipped,
)
from .compare import LooComparison, compare_models
from .plan import (
    Analysis,
    Selection,
    capacity_plan,
    check_values,
    expand,
    reference_analysis,
    seed_for,
    select,
)
from .provenance import Provenance, provenance
from .published import Reanalysis, published_vs_reproduced, read_published, reanalyse_published
from .record import Recorder

ENGINES = ("nuts", "exact")


@dataclass(frozen=True)
class Check:
    """A pass/fail check of a run. A failed *enforced* check makes the command line exit
    with 1; in quick mode the diagnostics gate is reported but not enforced (the draws were
    cut short on purpose)."""

    name: str
    passed: bool
    message: str
    enforced: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message,
                "enforced": self.enforced}


@dataclass(frozen=True)
class RunResult:
    """Everything a run computed.

    Attributes
    ----------
    spec, settings
        The plan and the priors / engine settings every fit used.
    effects
        The effect-size table (``escalc`` output; its ``attrs["escalc"]`` records the
        imputations).
    provenance, published_provenance
        Where the study table and the published results come from.
    analyses
        One :class:`~bayesmeta.pipeline.analyses.AnalysisResult` per analysis, in plan order.
    published
        Published vs reproduced table (``None`` without ``main.published``).
    reanalyses
        The Bayesian reanalysis of each published cell.
    comparisons
        LOO comparisons of models fitted to the same rows.
    checks
        The diagnostics gate of every NUTS fit, and the reproduction of every published cell.
    warnings
        ``(source, message)`` for every warning of the run.
    notes
        ``(source, message)``: steps not computed and why, exclusions, engine fallbacks.
    info
        The content of run.json (versions, seed, spec hash, timings, compile statistics,
        engine settings, gate outcomes).
    out_dir
        Where the outputs were written (``None`` when not written).
    """

    spec: Spec
    settings: FitSettings
    effects: pd.DataFrame
    provenance: Provenance
    published_provenance: Provenance | None
    analyses: tuple[AnalysisResult, ...]
    published: pd.DataFrame | None
    reanalyses: tuple[Reanalysis, ...]
    comparisons: tuple[LooComparison, ...]
    checks: tuple[Check, ...]
    warnings: tuple[tuple[str, str], ...]
    notes: tuple[tuple[str, str], ...]
    info: Mapping[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def passed(self) -> bool:
        """True when every enforced check passed."""
        return all(c.passed for c in self.checks if c.enforced)

    @property
    def exit_code(self) -> int:
        """0 when every check passed, 1 otherwise (see :mod:`bayesmeta.cli`)."""
        return 0 if self.passed else 1

    def analysis(self, name: str) -> AnalysisResult:
        for a in self.analyses:
            if a.name == name:
                return a
        raise InputError(Problem(f"no such analysis; analyses: "
                                 f"{', '.join(a.name for a in self.analyses)}",
                                 column="name", value=name))

    def of_kind(self, kind: str) -> list[AnalysisResult]:
        return [a for a in self.analyses if a.analysis.kind == kind]


class Progress:
    """One line per finished step on stderr (no dependency; long runs show they move)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done = total, enabled, 0
        self.start = time.perf_counter()

    def line(self, text: str, count: bool = False) -> None:
        if count:
            self.done += 1
        if not self.enabled:
            return
        where = f"[{self.done:>2}/{self.total}] " if count else ""
        elapsed = time.perf_counter() - self.start
        print(f"bayesmeta: {where}{text} ({elapsed:.1f} s)", file=sys.stderr, flush=True)


def default_out_dir(spec: Spec) -> Path:
    return Path("reports") / spec.name


def check_out_dir(out_dir: Path, protected: list[Path]) -> None:
    """Refuse an output folder that holds an input file, or a non-empty folder that is not a
    previous report (its content would be replaced)."""
    out = out_dir.resolve()
    for p in protected:
        p = p.resolve()
        if p == out or out in p.parents:
            raise InputError(Problem(f"the output folder contains an input file ({p}); the "
                                     "report would replace it: choose another --out",
                                     column="out", value=str(out_dir)))
    if out.exists() and not out.is_dir():
        raise InputError(Problem("the output path exists and is not a folder", column="out",
                                 value=str(out_dir)))
    if out.is_dir() and any(out.iterdir()) and not (out / "run.json").exists():
        raise InputError(Problem("the output folder is not empty and holds no earlier "
                                 "report (run.json): its content would be replaced; choose "
                                 "another --out or empty it", column="out",
                                 value=str(out_dir)))


def _settings(spec: Spec, engine: str | None, quick: bool, capacity: int,
              coef_slots: int) -> FitSettings:
    from ..bayes.models import capacity_for, coef_slots_for

    primary = "exact" if quick else (engine or spec.engine.primary)
    pr = spec.priors
    return FitSettings(
        measure=spec.effect.measure,
        tau_name=pr.tau, tau_prior=spec.prior(pr.tau),
        mu_name=pr.mu, mu_prior=spec.prior(pr.mu),
        tau_sensitivity=tuple((n, spec.prior(n)) for n in pr.tau_sensitivity),
        mu_sensitivity=tuple((n, spec.prior(n)) for n in pr.mu_sensitivity),
        primary_engine=primary,
        sensitivity_engine="exact" if quick else spec.engine.sensitivity,
        draws=DEFAULTS.quick_draws if quick else spec.engine.draws,
        tune=DEFAULTS.quick_tune if quick else spec.engine.tune,
        chains=spec.engine.chains, target_accept=spec.engine.target_accept,
        retry=not quick, capacity=capacity_for(capacity), coef_slots=coef_slots_for(coef_slots),
        level=DEFAULTS.level, quick=quick)


def _spec_context(spec: Spec) -> str:
    return f"spec {spec.path}" if spec.path else "spec"


def read_any_table(path: Path) -> pd.DataFrame:
    """A table outside the extraction schema (e.g. a metafor dataset), read as it is.

    Every column is typed as :func:`bayesmeta.io.read_studies` types the columns outside its
    schema (numbers, else yes/no, else text); the index ``row`` is the 1-based data row.
    """
    from ..io.cells import infer_column
    from ..io.sources import load

    raw = load(path)
    problems = list(raw.problems)
    names = list(raw.header)
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("the column name occurs more than once; each column needs "
                                "its own name", column=name, show_value=False))
    if not raw.rows:
        problems.append(Problem("the table has no data rows"))
    raise_if(problems, raw.context)
    data = {}
    for name, values in zip(raw.header, raw.columns, strict=True):
        parsed, dtype = infer_column(values)
        data[name] = pd.array(parsed, dtype=dtype)
    return pd.DataFrame(data, index=pd.Index(np.asarray(raw.rows, dtype=np.int64), name="row"))


def given_effects(spec: Spec, table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``yi`` / ``vi`` taken from the columns ``[effect]`` names (``yi`` times
    ``sign``; ``vi`` or ``sei`` squared). Every missing or impossible value is an error naming
    row, study, column and value; a ``yi``/``vi`` column of the table that is replaced is
    recorded."""
    e = spec.effect
    problems = []
    for key in ("yi", "vi", "sei"):
        col = getattr(e, key)
        if col is None:
            continue
        if col not in table.columns:
            problems.append(Problem(f"no such column in {spec.data.name}; its columns: "
                                    f"{', '.join(map(str, table.columns))}",
                                    column=f"effect.{key}", value=col))
        elif not pd.api.types.is_float_dtype(table[col].dtype):
            problems.append(Problem(f"column {col} holds text, not numbers",
                                    column=f"effect.{key}", value=col))
    raise_if(problems, _spec_context(spec))
    spread = e.vi or e.sei
    assert e.yi is not None and spread is not None  # effect_problems guarantees both
    labels = next((table[c].astype("object").to_numpy() for c in ("study_id", "label")
                   if c in table.columns), [None] * len(table))
    yi = table[e.yi].to_numpy(dtype=float, na_value=np.nan)
    spread_values = table[spread].to_numpy(dtype=float, na_value=np.nan)
    noun = "a sampling variance" if e.vi else "a standard error"
    for i, row in enumerate(table.index):
        study = None if labels[i] is None or pd.isna(labels[i]) else str(labels[i])
        if not np.isfinite(yi[i]):
            problems.append(Problem("an effect size must be a finite number (a study without "
                                    "one cannot be pooled: remove the row)", row=int(row),
                                    study=study, column=e.yi, value=float(yi[i])))
        if not (np.isfinite(spread_values[i]) and spread_values[i] > 0):
            problems.append(Problem(f"{noun} must be a finite number > 0", row=int(row),
                                    study=study, column=spread,
                                    value=float(spread_values[i])))
    raise_if(problems, spec.data.name)
    out = table.copy()
    replaced = [c for c, source in (("yi", e.yi), ("vi", e.vi)) if c in table.columns
                and c != source]
    out["yi"] = e.sign * yi
    out["vi"] = spread_values if e.vi else spread_values ** 2
    notes = [f"column {c} of the table replaced by the effects the spec names" for c in replaced]
    out.attrs = {MEASURE_ATTR: e.measure, ESCALC_ATTR: {
        "measure": e.measure, "description": e.describe_source(), "sign": e.sign,
        "direction": "yi as given" if e.sign == 1 else "yi = -1 x the given effect",
        "prepost_r": None, "inputs": {k: v for k in ("yi", "vi", "sei")
                                      if (v := getattr(e, k)) is not None},
        "imputed_change_sd": [], "replaced_columns": replaced, "warnings": [],
        "notes": notes}}
    return out


def _read(spec: Spec, rec: Recorder) -> tuple[pd.DataFrame, Provenance]:
    from ..effects import escalc
    from ..io import read_studies

    e = spec.effect
    with rec.step("read_and_escalc"):
        if e.schema_table:
            table = read_studies(spec.data)
            for item in table.attrs.get("excluded", []):
                rec.note(f"row {item['row']} ({item['study_id']}) kept out of the study "
                         f"table: {item['reason']}")
            effects = escalc(e.measure, data=table, prepost_r=e.prepost_r, sign=e.sign)
        else:
            table = read_any_table(spec.data)
            if e.yi is not None:
                effects = given_effects(spec, table)
            else:
                effects = escalc(e.measure, data=table, prepost_r=e.prepost_r, sign=e.sign,
                                 **e.inputs)
    record = effects.attrs.get("escalc", {})
    for note in record.get("notes", []):
        rec.note(f"{'effects' if e.yi is not None else 'escalc'}: {note}")
    return effects, provenance(spec.data, table)


def _plan(spec: Spec, effects: pd.DataFrame, with_references: bool
          ) -> tuple[list[Analysis], dict[str, Selection]]:
    analyses = expand(spec)
    selections = {a.name: select(effects, a) for a in analyses}
    if with_references:
        pooled_rows = {tuple(selections[a.name].rows) for a in analyses
                       if a.model == "pooled"}
        extra = []
        for a in analyses:
            if a.model == "pooled":
                continue
            ref = reference_analysis(a)
            sel = select(effects, ref)
            if sel.k and tuple(sel.rows) not in pooled_rows:
                pooled_rows.add(tuple(sel.rows))
                extra.append(ref)
                selections[ref.name] = sel
        analyses += extra
    for a in analyses:
        if a.follow_up is None and "follow_up" in effects.columns:
            rows = effects.iloc[selections[a.name].rows]
            times = sorted(map(str, rows["follow_up"].dropna().unique()))
            if len(times) > 1:
                s = selections[a.name]
                selections[a.name] = Selection(s.rows, (*s.notes, (
                    f"rows of several follow-ups pooled ({', '.join(times)}): a study's "
                    "results at different times are not independent")))
    return analyses, selections


def _fit_table(effects: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """The effect sizes with only the measure in ``attrs``: pandas deep-copies attrs on every
    operation, and the escalc record (every imputation and warning) made each fit slow."""
    table = effects.copy(deep=False)
    table.attrs = {MEASURE_ATTR: effects.attrs.get(MEASURE_ATTR, spec.effect.measure)}
    return table


def _run_one(spec: Spec, a: Analysis, sel: Selection, effects: pd.DataFrame,
             settings: FitSettings) -> AnalysisResult:
    seed = seed_for(spec.seed, a.name)
    if sel.k == 0:
        return skipped(a, 0, seed, f"no rows match ({a.describe_filters()})", sel.notes)
    notes = sel.notes
    if sel.k <= 2:
        notes = (*notes, f"k = {sel.k}: run with warnings (between-study heterogeneity is "
                         "barely identified; the tau posterior leans on its prior)")
    rows = effects.iloc[sel.rows]
    if rows.index.name != "row":  # read_studies' row numbers name the file's rows in outputs
        rows = rows.reset_index(drop=True)
    outcome = None if a.outcome is None else check_outcome(spec.outcomes, a)
    if a.kind == "subgroup":
        return run_subgroup(a, rows, seed, settings, outcome, notes)
    if a.kind == "meta_regression":
        return run_meta_regression(a, rows, seed, settings, notes)
    return run_pooled(a, rows, seed, settings, outcome, notes)


def _describe(result: AnalysisResult) -> str:
    if not result.ok:
        return "skipped"
    parts = [f"k = {result.k}"]
    if result.bayes is not None:
        b = result.bayes
        parts.append(b.engine)
        if b.diagnostics is not None:
            parts.append("gate " + ("passed" if b.diagnostics.passed else "FAILED"))
    return ", ".join(parts)


def _checks(analyses: list[AnalysisResult], published: pd.DataFrame | None,
            quick: bool) -> list[Check]:
    checks = []
    for r in analyses:
        for label, fit in r.bayes_fits().items():
            if fit.diagnostics is None:
                continue
            d = fit.diagnostics
            message = "passed" if d.passed else "; ".join(d.messages)
            if quick and not d.passed:
                message += " (quick mode: draws cut short, not enforced)"
            checks.append(Check(f"gate {r.name} [{label}]", bool(d.passed), message,
                                enforced=not quick))
    if published is not None:
        for row in published.itertuples(index=False):
            checks.append(Check(f"published {row.analysis_id}", bool(row.match),
                                "reproduced" if row.match else f"differs in {row.mismatch}"))
    return checks


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from ..results import package_versions

    out = package_versions()
    for name in ("matplotlib", "jinja2", "formulaic"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _step_totals(analyses: list[AnalysisResult], global_timings: Mapping[str, float]
                 ) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in analyses:
        for step, s in r.timings.items():
            totals[step] = totals.get(step, 0.0) + s
    for step, s in global_timings.items():
        totals[step] = totals.get(step, 0.0) + s
    return {k: round(v, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def run_spec(spec_or_path: Spec | str | os.PathLike, *, out_dir: str | os.PathLike | None = None,
             engine: str | None = None, quick: bool = False, progress: bool = True,
             write: bool = True, workers: int = DEFAULTS.output_workers) -> RunResult:
    """Run an analysis plan end to end and write its report.

    Parameters
    ----------
    spec_or_path
        A parsed :class:`~bayesmeta.spec.Spec` or the path of a ``models/*.toml`` file.
    out_dir
        Output folder (default ``reports/<spec.name>``). It is written atomically: the
        outputs go to a temporary folder beside it, which then replaces it. A folder holding
        an input file, or a non-empty folder without an earlier report's run.json, is refused.
    engine
        ``"nuts"`` or ``"exact"`` for the primary priors (default: the spec's
        ``engine.primary``). Subgroup and meta-regression models fall back to NUTS where the
        exact engine cannot fit them (recorded).
    quick
        Smoke-test mode: the exact engine wherever it exists, NUTS fits left over shortened to
        ``DEFAULTS.quick_draws`` draws without retries; the report says so.
    progress
        Print one line per finished analysis to stderr.
    write
        Write the outputs (index.html, report.md, tables/, idata/, figures/, run.json).
    workers
        Processes that rasterise the figures and write the netCDF files (forked after the
        fits; 1 = in this process). See :mod:`bayesmeta.pipeline.parallel`.

    Returns
    -------
    RunResult
        ``exit_code`` is 0 when every check passed (diagnostics gates, published cells
        reproduced), else 1.
    """
    from ..bayes.sampling import COMPILE_STATS

    started = time.perf_counter()
    wall_start = time.time()
    if engine is not None and engine not in ENGINES:
        raise InputError(Problem(f"engine must be one of {', '.join(ENGINES)}", column="engine",
                                 value=engine))
    spec = spec_or_path if isinstance(spec_or_path, Spec) else parse_spec(spec_or_path)
    out = Path(out_dir) if out_dir is not None else default_out_dir(spec)
    if write:
        protected = [p for p in (spec.path, spec.data, spec.published) if p is not None]
        check_out_dir(out, protected)
    compile_before = dict(COMPILE_STATS)
    rec = Recorder("run")
    effects, prov = _read(spec, rec)
    raise_if(check_values(spec, effects), _spec_context(spec))
    pub_prov = None
    published_table = None
    if spec.published is not None:
        with rec.step("published"):
            published_table = read_published(spec.published)
        pub_prov = provenance(spec.published, published_table)
    primary = "exact" if quick else (engine or spec.engine.primary)
    analyses, selections = _plan(spec, effects, with_references=primary == "nuts")
    max_k, max_p = capacity_plan(effects, selections, analyses)
    settings = _settings(spec, engine, quick, max_k, max_p)
    bar = Progress(len(analyses), progress)
    bar.line(f"{spec.name}: {len(analyses)} analyses of {len(effects)} rows; primary engine "
             f"{settings.primary_engine}" + (" (quick mode)" if quick else "")
             + f"; NUTS sampler sized k <= {settings.capacity}, p <= {settings.coef_slots}")
    results = []
    fit_table = _fit_table(effects, spec)
    for a in analyses:
        r = _run_one(spec, a, selections[a.name], fit_table, settings)
        results.append(r)
        bar.line(f"{a.name}: {_describe(r)}", count=True)
    fits = {r.name: r.reml for r in results if r.analysis.kind == "main" and r.ok}
    comparison = None
    reanalyses: list[Reanalysis] = []
    if published_table is not None:
        with rec.step("published"):
            comparison = published_vs_reproduced(published_table, fits)
        reanalyses = reanalyse_published(published_table, spec.outcomes, spec.effect.measure,
                                         rec)
    comparisons = compare_models(results, rec)
    if primary == "nuts" and not comparisons:
        rec.note("LOO comparison: no two model families were fitted by NUTS to the same rows")
    elif primary != "nuts":
        rec.note("LOO comparison not computed: it needs NUTS fits (pointwise log-likelihood "
                 "draws); this run used the exact engine")
    checks = _checks(results, comparison, quick)
    warnings_ = [("data", w) for w in rec.warnings if w.startswith("read_and_escalc")]
    warnings_ += [("run", w) for w in rec.warnings if not w.startswith("read_and_escalc")]
    for r in results:
        warnings_ += [(r.name, w) for w in r.warnings]
    notes = [("run", n) for n in rec.notes]
    for r in results:
        notes += [(r.name, n) for n in r.notes]
    compile_stats = {k: (round(v - compile_before.get(k, 0), 3) if isinstance(v, float)
                         else v - compile_before.get(k, 0)) for k, v in COMPILE_STATS.items()}
    info = {
        "bayesmeta_format": 1,
        "name": spec.name,
        "title": spec.title,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall_start)),
        "versions": _versions(),
        "seed": spec.seed,
        "spec": {"path": str(spec.path) if spec.path else None, "sha256": spec.sha256},
        "data": prov.to_dict(),
        "effect": {"measure": spec.effect.measure, "source": spec.effect.describe_source(),
                   "sign": spec.effect.sign},
        "published": None if pub_prov is None else pub_prov.to_dict(),
        "quick": quick,
        "engine": {"primary": settings.primary_engine,
                   "sensitivity": settings.sensitivity_engine,
                   "draws": settings.draws, "tune": settings.tune, "chains": settings.chains,
                   "target_accept": settings.target_accept, "retry": settings.retry,
                   "capacity": settings.capacity, "coef_slots": settings.coef_slots,
                   "max_k": max_k, "max_p": max_p, "level": settings.level},
        "compile_stats": compile_stats,
        "gate": [{"analysis": r.name, "fit": label, **fit.diagnostics.to_dict()}
                 for r in results for label, fit in r.bayes_fits().items()
                 if fit.diagnostics is not None],
        "checks": [c.to_dict() for c in checks],
        "passed": all(c.passed for c in checks if c.enforced),
        "analyses": [{"name": r.name, "kind": r.analysis.kind, "label": r.analysis.label,
                      "k": r.k, "seed": r.seed, "status": r.status,
                      "engine": None if r.bayes is None else r.bayes.engine,
                      "seconds": round(sum(r.timings.values()), 3)} for r in results],
        "n_warnings": len(warnings_),
        "library_warnings": sorted({w for r in results for w in r.library_warnings}
                                   | set(rec.library)),
        "timings": {"steps": _step_totals(results, rec.timings),
                    "analyses": {r.name: {k: round(v, 3) for k, v in r.timings.items()}
                                 for r in results},
                    "analysis_seconds": round(time.perf_counter() - started, 3)},
    }
    run = RunResult(spec=spec, settings=settings, effects=effects, provenance=prov,
                    published_provenance=pub_prov, analyses=tuple(results), published=comparison,
                    reanalyses=tuple(reanalyses), comparisons=tuple(comparisons),
                    checks=tuple(checks), warnings=tuple(warnings_), notes=tuple(notes),
                    info=info)
    if write:
        from .outputs import write_outputs

        bar.line(f"writing the report to {out}")
        run = write_outputs(run, out, started=started, workers=workers)
    else:
        info["timings"]["wall_seconds"] = round(time.perf_counter() - started, 3)
        run = replace(run, info=info)
    bar.line(f"done: {'all checks passed' if run.passed else 'some checks FAILED'}; "
             f"wall time {run.info['timings']['wall_seconds']:.1f} s")
    return run
