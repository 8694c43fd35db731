"""LOO comparison of the pooled, subgroup and meta-regression models fitted to the same rows.

Models are grouped by the studies they were fitted to (the same labels in the same order, the
same effects); a group holding at least two different model families is compared by PSIS-LOO
(arviz ``compare``: elpd_loo, its standard error, the difference to the best model and the
standard error of that difference; Vehtari, Gelman & Gabry 2017,
doi:10.1007/s11222-016-9696-4). Exact-engine fits have no pointwise log-likelihood draws and
are left out with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .analyses import AnalysisResult
from .record import Recorder

#: which pooled fit stands for the pooled model of a group, best first
_POOLED_PREFERENCE = ("main", "reference", "subset")


@dataclass(frozen=True)
class LooComparison:
    """One comparison: the models (analysis names) and arviz's table, best model first."""

    key: str
    analyses: tuple[str, ...]
    table: pd.DataFrame
    warnings: tuple[str, ...] = field(default=())


def _signature(result: AnalysisResult) -> tuple:
    b = result.bayes
    assert b is not None
    return (b.labels, np.asarray(b.yi).round(12).tobytes())


def compare_models(results: Sequence[AnalysisResult], rec: Recorder) -> list[LooComparison]:
    import arviz as az

    groups: dict[tuple, list[AnalysisResult]] = {}
    for r in results:
        if not r.ok or r.bayes is None:
            continue
        if r.bayes.idata is None or "log_likelihood" not in r.bayes.idata.groups():
            continue
        groups.setdefault(_signature(r), []).append(r)
    out = []
    for members in groups.values():
        pooled = sorted((m for m in members if m.analysis.model == "pooled"),
                        key=lambda m: _POOLED_PREFERENCE.index(m.analysis.kind))
        chosen = pooled[:1] + [m for m in members if m.analysis.model != "pooled"]
        if len(chosen) < 2:
            continue
        names = tuple(m.name for m in chosen)
        key = " vs ".join(names)
        with rec.step("loo_compare"):
            table = az.compare({m.name: m.bayes.idata for m in chosen}, ic="loo")
        table = table.rename_axis("model").reset_index()
        warns = []
        if "warning" in table and table["warning"].astype(bool).any():
            flagged = table.loc[table["warning"].astype(bool), "model"].tolist()
            warns.append(f"LOO {key}: Pareto k above arviz's threshold for some studies of "
                         f"{', '.join(flagged)}; the elpd estimates are unreliable there")
        rec.warn("loo_compare", warns)
        out.append(LooComparison(key, names, table, tuple(warns)))
    return out
