"""The run's results as tables: the CSV files of ``tables/`` and the numbers of the report.

Every table is a DataFrame with snake_case columns (stable names for the CSV files) and
``attrs``: ``title``, ``labels`` (display names of columns, with the interval coverage taken
from the results' ``level``) and ``notes``. Nothing is computed here beyond reading results
through their accessors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..config import DEFAULTS
from ..frequentist.rma import SubgroupResult
from ..results import BayesResult

if TYPE_CHECKING:  # pragma: no cover
    from .analyses import AnalysisResult
    from .runner import RunResult


def pct(level: float) -> str:
    return f"{100 * level:g}%"


#: measures whose effects metafor reports on a transformed scale: column label and scale
_TRANSFORMED = {"OR": ("log OR", "log"), "RR": ("log RR", "log"), "ROM": ("log ROM", "log"),
                "PLN": ("log proportion", "log"), "PLO": ("logit proportion", "logit"),
                "ZCOR": ("Fisher z", "Fisher z")}


def effect_label(measure: str) -> str:
    """Short name of the scale the effects (and every pooled estimate) are on: the measure,
    or e.g. ``"log RR"`` where metafor's yi is the log of the ratio (``"effect"`` for GEN)."""
    if measure in _TRANSFORMED:
        return _TRANSFORMED[measure][0]
    return "effect" if measure == "GEN" else measure


def scale_note(measure: str) -> str:
    """A clause saying the estimates are on a transformed scale ("" when they are not)."""
    if measure not in _TRANSFORMED:
        return ""
    label, scale = _TRANSFORMED[measure]
    back = ": exp() gives the ratio" if scale == "log" and measure != "PLN" else ""
    return f"estimates on the {scale} scale ({label}, as metafor reports yi{back})"


def _benefit_op(run: RunResult, r: AnalysisResult) -> str | None:
    """``"<"`` or ``">"``: the side of 0 the plan declares as benefit for the analysis's
    outcome (``None`` when no outcome, hence no direction, is declared)."""
    outcome = run.spec.outcomes.get(r.analysis.outcome) if r.analysis.outcome else None
    if outcome is None:
        return None
    return "<" if outcome.direction == "lower" else ">"


