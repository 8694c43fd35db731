"""The published pooled results beside the reproduced ones, and their Bayesian reanalysis.

``published_vs_reproduced`` rounds each reproduced REML result as the paper rounds (SMD and CI
bounds to two decimals, I2 to a whole percent) and flags whether k and every rounded number
match. ``reanalysis`` turns each published cell (estimate and CI) into a posterior with
:func:`bayesmeta.reanalyse` and asks :func:`bayesmeta.clinical_relevance` how probable a
clinically important effect is; the paper's VAS mean difference is shown as a descriptive
column only (MD and SMD were pooled separately, so their ratio is not a standardiser), and a
cell whose MD and SMD have opposite signs is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, raise_if
from ..spec import OutcomeSpec
from .record import Recorder

REQUIRED = ("analysis_id", "outcome", "k", "smd", "ci_low", "ci_high", "i2_percent")
#: the paper's rounding: effects and CI bounds to two decimals, I2 to a whole percent
DECIMALS = {"smd": 2, "ci_low": 2, "ci_high": 2, "i2_percent": 0}


def read_published(path: str | Path) -> pd.DataFrame:
    """Read a CSV of published pooled results (one row per cell, ``analysis_id`` unique)."""
    path = Path(path)
    if not path.exists():
        raise InputError(Problem("no such file of published results", column="main.published",
                                 value=str(path)))
    table = pd.read_csv(path, dtype={"analysis_id": "string", "outcome": "string",
                                     "note": "string"})
    problems = [Problem("required column is missing", column=c, show_value=False)
                for c in REQUIRED if c not in table.columns]
    raise_if(problems, f"published results {path}")
    dup = table["analysis_id"][table["analysis_id"].duplicated()].tolist()
    if dup:
        raise InputError(Problem("analysis_id must be unique", column="analysis_id",
                                 value=dup[0]))
    for col in ("k", "smd", "ci_low", "ci_high", "i2_percent"):
        bad = ~np.isfinite(pd.to_numeric(table[col], errors="coerce").to_numpy(float))
        problems += [Problem("expected a number", row=i + 1, study=str(table["analysis_id"][i]),
                             column=col, value=table[col][i]) for i in np.flatnonzero(bad)]
    raise_if(problems, f"published results {path}")
    return table


def _round(x: float | None, decimals: int) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    # half away from zero, as printed tables round (numpy/round() round half to even)
    scale = 10.0 ** decimals
    return math.copysign(math.floor(abs(x) * scale + 0.5 + 1e-9), x) / scale + 0.0


def published_vs_reproduced(published: pd.DataFrame, fits: Mapping[str, Any]) -> pd.DataFrame:
    """One row per published cell: published and reproduced (rounded) k, SMD, CI and I2, the
    unrounded reproduced values and a ``match`` flag.

    ``fits`` maps ``analysis_id`` to the REML fit of that cell (missing: not reproduced).
    """
    rows = []
    for rec in published.itertuples(index=False):
        fit = fits.get(rec.analysis_id)
        note = getattr(rec, "note", None)
        row: dict[str, Any] = {"analysis_id": rec.analysis_id, "k_published": int(rec.k),
                               "note": None if note is None or pd.isna(note) else str(note)}
        if fit is None:
            row.update({"k_reproduced": None, "match": False,
                        "mismatch": "cell not in the plan or not fitted"})
            rows.append(row)
            continue
        d = fit.to_dict()
        values = {"smd": d["estimate"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                  "i2_percent": d["i2"]}
        row["k_reproduced"] = fit.k
        mismatch = [] if fit.k == int(rec.k) else ["k"]
        for col, dec in DECIMALS.items():
            pub = float(getattr(rec, col))
            rep = _round(values[col], dec)
            row[f"{col}_published"] = pub
            row[f"{col}_reproduced"] = rep
            if rep is None or abs(rep - pub) > 0.5 * 10.0 ** (-dec - 2):
                mismatch.append(col)
        for col in DECIMALS:
            row[f"{col}_unrounded"] = values[col]
        row["tau2"] = d["tau2"]
        row["match"] = not mismatch
        row["mismatch"] = ", ".join(mismatch)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["title"] = "Published vs reproduced (REML, z-based 95% CI, rounded as the paper)"
    return out


@dataclass(frozen=True)
class Reanalysis:
    """The Bayesian reanalysis of one published cell."""

    analysis_id: str
    result: Any
    relevance: Any
    sceptical: Any
    sceptical_relevance: Any
    md_vas: float | None
    sign_conflict: bool
    notes: tuple[str, ...] = field(default=())


def reanalyse_published(published: pd.DataFrame, outcomes: Mapping[str, OutcomeSpec],
                        measure: str, rec: Recorder) -> list[Reanalysis]:
    """Reanalyse every published cell (flat prior on mu, and Spiegelhalter's sceptical prior
    centred on no effect with 5% probability beyond the MCID)."""
    from ..clinical import clinical_relevance, reanalyse
    from ..config import DEFAULTS

    standardised = measure.upper() in DEFAULTS.standardised_measures
    out = []
    for row in published.itertuples(index=False):
        outcome = outcomes.get(str(row.outcome))
        notes = []
        md = getattr(row, "md_vas", None)
        md = None if md is None or pd.isna(md) else float(md)
        conflict = md is not None and np.sign(md) != np.sign(row.smd) and md != 0
        if conflict:
            notes.append(f"the paper's VAS mean difference ({md:+.2f}) and its SMD "
                         f"({row.smd:+.2f}) have opposite signs")
        common = {"k": int(row.k), "i2_percent": float(row.i2_percent), "measure": measure,
                  "label": str(row.analysis_id)}
        with rec.step("reanalysis"):
            flat = reanalyse(float(row.smd), float(row.ci_low), float(row.ci_high), **common)
        rec.warn(f"reanalysis {row.analysis_id}", flat.warnings)
        relevance = sceptical = sceptical_rel = None
        if outcome is None:
            notes.append(f"no [outcome.{row.outcome}] in the spec: clinical relevance not "
                         "computed")
        else:
            sd_ref = outcome.sd_ref if standardised else None
            mcid_effect = outcome.mcid / (sd_ref or 1.0)
            with rec.step("reanalysis"):
                relevance = clinical_relevance(
                    flat, mcid=outcome.mcid, sd_ref=sd_ref, direction=outcome.direction,
                    sd_ref_grid=outcome.sd_ref_grid or None if sd_ref else None)
                sceptical = reanalyse(float(row.smd), float(row.ci_low), float(row.ci_high),
                                      prior="sceptical", mcid_effect=mcid_effect,
                                      direction=outcome.direction, **common)
                sceptical_rel = clinical_relevance(sceptical, mcid=outcome.mcid, sd_ref=sd_ref,
                                                   direction=outcome.direction)
        out.append(Reanalysis(str(row.analysis_id), flat, relevance, sceptical, sceptical_rel,
                              md, bool(conflict), tuple(notes)))
    return out
