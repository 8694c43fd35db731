"""Generate the SYNTHETIC low-back-pain review dataset and its datasheet.

    python scripts/make_lbp_synthetic.py [--out data/lbp_review_synthetic.csv]

Writes ``data/lbp_review_synthetic.csv`` and ``data/lbp_review_synthetic.DATASHEET.md``. The
trials are invented: they are shaped on the published design of Fleckenstein et al. (2022, J Pain;
PROSPERO CRD42021247331), and each of the 8 main cells (outcome x comparator x follow-up),
analysed as the paper did (Hedges' g of change scores, REML, z-based 95% CI), reproduces the
published k exactly and the published SMD, CI bounds and I2 when rounded as the paper rounds them.

How (every step seeded from ``SEED``; an attempt that misses a target is discarded and the next
attempt, seeded ``[SEED, attempt]``, is tried):

1. trials: sizes with the published median/IQR and total, moderators with the published counts
   (``bayesmeta.simulation.draws``: quantile matching and largest-remainder allocation);
2. control groups and which trials report which cell, with the exact k of every cell;
3. trial sizes are permuted among the trials (a swap search) until every cell's sample sizes
   can give its published CI width at a plausible retention (analysed / randomised);
4. per cell: the analysed n (retention solved so that the REML CI has the published width when
   I2 is the published value), then study effects at which REML's estimating equations hold
   exactly at the published SMD and I2 (tau2 = I2 / (100 - I2) x the typical within-study
   variance, metafor's definition); in the four pain cells whose Egger test the paper reports,
   the effects lean with their standard error so that Egger's z comes out near the published one;
5. arm-level values (0-10 VAS quantities reported on each trial's instrument) that give those
   effects, rounded to extraction precision (2 decimals, integer n); a greedy search over the
   last digit of the control arms' follow-up and change means moves every cell back towards the
   centre of its rounding box;
6. the written file is read back and analysed exactly as ``tests/test_lbp_synthetic.py`` does.

Runs in well under a minute; the same seed gives a byte-identical file.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmeta.effects import escalc, table_to_vas
from bayesmeta.effects.means import (
    change_sd_from_prepost,
    hedges_correction,
    standardized_mean_difference,
)
from bayesmeta.frequentist import egger_test, rank_test, rma
from bayesmeta.io import STUDY_TABLE, read_studies
from bayesmeta.io.template import schema_frame
from bayesmeta.simulation.draws import allocate, largest_remainder, quantile_matched

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "data" / "published" / "fleckenstein2022_pooled.csv"
PUBLISHED_BIAS = ROOT / "data" / "published" / "fleckenstein2022_bias_tests.csv"
OUT = ROOT / "data" / "lbp_review_synthetic.csv"

SEED = 20220516
MAX_ATTEMPTS = 40
Z = 1.959963984540054  # qnorm(0.975)

# ---------------------------------------------------------------- the published design
N_TRIALS = 58
TOTAL_N = 10084
SIZE_Q = (69.0, 121.0, 238.0)
DURATION_Q = (6.0, 8.0, 12.0)
AGE_Q = (41.7, 45.4, 49.4)
#: control groups per trial: A = active (exercise), P = passive. 11 trials with more than one.
#: 42 active (as published) and 32 passive (published: 30; k = 32 at pain/passive/short).
CONTROL_KINDS = ["A"] * 29 + ["P"] * 18 + ["AP"] * 6 + ["APP"] * 3 + ["AAP"] * 2
PASSIVE_DETAIL = {"usual_care_advice": 23, "no_treatment": 3, "passive_therapy": 5,
                  "medication": 1}
MATCHED = 11
EXERCISE_PUBLISHED = {"mixed": 24, "smt": 22, "aerobic": 5, "mckenzie": 4, "back_school": 4,
                      "pilates": 1, "yoga": 1}
PSYCH_PUBLISHED = {"cbt": 9, "behavioural": 2, "other": 24}
PSYCH = {"none": 24, "cbt": 9, "behavioural": 2, "other": 23}
ROB = {"some_concerns": 26, "high": 32}
LBP_12_WEEKS = 44  # not in the review notes: an assumption
EFFECTIVE_TYPES = ("mixed", "smt", "mckenzie", "pilates", "yoga")  # an assumption
#: instrument shares by outcome (trial level)
INSTRUMENTS = {"pain": {"VAS_0_10": 0.55, "NRS_0_10": 0.3, "VAS_0_100": 0.15},
               "disability": {"ODI_0_100": 0.45, "RMDQ_0_24": 0.45, "VAS_0_10": 0.10}}
WIDTH = {"VAS_0_10": 10.0, "NRS_0_10": 10.0, "VAS_0_100": 100.0, "ODI_0_100": 100.0,
         "RMDQ_0_24": 24.0}
#: true baseline level (VAS) by outcome: mean, between-trial SD; control changes by cell
BASELINE = {"pain": (4.9, 1.0), "disability": (3.5, 1.0)}
CONTROL_CHANGE = {("pain", "short"): -1.27, ("pain", "long"): -1.40,
                  ("disability", "short"): -0.81, ("disability", "long"): -0.76}
#: report forms: change means and SDs / change means without SDs / baseline and follow-up only
FORMS = {"change": 0.7, "no_change_sd": 0.22, "values_only": 0.08}
IMPUTATION_R = 0.5
#: correlation of a trial's effect directions across its cells
TRIAL_CORRELATION = 0.5
SOURCE = "SYNTHETIC (scripts/make_lbp_synthetic.py); not data of any real trial"

OUTCOMES = ("pain", "disability")
COMPARATORS = ("active", "passive")
FOLLOW_UPS = ("short", "long")
CELLS = [(o, c, f) for o in OUTCOMES for c in COMPARATORS for f in FOLLOW_UPS]
#: retention (analysed / randomised) wanted: short, long; the swap search aims inside
RETENTION = {"short": (0.70, 0.95), "long": (0.60, 0.90)}
MIN_ARM = 12  # randomised per arm at least


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One published cell and the centre of the region that rounds to it."""

    cell: tuple[str, str, str]
    k: int
    smd: float
    ci_low: float
    ci_high: float
    i2: int
    mu: float  # centre aimed at
    half_width: float  # z x SE aimed at

    @property
    def analysis_id(self) -> str:
        return "_".join(self.cell)

    @property
    def se(self) -> float:
        return self.half_width / Z


def targets() -> dict[tuple[str, str, str], Target]:
    """The published cells and, for each, the (mu, half-width h) furthest from every rounding
    edge: mu in [smd +- 0.005), mu - h in [ci_low +- 0.005), mu + h in [ci_high +- 0.005).

    With c = (ci_low + ci_high) / 2, the largest common margin is 0.005 - |c - smd| / 2,
    reached at mu = (smd + c) / 2 and h = (ci_high - ci_low) / 2.
    """
    pub = pd.read_csv(PUBLISHED)
    out = {}
    for r in pub.itertuples(index=False):
        cell = (r.outcome, r.comparator, r.follow_up)
        centre = (r.ci_low + r.ci_high) / 2.0
        out[cell] = Target(cell, int(r.k), float(r.smd), float(r.ci_low), float(r.ci_high),
                           int(r.i2_percent), float((r.smd + centre) / 2.0),
                           float((r.ci_high - r.ci_low) / 2.0))
    return out


def box_margin(t: Target, mu: float, low: float, high: float, i2: float) -> float:
    """Smallest distance to a rounding edge, in units of the box half-width (1 = centre)."""
    return min(1 - abs(mu - t.smd) / 0.005, 1 - abs(low - t.ci_low) / 0.005,
               1 - abs(high - t.ci_high) / 0.005, 1 - abs(i2 - t.i2) / 0.5)


