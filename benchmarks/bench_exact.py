"""Time the exact engine against bayesmeta 3.4 at k = 8, 13, 48, 102.

One call is the full result, as bayesmeta computes it: the quadrature grid over tau, and the
posteriors of mu, tau, theta_new and every study's shrunken theta_i, with their medians and 95%
equal-tailed intervals (plus posterior means and SDs). bayesmeta's per-call times come from
tests/reference/timings.json (``bayesmeta()`` with its default priors — improper uniform on tau
and flat mu — and default accuracy, median over repeated calls on a 2-core machine of this
kind); the same priors are used here.

Datasets: those of timings.json. The k = 48 set there (dat.bangertdrowns2004) is not shipped in
tests/reference, so k = 48 here is the first 48 rows of dat.curtis1998 (log ratio of means);
the engine's cost depends on k and on the grid size, not on which 48 studies they are.

Usage:  python benchmarks/bench_exact.py [--reps N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _timing import median_ms

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "reference"
TARGET_SPEEDUP = 100.0


def _analysis(name: str, key: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text())["analyses"][key]


def _full_result(effects, tau_prior, mu_prior) -> dict:
    from bayesmeta.bayes.exact import exact_posterior

    post = exact_posterior(effects, tau_prior, mu_prior)
    table = post.quantile_table([0.025, 0.5, 0.975])  # mu, tau, theta_new, every study
    moments = {p: (post.mean(p), post.sd(p)) for p in post.params}
    return {"table": table, "moments": moments, "nodes": post.tau.size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()

    import bayesmeta
    from bayesmeta.inputs import as_effect_data

    priors = bayesmeta.priors
    timings = json.loads((REFERENCE / "timings.json").read_text())["datasets"]
    bayesmeta_ms = {entry["k"]: entry["bayesmeta_default"]["median_ms"]
                    for entry in timings.values()}
    curtis = _analysis("dat.curtis1998", "ROM_all")
    cases = [
        ("Rubin1981 (raw)", _analysis("Rubin1981", "raw")),
        ("dat.bcg (RR)", _analysis("dat.bcg", "RR")),
        ("dat.curtis1998 rows 1-48 (ROM)",
         {"yi": curtis["yi"][:48], "vi": curtis["vi"][:48]}),
        ("dat.curtis1998 (ROM)", curtis),
    ]
    print("exact engine: full result (grid; mu, tau, theta_new and every study's shrinkage "
          "posterior: median, 95% interval, mean, sd)")
    print(f"priors: improper uniform tau, flat mu (bayesmeta's defaults); median of "
          f"{args.reps} calls after one warm-up\n")
    header = (f"{'dataset':32s} {'k':>4s} {'nodes':>6s} {'exact ms':>9s} "
              f"{'bayesmeta ms':>13s} {'speed-up':>9s}")
    print(header)
    print("-" * len(header))
    worst = np.inf
    for name, analysis in cases:
        effects = as_effect_data(analysis["yi"], analysis["vi"])

        def run(effects=effects) -> dict:
            return _full_result(effects, priors.ImproperUniform(), None)

        nodes = run()["nodes"]  # warm-up
        ms = median_ms(run, args.reps)
        ref = bayesmeta_ms[effects.k]
        ratio = ref / ms
        worst = min(worst, ratio)
        flag = "" if ratio >= TARGET_SPEEDUP else "  (below target)"
        print(f"{name:32s} {effects.k:4d} {nodes:6d} {ms:9.2f} {ref:13.0f} {ratio:8.0f}x{flag}")
    print(f"\nsmallest speed-up {worst:.0f}x (target: at least {TARGET_SPEEDUP:.0f}x at every k)")


if __name__ == "__main__":
    main()
