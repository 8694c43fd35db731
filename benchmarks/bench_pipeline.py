"""Time the review's whole plan (models/lbp_review.toml) end to end, report included.

Target (issue 7): at most 60 s wall time on a 2-core machine for the full plan: NUTS for the
primary priors of every model (4 chains x 1000 draws, one compiled sampler shared by every
fit), the exact engine for the sensitivity priors. This is a benchmark figure, not a test: the
same numbers are in the run's run.json (``timings``, ``compile_stats``).

Prints the wall time broken down by step (summed over analyses), the compilations and their
time, the NUTS fits and their mean time, and the report-writing steps.

Usage:  python benchmarks/bench_pipeline.py [--out DIR] [--engine nuts|exact] [--quick]
        [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "models" / "lbp_review.toml"
TARGET_SECONDS = 60.0


def main() -> None:
    from bayesmeta.config import DEFAULTS
    from bayesmeta.pipeline import run_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="output folder (default: a temporary folder)")
    parser.add_argument("--engine", choices=("nuts", "exact"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=DEFAULTS.output_workers)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "lbp_review"
        start = time.perf_counter()
        run = run_spec(SPEC, out_dir=out, engine=args.engine, quick=args.quick,
                       progress=False, workers=args.workers)
        wall = time.perf_counter() - start
    info = run.info
    t = info["timings"]
    cs = info["compile_stats"]
    nuts = [a for a in run.analyses for fit in a.bayes_fits().values() if fit.engine == "nuts"]
    sampling = [fit.settings.get("seconds", 0.0) for a in run.analyses
                for fit in a.bayes_fits().values() if fit.engine == "nuts"]
    print(f"plan {run.spec.name}: {len(run.analyses)} analyses, {len(nuts)} NUTS fits, "
          f"engine {run.settings.primary_engine}" + (" (quick)" if args.quick else ""))
    print(f"{'step':<24} {'seconds':>9}")
    for step, seconds in t["steps"].items():
        print(f"{step:<24} {seconds:>9.2f}")
    print(f"{'= analyses':<24} {t['analysis_seconds']:>9.2f}")
    for step, seconds in t["report"].items():
        print(f"{'report: ' + step:<24} {seconds:>9.2f}")
    print(f"{'= wall time':<24} {wall:>9.2f}   (target <= {TARGET_SECONDS:g} s: "
          f"{'met' if wall <= TARGET_SECONDS else 'NOT met'})")
    print(f"compilations: {cs['compilations']} ({cs['compile_seconds']:.1f} s), cache hits: "
          f"{cs['cache_hits']}; NUTS sampling {sum(sampling):.1f} s in total, "
          f"{sum(sampling) / max(len(sampling), 1):.2f} s per fit (the first includes the "
          "compilation)")
    print(f"sampler sized k <= {info['engine']['capacity']}, p <= "
          f"{info['engine']['coef_slots']}; output workers: {args.workers}")
    print(f"checks: {sum(c.passed for c in run.checks)}/{len(run.checks)} passed")


if __name__ == "__main__":
    main()