# ---------------------------------------------------------------- trials


def trial_sizes(rng: np.random.Generator) -> np.ndarray:
    """Sizes with the published quartiles (exactly, two quantile definitions) and total."""
    x = np.sort(quantile_matched(rng, N_TRIALS, *SIZE_Q, log=True, decimals=0, exact=True,
                                 lower=3 * MIN_ARM))
    top = np.arange(45, N_TRIALS)  # above the Q3 tie block (positions 42-44)
    # the log-normal's upper tail overshoots the published total; compress it (square root of
    # the excess over Q3) and scale so the sizes add up to the total
    excess = np.sqrt(x[top] - SIZE_Q[2])
    room = TOTAL_N - x[:45].sum() - SIZE_Q[2] * top.size
    x[top] = SIZE_Q[2] + np.round(excess * room / excess.sum())
    x[-1] += TOTAL_N - x.sum()
    return np.sort(x).astype(int)


def trial_table(rng: np.random.Generator) -> pd.DataFrame:
    exercise = largest_remainder(N_TRIALS, list(EXERCISE_PUBLISHED.values()))
    exercise_types = np.repeat(list(EXERCISE_PUBLISHED), exercise)[rng.permutation(N_TRIALS)]
    psych = allocate(rng, N_TRIALS, PSYCH, exact=True)
    rob = allocate(rng, N_TRIALS, ROB, exact=True)
    lbp = allocate(rng, N_TRIALS, {True: LBP_12_WEEKS, False: N_TRIALS - LBP_12_WEEKS},
                   exact=True)
    duration = quantile_matched(rng, N_TRIALS, *DURATION_Q, log=True, decimals=0, exact=True,
                                lower=4.0)
    age = quantile_matched(rng, N_TRIALS, *AGE_Q, log=False, decimals=1, exact=True)
    kinds = np.asarray(CONTROL_KINDS, dtype=object)[rng.permutation(N_TRIALS)]
    short_weeks = np.where(rng.random(N_TRIALS) < 0.7, 12.0, np.maximum(duration, 6.0))
    long_weeks = np.where(rng.random(N_TRIALS) < 0.75, 52.0,
                          rng.choice([26.0, 39.0, 78.0, 104.0], size=N_TRIALS))
    return pd.DataFrame({
        "study_id": [f"Synthetic {t + 1:02d}" for t in range(N_TRIALS)],
        "kinds": kinds,
        "exercise_type": exercise_types,
        "effective_exercise": [e in EFFECTIVE_TYPES for e in exercise_types],
        "psych_component": psych,
        "behavioural": [p in ("cbt", "behavioural") for p in psych],
        "rob_overall": rob,
        "lbp_12_weeks": lbp.astype(bool),
        "duration_weeks": duration,
        "mean_age": age,
        "short_weeks": short_weeks,
        "long_weeks": long_weeks,
    })


