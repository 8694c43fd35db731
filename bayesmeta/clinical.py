"""Clinical relevance: how probable is it that the effect exceeds the MCID?

The review judged relevance by eye; here it is a number. For an outcome with a minimal
clinically important difference (MCID) in VAS points and a direction of benefit:

* P(mu beyond the MCID): the mean effect is clinically important;
* P(theta_new beyond the MCID): the effect in a new trial / setting is clinically important;
* P(mu beyond 0): any benefit at all;

When the analysis is on the SMD scale, the MCID is converted with an explicit, always-reported
reference SD: ``mcid_smd = mcid / sd_ref``. The review's g is a standardised difference of change
scores, so ``sd_ref`` is a typical among-person SD of the change score on the 0-10 scale.

Caveat (printed with every report): published MCIDs for low back pain (Ostelo et al. 2008,
doi:10.1097/BRS.0b013e31815e3a10) are *within-person* changes; using them as between-group
thresholds is a convention, not a finding.

:func:`reanalyse` turns a published pooled result (estimate and CI) into a posterior with the
same accessor vocabulary, so :func:`clinical_relevance` applies to it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .config import DEFAULTS
from .errors import InputError, Problem, raise_if
from .results import BayesResult

MCID_CAVEAT = (
    "Published MCIDs for low back pain (Ostelo et al. 2008, doi:10.1097/BRS.0b013e31815e3a10) "
    "are within-person changes; using them as thresholds for between-group differences is a "
    "convention, not an empirical finding."
)

DIRECTIONS = ("lower", "higher")


def _check_positive(name: str, value: Any) -> Problem | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) \
            or value <= 0:
        return Problem("must be a positive number", column=name, value=value)
    return None


def _is_standardised(measure: str | None) -> bool:
    return measure is not None and measure.upper() in DEFAULTS.standardised_measures


def _benefit_op(direction: str) -> str:
    return "<" if direction == "lower" else ">"


def _signed(threshold: float, direction: str) -> float:
    """A benefit threshold on the analysis scale: -t when lower is better, +t otherwise."""
    return -threshold if direction == "lower" else threshold


@dataclass(frozen=True)
class FrequentistReading:
    """The review's reading of a REML result (Fleckenstein et al. 2022).

    *significant*: the 95% CI excludes 0. *clinically important*: the point estimate, converted
    to VAS points with the same ``sd_ref``, is beyond the MCID in the benefit direction.
    *probably meaningful*: significant but below the MCID.
    """

    estimate: float
    ci_low: float
    ci_high: float
    estimate_vas: float
    significant: bool
    beyond_mcid: bool
    category: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def frequentist_reading(
    estimate: float, ci_low: float, ci_high: float, *, mcid: float,
    sd_ref: float | None = None, direction: str = "lower",
) -> FrequentistReading:
    """Classify a frequentist pooled result with the review's categories."""
    scale = 1.0 if sd_ref is None else sd_ref
    est_vas = estimate * scale
    significant = bool(ci_low > 0 or ci_high < 0)
    benefit_side = estimate < 0 if direction == "lower" else estimate > 0
    beyond = bool(benefit_side and abs(est_vas) >= mcid)
    if beyond and significant:
        category = "clinically important"
    elif significant and benefit_side:
        category = "probably meaningful"
    elif significant:
        category = "significant, in the direction of harm"
    elif beyond:
        category = "not significant (point estimate beyond the MCID)"
    else:
        category = "not significant"
    return FrequentistReading(float(estimate), float(ci_low), float(ci_high), float(est_vas),
                              significant, beyond, category)


