"""Time ``influence(fit)`` and ``leave_one_out(fit)`` (k refits each) on the reference datasets.

There are no metafor timings of ``influence()`` in tests/reference; as an indication the script
prints k x metafor's median time of one ``rma(method="REML")`` fit (timings.json, 2-core machine
of the same kind), which is a lower bound on metafor's ``influence()`` (k refits plus the
diagnostics). The ratio is indicative, not a controlled comparison.

Usage:  python benchmarks/bench_influence.py [--reps N]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from _timing import median_ms

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "reference"


def _effects(name: str, key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    doc = json.loads((REFERENCE / f"{name}.json").read_text())
    analyses = doc["analyses"]
    analysis = analyses[key] if key else max(analyses.values(), key=lambda a: a["k"])
    return np.asarray(analysis["yi"], dtype=float), np.asarray(analysis["vi"], dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from bayesmeta import influence, leave_one_out, rma

    timings = json.loads((REFERENCE / "timings.json").read_text())["datasets"]
    metafor_fit_ms = {entry["k"]: entry["rma_REML"]["median_ms"] for entry in timings.values()}
    cases = [("Rubin1981", "raw"), ("dat.bcg", "RR"), ("RobergeEtAl2017", "OR_PE"),
             ("dat.curtis1998", "ROM_all")]
    print(f"{'dataset':<18}{'k':>5}{'influence ms':>15}{'leave1out ms':>15}"
          f"{'k x metafor fit ms':>21}{'ratio':>8}")
    for name, key in cases:
        y, v = _effects(name, key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = rma(y, v)
            influence(fit)  # warm-up
            t_inf = median_ms(lambda fit=fit: influence(fit), args.reps)
            t_loo = median_ms(lambda fit=fit: leave_one_out(fit), args.reps)
        k = y.size
        base = metafor_fit_ms.get(k)
        if base is None:
            print(f"{name:<18}{k:>5}{t_inf:>15.1f}{t_loo:>15.1f}{'(no timing)':>21}")
        else:
            print(f"{name:<18}{k:>5}{t_inf:>15.1f}{t_loo:>15.1f}{k * base:>21.1f}"
                  f"{k * base / t_inf:>7.1f}x")
    print("\nmetafor column: k refits at metafor's per-fit REML time (timings.json), a lower "
          "bound on its influence(); the R timings come from another run on a machine of the "
          "same kind, so ratios are indicative.")


if __name__ == "__main__":
    main()
