"""``simulate``: a seeded, arm-level meta-analytic dataset drawn from the hierarchical model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..effects.scales import from_vas
from ..errors import InputError, Problem
from ..io import read_studies
from ..io.schema import STUDY_TABLE
from .draws import allocate, summary_statistics
from .settings import SLOPE_COLUMNS, SimulationSettings
from .trials import draw_reports, draw_trials

__all__ = ["simulate", "SIMULATION_ATTR", "TRUE_EFFECT_COLUMN"]

#: key of ``DataFrame.attrs`` holding the seed, the settings and the true parameters
SIMULATION_ATTR = "simulation"
#: extra column with each row's true effect (SMD scale), kept by ``read_studies``
TRUE_EFFECT_COLUMN = "true_smd"

#: tries to draw true means, then sample means, inside the instrument's range
_TRIES = 100
#: true follow-up means stay this far inside the 0-10 VAS
_VAS_MARGIN = 0.5

_FORMS = ("change", "change_without_sd", "values_only")


def simulate(settings: SimulationSettings | None = None, *, seed: int | None = None,
             **overrides: Any) -> pd.DataFrame:
    """Simulate an arm-level meta-analytic study table from the hierarchical model.

    Each comparison's true standardised mean difference (Hedges' g of change scores,
    individualized minus control, negative = improvement) is drawn from the random-effects model
    described in :class:`SimulationSettings`, including subgroup effects and moderator slopes.
    Each arm's baseline and follow-up means and SDs, change means and change SDs are then drawn
    from their exact sampling distribution given the arm's analysed size (bivariate normal
    participants, see :func:`~bayesmeta.simulation.draws.summary_statistics`), on the 0-10 VAS and
    then on the trial's instrument, rounded to extraction precision. Some reports lack change
    SDs (``prepost_r`` is then filled so that ``escalc`` imputes them) or give only baseline and
    follow-up values. There is no metafor equivalent (metafor's ``escalc``/``rma`` analyse data;
    they do not generate them).

    Parameters
    ----------
    settings
        The settings (default: ``SimulationSettings()``, shaped on the low-back-pain review).
    seed
        Seed of the :func:`numpy.random.default_rng` generator that draws every number. ``None``
        draws fresh entropy and records it in ``attrs["simulation"]["seed"]``, so every table
        can be regenerated.
    **overrides
        Settings to replace, e.g. ``simulate(n_studies=30, tau=0.1, seed=1)``.

    Returns
    -------
    pandas.DataFrame
        A study table validated by :func:`bayesmeta.read_studies` (schema columns and dtypes),
        one row per comparison x outcome x follow-up, plus the column ``true_smd`` (the row's
        true effect). ``attrs["simulation"]`` holds ``seed``, ``settings`` (``to_dict()``) and
        ``truth``: ``mu``, ``tau``, the effects and slopes, and the slope centres.

    Raises
    ------
    InputError
        For bad settings (each naming the setting, its value and what was expected), or when
        the settings put true follow-up means outside the 0-10 VAS.

    Examples
    --------
    >>> import bayesmeta
    >>> table = bayesmeta.simulate(n_studies=12, follow_ups=("short",), seed=7)
    >>> effects = bayesmeta.escalc("SMD", data=table)   # doctest: +SKIP
    """
    settings = _settings(settings, overrides)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    elif isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(Problem("expected a non-negative integer or None", column="seed",
                                 value=seed))
    rng = np.random.default_rng(int(seed))
    comparisons = draw_trials(rng, settings)
    reports = draw_reports(rng, settings, settings.n_studies)
    effects = _true_effects(rng, settings, comparisons, reports)
    rows = _arm_data(rng, settings, comparisons, reports, effects)
    table = read_studies(_order(rows))
    table.attrs[SIMULATION_ATTR] = {
        "seed": int(seed),
        "settings": settings.to_dict(),
        "truth": {
            "mu": float(settings.mu), "tau": float(settings.tau),
            "outcome_effects": dict(settings.outcome_effects),
            "follow_up_effects": dict(settings.follow_up_effects),
            "subgroup_effects": {k: dict(v) for k, v in settings.subgroup_effects.items()},
            "slopes": dict(settings.slopes),
            "slope_centres": {m: settings.median(m) for m in settings.slopes},
            "cell_correlation": float(settings.cell_correlation),
        },
    }
    return table


def _settings(settings: SimulationSettings | None, overrides: dict[str, Any]
              ) -> SimulationSettings:
    if settings is None:
        settings = SimulationSettings()
    elif not isinstance(settings, SimulationSettings):
        raise InputError(Problem("expected a SimulationSettings (or None for the defaults)",
                                 column="settings", value=type(settings).__name__))
    return settings.with_changes(**overrides) if overrides else settings


def _true_effects(rng: np.random.Generator, s: SimulationSettings, comparisons: pd.DataFrame,
                  reports: dict[int, list[tuple[str, str]]]) -> dict[tuple[int, str, str], float]:
    """Each reported cell's true effect: (comparison row, outcome, follow-up) -> theta."""
    rho = float(s.cell_correlation)
    shared = rng.standard_normal(len(comparisons))
    out = {}
    for i, row in enumerate(comparisons.to_dict("records")):
        fixed = float(s.mu)
        for moderator, shifts in s.subgroup_effects.items():
            fixed += float(shifts.get(row[moderator], 0.0))
        for moderator, slope in s.slopes.items():
            fixed += float(slope) * (float(row[moderator]) - s.median(moderator))
        for outcome, follow_up in reports[row["trial"]]:
            own = rng.standard_normal()
            u = s.tau * (np.sqrt(rho) * shared[i] + np.sqrt(1.0 - rho) * own)
            out[(i, outcome, follow_up)] = (fixed + s.outcome_effects.get(outcome, 0.0)
                                            + s.follow_up_effects.get(follow_up, 0.0) + u)
    return out


