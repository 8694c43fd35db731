"""NUTS against the exact engine on the whole bayesmeta reference grid (proper tau priors).

Every (dataset, analysis, grid entry) of ``tests/reference/*.json`` whose tau prior is proper
(half-normal(0.5), half-Cauchy(0.5), uniform(0, 2), the Turner and Rhodes presets; flat and
Normal(0, 4) mu priors) is fitted by NUTS and by the exact engine, and NUTS must agree on

- the 2.5%, 50% and 97.5% quantiles of mu, tau and theta_new,
- P(mu < c) at the grid's thresholds where the exact value is above 0.01 and below 0.99,

each within max(4 MCSE, 1e-3) (MCSE from arviz on the chains: of the quantile, or of the mean
of the indicator for a probability), and pass the diagnostics gate. This is the full-grid
version of tests/test_nuts.py (which checks six pairs in the default suite).

All fits use one study capacity (64, the largest k is 40), so there is one compilation per tau
prior structure (seven here, more if the gate falls back to another parametrisation); every
other fit reuses a compiled sampler. Seeds are fixed: a run is reproducible.

Prints one line per fit (checks passed, the worst |NUTS - exact| in units of its tolerance,
the smallest bulk ESS of mu, tau and theta_new, NUTS wall time, gate) and a summary; exits 1
when any fit fails a check or the gate.

Run:  python benchmarks/bench_nuts_grid.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from refdata import reference_documents  # noqa: E402  (tests/ is not a package)

import bayesmeta  # noqa: E402
from bayesmeta import priors  # noqa: E402
from bayesmeta.bayes import sampling  # noqa: E402

CAPACITY = 64
SEED = 20261125
QUANTILES = (0.025, 0.5, 0.975)
#: tail probabilities closer to 0 or 1 than this are not compared (the acceptance's rule)
TAIL_MIN = 0.01
ABS_FLOOR = 1e-3

#: the grid's proper tau priors by their recorded name
TAU_PRIORS = {
    "half_normal_0.5": priors.HalfNormal(0.5),
    "half_cauchy_0.5": priors.HalfCauchy(0.5),
    "uniform_0_2": priors.Uniform(2.0),
    "turner_pain_nonpharm_placebo": priors.turner("pain", "non-pharmacological_vs_placebo"),
    "turner_marginal": priors.turner(),
    "rhodes_pain_nonpharm": priors.rhodes("pain_function", "non-pharmacological", "other"),
    "rhodes_subjective_nonpharm": priors.rhodes("subjective", "non-pharmacological", "other"),
}
MU_PRIORS = {"improper_uniform": None, "normal_0_4": priors.Normal(0, 4)}


def tau_prior_of(entry: dict) -> priors.TauPrior | None:
    """Our prior for a grid entry, None for the improper one; a preset must carry the
    parameters bayesmeta recorded."""
    name = entry["tau_prior"]
    if name == "improper_uniform":
        return None
    prior = TAU_PRIORS[name]
    if name.startswith(("turner", "rhodes")):
        loc, scale = entry["tau_prior_info"]["parameters"]["tau2"]
        params = prior.params()
        assert (params.get("mu", params.get("loc")), params.get("sigma", params.get("scale"))) \
            == (loc, scale), (name, params, loc, scale)
    return prior


def pairs() -> list[tuple[str, str, dict, str, dict]]:
    out = []
    for dataset, doc in reference_documents():
        for akey, analysis in doc["analyses"].items():
            grid = (analysis.get("bayesmeta") or {}).get("grid", {})
            for gkey, entry in grid.items():
                if tau_prior_of(entry) is not None:
                    out.append((dataset, akey, analysis, gkey, entry))
    return out


def compare(nuts, exact, thresholds) -> tuple[list[str], int, float]:
    """(failures, number of checks, worst |difference| / tolerance)."""
    post = nuts.posterior
    failures, n, worst = [], 0, 0.0
    for param in ("mu", "tau", "theta_new"):
        for q in QUANTILES:
            got, want = nuts.quantile(param, q), exact.quantile(param, q)
            tol = max(4 * post.mcse(param, "quantile", q), ABS_FLOOR)
            n += 1
            worst = max(worst, abs(got - want) / tol)
            if abs(got - want) > tol:
                failures.append(f"{param} q{q}: nuts {got:.5f} exact {want:.5f} tol {tol:.5f}")
    for c in thresholds:
        want = exact.prob("mu", "<", c)
        if min(want, 1 - want) <= TAIL_MIN:
            continue
        got = nuts.prob("mu", "<", c)
        tol = max(4 * post.mcse("mu", "prob", c), ABS_FLOOR)
        n += 1
        worst = max(worst, abs(got - want) / tol)
        if abs(got - want) > tol:
            failures.append(f"P(mu<{c}): nuts {got:.4f} exact {want:.4f} tol {tol:.4f}")
    return failures, n, worst


def main() -> int:
    todo = pairs()
    print(f"NUTS vs exact on {len(todo)} (dataset, proper tau prior, mu prior) fits of the "
          f"bayesmeta reference grid; tolerance max(4 MCSE, {ABS_FLOOR:g}); capacity "
          f"{CAPACITY}; 4 chains x 1000 draws")
    head = (f"{'dataset/analysis':<30} {'k':>3} {'tau prior':<29} {'mu':<5} {'checks':>7} "
            f"{'worst':>6} {'minESS':>7} {'nuts s':>7} {'gate':>5}  result")
    print(head)
    print("-" * len(head))
    n_fail, n_checks, n_gate_fail, times, ess_all = 0, 0, 0, [], []
    start_all = time.perf_counter()
    for i, (dataset, akey, analysis, _gkey, entry) in enumerate(todo):
        tau_prior, mu_prior = tau_prior_of(entry), MU_PRIORS[entry["mu_prior"]]
        kw = dict(tau_prior=tau_prior, mu_prior=mu_prior, labels=analysis["label"])
        t0 = time.perf_counter()
        nuts = bayesmeta.bayes_rma(analysis["yi"], analysis["vi"], engine="nuts",
                                   seed=SEED + i, capacity=CAPACITY, **kw)
        wall = time.perf_counter() - t0
        exact = bayesmeta.bayes_rma(analysis["yi"], analysis["vi"], engine="exact", **kw)
        failures, n, worst = compare(nuts, exact, entry["prob"]["thresholds"])
        diag = nuts.diagnostics
        ess = min(float(diag.table.loc[["mu", "tau"], "ess_bulk"].min()),
                  _ess_bulk(nuts.posterior.draws["theta_new"]))
        ok = not failures and diag.passed
        n_fail += not ok
        n_gate_fail += not diag.passed
        n_checks += n
        times.append(wall)
        ess_all.append(ess)
        mu_name = "flat" if mu_prior is None else "N0,4"
        print(f"{dataset + '/' + akey:<30} {analysis['k']:>3} {entry['tau_prior']:<29} "
              f"{mu_name:<5} {n - len(failures):>3}/{n:<3} {worst:>6.2f} {ess:>7.0f} "
              f"{wall:>7.2f} {'pass' if diag.passed else 'FAIL':>5}  "
              f"{'ok' if ok else 'FAILED'}", flush=True)
        for f in failures:
            print(f"    {f}")
        if not diag.passed:
            print(f"    gate: {'; '.join(diag.messages)}")
    stats = sampling.COMPILE_STATS
    total = time.perf_counter() - start_all
    print("-" * len(head))
    print(f"{len(todo) - n_fail}/{len(todo)} fits pass ({n_checks} comparisons; "
          f"{n_gate_fail} gate failures)")
    print(f"NUTS wall time per fit (REML twin included): median {np.median(times):.2f} s, "
          f"max {max(times):.2f} s; min bulk ESS over fits {min(ess_all):.0f} "
          f"(median {np.median(ess_all):.0f})")
    print(f"compilations: {stats['compilations']} ({stats['compile_seconds']:.1f} s), "
          f"cache hits: {stats['cache_hits']}; total {total:.0f} s")
    return 1 if n_fail else 0


def _ess_bulk(draws: np.ndarray) -> float:
    import arviz as az

    return float(az.ess(az.convert_to_dataset({"x": np.asarray(draws, float)}),
                        method="bulk")["x"])


if __name__ == "__main__":
    sys.exit(main())
