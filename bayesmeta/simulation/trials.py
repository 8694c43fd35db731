"""The trials of a simulated review: sizes, moderators, control groups, reported cells.

One row per comparison (an individualized arm against one control group), trial-level
moderators repeated on each of its comparisons. Pure pandas/numpy on top of :mod:`.draws`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .draws import allocate, quantile_matched
from .settings import SimulationSettings

__all__ = ["draw_trials", "draw_reports"]

_ACTIVE, _PASSIVE = "active", "passive"


def draw_trials(rng: np.random.Generator, s: SimulationSettings) -> pd.DataFrame:
    """Trials and their comparisons, with moderators and randomised arm sizes.

    Columns: ``trial`` (0-based), ``study_id``, ``comparison_id``, ``n_arms``, ``arm1_size``,
    ``arm2_size`` (randomised), the trial-level moderators (``exercise_type``,
    ``effective_exercise``, ``psych_component``, ``behavioural``, ``rob_overall``,
    ``lbp_12_weeks``, ``duration_weeks``, ``n_total``, ``mean_age``) and the comparison-level
    ones (``comparator``, ``comparator_detail``, ``matched_control``).

    Multi-arm trials randomise ``n_total`` evenly over their arms (the remainder to the
    individualized arm first); ``behavioural`` is true for CBT and behavioural psychological
    components.
    """
    n = s.n_studies
    exact = s.allocation == "exact"
    controls = allocate(rng, n, s.control_groups, exact).astype(int)
    n_arms = controls + 1
    lower = float(s.min_arm_size * int(n_arms.max()))
    size = quantile_matched(rng, n, *s.size_quartiles, log=True, decimals=0, exact=exact,
                            lower=lower).astype(int)
    duration = quantile_matched(rng, n, *s.duration_quartiles, log=True, decimals=0,
                                exact=exact, lower=1.0)
    age = quantile_matched(rng, n, *s.age_quartiles, log=False, decimals=1, exact=exact,
                           lower=18.0)
    exercise = allocate(rng, n, s.exercise_types, exact)
    psych = allocate(rng, n, s.psych_components, exact)
    rob = allocate(rng, n, s.rob_levels, exact)
    lbp = allocate(rng, n, {True: s.lbp_12_weeks_share, False: 1.0 - s.lbp_12_weeks_share},
                   exact)
    width = max(2, len(str(n)))
    trials = pd.DataFrame({
        "trial": np.arange(n),
        "study_id": [f"{s.label_prefix} {i + 1:0{width}d}" for i in range(n)],
        "n_arms": n_arms,
        "n_total": size,
        "exercise_type": exercise,
        "effective_exercise": [e in s.effective_exercise_types for e in exercise],
        "psych_component": psych,
        "behavioural": [p in ("cbt", "behavioural") for p in psych],
        "rob_overall": rob,
        "lbp_12_weeks": lbp.astype(bool),
        "duration_weeks": duration,
        "mean_age": age,
    })
    comparisons = trials.loc[trials.index.repeat(controls)].reset_index(drop=True)
    comparisons["comparison_id"] = [str(j + 1) for j in
                                    comparisons.groupby("trial").cumcount().to_numpy()]
    m = len(comparisons)
    comparator = allocate(rng, m, {_ACTIVE: 1.0 - s.passive_share, _PASSIVE: s.passive_share},
                          exact)
    detail = np.full(m, "exercise", dtype=object)
    matched = np.zeros(m, dtype=bool)
    passive = comparator == _PASSIVE
    detail[passive] = allocate(rng, int(passive.sum()), s.passive_detail, exact)
    matched[~passive] = allocate(rng, int((~passive).sum()),
                                 {True: s.matched_share, False: 1.0 - s.matched_share},
                                 exact).astype(bool)
    comparisons["comparator"] = comparator
    comparisons["comparator_detail"] = detail
    comparisons["matched_control"] = matched
    base = comparisons["n_total"].to_numpy() // comparisons["n_arms"].to_numpy()
    extra = comparisons["n_total"].to_numpy() % comparisons["n_arms"].to_numpy()
    comparisons["arm1_size"] = base + (extra > 0)
    # control arm j + 1 (j = 0, 1, ...) gets one of the remaining extra participants
    j = comparisons["comparison_id"].astype(int).to_numpy()
    comparisons["arm2_size"] = base + (extra > j)
    return comparisons


def draw_reports(rng: np.random.Generator, s: SimulationSettings,
                 n_trials: int) -> dict[int, list[tuple[str, str]]]:
    """For each trial, the (outcome, follow-up) cells it reports (at least one)."""
    cells = [(o, f) for o in s.outcomes for f in s.follow_ups]
    p = np.array([s.outcome_report_probability.get(o, 0.0)
                  * s.follow_up_report_probability.get(f, 0.0) for o, f in cells])
    draws = rng.random((n_trials, len(cells))) < p
    out = {}
    for t in range(n_trials):
        chosen = [c for c, d in zip(cells, draws[t], strict=True) if d]
        out[t] = chosen or [cells[int(np.argmax(p))]]
    return out