def _arm_data(rng: np.random.Generator, s: SimulationSettings, comparisons: pd.DataFrame,
              reports: dict[int, list[tuple[str, str]]],
              effects: dict[tuple[int, str, str], float]) -> pd.DataFrame:
    exact = s.allocation == "exact"
    report_keys = [(t, o, f) for t in range(s.n_studies) for o, f in reports[t]]
    forms = dict(zip(report_keys, allocate(rng, len(report_keys), {
        "change": 1.0 - s.missing_change_sd - s.form_b_share,
        "change_without_sd": s.missing_change_sd, "values_only": s.form_b_share}, exact),
        strict=True))
    instruments = {}
    for outcome in s.outcomes:
        drawn = allocate(rng, s.n_studies, s.instruments[outcome], exact)
        instruments.update({(t, outcome): drawn[t] for t in range(s.n_studies)})
    # analysed participants per arm and follow-up (shared by both outcomes)
    records = comparisons.to_dict("records")
    by_trial: dict[int, list[int]] = {}
    for i, comp in enumerate(records):
        by_trial.setdefault(int(comp["trial"]), []).append(i)
    analysed: dict[tuple[int, int, str], int] = {}
    for t, members in by_trial.items():
        for f in s.follow_ups:
            analysed[(t, 1, f)] = _retained(rng, int(records[members[0]]["arm1_size"]),
                                            s.retention[f])
            for j, i in enumerate(members):
                analysed[(t, j + 2, f)] = _retained(rng, int(records[i]["arm2_size"]),
                                                    s.retention[f])

    rows = []
    for t, o, f in report_keys:
        members = by_trial[t]
        thetas = np.array([effects[(i, o, f)] for i in members])
        arms = _draw_cell(rng, s, o, f, thetas,
                          [analysed[(t, a, f)] for a in range(1, len(members) + 2)])
        instrument = instruments[(t, o)]
        form = forms[(t, o, f)]
        for j, i in enumerate(members):
            comp = records[i]
            row = {name: comp[name] for name in _MODERATORS}
            row.update(study_id=comp["study_id"], comparison_id=comp["comparison_id"],
                       outcome=o, follow_up=f, follow_up_weeks=float(s.follow_up_weeks[f]),
                       instrument=instrument, higher_is_worse=True, source=s.source)
            row[TRUE_EFFECT_COLUMN] = float(effects[(i, o, f)])
            for arm, index in ((1, 0), (2, j + 1)):
                row[f"n{arm}"] = arms["n"][index]
                for name in ("baseline_mean", "post_mean", "change_mean"):
                    kind = "change" if name == "change_mean" else "mean"
                    row[f"{name}{arm}"] = _report(arms[name][index], instrument, kind,
                                                  s.decimals)
                for name in ("baseline_sd", "post_sd", "change_sd"):
                    row[f"{name}{arm}"] = _report(arms[name][index], instrument, "sd",
                                                  s.decimals)
            row["prepost_r"] = np.nan
            if form in ("change_without_sd", "values_only"):
                row["change_sd1"] = row["change_sd2"] = np.nan
                row["prepost_r"] = float(s.imputation_r)
            if form == "values_only":
                row["change_mean1"] = row["change_mean2"] = np.nan
            rows.append(row)
    return pd.DataFrame(rows)