@dataclass(frozen=True)
class ClinicalRelevance:
    """Outcome of :func:`clinical_relevance`. ``to_dict()`` has the stable keys
    ``p_mu_mcid, p_new_mcid, p_mu_benefit, mcid, mcid_smd, sd_ref, direction, scale`` (and
    ``p_mu_rope`` when a ROPE was declared)."""

    mcid: float
    mcid_smd: float
    sd_ref: float | None
    direction: str
    scale: str
    p_mu_mcid: float
    p_new_mcid: float | None
    p_mu_benefit: float
    p_new_benefit: float | None
    curve: pd.DataFrame
    rope: tuple[float, float] | None = None
    p_mu_rope: float | None = None
    sd_ref_sensitivity: pd.DataFrame | None = None
    prior_sensitivity: pd.DataFrame | None = None
    frequentist: FrequentistReading | None = None
    param: str = "mu"
    new_param: str | None = "theta_new"
    notes: tuple[str, ...] = field(default=(MCID_CAVEAT,))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "p_mu_mcid": self.p_mu_mcid,
            "p_new_mcid": self.p_new_mcid,
            "p_mu_benefit": self.p_mu_benefit,
            "p_new_benefit": self.p_new_benefit,
            "mcid": self.mcid,
            "mcid_smd": self.mcid_smd,
            "sd_ref": self.sd_ref,
            "direction": self.direction,
            "scale": self.scale,
            "param": self.param,
        }
        if self.rope is not None:
            out["rope"] = list(self.rope)
            out["p_mu_rope"] = self.p_mu_rope
        if self.frequentist is not None:
            out["frequentist"] = self.frequentist.to_dict()
        return out


def _probabilities(result: BayesResult, param: str, new_param: str | None, threshold: float,
                   direction: str) -> tuple[float, float | None]:
    op = _benefit_op(direction)
    t = _signed(threshold, direction)
    p_new = None if new_param is None else result.prob(new_param, op, t)
    return result.prob(param, op, t), p_new


