"""NUTS timing: a full fit of a k = 32 dataset (4 chains x 1000 draws), first and second time.

The first fit compiles the model (nutpie, numba); the second fits *different* data of the same
structure and shows the compile-once reuse. The issue's measurement on this machine kind:
pm.sample ~12 s first / ~5 s after pm.set_data; nutpie ~8 s compile then ~0.2 s per fit.

Run:  python benchmarks/bench_nuts.py
"""

from __future__ import annotations

import time

import numpy as np

import bayesmeta
from bayesmeta import priors
from bayesmeta.bayes import sampling


def dataset(seed: int, k: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, k)
    yi = rng.normal(-0.3, np.sqrt(vi + 0.05))
    return yi, vi


def main() -> None:
    rows = []
    for attempt, seed in enumerate((1, 2, 3), start=1):
        yi, vi = dataset(seed)
        start = time.perf_counter()
        res = bayesmeta.bayes_rma(yi, vi, tau_prior=priors.HalfNormal(0.5),
                                  mu_prior=priors.Normal(0, 4), seed=seed)
        wall = time.perf_counter() - start
        diag = res.diagnostics
        ess = diag.table.loc[["mu", "tau"], "ess_bulk"].min()
        rows.append((attempt, wall, res.settings["seconds"], ess, diag.passed))
    print("NUTS (nutpie, non-centred), k = 32, 4 chains x 1000 draws + 1000 tuning")
    print(f"{'fit':>4} {'wall s':>8} {'sampling s':>11} {'min ESS(mu,tau)':>16} {'gate':>6}")
    for attempt, wall, samp, ess, ok in rows:
        print(f"{attempt:>4} {wall:>8.2f} {samp:>11.2f} {ess:>16.0f} {'pass' if ok else 'FAIL':>6}")
    stats = sampling.COMPILE_STATS
    print(f"compilations: {stats['compilations']} ({stats['compile_seconds']:.1f} s), "
          f"cache hits: {stats['cache_hits']}")
    first, later = rows[0][1], np.mean([r[1] for r in rows[1:]])
    print(f"second and later fits are {first / later:.0f}x faster than the first "
          f"({later:.2f} s vs {first:.2f} s, the REML twin included)")


if __name__ == "__main__":
    main()