_MODERATORS = ("comparator", "comparator_detail", "exercise_type", "effective_exercise",
               "psych_component", "behavioural", "matched_control", "rob_overall",
               "lbp_12_weeks", "duration_weeks", "n_total", "mean_age")
assert set(SLOPE_COLUMNS) <= set(_MODERATORS)


def _retained(rng: np.random.Generator, randomised: int, share: float) -> int:
    return int(min(randomised, max(2, rng.binomial(randomised, share))))


def _draw_cell(rng: np.random.Generator, s: SimulationSettings, outcome: str, follow_up: str,
               thetas: np.ndarray, n: list[int]) -> dict[str, np.ndarray]:
    """Arm-level summaries of one trial at one outcome and follow-up (arm 1, then controls).

    The individualized arm is shared: control arm j's true change is the individualized arm's
    minus theta_j x sigma, sigma the true SD of the change, so each comparison has its own true
    effect while the arm-1 data are identical in every comparison of the trial.
    """
    mean_b, sd_b = s.baseline[outcome]
    for _ in range(_TRIES):
        baseline = rng.normal(mean_b, sd_b)
        control = rng.normal(s.control_change[outcome][follow_up], s.control_change_sd)
        sd_pre, sd_post = rng.uniform(*s.arm_sd, size=2)
        r = rng.uniform(*s.prepost_r)
        sigma = np.sqrt(sd_pre ** 2 + sd_post ** 2 - 2.0 * r * sd_pre * sd_post)
        change1 = control + thetas[0] * sigma
        change = np.concatenate([[change1], change1 - thetas * sigma])
        levels = np.concatenate([[baseline], baseline + change])
        if (_VAS_MARGIN <= levels.min()) and (levels.max() <= 10.0 - _VAS_MARGIN):
            break
    else:
        raise InputError(Problem(
            f"the true means of {outcome} at {follow_up} follow-up keep falling outside the "
            f"0-10 VAS (baseline {mean_b:g}, control change "
            f"{s.control_change[outcome][follow_up]:g}, effects up to {np.abs(thetas).max():.2g}"
            f" SD); move baseline/control_change towards the middle or reduce mu/tau",
            column="baseline", show_value=False), "simulate")
    k = change.size
    sizes = np.asarray(n, dtype=int)
    for _ in range(_TRIES):
        drawn = summary_statistics(rng, sizes, np.full(k, baseline), baseline + change,
                                   np.full(k, sd_pre), np.full(k, sd_post), np.full(k, r))
        means = np.concatenate([drawn["baseline_mean"], drawn["post_mean"]])
        if means.min() >= 0.0 and means.max() <= 10.0:
            break
    else:  # pragma: no cover - true means are _VAS_MARGIN inside the scale
        raise InputError(Problem("sampled means keep falling outside the 0-10 VAS",
                                 column="baseline", show_value=False), "simulate")
    drawn["n"] = sizes
    return drawn


def _report(value: float, instrument: str, kind: str, decimals: int) -> float:
    on_scale = float(from_vas(float(value), instrument, kind=kind)) \
        if instrument != "VAS_0_10" else float(value)
    return round(on_scale, decimals)


def _order(rows: pd.DataFrame) -> pd.DataFrame:
    schema = [c for c in STUDY_TABLE.names if c in rows.columns]
    extra = [c for c in rows.columns if c not in STUDY_TABLE]
    return rows[schema + extra].reset_index(drop=True)