def clinical_relevance(
    result: BayesResult,
    *,
    mcid: float,
    sd_ref: float | None = None,
    direction: str = "lower",
    rope: tuple[float, float] | None = None,
    sd_ref_grid: Sequence[float] | None = None,
    prior_sensitivity: Mapping[str, BayesResult] | None = None,
    param: str = "mu",
    new_param: str | None = "theta_new",
    n_thresholds: int = 41,
) -> ClinicalRelevance:
    """Posterior probabilities that the effect is clinically important.

    Parameters
    ----------
    result
        Any Bayesian result: pooled (``"mu"``, ``"theta_new"``), subgroup (pass
        ``param="mu[<level>]"``, ``new_param="theta_new[<level>]"``), a meta-regression's
        prediction at moderator values (``result.predict({"weeks": 12, ...})``: ``"mu"`` and
        ``"theta_new"`` there, with the REML prediction as the frequentist reading), or a
        reanalysis.
    mcid
        Minimal clinically important difference in outcome points (e.g. 1.5 VAS points for
        pain, 1.0 for disability), positive.
    sd_ref
        Reference SD converting SMD to points (``mcid_smd = mcid / sd_ref``). Required when the
        result is on a standardised scale (SMD); must be ``None`` when it is already in points
        (MD on the VAS scale).
    direction
        ``"lower"`` when negative effects are improvements (the review's convention) or
        ``"higher"``.
    rope
        A region of practical equivalence in points, e.g. ``(-0.5, 0.5)``; its posterior share
        for mu is reported.
    sd_ref_grid
        Alternative reference SDs for the sensitivity table (e.g. 1.5, 2.0, 2.5).
    prior_sensitivity
        Fits of the same data under other tau priors, by name; their probabilities are tabled.
    param, new_param
        Which parameters play "mu" and "theta_new" (e.g. a subgroup's mean and predictive).

    Returns
    -------
    ClinicalRelevance
    """
    if not isinstance(result, BayesResult):
        raise InputError(Problem(
            "clinical_relevance takes a Bayesian result: bayes_rma(...), reanalyse(...) or, "
            "for a meta-regression at chosen moderator values, result.predict(newmods)",
            column="result", value=type(result).__name__))
    problems = [p for p in (_check_positive("mcid", mcid),) if p]
    if direction not in DIRECTIONS:
        problems.append(Problem(f"direction must be one of {', '.join(DIRECTIONS)}",
                                column="direction", value=direction))
    standardised = _is_standardised(result.measure)
    if standardised and sd_ref is None:
        problems.append(Problem(
            f"the result is on the {result.measure} scale: pass sd_ref, the reference SD (in "
            "outcome points) that converts the MCID to that scale", column="sd_ref",
            value=None, show_value=False))
    if sd_ref is not None:
        if (p := _check_positive("sd_ref", sd_ref)) is not None:
            problems.append(p)
        elif result.measure is not None and not standardised:
            problems.append(Problem(
                f"the result is on the raw {result.measure} scale (outcome points): no conversion "
                "is needed, so sd_ref must be None", column="sd_ref", value=sd_ref))
    if rope is not None and (len(rope) != 2 or not rope[0] < rope[1]):
        problems.append(Problem("rope must be (low, high) with low < high, in outcome points",
                                column="rope", value=rope))
    notes = [MCID_CAVEAT]
    if new_param not in result.params and new_param == "theta_new":
        # e.g. a reanalysis without k and I2: there is no predictive distribution to ask about.
        notes.append("no predictive distribution for a new study in this result: "
                     "P(theta_new beyond the MCID) is not reported")
        new_param = None
    hint = ("; for effects at chosen moderator values use result.predict(newmods)"
            if result.model == "meta_regression" else "")
    for name in (param, new_param):
        if name is not None and name not in result.params:
            problems.append(Problem(f"not a parameter of this result; available: "
                                    f"{', '.join(result.params[:12])}{hint}", column="param",
                                    value=name))
    raise_if(problems, "clinical_relevance")

    scale = 1.0 if sd_ref is None else float(sd_ref)
    mcid_smd = mcid / scale
    p_mu, p_new = _probabilities(result, param, new_param, mcid_smd, direction)
    p_mu0, p_new0 = _probabilities(result, param, new_param, 0.0, direction)

    grid_vas = np.linspace(0.0, 2.0 * mcid, n_thresholds)
    rows = []
    for t in grid_vas:
        a, b = _probabilities(result, param, new_param, t / scale, direction)
        row = {"threshold_vas": t, "threshold_smd": t / scale, "p_mu": a}
        if b is not None:
            row["p_new"] = b
        rows.append(row)
    curve = pd.DataFrame(rows)

    p_rope = None
    if rope is not None:
        lo, hi = rope[0] / scale, rope[1] / scale
        p_rope = result.prob(param, "<", hi) - result.prob(param, "<", lo)

    sd_tab = None
    if sd_ref_grid is not None and sd_ref is not None:
        sd_rows = []
        for s in sd_ref_grid:
            a, b = _probabilities(result, param, new_param, mcid / s, direction)
            sd_rows.append({"sd_ref": float(s), "mcid_smd": mcid / s, "p_mu_mcid": a,
                            "p_new_mcid": b})
        sd_tab = pd.DataFrame(sd_rows)

    prior_tab = None
    if prior_sensitivity:
        prow = []
        for name, alt in prior_sensitivity.items():
            a, b = _probabilities(alt, param, new_param, mcid_smd, direction)
            a0, _ = _probabilities(alt, param, new_param, 0.0, direction)
            prow.append({"prior": name, "p_mu_mcid": a, "p_new_mcid": b, "p_mu_benefit": a0,
                         "tau_median": alt.median("tau") if "tau" in alt.params else None})
        prior_tab = pd.DataFrame(prow)

    freq = None
    twin = result.frequentist
    fits = getattr(twin, "fits", None)
    if param.startswith("mu[") and param.endswith("]") and isinstance(fits, Mapping):
        # a subgroup mean: read beside it the REML fit of that subgroup's studies (each level
        # its own model, as the review's subgroup pooling)
        by_name = {str(level): fit for level, fit in fits.items()}
        twin, param_of_twin = by_name.get(param[3:-1]), "mu"
    else:
        param_of_twin = param
    if twin is not None and param_of_twin == "mu" and hasattr(twin, "to_dict"):
        d = twin.to_dict()
        # a pooled REML fit or a REML prediction at one row of moderator values (numbers; a
        # meta-regression's coefficient dicts have no single estimate of "mu")
        if all(isinstance(d.get(key), int | float) for key in ("estimate", "ci_low",
                                                               "ci_high")):
            freq = frequentist_reading(d["estimate"], d["ci_low"], d["ci_high"], mcid=mcid,
                                       sd_ref=sd_ref, direction=direction)
    return ClinicalRelevance(
        mcid=float(mcid), mcid_smd=float(mcid_smd), sd_ref=None if sd_ref is None else scale,
        direction=direction, scale=result.measure or "outcome points",
        p_mu_mcid=p_mu, p_new_mcid=p_new, p_mu_benefit=p_mu0, p_new_benefit=p_new0,
        curve=curve, rope=None if rope is None else (float(rope[0]), float(rope[1])),
        p_mu_rope=p_rope, sd_ref_sensitivity=sd_tab, prior_sensitivity=prior_tab,
        frequentist=freq, param=param, new_param=new_param, notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# Reanalysis of a published pooled result

#: Spiegelhalter, Abrams & Myles (2004), Bayesian Approaches to Clinical Trials and Health-Care
#: Evaluation, Wiley, sec. 5.5 (doi:10.1002/0470092602): a *sceptical* prior is centred on no
#: effect with only 5% probability of an effect beyond the clinically important difference; an
#: *enthusiastic* prior is centred on that difference with 5% probability of no benefit or harm;
#: the *neutral* (reference) prior is flat.
REANALYSIS_PRIORS = ("flat", "neutral", "sceptical", "enthusiastic")


def reanalysis_prior(kind: str, *, mcid_effect: float | None = None,
                     direction: str = "lower") -> tuple[float, float] | None:
    """(mean, sd) of a Spiegelhalter et al. (2004) prior, or None for flat/neutral.

    ``mcid_effect`` is the clinically important difference on the analysis scale (positive).
    """
    if kind not in REANALYSIS_PRIORS:
        raise InputError(Problem(f"prior must be one of {', '.join(REANALYSIS_PRIORS)} or "
                                 "(mean, sd)", column="prior", value=kind))
    if kind in ("flat", "neutral"):
        return None
    if mcid_effect is None or not mcid_effect > 0:
        raise InputError(Problem(f"a {kind} prior is defined by the clinically important "
                                 "difference: pass mcid_effect > 0 (on the analysis scale)",
                                 column="mcid_effect", value=mcid_effect))
    z = stats.norm.ppf(0.95)
    sd = mcid_effect / z
    centre = 0.0 if kind == "sceptical" else _signed(mcid_effect, direction)
    return centre, sd


def _round_consistent_with_symmetry(estimate: float, lo: float, hi: float,
                                    decimals: int) -> bool:
    """Could a symmetric CI around the estimate have been rounded to these numbers?

    True when some unrounded (e, l, h) within half a unit of the last decimal of each printed
    value has e = (l + h) / 2.
    """
    half = 0.5 * 10.0 ** (-decimals) + 1e-12
    mid_lo, mid_hi = (lo - half + hi - half) / 2, (lo + half + hi + half) / 2
    return max(mid_lo, estimate - half) <= min(mid_hi, estimate + half)


def reanalyse(
    estimate: float,
    ci_low: float,
    ci_high: float,
    *,
    k: int | None = None,
    i2_percent: float | None = None,
    level: float = DEFAULTS.level,
    prior: str | tuple[float, float] | None = None,
    mcid_effect: float | None = None,
    direction: str = "lower",
    measure: str | None = "SMD",
    decimals: int = 2,
    label: str | None = None,
) -> BayesResult:
    """Bayesian reanalysis of a published pooled estimate and its confidence interval.

    The standard error is recovered on the z scale, SE = (ci_high - ci_low) / (2 z), z the
    normal quantile of ``level``; the likelihood of mu is N(estimate, SE^2), updated with
    ``prior``. When ``k`` and ``i2_percent`` are given, tau^2 = I2 k SE^2 (I2 as a fraction;
    equal within-study variances assumed) is plugged in for the new-study effect
    theta_new ~ N(mu, tau^2): its uncertainty is *not* propagated (said in the warnings).

    Parameters
    ----------
    prior
        ``None``/``"flat"``/``"neutral"``: flat; ``"sceptical"`` or ``"enthusiastic"``
        (Spiegelhalter et al. 2004, need ``mcid_effect``); or ``(mean, sd)`` of a normal prior.
    decimals
        Decimals of the printed numbers; the asymmetry warning allows for their rounding.

    Returns
    -------
    BayesResult
        ``engine="analytic"``, parameters ``mu`` and (with k and I2) ``theta_new``.
    """
    from .bayes.analytic import NormalPosterior, normal_update

    problems = []
    for name, v in (("estimate", estimate), ("ci_low", ci_low), ("ci_high", ci_high)):
        if not isinstance(v, int | float) or not math.isfinite(v):
            problems.append(Problem("must be a finite number", column=name, value=v))
    raise_if(problems, "reanalyse")
    if not ci_low < estimate < ci_high:
        problems.append(Problem(f"the estimate must lie inside its CI [{ci_low}, {ci_high}]",
                                column="estimate", value=estimate))
    if not 0 < level < 1:
        problems.append(Problem("level must lie strictly between 0 and 1", column="level",
                                value=level))
    if k is not None and (not isinstance(k, int | np.integer) or k < 1):
        problems.append(Problem("k must be a positive integer", column="k", value=k))
    if i2_percent is not None and not (0 <= i2_percent < 100):
        problems.append(Problem("I2 must be a percentage in [0, 100)", column="i2_percent",
                                value=i2_percent))
    raise_if(problems, "reanalyse")
    warnings: list[str] = []
    z = stats.norm.ppf((1 + level) / 2)
    se = (ci_high - ci_low) / (2 * z)
    lower_half, upper_half = estimate - ci_low, ci_high - estimate
    if not _round_consistent_with_symmetry(estimate, ci_low, ci_high, decimals):
        warnings.append(
            f"the CI is asymmetric around the estimate beyond rounding to {decimals} decimals "
            f"(half-widths {lower_half:.4g} and {upper_half:.4g}); a normal likelihood centred "
            "on the estimate is only an approximation here")
    elif abs(lower_half - upper_half) > 1e-9:
        warnings.append(
            f"the CI is not symmetric as printed (half-widths {lower_half:.4g} and "
            f"{upper_half:.4g}), but within rounding to {decimals} decimals")
    if i2_percent is not None and 0 < i2_percent <= 1:
        warnings.append(f"i2_percent = {i2_percent}: I2 is expected in percent (0-100); was a "
                        "fraction passed?")
    if isinstance(prior, str) or prior is None:
        prior_ms = reanalysis_prior(prior or "flat", mcid_effect=mcid_effect, direction=direction)
        prior_name = prior or "flat"
    else:
        if len(prior) != 2 or not prior[1] > 0:
            raise InputError(Problem("a normal prior is (mean, sd) with sd > 0", column="prior",
                                     value=prior))
        prior_ms = (float(prior[0]), float(prior[1]))
        prior_name = "normal"
    m, s = normal_update(estimate, se, *(prior_ms if prior_ms else (None, None)))
    moments = {"mu": (m, s)}
    tau2 = None
    if k is not None and i2_percent is not None:
        tau2 = (i2_percent / 100.0) * k * se**2
        moments["theta_new"] = (m, math.sqrt(s**2 + tau2))
        warnings.append(
            f"tau^2 = I2 * k * SE^2 = {tau2:.4g} is a plug-in (equal within-study variances "
            "assumed); its uncertainty is not propagated into theta_new")
    priors = {"mu": None if prior_ms is None else {"family": "Normal", "mean": prior_ms[0],
                                                    "sd": prior_ms[1]},
              "mu_kind": prior_name}
    return BayesResult(
        posterior=NormalPosterior(moments), engine="analytic", model="reanalysis",
        yi=np.array([float(estimate)]), vi=np.array([se**2]),
        labels=(label or "published estimate",), measure=measure, priors=priors,
        settings={"level": level, "se": se, "tau2_plugin": tau2, "k": k,
                  "i2_percent": i2_percent, "decimals": decimals},
        warnings=tuple(warnings), level=level,
    )