def _frame(rows: list[dict[str, Any]], title: str, labels: dict[str, str] | None = None,
           notes: list[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    df.attrs.update({"title": title, "labels": labels or {}, "notes": notes or []})
    return df


def posterior_row(b: BayesResult, param: str, prefix: str) -> dict[str, Any]:
    """Median and equal-tailed interval of ``param`` as ``<prefix>_median`` etc."""
    if param not in b.params:
        return {}
    lo, hi = b.interval(param)
    return {f"{prefix}_median": b.median(param), f"{prefix}_ci_low": lo,
            f"{prefix}_ci_high": hi}


def _pooled(r: AnalysisResult) -> bool:
    return r.ok and r.analysis.model == "pooled"


def pooled_summary(run: RunResult) -> pd.DataFrame:
    """One row per pooled analysis (main cells, subsets, reference models): REML beside the
    primary Bayesian fit and the clinical-relevance probabilities."""
    level = run.settings.level
    rows = []
    for r in run.analyses:
        if r.analysis.model != "pooled":
            continue
        row: dict[str, Any] = {"analysis": r.name, "kind": r.analysis.kind,
                               "group": r.analysis.group, "outcome": r.analysis.outcome,
                               "k": r.k, "status": r.status}
        if r.reml is not None:
            d = r.reml.to_dict()
            row.update({"reml_estimate": d["estimate"], "reml_ci_low": d["ci_low"],
                        "reml_ci_high": d["ci_high"], "reml_pval": d["pval"],
                        "reml_pi_low": d["pi_low"], "reml_pi_high": d["pi_high"],
                        "tau2": d["tau2"], "i2": d["i2"]})
        b = r.bayes
        if b is not None:
            row["engine"] = b.engine
            row.update(posterior_row(b, "mu", "mu"))
            row.update(posterior_row(b, "tau", "tau"))
            row.update(posterior_row(b, "theta_new", "theta_new"))
        cr = r.relevance
        if cr is not None:
            row.update({"p_mu_benefit": cr.p_mu_benefit, "p_mu_mcid": cr.p_mu_mcid,
                        "p_new_mcid": cr.p_new_mcid, "mcid_smd": cr.mcid_smd,
                        "frequentist_reading": None if cr.frequentist is None
                        else cr.frequentist.category})
        elif b is not None and "mu" in b.params and (op := _benefit_op(run, r)) is not None:
            # no MCID: the declared direction still defines P(benefit)
            row["p_mu_benefit"] = b.prob("mu", op, 0.0)
        row["notes"] = " | ".join(r.notes)
        rows.append(row)
    p = pct(level)
    measure = run.spec.effect.measure
    labels = {"k": "k", "reml_estimate": f"{effect_label(measure)} (REML)",
              "reml_ci_low": f"{p} CI low",
              "reml_ci_high": f"{p} CI high", "reml_pval": "p", "tau2": "tau² (REML)",
              "i2": "I² (%)", "mu_median": "mu (median)", "mu_ci_low": f"{p} CrI low",
              "mu_ci_high": f"{p} CrI high", "tau_median": "tau (median)",
              "theta_new_ci_low": f"theta_new {p} low", "theta_new_ci_high":
              f"theta_new {p} high", "p_mu_benefit": "P(mu: benefit)", "p_mu_mcid":
              "P(mu beyond MCID)", "p_new_mcid": "P(theta_new beyond MCID)",
              "frequentist_reading": "frequentist reading", "engine": "engine",
              "reml_pi_low": f"{p} PI low", "reml_pi_high": f"{p} PI high"}
    benefit = "; ".join(f"{o.label or o.name}: {'below' if o.direction == 'lower' else 'above'} 0"
                        for o in run.spec.outcomes.values())
    title = (f"Pooled analyses: REML (z-based {p} CI) beside the Bayesian posterior ({p} "
             "equal-tailed credible intervals)")
    for clause in (scale_note(measure), f"benefit = {benefit}" if benefit else ""):
        if clause:
            title += f"; {clause}"
    return _frame(rows, title, labels)


def reml_vs_bayes(r: AnalysisResult) -> pd.DataFrame:
    """The REML-vs-Bayes table of one pooled analysis: mu, tau, tau², theta_new (prediction)."""
    rows = []
    fit = r.reml
    d = fit.to_dict() if fit is not None else {}
    level = r.bayes.level if r.bayes is not None else (fit.level if fit is not None else 0.95)
    ci_tau: dict[str, Any] = {}
    ci = r.heterogeneity_ci
    if ci is not None:
        ci_tau = {"tau": (ci.loc["tau", "ci_low"], ci.loc["tau", "ci_high"]),
                  "tau2": (ci.loc["tau2", "ci_low"], ci.loc["tau2", "ci_high"])}
    quantities = [("mu", "mu (pooled effect)", d.get("estimate"), d.get("ci_low"),
                   d.get("ci_high")),
                  ("tau", "tau (between-study SD)", d.get("tau"), *ci_tau.get("tau",
                                                                              (None, None))),
                  ("tau2", "tau²", d.get("tau2"), *ci_tau.get("tau2", (None, None))),
                  ("theta_new", "theta_new (new study; REML: prediction interval)",
                   d.get("estimate"), d.get("pi_low"), d.get("pi_high"))]
    for key, name, est, lo, hi in quantities:
        row: dict[str, Any] = {"analysis": r.name, "quantity": key, "label": name,
                               "reml_estimate": est, "reml_ci_low": lo, "reml_ci_high": hi}
        for prefix, b in (("bayes", r.bayes), ("exact", r.exact_check)):
            if b is None:
                continue
            if key == "tau2":
                if "tau" in b.params:
                    q = np.asarray(b.quantile("tau", [0.5, (1 - level) / 2, (1 + level) / 2]))
                    row.update({f"{prefix}_median": q[0] ** 2, f"{prefix}_ci_low": q[1] ** 2,
                                f"{prefix}_ci_high": q[2] ** 2})
            else:
                row.update(posterior_row(b, key, prefix))
        rows.append(row)
    p = pct(level)
    bayes_engine = r.bayes.engine if r.bayes is not None else ""
    labels = {"label": "quantity", "reml_estimate": "REML estimate",
              "reml_ci_low": f"{p} CI low", "reml_ci_high": f"{p} CI high",
              "bayes_median": f"Bayes ({bayes_engine}) median", "bayes_ci_low": f"{p} CrI low",
              "bayes_ci_high": f"{p} CrI high", "exact_median": "Bayes (exact) median",
              "exact_ci_low": f"{p} CrI low ", "exact_ci_high": f"{p} CrI high "}
    return _frame(rows, f"{r.name}: REML (z; Q-profile CI for tau) vs Bayesian posterior "
                  f"({p} equal-tailed)", labels)


def clinical_relevance_table(run: RunResult) -> pd.DataFrame:
    rows = []
    for r in run.analyses:
        items = []
        if r.relevance is not None:
            items.append(("", r.relevance))
        items += [(lv, cr) for lv, cr in r.subgroup_relevance.items()]
        for level, cr in items:
            d = cr.to_dict()
            row = {"analysis": r.name, "kind": r.analysis.kind, "subgroup": level,
                   "param": cr.param, "mcid_points": cr.mcid, "sd_ref": cr.sd_ref,
                   "mcid_smd": cr.mcid_smd, "direction": cr.direction,
                   "p_mu_benefit": cr.p_mu_benefit, "p_mu_mcid": cr.p_mu_mcid,
                   "p_new_benefit": cr.p_new_benefit, "p_new_mcid": cr.p_new_mcid}
            if cr.p_mu_rope is not None:
                row["p_mu_rope"] = cr.p_mu_rope
            fr = d.get("frequentist")
            if fr:
                row.update({"reml_estimate": fr["estimate"], "reml_estimate_points":
                            fr["estimate_vas"], "significant": fr["significant"],
                            "beyond_mcid": fr["beyond_mcid"], "frequentist_reading":
                            fr["category"]})
            rows.append(row)
    labels = {"mcid_points": "MCID (points)", "sd_ref": "sd_ref",
              "mcid_smd": f"MCID ({effect_label(run.spec.effect.measure)})",
              "p_mu_benefit": "P(mu: benefit)", "p_mu_mcid": "P(mu beyond MCID)",
              "p_new_benefit": "P(theta_new: benefit)", "p_new_mcid": "P(theta_new beyond MCID)",
              "reml_estimate_points": "REML estimate (points)",
              "frequentist_reading": "frequentist reading"}
    return _frame(rows, "Clinical relevance: posterior probabilities and the frequentist "
                  "reading", labels)


def sd_ref_sensitivity(run: RunResult) -> pd.DataFrame:
    rows = []
    for r in run.analyses:
        cr = r.relevance
        if cr is None or cr.sd_ref_sensitivity is None:
            continue
        for rec in cr.sd_ref_sensitivity.to_dict("records"):
            rows.append({"analysis": r.name, **rec})
    return _frame(rows, "Sensitivity of the MCID probabilities to sd_ref",
                  {"sd_ref": "sd_ref (points)", "mcid_smd": "MCID (SMD)",
                   "p_mu_mcid": "P(mu beyond MCID)", "p_new_mcid": "P(theta_new beyond MCID)"})


def prior_sensitivity(run: RunResult) -> pd.DataFrame:
    rows = []
    for r in run.analyses:
        if r.analysis.kind != "main" or r.bayes is None:
            continue
        fits = {run.settings.primary_label: r.bayes, **r.sensitivity}
        mcid = r.relevance.mcid_smd if r.relevance is not None else None
        # the side of benefit the plan declares (None: no outcome, no P(benefit))
        op = (("<" if r.relevance.direction == "lower" else ">") if r.relevance is not None
              else _benefit_op(run, r))
        signed = None if mcid is None else (-mcid if op == "<" else mcid)
        for label, b in fits.items():
            row = {"analysis": r.name, "prior": label, "engine": b.engine}
            for p in ("mu", "tau", "theta_new"):
                row.update(posterior_row(b, p, p))
            if op is not None:
                row["p_mu_benefit"] = b.prob("mu", op, 0.0)
            if signed is not None:
                row["p_mu_mcid"] = b.prob("mu", op, signed)
                row["p_new_mcid"] = b.prob("theta_new", op, signed)
            rows.append(row)
    p = pct(run.settings.level)
    return _frame(rows, f"Prior sensitivity of the main cells (medians, {p} equal-tailed "
                  "intervals)", {"mu_median": "mu median", "mu_ci_low": f"{p} low",
                                 "mu_ci_high": f"{p} high", "tau_median": "tau median",
                                 "tau_ci_low": f"tau {p} low", "tau_ci_high": f"tau {p} high",
                                 "theta_new_median": "theta_new median",
                                 "theta_new_ci_low": f"theta_new {p} low",
                                 "theta_new_ci_high": f"theta_new {p} high",
                                 "p_mu_benefit": "P(mu: benefit)",
                                 "p_mu_mcid": "P(mu beyond MCID)",
                                 "p_new_mcid": "P(theta_new beyond MCID)"})


def mcid_curves(run: RunResult) -> pd.DataFrame:
    parts = []
    for r in run.analyses:
        items = ([("", r.relevance)] if r.relevance is not None else []) + list(
            r.subgroup_relevance.items())
        for level, cr in items:
            c = cr.curve.copy()
            c.insert(0, "subgroup", level)
            c.insert(0, "analysis", r.name)
            parts.append(c)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    df.attrs.update({"title": "Probability of a benefit beyond each threshold", "labels": {},
                     "notes": []})
    return df


def bias_tests(run: RunResult) -> pd.DataFrame:
    rows = []
    for r in run.of_kind("main"):
        if not r.ok:
            continue
        row: dict[str, Any] = {"analysis": r.name, "k": r.k}
        if r.egger is not None:
            e = r.egger.to_dict()
            row.update({"egger_z": e.get("zval", e.get("tval")), "egger_p": e["pval"],
                        "egger_limit_estimate": e["limit_estimate"]})
        if r.rank is not None:
            row.update({"rank_tau": r.rank.tau, "rank_p": r.rank.pval,
                        "rank_exact": r.rank.exact})
        rows.append(row)
    return _frame(rows, "Small-study effects: Egger's regression test (standard error as "
                  "predictor, mixed-effects model) and the rank correlation test",
                  {"egger_z": "Egger z", "egger_p": "Egger p", "egger_limit_estimate":
                   "limit estimate (SE -> 0)", "rank_tau": "Kendall's tau", "rank_p": "rank p",
                   "rank_exact": "exact p"})


def outlier_table(run: RunResult) -> pd.DataFrame:
    parts = []
    for r in run.of_kind("main"):
        if r.outliers is None:
            continue
        df = r.outliers.reset_index().rename(columns={r.outliers.index.name or "index":
                                                      "study"})
        df.insert(0, "analysis", r.name)
        parts.append(df)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out.attrs.update({"title": "Outliers (Bonferroni-corrected externally studentized "
                      "residuals) and influential studies (metafor's rules)", "labels": {
                          "rstudent": "rstudent", "cooks_d": "Cook's D",
                          "max_abs_dfbetas": "max |DFBETAS|", "cov_r": "cov ratio"},
                      "notes": []})
    return out


def subgroup_tables(run: RunResult) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    levels_rows, diff_rows, test_rows = [], [], []
    for r in run.of_kind("subgroup"):
        if not r.ok or r.bayes is None:
            continue
        b = r.bayes
        twin = r.reml
        flagged = set(b.extras.get("flagged", []))
        counts = b.extras.get("k_per_subgroup", {})
        for lv in b.extras.get("levels", []):
            # the column beside its level: a yes/no column's levels read True / False
            row: dict[str, Any] = {"analysis": r.name, "variable": r.analysis.subgroup,
                                   "subgroup": lv, "k": counts.get(lv),
                                   "flagged": lv in flagged}
            if isinstance(twin, SubgroupResult):
                fit = next((f for key, f in twin.fits.items() if str(key) == lv), None)
                if fit is not None:
                    row.update({"reml_estimate": float(fit.beta[0]),
                                "reml_ci_low": float(fit.ci_low[0]),
                                "reml_ci_high": float(fit.ci_high[0]), "reml_i2": fit.i2})
            row.update(posterior_row(b, f"mu[{lv}]", "mu"))
            row.update(posterior_row(b, f"theta_new[{lv}]", "theta_new"))
            cr = r.subgroup_relevance.get(lv)
            if cr is not None:
                row.update({"p_mu_benefit": cr.p_mu_benefit, "p_mu_mcid": cr.p_mu_mcid,
                            "p_new_mcid": cr.p_new_mcid})
            elif f"mu[{lv}]" in b.params and (op := _benefit_op(run, r)) is not None:
                row["p_mu_benefit"] = b.prob(f"mu[{lv}]", op, 0.0)
            levels_rows.append(row)
        for p in b.params:
            if " - " in p and p.startswith("mu["):
                lo, hi = b.interval(p)
                diff_rows.append({"analysis": r.name, "contrast": p, "median": b.median(p),
                                  "ci_low": lo, "ci_high": hi, "p_below_0": b.prob(p, "<", 0.0)})
        if isinstance(twin, SubgroupResult):
            test_rows.append({"analysis": r.name, "variable": twin.variable,
                              "qm": twin.qm, "qm_df": twin.qm_df[0], "qm_p": twin.qm_p,
                              "q_between": twin.q_between, "q_between_df": twin.q_between_df,
                              "q_between_p": twin.q_between_p,
                              "tau_median": b.median("tau") if "tau" in b.params else None})
    p = pct(run.settings.level)
    note = scale_note(run.spec.effect.measure)
    levels = _frame(levels_rows, "Subgroup models: each subgroup's REML fit (separate tau²) "
                    f"and Bayesian posterior (shared tau; {p} equal-tailed)"
                    + (f"; {note}" if note else ""),
                    {"reml_estimate": "REML", "reml_ci_low": f"{p} CI low",
                     "reml_ci_high": f"{p} CI high", "reml_i2": "I² (%)",
                     "mu_median": "mu median", "mu_ci_low": f"{p} CrI low",
                     "mu_ci_high": f"{p} CrI high", "theta_new_median": "theta_new median",
                     "theta_new_ci_low": f"theta_new {p} low",
                     "theta_new_ci_high": f"theta_new {p} high", "p_mu_benefit": "P(mu: benefit)",
                     "p_mu_mcid": "P(mu beyond MCID)", "p_new_mcid": "P(theta_new beyond MCID)"})
    diffs = _frame(diff_rows, f"Subgroup differences (posterior median, {p} equal-tailed "
                   "interval, P(difference < 0))", {"ci_low": f"{p} low", "ci_high": f"{p} high",
                                                    "p_below_0": "P(difference < 0)"})
    tests = _frame(test_rows, "Tests of subgroup differences (REML): QM of the common-tau² "
                   "moderator model and Q-between of the separate fits",
                   {"qm": "QM", "qm_df": "df", "qm_p": "p (QM)", "q_between": "Q-between",
                    "q_between_df": "df ", "q_between_p": "p (Q-between)",
                    "tau_median": "tau (Bayes median)"})
    return levels, diffs, tests


def meta_regression_tables(run: RunResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    coef_rows, fit_rows = [], []
    for r in run.of_kind("meta_regression"):
        if not r.ok or r.bayes is None:
            continue
        b = r.bayes
        twin = r.reml
        table = twin.coefficients if twin is not None else None
        for term in b.extras.get("terms", []):
            row: dict[str, Any] = {"analysis": r.name, "term": term}
            if table is not None and term in table.index:
                t = table.loc[term]
                row.update({"reml_estimate": t["estimate"], "reml_se": t["se"],
                            "reml_ci_low": t["ci_low"], "reml_ci_high": t["ci_high"],
                            "reml_pval": t["pval"]})
            row.update(posterior_row(b, term, "bayes"))
            row["p_below_0"] = b.prob(term, "<", 0.0)
            coef_rows.append(row)
        fr: dict[str, Any] = {"analysis": r.name, "k": b.k, "p": len(b.extras.get("terms", []))}
        if twin is not None:
            d = twin.to_dict()
            fr.update({"qm": d["qm"], "qm_df": (d["qm_df"] or [None])[0], "qm_p": d["qm_p"],
                       "qe": d["qe"], "qe_df": d["qe_df"], "qe_p": d["qe_p"],
                       "tau2_reml": d["tau2"], "r2_reml_percent": d["r2"]})
        fr["r2_bayes"] = b.extras.get("r2_bayes")
        if "tau" in b.params:
            fr["tau_median"] = b.median("tau")
        fit_rows.append(fr)
    p = pct(run.settings.level)
    note = scale_note(run.spec.effect.measure)
    coefs = _frame(coef_rows, f"Meta-regression coefficients: REML (z, {p} CI) beside the "
                   f"Bayesian posterior (flat coefficient priors; {p} equal-tailed)"
                   + (f"; {note}" if note else ""),
                   {"reml_estimate": "REML", "reml_se": "SE", "reml_ci_low": f"{p} CI low",
                    "reml_ci_high": f"{p} CI high", "reml_pval": "p",
                    "bayes_median": "Bayes median", "bayes_ci_low": f"{p} CrI low",
                    "bayes_ci_high": f"{p} CrI high", "p_below_0": "P(coef < 0)"})
    fits = _frame(fit_rows, "Meta-regression fit: QM (moderators), QE (residual "
                  "heterogeneity), R² (REML, percent, truncated at 0) beside the Bayesian R² "
                  "(1 - E[tau² | moderators] / E[tau² | intercept only], not truncated)",
                  {"qm": "QM", "qm_df": "df", "qm_p": "p (QM)", "qe": "QE", "qe_df": "df ",
                   "qe_p": "p (QE)", "tau2_reml": "tau² (REML)",
                   "r2_reml_percent": "R² REML (%)", "r2_bayes": "R² Bayes",
                   "tau_median": "tau (Bayes median)"})
    return coefs, fits


def loo_table(run: RunResult) -> pd.DataFrame:
    parts = []
    for c in run.comparisons:
        df = c.table.copy()
        df.insert(0, "comparison", c.key)
        parts.append(df)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out.attrs.update({"title": "Model comparison by PSIS-LOO (arviz compare; elpd_diff and "
                      "its standard error dse against the best model)", "labels": {},
                      "notes": []})
    return out


def diagnostics_table(run: RunResult) -> pd.DataFrame:
    rows = []
    for r in run.analyses:
        for label, b in r.bayes_fits().items():
            d = b.diagnostics
            if d is None:
                continue
            rows.append({"analysis": r.name, "fit": label, "passed": d.passed,
                         "rhat_max": d.rhat_max, "ess_bulk_min": d.ess_bulk_min,
                         "ess_tail_min": d.ess_tail_min, "n_divergent": d.n_divergent,
                         "ebfmi_min": d.ebfmi_min, "attempts": len(d.attempts),
                         "seconds": b.settings.get("seconds"),
                         "messages": "; ".join(d.messages)})
    from ..config import DEFAULTS

    return _frame(rows, f"NUTS diagnostics gate (R-hat <= {DEFAULTS.rhat_max}, bulk and tail "
                  f"ESS >= {DEFAULTS.ess_min:g}, no divergences, E-BFMI >= "
                  f"{DEFAULTS.ebfmi_min})", {"rhat_max": "max R-hat", "ess_bulk_min":
                                             "min bulk ESS", "ess_tail_min": "min tail ESS",
                                             "n_divergent": "divergences",
                                             "ebfmi_min": "min E-BFMI"})


def ppc_table(run: RunResult) -> pd.DataFrame:
    rows = []
    for r in run.analyses:
        if r.ppc is None:
            continue
        d = r.ppc.to_dict()
        d.pop("warnings", None)
        rows.append({"analysis": r.name, **d})
    return _frame(rows, "Posterior predictive checks (Q discrepancy ppp-value, PSIS-LOO)",
                  {"q_obs": "observed Q", "ppp_q": "P(Q_rep >= Q_obs)", "elpd_loo": "elpd_loo",
                   "elpd_loo_se": "SE", "p_loo": "p_loo",
                   "n_pareto_k_high": f"Pareto k > {DEFAULTS.pareto_k_max:g}",
                   "ppp_mixed_extreme": "studies with extreme mixed ppp"})


def reanalysis_table(run: RunResult) -> pd.DataFrame:
    rows = []
    pub = run.published
    for re in run.reanalyses:
        b = re.result
        row: dict[str, Any] = {"analysis_id": re.analysis_id, "se": b.settings.get("se"),
                               "tau2_plugin": b.settings.get("tau2_plugin")}
        row.update(posterior_row(b, "mu", "mu"))
        row.update(posterior_row(b, "theta_new", "theta_new"))
        if re.relevance is not None:
            cr = re.relevance
            row.update({"p_mu_benefit": cr.p_mu_benefit, "p_mu_mcid": cr.p_mu_mcid,
                        "p_new_mcid": cr.p_new_mcid, "mcid_smd": cr.mcid_smd,
                        "sd_ref": cr.sd_ref})
            if cr.frequentist is not None:
                row["frequentist_reading"] = cr.frequentist.category
        if re.sceptical_relevance is not None:
            row["p_mu_mcid_sceptical"] = re.sceptical_relevance.p_mu_mcid
        row["md_vas_published"] = re.md_vas
        row["md_smd_sign_conflict"] = re.sign_conflict
        row["notes"] = " | ".join([*re.notes, *b.warnings])
        rows.append(row)
    p = pct(run.reanalyses[0].result.level if run.reanalyses else run.settings.level)
    out = _frame(rows, "Bayesian reanalysis of the published pooled results (flat prior on mu; "
                 f"sceptical prior as a sensitivity; {p} equal-tailed intervals)",
                 {"se": "SE from CI", "tau2_plugin": "tau² plug-in", "mu_median": "mu median",
                  "mu_ci_low": f"{p} CrI low", "mu_ci_high": f"{p} CrI high",
                  "theta_new_ci_low": f"theta_new {p} low",
                  "theta_new_ci_high": f"theta_new {p} high", "p_mu_benefit": "P(mu: benefit)",
                  "p_mu_mcid": "P(mu beyond MCID)", "p_new_mcid": "P(theta_new beyond MCID)",
                  "p_mu_mcid_sceptical": "P(mu beyond MCID), sceptical prior",
                  "md_vas_published": "paper's MD (VAS, descriptive)",
                  "md_smd_sign_conflict": "MD/SMD signs disagree"})
    if pub is not None and not out.empty:
        out.insert(1, "smd_published", out["analysis_id"].map(
            dict(zip(pub["analysis_id"], pub["smd_published"], strict=True))))
    return out


def analyses_table(run: RunResult) -> pd.DataFrame:
    rows = [{"analysis": r.name, "kind": r.analysis.kind, "label": r.analysis.label,
             "filters": r.analysis.describe_filters(),
             "model": r.analysis.model, "subgroup": r.analysis.subgroup,
             "mods": r.analysis.mods, "k": r.k, "status": r.status,
             "engine": None if r.bayes is None else r.bayes.engine, "seed": r.seed,
             "seconds": round(sum(r.timings.values()), 3), "notes": " | ".join(r.notes)}
            for r in run.analyses]
    return _frame(rows, "Analyses of the plan")


def warnings_table(run: RunResult) -> pd.DataFrame:
    return _frame([{"source": s, "message": m} for s, m in run.warnings],
                  "Every warning of the run", columns=["source", "message"])


def notes_table(run: RunResult) -> pd.DataFrame:
    return _frame([{"source": s, "message": m} for s, m in run.notes],
                  "Notes: steps not computed and why, exclusions, engine fallbacks",
                  columns=["source", "message"])


def imputations_table(run: RunResult) -> pd.DataFrame:
    record = run.effects.attrs.get("escalc", {})
    return _frame(list(record.get("imputed_change_sd", [])),
                  "Change-score SDs imputed from baseline and follow-up SDs")


def effect_sizes_table(run: RunResult) -> pd.DataFrame:
    df = run.effects.copy()
    title = ("Effect sizes (given in the table, not recomputed)"
             if run.spec.effect.yi is not None else "Effect sizes (escalc)")
    df.attrs = {"title": title, "labels": {}, "notes": []}
    return df


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of the same kind stacked, keeping the first one's column labels."""
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {**frames[0].attrs, "title": frames[0].attrs.get("title", "").split(": ", 1)[-1]}
    return out


def build_tables(run: RunResult) -> dict[str, pd.DataFrame]:
    """Every table of the run by CSV name (without extension)."""
    sub_levels, sub_diffs, sub_tests = subgroup_tables(run)
    coefs, fits = meta_regression_tables(run)
    tables = {
        "analyses": analyses_table(run),
        "pooled_summary": pooled_summary(run),
        "reml_vs_bayes": _concat([reml_vs_bayes(r) for r in run.analyses if _pooled(r)]),
        "clinical_relevance": clinical_relevance_table(run),
        "sd_ref_sensitivity": sd_ref_sensitivity(run),
        "prior_sensitivity": prior_sensitivity(run),
        "mcid_curves": mcid_curves(run),
        "bias_tests": bias_tests(run),
        "outliers": outlier_table(run),
        "subgroups": sub_levels,
        "subgroup_differences": sub_diffs,
        "subgroup_tests": sub_tests,
        "metaregression_coefficients": coefs,
        "metaregression_fit": fits,
        "loo_comparison": loo_table(run),
        "diagnostics": diagnostics_table(run),
        "ppc": ppc_table(run),
        "warnings": warnings_table(run),
        "notes": notes_table(run),
        "effect_sizes": effect_sizes_table(run),
        "imputed_change_sd": imputations_table(run),
    }
    if run.published is not None:
        tables["published_vs_reproduced"] = run.published
        tables["reanalysis"] = reanalysis_table(run)
    return tables