def comparison_table(rng: np.random.Generator, trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for t, kinds in enumerate(trials["kinds"]):
        for j, kind in enumerate(kinds):
            rows.append({"trial": t, "comparison_id": str(j + 1),
                         "comparator": "active" if kind == "A" else "passive",
                         "n_arms": len(kinds) + 1})
    comps = pd.DataFrame(rows)
    passive = (comps["comparator"] == "passive").to_numpy()
    detail = np.full(len(comps), "exercise", dtype=object)
    detail[passive] = allocate(rng, int(passive.sum()), PASSIVE_DETAIL, exact=True)
    matched = np.zeros(len(comps), dtype=bool)
    matched[~passive] = allocate(rng, int((~passive).sum()),
                                 {True: MATCHED, False: int((~passive).sum()) - MATCHED},
                                 exact=True).astype(bool)
    comps["comparator_detail"] = detail
    comps["matched_control"] = matched
    return comps


def choose(rng: np.random.Generator, candidates: list[int], active: dict[int, int],
           passive: dict[int, int], k_active: int, k_passive: int,
           forced: set[int]) -> set[int]:
    """Trials (with all their comparisons) giving exactly k_active and k_passive comparisons."""
    chosen = set(forced)
    a = sum(active[t] for t in chosen)
    p = sum(passive[t] for t in chosen)
    free = [t for t in candidates if t not in chosen]
    mixed = [t for t in free if active[t] and passive[t]]
    for t in rng.permutation(mixed):
        if a + active[t] <= k_active and p + passive[t] <= k_passive and rng.random() < 0.7:
            chosen.add(int(t))
            a += active[t]
            p += passive[t]
    singles_a = [t for t in free if active[t] and not passive[t]]
    singles_p = [t for t in free if passive[t] and not active[t]]
    if not (0 <= k_active - a <= len(singles_a) and 0 <= k_passive - p <= len(singles_p)):
        raise _Retry("cell membership: not enough single-control trials")
    chosen |= {int(t) for t in rng.permutation(singles_a)[:k_active - a]}
    chosen |= {int(t) for t in rng.permutation(singles_p)[:k_passive - p]}
    return chosen


def reports(rng: np.random.Generator, trials: pd.DataFrame,
            target: dict[tuple[str, str, str], Target]) -> dict[tuple[str, str], set[int]]:
    """Which trials report each (outcome, follow-up): every cell gets its published k, every
    comparison reports at least one short-term outcome, long-term reporters are a subset of
    the short-term ones of the same outcome."""
    kinds = trials["kinds"].tolist()
    active = {t: k.count("A") for t, k in enumerate(kinds)}
    passive = {t: k.count("P") for t, k in enumerate(kinds)}
    every = list(range(N_TRIALS))
    k = {cell: target[cell].k for cell in CELLS}
    with_passive = {t for t in every if passive[t]}
    if sum(passive.values()) != k[("pain", "passive", "short")]:
        raise ValueError("every passive control group reports pain at short term")
    pain_short = choose(rng, every, active, passive, k[("pain", "active", "short")],
                        k[("pain", "passive", "short")], with_passive)
    not_pain = {t for t in every if active[t] and t not in pain_short}
    dis_short = choose(rng, every, active, passive, k[("disability", "active", "short")],
                       k[("disability", "passive", "short")], not_pain)
    pain_long = choose(rng, sorted(pain_short), active, passive,
                       k[("pain", "active", "long")], k[("pain", "passive", "long")], set())
    dis_long = choose(rng, sorted(dis_short), active, passive,
                      k[("disability", "active", "long")],
                      k[("disability", "passive", "long")], set())
    return {("pain", "short"): pain_short, ("disability", "short"): dis_short,
            ("pain", "long"): pain_long, ("disability", "long"): dis_long}


class _Retry(Exception):
    """This attempt cannot reach a target; the next attempt starts from a new seed."""


# ---------------------------------------------------------------- sample sizes


@dataclass
class Cell:
    """The comparisons of one cell and the arrays the calibration works on."""

    key: tuple[str, str, str]
    trial: np.ndarray  # trial of each comparison
    comparison: np.ndarray  # its comparison_id
    arm1: np.ndarray  # randomised size of the individualized arm
    arm2: np.ndarray  # randomised size of the control arm
    long_reporter: np.ndarray  # (short cells) also in the long cell of the same outcome
    n1: np.ndarray | None = None
    n2: np.ndarray | None = None
    yi: np.ndarray | None = None


def cells_of(comps: pd.DataFrame, sizes: np.ndarray,
             reported: dict[tuple[str, str], set[int]]) -> dict[tuple[str, str, str], Cell]:
    """The cells' comparisons (fixed by ``reported``) with arm sizes from trial ``sizes``."""
    out = {}
    arm1, arm2 = _comparison_arms(comps, sizes)
    for o, c, f in CELLS:
        mask = (comps["trial"].isin(reported[(o, f)]).to_numpy()
                & (comps["comparator"] == c).to_numpy())
        trial = comps["trial"].to_numpy()[mask]
        long = (np.isin(trial, list(reported[(o, "long")])) if f == "short"
                else np.ones(mask.sum(), dtype=bool))
        out[(o, c, f)] = Cell((o, c, f), trial, comps["comparison_id"].to_numpy()[mask],
                              arm1[mask], arm2[mask], long)
    return out


def _comparison_arms(comps: pd.DataFrame, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _arm_sizes(sizes[comps["trial"].to_numpy()], comps["n_arms"].to_numpy(),
                      comps["comparison_id"].astype(int).to_numpy())


def _arm_sizes(total: np.ndarray, n_arms: np.ndarray, comparison: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    base, extra = total // n_arms, total % n_arms
    return base + (extra > 0), base + (extra > comparison)


def typical_variance(v: np.ndarray) -> float:
    """metafor's 'typical' within-study variance of I2 (Higgins & Thompson 2002)."""
    w = 1.0 / v
    return float((w.size - 1) * w.sum() / (w.sum() ** 2 - (w ** 2).sum()))


def needed_retention(n: np.ndarray, t: Target) -> float:
    """Scale of equal-arm totals n at which the REML CI has the target width (I2 at target)."""
    v = 4.0 / n + t.mu ** 2 / (2.0 * n)
    tau2 = t.i2 / (100.0 - t.i2) * typical_variance(v)
    se = np.sqrt(1.0 / np.sum(1.0 / (v + tau2)))
    return float((se / t.se) ** 2)


LAMBDAS = np.round(np.linspace(1.0, 0.6, 9), 2)


def pair_plan(cells: dict, target: dict, short: tuple, long: tuple
              ) -> tuple[float, float, float, float]:
    """Retention of a short/long pair: long cell f_L; short cell f_S with the comparisons that
    do not report long-term at lambda x f_S (retention better in trials that follow up longer),
    lambda the largest in LAMBDAS giving f_S >= f_L + 0.05. Returns f_S, f_L, lambda, shortfall.
    """
    cs, cl = cells[short], cells[long]
    arms_l = 2.0 / (1.0 / cl.arm1 + 1.0 / cl.arm2) * 2.0
    arms_s = 2.0 / (1.0 / cs.arm1 + 1.0 / cs.arm2) * 2.0
    f_long = needed_retention(arms_l, target[long])
    f_short = lam = 1.0
    for lam in LAMBDAS:
        f_short = needed_retention(arms_s * np.where(cs.long_reporter, 1.0, lam), target[short])
        if f_short >= f_long + 0.05:
            return f_short, f_long, float(lam), 0.0
    return f_short, f_long, float(lam), f_long + 0.05 - f_short


PAIRS = [((o, c, "short"), (o, c, "long")) for o in OUTCOMES for c in COMPARATORS]


def plan_cost(cells: dict, target: dict) -> float:
    cost = 0.0
    for short, long in PAIRS:
        f_s, f_l, lam, gap = pair_plan(cells, target, short, long)
        for f, (lo, hi) in ((f_s, RETENTION["short"]), (f_l, RETENTION["long"])):
            cost += np.log(f / hi) ** 2 * (f > hi) + np.log(f / lo) ** 2 * (f < lo)
        cost += 0.3 * (1.0 - lam) ** 2 + 50.0 * gap ** 2
    return float(cost)


def _comparison_rows(comps: pd.DataFrame, cell: Cell) -> np.ndarray:
    keys = list(zip(comps["trial"], comps["comparison_id"], strict=True))
    where = {k: i for i, k in enumerate(keys)}
    return np.array([where[(t, c)] for t, c in zip(cell.trial, cell.comparison, strict=True)],
                    dtype=int)


def place_sizes(rng: np.random.Generator, trials: pd.DataFrame, comps: pd.DataFrame,
                reported: dict, target: dict, sizes: np.ndarray) -> np.ndarray:
    """Permute the trial sizes among the trials (greedy random swaps) so every cell can reach
    its CI width at a plausible retention; multi-arm trials keep >= MIN_ARM per arm."""
    arms = trials["kinds"].str.len().to_numpy() + 1
    current = sizes[rng.permutation(N_TRIALS)]
    while np.any(current < MIN_ARM * arms):  # a valid start: the largest to multi-arm trials
        bad = np.flatnonzero(current < MIN_ARM * arms)[0]
        swap = np.flatnonzero((current >= MIN_ARM * arms[bad]) & (arms == 2))
        j = rng.choice(swap)
        current[bad], current[j] = current[j], current[bad]
    cells = cells_of(comps, current, reported)
    rows = {key: _comparison_rows(comps, cell) for key, cell in cells.items()}
    comp_trial = comps["trial"].to_numpy()
    comp_arms = comps["n_arms"].to_numpy()
    comp_id = comps["comparison_id"].astype(int).to_numpy()

    def cost_of(sizes: np.ndarray) -> float:
        arm1, arm2 = _arm_sizes(sizes[comp_trial], comp_arms, comp_id)
        for key, cell in cells.items():
            cell.arm1, cell.arm2 = arm1[rows[key]], arm2[rows[key]]
        return plan_cost(cells, target)

    cost = cost_of(current)
    for _ in range(4000):
        i, j = rng.integers(N_TRIALS, size=2)
        if current[j] < MIN_ARM * arms[i] or current[i] < MIN_ARM * arms[j]:
            continue
        current[i], current[j] = current[j], current[i]
        new = cost_of(current)
        if new <= cost:
            cost = new
        else:
            current[i], current[j] = current[j], current[i]
    if cost > 0.1:
        raise _Retry(f"no size placement with plausible retention (cost {cost:.3f})")
    return current


# ---------------------------------------------------------------- effects per cell


def stationary_effects(n1: np.ndarray, n2: np.ndarray, t: Target, z: np.ndarray
                       ) -> tuple[np.ndarray, float]:
    """Effects y at which (mu, tau2) = (t.mu, I2 / (100 - I2) x typical variance) solve the
    REML estimating equations: sum w (y - mu) = 0 and sum w^2 (y - mu)^2 = sum w - sum w^2 /
    sum w, w = 1 / (v + tau2) (Viechtbauer 2005, doi:10.3102/10769986030003261). v depends on y
    through Hedges' g's variance, hence the fixed-point iteration. Returns y and SE(mu)."""
    y = t.mu + 0.1 * z
    for _ in range(200):
        v = 1.0 / n1 + 1.0 / n2 + y ** 2 / (2.0 * (n1 + n2))
        tau2 = t.i2 / (100.0 - t.i2) * typical_variance(v)
        w = 1.0 / (v + tau2)
        e = z * np.sqrt(v + tau2)
        e = e - np.sum(w * e) / np.sum(w)
        scale = np.sqrt((w.sum() - np.sum(w ** 2) / w.sum()) / np.sum(w ** 2 * e ** 2))
        new = t.mu + scale * e
        if np.max(np.abs(new - y)) < 1e-14:
            y = new
            break
        y = new
    v = 1.0 / n1 + 1.0 / n2 + y ** 2 / (2.0 * (n1 + n2))
    tau2 = t.i2 / (100.0 - t.i2) * typical_variance(v)
    return y, float(np.sqrt(1.0 / np.sum(1.0 / (v + tau2))))


def analysed(cell: Cell, f: float, lam: float, jitter1: dict, jitter2: dict,
             cap: dict | None, fixed_n1: dict) -> tuple[np.ndarray, np.ndarray]:
    """Analysed n per arm: randomised x f (x lambda for trials without long-term data) x
    jitter, capped by the same arm's short-term n (long cells). An individualized arm already
    sized in the other comparator's cell keeps its n (it is the same arm)."""
    o, _, fu = cell.key
    scale = f * np.where(cell.long_reporter, 1.0, lam)
    n1 = np.empty(cell.trial.size, dtype=int)
    n2 = np.empty(cell.trial.size, dtype=int)
    for i, (t, c) in enumerate(zip(cell.trial, cell.comparison, strict=True)):
        n1[i] = max(4, int(np.round(cell.arm1[i] * scale[i] * jitter1[(o, fu, t)])))
        n2[i] = max(4, int(np.round(cell.arm2[i] * scale[i] * jitter2[(cell.key, t, c)])))
        if cap is not None:
            n1[i] = min(n1[i], cap[(t, o, "1")])
            n2[i] = min(n2[i], cap[(t, o, c)])
        # never more analysed than randomised (intention-to-treat analyses reach 100%)
        n1[i] = fixed_n1.get((t, o, fu), min(n1[i], int(cell.arm1[i])))
        n2[i] = min(n2[i], int(cell.arm2[i]))
    return n1, n2


def calibrate_cell(cell: Cell, t: Target, lam: float, z: np.ndarray, jitter1: dict,
                   jitter2: dict, cap: dict | None, fixed_n1: dict,
                   egger: float | None = None) -> None:
    """Solve the retention scale so that SE(mu) hits the target, then set n and y.

    With ``egger`` (a published Egger z), the effect directions get a trend in the standard
    error first, chosen so that Egger's test of the constructed effects gives about that z
    (a soft target: the funnel plot leans the published way; REML's results are unchanged).
    """
    n1, n2, _ = _solve_retention(cell, t, lam, z, jitter1, jitter2, cap, fixed_n1)
    if egger is not None:
        z = z + egger_trend(n1, n2, t, z, egger)
    cell.n1, cell.n2, cell.yi = _solve_retention(cell, t, lam, z, jitter1, jitter2, cap,
                                                 fixed_n1)
    if np.any(cell.n1 > cell.arm1) or np.any(cell.n2 > cell.arm2):
        raise _Retry(f"{'_'.join(cell.key)}: analysed n above randomised n")


def _solve_retention(cell: Cell, t: Target, lam: float, z: np.ndarray, jitter1: dict,
                     jitter2: dict, cap: dict | None, fixed_n1: dict
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = 0.8
    best = None
    for _ in range(60):
        n1, n2 = analysed(cell, f, lam, jitter1, jitter2, cap, fixed_n1)
        y, se = stationary_effects(n1.astype(float), n2.astype(float), t, z)
        miss = abs(se - t.se) / t.se
        if best is None or miss < best[0]:
            best = (miss, n1, n2, y)
        if miss < 2e-4:
            break
        f = f * (se / t.se) ** 2
        if f > 1.5 or f < 0.2:
            break
    miss, n1, n2, y = best
    if miss > 0.01:  # the integer n cannot get closer than about 1% in SE: try another attempt
        raise _Retry(f"{'_'.join(cell.key)}: CI width off by {miss:.1%}")
    return n1, n2, y


def egger_trend(n1: np.ndarray, n2: np.ndarray, t: Target, z: np.ndarray,
                target: float) -> np.ndarray:
    """gamma x the standardised standard error, gamma (on a grid) giving the Egger z closest to
    the target for effects built from ``z + gamma x trend``."""
    sei = np.sqrt(1.0 / n1 + 1.0 / n2)
    trend = (sei - sei.mean()) / sei.std()
    best = (np.inf, 0.0)
    for gamma in np.linspace(-3.0, 3.0, 61):
        y, _ = stationary_effects(n1.astype(float), n2.astype(float), t, z + gamma * trend)
        v = 1.0 / n1 + 1.0 / n2 + y ** 2 / (2.0 * (n1 + n2))
        statistic = egger_test(rma(y, v, method="REML")).statistic
        if abs(statistic - target) < best[0]:
            best = (abs(statistic - target), gamma)
    return best[1] * trend


# ---------------------------------------------------------------- arm-level values


def _hundredths(x: float) -> int:
    return int(np.round(x * 100.0))


#: cells in the order they are sized and filled: passive before active, because a multi-arm
#: trial's individualized arm is shared and the passive cells need the larger n
ORDER = [(o, c, f) for f in FOLLOW_UPS for o in OUTCOMES for c in ("passive", "active")]


def arm_values(rng: np.random.Generator, trials: pd.DataFrame, cells: dict) -> pd.DataFrame:
    """Arm-level rows on each trial's instrument, rounded to 2 decimals, matching the cells'
    effects as closely as rounding allows. Values are kept as integers of hundredths so that
    post = baseline + change holds exactly. The individualized arm of a multi-arm trial is the
    same in every comparison of an outcome and follow-up (its data are set once)."""
    instrument = {}
    for o in OUTCOMES:
        drawn = allocate(rng, N_TRIALS, INSTRUMENTS[o], exact=True)
        instrument.update({(t, o): str(drawn[t]) for t in range(N_TRIALS)})
    report_keys = sorted({(int(t), o, f) for (o, _, f), cell in cells.items()
                          for t in cell.trial})
    forms = dict(zip(report_keys, allocate(rng, len(report_keys), FORMS, exact=True),
                     strict=True))
    baseline: dict = {}  # (trial, outcome, arm) -> (mean, sd) in hundredths of the instrument
    for t in range(N_TRIALS):
        for o in OUTCOMES:
            factor = WIDTH[instrument[(t, o)]] / 10.0
            level = np.clip(rng.normal(*BASELINE[o]), 1.5, 8.0)
            # the individualized arm ("arm1") and each control arm (its comparison_id)
            for arm in ["arm1", *(str(j + 1) for j in range(len(trials["kinds"][t])))]:
                mean = np.clip(level + rng.normal(0.0, 0.15), 1.0, 8.5)
                baseline[(t, o, arm)] = (_hundredths(mean * factor),
                                         _hundredths(rng.uniform(1.2, 2.2) * factor))
    arm1: dict = {}  # (trial, outcome, follow-up) -> the individualized arm, once set
    rows = []
    for key in ORDER:
        cell = cells[key]
        o, _, f = key
        for t in np.unique(cell.trial):
            idx = np.flatnonzero(cell.trial == t)
            rows += _trial_rows(rng, trials, cell, int(t), idx, instrument[(int(t), o)],
                                forms[(int(t), o, f)], baseline, arm1)
    return pd.DataFrame(rows)


def _trial_rows(rng: np.random.Generator, trials: pd.DataFrame, cell: Cell, t: int,
                idx: np.ndarray, instrument: str, form: str, baseline: dict,
                arm1: dict) -> list[dict]:
    o, c, f = cell.key
    factor = WIDTH[instrument] / 10.0
    b1 = baseline[(t, o, "arm1")]
    for _ in range(200):
        if (t, o, f) in arm1:
            post_sd1, sd1, change1 = arm1[(t, o, f)]
        else:
            post_sd1 = _hundredths(rng.uniform(1.2, 2.4) * factor)
            sd1 = _change_sd(b1[1], post_sd1, rng.uniform(0.3, 0.7), form)
            change1 = None
        control = rng.normal(CONTROL_CHANGE[(o, f)], 0.45) * factor
        rows = []
        for i in idx:
            comp = cell.comparison[i]
            b2 = baseline[(t, o, comp)]
            post_sd2 = _hundredths(rng.uniform(1.2, 2.4) * factor)
            sd2 = _change_sd(b2[1], post_sd2, rng.uniform(0.3, 0.7), form)
            n1, n2 = float(cell.n1[i]), float(cell.n2[i])
            sp = np.sqrt(((n1 - 1) * sd1[1] ** 2 + (n2 - 1) * sd2[1] ** 2) / (n1 + n2 - 2))
            diff = float(cell.yi[i]) * sp / _hedges_j(n1 + n2 - 2)  # in hundredths
            if change1 is None:
                change2 = _hundredths(control)
                change1 = int(np.round(change2 + diff))
            else:
                change2 = int(np.round(change1 - diff))
            rows.append(_row(trials, cell, t, i, instrument, form, b1, b2, post_sd1, post_sd2,
                             sd1, sd2, change1, change2))
        levels = [r[k] for r in rows for k in ("post_mean1", "post_mean2")]
        if min(levels) >= 0.1 * factor and max(levels) <= WIDTH[instrument] - 0.1 * factor:
            arm1[(t, o, f)] = (post_sd1, sd1, change1)
            return rows
    raise _Retry(f"{'_'.join(cell.key)}, trial {t}: means outside the scale")


def _hedges_j(df: float) -> float:
    return float(hedges_correction(np.array([df]))[0])


def _change_sd(baseline_sd: int, post_sd: int, r: float, form: str) -> tuple[int | None, float]:
    """(reported change SD in hundredths or None, the SD the analysis will use, hundredths)."""
    if form == "change":
        sd = _hundredths(np.sqrt(baseline_sd ** 2 + post_sd ** 2
                                 - 2 * r * baseline_sd * post_sd) / 100.0)
        return sd, float(sd)
    imputed = float(change_sd_from_prepost(np.array([baseline_sd / 100.0]),
                                           np.array([post_sd / 100.0]),
                                           np.array([IMPUTATION_R]))[0]) * 100.0
    return None, imputed


def _row(trials: pd.DataFrame, cell: Cell, t: int, i: int, instrument: str, form: str,
         b1: tuple, b2: tuple, post_sd1: int, post_sd2: int, sd1: tuple, sd2: tuple,
         change1: int, change2: int) -> dict:
    o, c, f = cell.key
    row = {"trial": t, "study_id": trials["study_id"][t], "comparison_id": cell.comparison[i],
           "outcome": o, "follow_up": f, "comparator": c,
           "follow_up_weeks": trials[f"{f}_weeks"][t],
           "n1": int(cell.n1[i]), "n2": int(cell.n2[i]),
           "baseline_mean1": b1[0] / 100, "baseline_mean2": b2[0] / 100,
           "baseline_sd1": b1[1] / 100, "baseline_sd2": b2[1] / 100,
           "post_mean1": (b1[0] + change1) / 100, "post_mean2": (b2[0] + change2) / 100,
           "post_sd1": post_sd1 / 100, "post_sd2": post_sd2 / 100,
           "change_mean1": change1 / 100, "change_mean2": change2 / 100,
           "change_sd1": np.nan if sd1[0] is None else sd1[0] / 100,
           "change_sd2": np.nan if sd2[0] is None else sd2[0] / 100,
           "prepost_r": IMPUTATION_R if form != "change" else np.nan,
           "instrument": instrument, "form": form}
    if form == "values_only":
        row["change_mean1"] = row["change_mean2"] = np.nan
    return row


# ---------------------------------------------------------------- analysis as the paper


def effects(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g and its variance from the rows' numbers, as escalc computes them."""
    sd1 = np.where(rows["change_sd1"].isna(),
                   change_sd_from_prepost(rows["baseline_sd1"], rows["post_sd1"],
                                          rows["prepost_r"]), rows["change_sd1"])
    sd2 = np.where(rows["change_sd2"].isna(),
                   change_sd_from_prepost(rows["baseline_sd2"], rows["post_sd2"],
                                          rows["prepost_r"]), rows["change_sd2"])
    m1 = (rows["post_mean1"] - rows["baseline_mean1"]).to_numpy()
    m2 = (rows["post_mean2"] - rows["baseline_mean2"]).to_numpy()
    cm1 = rows["change_mean1"].to_numpy()
    cm2 = rows["change_mean2"].to_numpy()
    m1 = np.where(np.isnan(cm1), m1, cm1)
    m2 = np.where(np.isnan(cm2), m2, cm2)
    return standardized_mean_difference(m1, sd1, rows["n1"].to_numpy(float), m2, sd2,
                                        rows["n2"].to_numpy(float))


def pooled(yi: np.ndarray, vi: np.ndarray) -> dict[str, float]:
    fit = rma(yi, vi, method="REML")
    return {"k": int(yi.size), "smd": float(fit.beta[0]), "ci_low": float(fit.ci_low[0]),
            "ci_high": float(fit.ci_high[0]), "i2": float(fit.i2), "tau2": float(fit.tau2),
            "tau": float(np.sqrt(fit.tau2))}


def repair(rows: pd.DataFrame, target: dict, min_margin: float = 0.3) -> pd.DataFrame:
    """Greedy +-0.01 steps of control arms' change means (and follow-up means) until every
    cell's rounded results sit at least ``min_margin`` of a half-box from every edge."""
    rows = rows.copy()
    for key, t in target.items():
        mask = ((rows["outcome"] == key[0]) & (rows["comparator"] == key[1])
                & (rows["follow_up"] == key[2])).to_numpy()
        index = np.flatnonzero(mask)
        for _ in range(200):
            sub = rows.iloc[index]
            yi, vi = effects(sub)
            res = pooled(yi, vi)
            margin = box_margin(t, res["smd"], res["ci_low"], res["ci_high"], res["i2"])
            if margin >= min_margin:
                break
            best = (margin, None)
            for pos in range(index.size):
                for step in (-1, 1):
                    trial = sub.copy()
                    _step(trial, pos, step)
                    y2, v2 = effects(trial)
                    r2 = pooled(y2, v2)
                    m2 = box_margin(t, r2["smd"], r2["ci_low"], r2["ci_high"], r2["i2"])
                    if m2 > best[0] + 1e-12:
                        best = (m2, (pos, step))
            if best[1] is None:
                raise _Retry(f"{t.analysis_id}: rounding cannot be repaired")
            pos, step = best[1]
            block = rows.iloc[index].copy()
            _step(block, pos, step)
            rows.iloc[index] = block
        else:
            raise _Retry(f"{t.analysis_id}: repair did not converge")
    return rows


def _step(block: pd.DataFrame, pos: int, step: int) -> None:
    """Move a control arm's change (and follow-up mean) by one unit of the last digit."""
    i = block.index[pos]
    post = _hundredths(block.at[i, "post_mean2"]) + step
    block.at[i, "post_mean2"] = post / 100
    if not np.isnan(block.at[i, "change_mean2"]):
        block.at[i, "change_mean2"] = (_hundredths(block.at[i, "change_mean2"]) + step) / 100


# ---------------------------------------------------------------- one attempt


def build(attempt: int) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng([SEED, attempt])
    target = targets()
    trials = trial_table(rng)
    comps = comparison_table(rng, trials)
    reported = reports(rng, trials, target)
    true_controls = comps.loc[comps["comparator_detail"] == "no_treatment", "trial"]
    for o in OUTCOMES:  # the review's "true controls only" analysis needs k >= 2
        if true_controls.isin(reported[(o, "short")]).sum() < 2:
            raise _Retry(f"fewer than 2 no-treatment controls report {o} at short term")
    sizes = place_sizes(rng, trials, comps, reported, target, trial_sizes(rng))
    trials["n_total"] = sizes
    cells = cells_of(comps, sizes, reported)
    jitter1 = {(o, f, t): rng.uniform(0.92, 1.0) for o in OUTCOMES for f in FOLLOW_UPS
               for t in range(N_TRIALS)}
    jitter2 = {(key, t, c): rng.uniform(0.92, 1.0) for key in CELLS
               for t, c in zip(comps["trial"], comps["comparison_id"], strict=True)}
    lam = {}
    for short, long in PAIRS:
        lam[short] = pair_plan(cells, target, short, long)[2]
        lam[long] = 1.0
    fixed_n1: dict = {}
    cap: dict = {}
    # a trial's effects lean the same way in all its cells (correlation TRIAL_CORRELATION)
    lean = rng.standard_normal(N_TRIALS)
    egger = dict(pd.read_csv(PUBLISHED_BIAS)[["analysis_id", "egger_z"]].itertuples(index=False))
    for key in ORDER:
        cell = cells[key]
        o, _, f = key
        z = (np.sqrt(TRIAL_CORRELATION) * lean[cell.trial]
             + np.sqrt(1.0 - TRIAL_CORRELATION) * rng.standard_normal(cell.trial.size))
        calibrate_cell(cell, target[key], lam[key], z,
                       jitter1, jitter2, cap if f == "long" else None, fixed_n1,
                       egger.get("_".join(key)))
        for t, c, n1, n2 in zip(cell.trial, cell.comparison, cell.n1, cell.n2, strict=True):
            fixed_n1[(t, o, f)] = n1
            if f == "short":
                cap[(t, o, "1")] = n1
                cap[(t, o, c)] = n2
    rows = arm_values(rng, trials, cells)
    rows = repair(rows, target)
    table = assemble(rows, trials, comps)
    return table, {"attempt": attempt, "lambda": lam, "cells": cells, "trials": trials,
                   "comparisons": comps, "target": target}


def assemble(rows: pd.DataFrame, trials: pd.DataFrame, comps: pd.DataFrame) -> pd.DataFrame:
    moderators = ["exercise_type", "effective_exercise", "psych_component", "behavioural",
                  "rob_overall", "lbp_12_weeks", "duration_weeks", "n_total", "mean_age"]
    out = rows.merge(trials[moderators].rename_axis("trial").reset_index(), on="trial")
    out = out.merge(comps[["trial", "comparison_id", "comparator_detail", "matched_control"]],
                    on=["trial", "comparison_id"])
    out["higher_is_worse"] = True
    out["source"] = SOURCE
    out["_o"] = out["outcome"].map({"pain": 0, "disability": 1})
    out["_f"] = out["follow_up"].map({"short": 0, "long": 1})
    out = out.sort_values(["trial", "comparison_id", "_o", "_f"]).reset_index(drop=True)
    columns = [c for c in STUDY_TABLE.names if c in out.columns]
    return out[columns]


# ---------------------------------------------------------------- writing


_DECIMALS = {"follow_up_weeks": 0, "duration_weeks": 0, "mean_age": 1, "prepost_r": 2}


def to_csv_text(table: pd.DataFrame) -> str:
    """Fixed formatting (so the bytes depend on the values only, not on library versions)."""
    out = pd.DataFrame(index=table.index)
    for name in table.columns:
        col = table[name]
        kind = STUDY_TABLE[name].kind
        if kind == "boolean":
            out[name] = col.map({True: "true", False: "false"})
        elif kind == "integer":
            out[name] = col.map(lambda v: f"{int(v)}")
        elif kind == "number":
            d = _DECIMALS.get(name, 2)
            out[name] = col.map(lambda v, d=d: "" if pd.isna(v) else f"{float(v):.{d}f}")
        else:
            out[name] = col.astype(str)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def analyse_file(path: Path) -> dict[tuple[str, str, str], dict[str, float]]:
    """The paper's analysis of the written file: read, VAS, escalc SMD, REML per cell."""
    table = table_to_vas(read_studies(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shared arms of multi-arm trials: the paper kept them
        es = escalc("SMD", data=table)
    out = {}
    for o, c, f in CELLS:
        sub = es[(es["outcome"] == o) & (es["comparator"] == c) & (es["follow_up"] == f)]
        out[(o, c, f)] = pooled(sub["yi"].to_numpy(), sub["vi"].to_numpy())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    failures = []
    for attempt in range(MAX_ATTEMPTS):
        try:
            table, info = build(attempt)
        except _Retry as exc:
            failures.append(f"attempt {attempt}: {exc}")
            print(failures[-1], file=sys.stderr)
            continue
        text = to_csv_text(table)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        results = analyse_file(args.out)
        target = info["target"]
        ok = all(_rounds_to(target[c], results[c]) for c in CELLS)
        if not ok:
            failures.append(f"attempt {attempt}: the written file misses a target")
            print(failures[-1], file=sys.stderr)
            continue
        datasheet = args.out.with_name(args.out.stem + ".DATASHEET.md")
        datasheet.write_text(datasheet_text(read_studies(args.out), results, info, failures),
                             encoding="utf-8")
        print(f"wrote {args.out} ({len(table)} rows) from seed {SEED}, attempt {attempt}")
        return 0
    print("no attempt reached every target", file=sys.stderr)
    return 1


# ---------------------------------------------------------------- the datasheet


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _share(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.1f}%)"


def moderator_rows(table: pd.DataFrame) -> list[list[str]]:
    """Published vs synthetic counts of every moderator."""
    trials = table.drop_duplicates("study_id")
    comps = table.drop_duplicates(["study_id", "comparison_id"])
    nt, nc = len(trials), len(comps)
    rows = [["trials", "58", str(nt), "trial"],
             ["control groups (comparisons)", "61 (category counts add up to 72)", str(nc),
              "comparison"],
             ["trials with more than one control group", "11",
              str(int((comps.groupby("study_id").size() > 1).sum())), "trial"]]
    published_exercise = ", ".join(f"{k} {v}" for k, v in EXERCISE_PUBLISHED.items())
    for level in EXERCISE_PUBLISHED:
        rows.append([f"exercise_type = {level}", str(EXERCISE_PUBLISHED[level])
                     + (f" (of 61 printed: {published_exercise})" if level == "mixed" else ""),
                     _share(int((trials["exercise_type"] == level).sum()), nt), "trial"])
    psych_any = int((trials["psych_component"] != "none").sum())
    rows.append(["psychological component (any)", "34", _share(psych_any, nt), "trial"])
    for level, count in PSYCH_PUBLISHED.items():
        rows.append([f"psych_component = {level}", str(count),
                     _share(int((trials["psych_component"] == level).sum()), nt), "trial"])
    rows.append(["behavioural = true", "not reported (assumed: CBT or behavioural component)",
                 _share(int(trials["behavioural"].sum()), nt), "trial"])
    rows.append(["effective_exercise = true",
                 f"classification not reported (assumed: {', '.join(EFFECTIVE_TYPES)})",
                 _share(int(trials["effective_exercise"].sum()), nt), "trial"])
    published_detail = {"exercise": "42", "usual_care_advice": "21", "no_treatment": "3",
                        "passive_therapy": "5", "medication": "1"}
    rows.append(["comparator = active", "42", _share(int((comps["comparator"] == "active")
                                                         .sum()), nc), "comparison"])
    rows.append(["comparator = passive", "30 (21 + 3 + 5 + 1)",
                 _share(int((comps["comparator"] == "passive").sum()), nc), "comparison"])
    for level, count in published_detail.items():
        rows.append([f"comparator_detail = {level}", count,
                     _share(int((comps["comparator_detail"] == level).sum()), nc),
                     "comparison"])
    rows.append(["matched_control = true", "11", _share(int(comps["matched_control"].sum()), nc),
                 "comparison"])
    for level, count in ROB.items():
        rows.append([f"rob_overall = {level}", str(count),
                     _share(int((trials["rob_overall"] == level).sum()), nt), "trial"])
    rows.append(["rob_overall = low", "0", _share(int((trials["rob_overall"] == "low").sum()),
                                                  nt), "trial"])
    rows.append(["lbp_12_weeks = true", "not in the review notes (assumed 44 of 58)",
                 _share(int(trials["lbp_12_weeks"].sum()), nt), "trial"])
    for name, published, decimals in (("n_total", SIZE_Q, 0), ("duration_weeks", DURATION_Q, 0),
                                      ("mean_age", AGE_Q, 1)):
        values = trials[name].astype(float).to_numpy()
        q = np.quantile(values, [0.25, 0.5, 0.75])
        rows.append([f"{name}: median (IQR)",
                     f"{published[1]:.{decimals}f} ({published[0]:.{decimals}f}-"
                     f"{published[2]:.{decimals}f})",
                     f"{q[1]:.{decimals}f} ({q[0]:.{decimals}f}-{q[2]:.{decimals}f})", "trial"])
    rows.append(["n_total: sum (randomised)", f"{TOTAL_N:,}",
                 f"{int(trials['n_total'].sum()):,}", "trial"])
    return rows


def small_study_rows(table: pd.DataFrame) -> list[list[str]]:
    """Egger's and the rank correlation test per published cell: published vs synthetic."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shared arms of multi-arm trials
        es = escalc("SMD", data=table_to_vas(table))
    rows = []
    for r in pd.read_csv(PUBLISHED_BIAS).itertuples(index=False):
        o, c, f = r.analysis_id.split("_")
        sub = es[(es["outcome"] == o) & (es["comparator"] == c) & (es["follow_up"] == f)]
        fit = rma(sub["yi"].to_numpy(), sub["vi"].to_numpy(), method="REML")
        egger, rank = egger_test(fit), rank_test(fit)
        rows.append([r.analysis_id, f"{r.egger_z:.3f}", f"{egger.statistic:.3f}",
                     f"{r.rank_tau:.3f}", f"{rank.tau:.3f}", f"{rank.pval:.3f}"])
    return rows


def vas_levels(table: pd.DataFrame) -> list[list[str]]:
    """Mean (SD) across comparisons of the arms' VAS means: published vs synthetic."""
    vas = table_to_vas(table)
    published = {("pain", "baseline"): ("4.90 (1.38)", "4.89 (1.45)"),
                 ("pain", "short"): ("2.88 (1.25)", "3.62 (1.24)"),
                 ("pain", "long"): ("3.15 (1.09)", "3.49 (1.14)"),
                 ("disability", "baseline"): ("3.53 (1.42)", "3.46 (1.51)"),
                 ("disability", "short"): ("2.41 (1.48)", "2.65 (1.51)"),
                 ("disability", "long"): ("2.47 (1.39)", "2.70 (1.21)")}
    rows = []
    for (o, when), (p1, p2) in published.items():
        sub = vas[vas["outcome"] == o]
        if when == "baseline":
            sub = sub[sub["follow_up"] == "short"]
            a, b = sub["baseline_mean1"], sub["baseline_mean2"]
        else:
            sub = sub[sub["follow_up"] == when]
            a, b = sub["post_mean1"], sub["post_mean2"]
        label = {"baseline": "baseline", "short": "12 weeks (short)", "long": "52 weeks (long)"}
        rows.append([o, label[when], p1, f"{a.mean():.2f} ({a.std():.2f})", p2,
                     f"{b.mean():.2f} ({b.std():.2f})"])
    return rows


def datasheet_text(table: pd.DataFrame, results: dict, info: dict, failures: list[str]) -> str:
    target = info["target"]
    calibration = []
    for cell in CELLS:
        t, r = target[cell], results[cell]
        calibration.append([
            t.analysis_id, f"{t.k} / {r['k']}", f"{t.smd:.2f} / {r['smd']:.2f}",
            f"[{t.ci_low:.2f}; {t.ci_high:.2f}] / [{r['ci_low']:.2f}; {r['ci_high']:.2f}]",
            f"{t.i2} / {r['i2']:.0f}",
            f"{r['smd']:.4f} [{r['ci_low']:.4f}; {r['ci_high']:.4f}]",
            f"{r['i2']:.2f}", f"{r['tau2']:.4f}",
            "yes" if _rounds_to(t, r) else "NO"])
    forms = table.assign(
        form=np.where(table["change_mean1"].isna(), "baseline and follow-up only",
                      np.where(table["change_sd1"].isna(), "change means, SDs imputed",
                               "change means and SDs")))
    form_counts = forms["form"].value_counts()
    bias_rows = small_study_rows(table)
    instruments = table.groupby(["outcome", "instrument"], observed=True)["study_id"].nunique()
    columns = schema_frame()
    columns = columns[columns["column"].isin(table.columns)]
    column_rows = [[f"`{r.column}`", str(r.type), str(r.meaning)]
                   for r in columns.itertuples(index=False)]
    retries = "; ".join(failures) if failures else "none"
    attempt = info["attempt"]
    lam = info["lambda"]
    lambdas = ", ".join(f"{'_'.join(c)} {lam[c]:.2f}" for c in CELLS if c[2] == "short")
    n_comps = len(table.drop_duplicates(["study_id", "comparison_id"]))
    facts = [
        ["real or synthetic", "**synthetic** (every row's `source` column says so)"],
        ["generated by", f"`scripts/make_lbp_synthetic.py`, seed `{SEED}` (attempt {attempt}, "
         f"seeded `[{SEED}, {attempt}]`; attempts that missed a target: {retries}). Running the "
         "script again writes a byte-identical file."],
        ["shaped on", "Fleckenstein J, Flössel P, Engel T, Klewinghaus L, Stoll J, Behrens M, "
         "Niederer D. *Individualized exercise in chronic non-specific low back pain: a "
         "systematic review with meta-analysis on the effects of exercise alone or in "
         "combination with psychological interventions on pain and disability.* J Pain 2022 "
         "(medRxiv 2021.12.16.21267900). PROSPERO CRD42021247331. Its study-level data are not "
         "public; only its design and pooled results were used "
         "(`data/published/fleckenstein2022_pooled.csv`)."],
        ["licence", "CC0 1.0 (public domain dedication)"],
        ["rows", f"{len(table)}: one per comparison (individualized arm 1 vs control arm 2) x "
         f"outcome x follow-up; {table['study_id'].nunique()} trials, {n_comps} comparisons"],
        ["measure", "arm-level summaries of pain and disability: `n1`/`n2` analysed; change "
         "(follow-up minus baseline) means and SDs (form A); baseline and follow-up means and "
         "SDs (form B). The analysis measure is Hedges' g of change scores (`escalc(\"SMD\")`), "
         "individualized minus control: negative = improvement."],
        ["units", "each row's `instrument`: pain on `VAS_0_10`, `NRS_0_10` or `VAS_0_100`; "
         "disability on `ODI_0_100`, `RMDQ_0_24` or `VAS_0_10` (higher = worse everywhere). "
         "`bayesmeta.table_to_vas` puts them on the 0-10 VAS (values were generated on the 0-10 "
         "VAS and converted). SMDs do not depend on the instrument."],
        ["precision", "means and SDs: 2 decimals on the instrument's scale; n: integers; "
         "`prepost_r`: 2 decimals; `mean_age`: 1 decimal; weeks: integers"],
    ]
    return f"""# Datasheet: `lbp_review_synthetic.csv`

> **SYNTHETIC DATA. These are not the trials' data.** Every row is invented. The file imitates
> the published design of one systematic review and is calibrated so that its 8 main
> meta-analyses reproduce the review's published pooled results; the individual "trials"
> (`Synthetic 01` ... `Synthetic 58`) do not exist. Do not cite these rows as evidence about
> exercise for low back pain; cite the review.

{_md_table(['', ''], facts)}

## How to reproduce the paper's 8 analyses

```python
import bayesmeta
from bayesmeta.frequentist import egger_test, rank_test, rma

table = bayesmeta.table_to_vas(bayesmeta.read_studies("data/lbp_review_synthetic.csv"))
es = bayesmeta.escalc("SMD", data=table)  # warns: multi-arm trials share their individualized arm
cell = es[(es.outcome == "pain") & (es.comparator == "active") & (es.follow_up == "short")]
fit = rma(cell.yi.to_numpy(), cell.vi.to_numpy(), method="REML")  # z-based 95% CI, as the paper
```

Missing change SDs are imputed by `escalc` from the baseline and follow-up SDs with the row's
`prepost_r` (0.50 wherever it is needed; the analysis plan `models/lbp_review.toml` declares the
same value). The multi-arm trials' comparisons enter their cells as separate rows, as the paper
pooled them (their individualized arm is counted once per comparison; `split_shared_groups`
offers the Cochrane remedy).

## Calibration: published vs reproduced

Each cell is `outcome_comparator_follow-up`. "published / synthetic" columns show the synthetic
value rounded as the paper rounds (SMD and CI: 2 decimals; I2: whole percent); the unrounded
columns are the REML results of this file (`tests/test_lbp_synthetic.py` checks them).

{_md_table(["cell", "k", "SMD", "95% CI", "I2 (%)", "unrounded SMD [CI]", "unrounded I2",
            "tau2", "match"], calibration)}

`disability_passive_short` uses the results text (-0.09 [-0.18; 0.01]); the abstract prints
-0.18 [-0.22; 0.01]. The paper's mean differences in VAS points (`md_vas`) are not calibration
targets and are not reproduced.

## Small-study effects (shaped, not calibrated)

The effect directions of the four pain cells for which the paper reports Egger's test lean
with the standard error so that Egger's test (mixed-effects, standard error as predictor, as
metafor's `regtest`) comes out near the published z; the rank correlation test was not aimed at.

{_md_table(["cell", "Egger z published", "Egger z synthetic", "rank tau published",
            "rank tau synthetic", "rank p synthetic"], bias_rows)}

## Moderators: published vs synthetic

Trial-level moderators are counted over the {table['study_id'].nunique()} trials, comparison-level
ones over the {len(table.drop_duplicates(['study_id', 'comparison_id']))} comparisons. Quartiles
are exact under both numpy's default (R type 7) and SPSS's (R type 6) definitions.

{_md_table(["moderator", "published", "synthetic", "level"], moderator_rows(table))}

## Mean VAS levels (not calibrated, for orientation)

Mean (SD across comparisons) of the arms' means on the 0-10 VAS.

{_md_table(["outcome", "time", "published individualized", "synthetic individualized",
            "published control", "synthetic control"], vas_levels(table))}

## Report forms and instruments

{_md_table(["form", "rows"], [[str(k), str(v)] for k, v in form_counts.items()])}

{_md_table(["outcome", "instrument", "trials"],
           [[o, i, str(n)] for (o, i), n in instruments.items()])}

## How it was made

1. Trial sizes: a log-normal sample mapped through the published quartiles (69, 121, 238), its
   upper tail compressed so the sizes add up to 10,084; intervention length and mean age
   likewise (without a total). Categorical moderators: the published counts (largest-remainder
   rounding where they do not add up), in random order.
2. Control groups and reported cells: exact k for every cell; each comparison reports at least
   one short-term outcome; long-term reporters are a subset of the short-term ones.
3. Trial sizes are permuted among the trials so that each cell can reach its published CI width
   with a plausible retention (analysed / randomised).
4. Analysed n per cell: randomised x retention (solved per cell so the REML CI has the
   published width when I2 equals the published value) x a trial-level jitter (0.92-1). At
   short term, trials without long-term data of that outcome retain a lower share (factor:
   {lambdas});
   long-term n never exceeds the same arm's short-term n, and analysed n never exceeds
   randomised n.
5. Study effects: random normal directions (correlated 0.5 between the cells of one trial),
   centred and scaled so that REML's estimating
   equations hold exactly at the centre of the published rounding boxes (tau2 =
   I2 / (100 - I2) x metafor's typical within-study variance).
6. Arm-level values: baseline means drawn around 4.9 (pain) and 3.5 (disability) VAS, SDs
   1.2-2.4 VAS, pre-post correlations 0.3-0.7 (for the reported change SDs), control-arm changes
   around the published control trajectories; the individualized (or, in multi-arm trials, the
   other control) arm's change mean is solved from the study effect; everything is rounded to
   extraction precision on the trial's instrument, and a greedy search over the last digit of
   control arms' follow-up and change means moves each cell back to at least 30% of a half-box
   from every rounding edge.

## Compromises (where the paper's counts conflict or are missing)

- **Control groups: 74, not 61.** The paper prints 61 control groups in 58 trials with 11
  trials having more than one, but its categories add up to 72 (42 active exercise, 21 advice /
  usual care, 3 no treatment, 5 passive, 1 medication: 30 passive). A comparison enters a cell
  at most once, and pain / passive / short has k = 32, so 32 passive control groups are needed:
  advice / usual care was raised from 21 to 23. Active controls stay at 42.
- **Multi-arm structure** (not published): 6 trials with two control groups and 5 with three,
  every one of them with both an active and a passive control. The individualized arm of such a
  trial is one arm: identical n, means and SDs in each of its comparisons at one outcome and
  follow-up.
- **Exercise types: 58, not 61.** The printed counts add up to 61 trials; they were rescaled to
  58 by largest remainders (aerobic 5 -> 4, mixed 24 -> 23, SMT 22 -> 21).
- **Psychological component: 34 trials, "other" 23 instead of 24** (9 + 2 + 24 = 35 > 34 as
  printed).
- **Not published, assumed:** `behavioural` (true for CBT and behavioural components),
  `effective_exercise` (true for {', '.join(EFFECTIVE_TYPES)}), `lbp_12_weeks` (44 of 58),
  `follow_up_weeks` (short: 12 weeks in most trials, else end of intervention; long: 52 weeks in
  most, else 26-104), the instruments, which report forms lack change SDs. The review's 55.7%
  women has no column in the schema.
- **Analysed n**: differs between pain and disability of the same arm and follow-up (each cell's
  retention is solved separately), and short-term retention is lower in trials without long-term
  data; both were needed to reach all 8 CI widths with one set of trial sizes.
- **Not calibrated:** the paper's VAS mean differences, its Egger and rank-correlation tests
  (Egger's z only shaped, see above), its subgroup and sensitivity analyses and its
  meta-regressions (no moderator effects were built in: moderators are unrelated to the study
  effects, so e.g. the paper's training-duration effect for pain is not there), and the VAS
  levels (see the table above).

## Columns

{_md_table(["column", "type", "meaning"], column_rows)}
"""


def _rounds_to(t: Target, r: dict[str, float]) -> bool:
    return (r["k"] == t.k and round(r["smd"], 2) == t.smd and round(r["ci_low"], 2) == t.ci_low
            and round(r["ci_high"], 2) == t.ci_high and round(r["i2"]) == t.i2)


if __name__ == "__main__":
    sys.exit(main())
