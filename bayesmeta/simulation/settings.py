"""The simulator's settings: one frozen, validated object.

Defaults are shaped on the low-back-pain review (Fleckenstein et al. 2022, J Pain; PROSPERO
CRD42021247331): trial sizes, durations and ages by their published median and IQR, moderator
shares by their published counts. Every setting is checked once, when the object is built; a bad
value raises :class:`~bayesmeta.errors.InputError` naming the setting, the value and what was
expected, together with every other bad setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ..errors import Problem, raise_if
from ..io.schema import COLUMNS_BY_NAME, INSTRUMENT_RANGES

__all__ = ["SimulationSettings", "SUBGROUP_COLUMNS", "SLOPE_COLUMNS"]

#: moderators that may carry a subgroup effect, and their levels (booleans: ``True``/``False``)
SUBGROUP_COLUMNS: dict[str, tuple[Any, ...]] = {
    name: (COLUMNS_BY_NAME[name].levels or (True, False))
    for name in ("comparator", "comparator_detail", "exercise_type", "effective_exercise",
                 "psych_component", "behavioural", "matched_control", "rob_overall",
                 "lbp_12_weeks")
}
#: numeric moderators that may carry a slope, and the setting holding their quartiles
SLOPE_COLUMNS: dict[str, str] = {
    "duration_weeks": "duration_quartiles",
    "n_total": "size_quartiles",
    "mean_age": "age_quartiles",
}

_OUTCOMES = COLUMNS_BY_NAME["outcome"].levels
_FOLLOW_UPS = COLUMNS_BY_NAME["follow_up"].levels
_ACTIVE_DETAIL = "exercise"


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class SimulationSettings:
    """Settings of :func:`bayesmeta.simulate` (all effects on the SMD scale, Hedges' g).

    The model: every comparison c of trial s reports outcome o at follow-up f with the true
    standardised mean difference (individualized minus control, of change scores; negative =
    improvement)::

        theta = mu + outcome_effects[o] + follow_up_effects[f]
                + sum of subgroup_effects[moderator][level of c]
                + sum of slopes[moderator] * (value of c - median of the moderator)
                + u,   u ~ Normal(0, tau^2)

    with ``u`` correlated ``cell_correlation`` between the cells (outcome x follow-up) of one
    comparison and independent between comparisons. Arm-level data are then sampled from their
    exact sampling distribution given the arm sizes (see :func:`~.draws.summary_statistics`).

    Attributes
    ----------
    n_studies
        Number of trials.
    mu, tau
        Mean and SD of the true effects (SMD scale).
    outcomes, follow_ups
        Which outcomes (``pain``, ``disability``) and follow-ups (``short``, ``long``) exist.
    outcome_effects, follow_up_effects
        Shifts of the mean effect by outcome and by follow-up (missing keys: 0).
    subgroup_effects
        ``{moderator: {level: shift}}`` for the categorical and yes/no moderators in
        :data:`SUBGROUP_COLUMNS` (yes/no levels are ``True``/``False``); missing levels: 0.
    slopes
        ``{moderator: slope per unit}`` for ``duration_weeks``, ``n_total`` and ``mean_age``,
        centred at the moderator's median (the middle of its quartiles setting).
    cell_correlation
        Correlation of one comparison's random effects across its outcomes and follow-ups.
    outcome_report_probability, follow_up_report_probability
        A trial reports cell (o, f) with probability p[o] x p[f], independently; a trial that
        draws no cell reports the most likely one. All comparisons of a trial report the same
        cells.
    size_quartiles, duration_quartiles, age_quartiles
        (Q1, median, Q3) of the randomised trial size ``n_total`` (log-normal), the
        intervention length in weeks (log-normal) and the mean age in years (normal).
    min_arm_size
        Smallest number of participants randomised to one arm.
    control_groups
        ``{number of control groups: probability}`` for a trial (multi-arm trials share their
        individualized arm between comparisons).
    passive_share
        Probability that a control group is passive (usual care, advice, no treatment, passive
        therapy, medication) rather than active (non-individualized exercise).
    passive_detail
        Relative frequencies of the passive controls' ``comparator_detail``.
    matched_share
        Share of active controls that are the same exercise without individualisation.
    exercise_types, psych_components, rob_levels
        Relative frequencies of the trials' exercise type, psychological component and overall
        risk of bias.
    effective_exercise_types
        Exercise types flagged ``effective_exercise`` (an assumption: the review does not list
        its classification).
    lbp_12_weeks_share
        Share of trials with LBP >= 12 weeks as inclusion criterion.
    allocation
        ``"random"``: each trial's categories are drawn independently; ``"exact"``: the counts
        are the largest-remainder rounding of n x share (then shuffled) and the quartiles of
        sizes, durations and ages equal their settings exactly.
    retention
        ``{follow_up: expected share of randomised participants analysed}`` (binomial).
    follow_up_weeks
        ``{follow_up: time point in weeks}``.
    baseline
        ``{outcome: (mean, between-trial SD)}`` of the true baseline mean, on the 0-10 VAS.
    control_change, control_change_sd
        ``{outcome: {follow_up: mean}}`` true change of the control arm (VAS points, negative =
        improvement) and its between-trial SD.
    arm_sd
        (low, high): true within-arm SDs at baseline and follow-up are uniform on this range
        (VAS points).
    prepost_r
        (low, high): true pre-post correlations are uniform on this range.
    imputation_r
        The pre-post correlation written to ``prepost_r`` in rows whose change SDs are missing
        (what an analyst would assume for the imputation).
    missing_change_sd
        Share of (trial, outcome, follow-up) reports giving change means without change SDs.
    form_b_share
        Share giving only baseline and follow-up values (no change columns).
    instruments
        ``{outcome: {instrument: probability}}``; values are reported on the trial's instrument
        (``bayesmeta.to_vas`` brings them back to the 0-10 VAS).
    decimals
        Extraction precision of means and SDs (on the instrument's scale).
    label_prefix
        Study labels are ``"<prefix> 01"``, ``"<prefix> 02"``, ...
    source
        Text written to the ``source`` column of every row.
    """

    n_studies: int = 20
    mu: float = -0.3
    tau: float = 0.2
    outcomes: tuple[str, ...] = ("pain", "disability")
    follow_ups: tuple[str, ...] = ("short", "long")
    outcome_effects: Mapping[str, float] = field(default_factory=dict)
    follow_up_effects: Mapping[str, float] = field(default_factory=dict)
    subgroup_effects: Mapping[str, Mapping[Any, float]] = field(default_factory=dict)
    slopes: Mapping[str, float] = field(default_factory=dict)
    cell_correlation: float = 0.5
    outcome_report_probability: Mapping[str, float] = field(
        default_factory=lambda: {"pain": 0.95, "disability": 0.85})
    follow_up_report_probability: Mapping[str, float] = field(
        default_factory=lambda: {"short": 1.0, "long": 0.5})
    size_quartiles: tuple[float, float, float] = (69.0, 121.0, 238.0)
    duration_quartiles: tuple[float, float, float] = (6.0, 8.0, 12.0)
    age_quartiles: tuple[float, float, float] = (41.7, 45.4, 49.4)
    min_arm_size: int = 10
    control_groups: Mapping[int, float] = field(
        default_factory=lambda: {1: 47 / 58, 2: 6 / 58, 3: 5 / 58})
    passive_share: float = 32 / 74
    passive_detail: Mapping[str, float] = field(default_factory=lambda: {
        "usual_care_advice": 21.0, "no_treatment": 3.0, "passive_therapy": 5.0,
        "medication": 1.0})
    matched_share: float = 11 / 42
    exercise_types: Mapping[str, float] = field(default_factory=lambda: {
        "mixed": 24.0, "smt": 22.0, "aerobic": 5.0, "mckenzie": 4.0, "back_school": 4.0,
        "pilates": 1.0, "yoga": 1.0})
    psych_components: Mapping[str, float] = field(default_factory=lambda: {
        "none": 24.0, "cbt": 9.0, "behavioural": 2.0, "other": 23.0})
    rob_levels: Mapping[str, float] = field(default_factory=lambda: {
        "low": 0.0, "some_concerns": 26.0, "high": 32.0})
    effective_exercise_types: tuple[str, ...] = ("mixed", "smt", "mckenzie", "pilates", "yoga")
    lbp_12_weeks_share: float = 0.75
    allocation: str = "random"
    retention: Mapping[str, float] = field(
        default_factory=lambda: {"short": 0.88, "long": 0.78})
    follow_up_weeks: Mapping[str, float] = field(
        default_factory=lambda: {"short": 12.0, "long": 52.0})
    baseline: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {"pain": (4.9, 1.0), "disability": (3.5, 1.0)})
    control_change: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: {
        "pain": {"short": -1.27, "long": -1.40}, "disability": {"short": -0.81, "long": -0.76}})
    control_change_sd: float = 0.5
    arm_sd: tuple[float, float] = (1.2, 2.4)
    prepost_r: tuple[float, float] = (0.3, 0.7)
    imputation_r: float = 0.5
    missing_change_sd: float = 0.2
    form_b_share: float = 0.05
    instruments: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: {
        "pain": {"VAS_0_10": 1.0}, "disability": {"VAS_0_10": 1.0}})
    decimals: int = 2
    label_prefix: str = "Study"
    source: str = "SYNTHETIC: generated by bayesmeta.simulate"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = tuple(value)
            object.__setattr__(self, f.name, _frozen(value))
        raise_if(_validate(self), "SimulationSettings")

    def with_changes(self, **changes: Any) -> SimulationSettings:
        """A copy with some settings replaced (validated again); unknown names are an error."""
        unknown = [name for name in changes if name not in self.names()]
        raise_if([Problem(f"unknown setting; allowed: {', '.join(self.names())}", column=name,
                          show_value=False) for name in unknown], "SimulationSettings")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return SimulationSettings(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def median(self, moderator: str) -> float:
        """The centre of a slope moderator: the median of its quartiles setting."""
        return float(getattr(self, SLOPE_COLUMNS[moderator])[1])

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain Python values, in declaration order.

        Mappings become dicts (keys kept: ``control_groups`` has integer keys, yes/no subgroup
        levels boolean ones), tuples become lists; ``SimulationSettings(**to_dict())`` rebuilds
        the same settings.
        """
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


# ---------------------------------------------------------------- validation, one check each


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _check_number(problems: list[Problem], name: str, value: Any, *, lower: float | None = None,
                  upper: float | None = None, lower_open: bool = False,
                  integer: bool = False, what: str = "a number") -> None:
    ok = _number(value) and (not integer or float(value).is_integer())
    if ok and lower is not None:
        ok = value > lower if lower_open else value >= lower
    if ok and upper is not None:
        ok = value <= upper
    if not ok:
        bounds = []
        if lower is not None:
            bounds.append(f"{'>' if lower_open else '>='} {lower:g}")
        if upper is not None:
            bounds.append(f"<= {upper:g}")
        problems.append(Problem(f"expected {what}" + (f" {' and '.join(bounds)}" if bounds else ""),
                                column=name, value=value))


def _check_keys(problems: list[Problem], name: str, mapping: Any, allowed: tuple[Any, ...],
                *, values: str = "number", lower: float | None = None,
                upper: float | None = None, nonempty: bool = False) -> bool:
    if not isinstance(mapping, Mapping):
        problems.append(Problem("expected a mapping (dict)", column=name,
                                value=type(mapping).__name__))
        return False
    ok = True
    for key, value in mapping.items():
        if key not in allowed:
            problems.append(Problem(f"unknown key; allowed: {', '.join(map(str, allowed))}",
                                    column=f"{name}[{key!r}]", value=key))
            ok = False
        elif values == "number":
            before = len(problems)
            _check_number(problems, f"{name}[{key!r}]", value, lower=lower, upper=upper)
            ok &= len(problems) == before
    if nonempty and ok and values == "number" and not any(v > 0 for v in mapping.values()):
        problems.append(Problem("at least one entry must be > 0", column=name, show_value=False))
        ok = False
    return ok


def _check_quartiles(problems: list[Problem], name: str, value: Any, *, positive: bool) -> None:
    if (not isinstance(value, tuple) or len(value) != 3 or not all(_number(v) for v in value)
            or not value[0] < value[1] < value[2] or (positive and value[0] <= 0)):
        problems.append(Problem("expected (Q1, median, Q3) with Q1 < median < Q3"
                                + (", all > 0" if positive else ""), column=name, value=value))


def _check_range(problems: list[Problem], name: str, value: Any, lower: float,
                 upper: float) -> None:
    if (not isinstance(value, tuple) or len(value) != 2 or not all(_number(v) for v in value)
            or not lower <= value[0] <= value[1] <= upper):
        problems.append(Problem(f"expected (low, high) with {lower:g} <= low <= high <= "
                                f"{upper:g}", column=name, value=value))


def _check_levels(problems: list[Problem], name: str, value: Any,
                  allowed: tuple[str, ...]) -> None:
    if (not isinstance(value, tuple) or not value or len(set(value)) != len(value)
            or any(v not in allowed for v in value)):
        problems.append(Problem(f"expected a non-empty tuple of distinct values from: "
                                f"{', '.join(allowed)}", column=name, value=value))


def _validate(s: SimulationSettings) -> list[Problem]:
    p: list[Problem] = []
    _check_number(p, "n_studies", s.n_studies, lower=1, integer=True, what="an integer")
    _check_number(p, "mu", s.mu)
    _check_number(p, "tau", s.tau, lower=0)
    _check_levels(p, "outcomes", s.outcomes, _OUTCOMES)
    _check_levels(p, "follow_ups", s.follow_ups, _FOLLOW_UPS)
    _check_keys(p, "outcome_effects", s.outcome_effects, _OUTCOMES)
    _check_keys(p, "follow_up_effects", s.follow_up_effects, _FOLLOW_UPS)
    if _check_keys(p, "subgroup_effects", s.subgroup_effects, tuple(SUBGROUP_COLUMNS),
                   values="mapping"):
        for moderator, shifts in s.subgroup_effects.items():
            _check_keys(p, f"subgroup_effects[{moderator!r}]", shifts,
                        SUBGROUP_COLUMNS[moderator])
    _check_keys(p, "slopes", s.slopes, tuple(SLOPE_COLUMNS))
    _check_number(p, "cell_correlation", s.cell_correlation, lower=0, upper=1)
    _check_keys(p, "outcome_report_probability", s.outcome_report_probability, _OUTCOMES,
                lower=0, upper=1, nonempty=True)
    _check_keys(p, "follow_up_report_probability", s.follow_up_report_probability, _FOLLOW_UPS,
                lower=0, upper=1, nonempty=True)
    for name in ("size_quartiles", "duration_quartiles"):
        _check_quartiles(p, name, getattr(s, name), positive=True)
    _check_quartiles(p, "age_quartiles", s.age_quartiles, positive=True)
    _check_number(p, "min_arm_size", s.min_arm_size, lower=2, integer=True, what="an integer")
    _check_keys(p, "control_groups", s.control_groups, (1, 2, 3, 4, 5), lower=0, nonempty=True)
    _check_number(p, "passive_share", s.passive_share, lower=0, upper=1)
    passive_levels = tuple(v for v in COLUMNS_BY_NAME["comparator_detail"].levels
                           if v != _ACTIVE_DETAIL)
    _check_keys(p, "passive_detail", s.passive_detail, passive_levels, lower=0, nonempty=True)
    _check_number(p, "matched_share", s.matched_share, lower=0, upper=1)
    _check_keys(p, "exercise_types", s.exercise_types, COLUMNS_BY_NAME["exercise_type"].levels,
                lower=0, nonempty=True)
    _check_keys(p, "psych_components", s.psych_components,
                COLUMNS_BY_NAME["psych_component"].levels, lower=0, nonempty=True)
    _check_keys(p, "rob_levels", s.rob_levels, COLUMNS_BY_NAME["rob_overall"].levels, lower=0,
                nonempty=True)
    if s.effective_exercise_types:
        _check_levels(p, "effective_exercise_types", s.effective_exercise_types,
                      COLUMNS_BY_NAME["exercise_type"].levels)
    _check_number(p, "lbp_12_weeks_share", s.lbp_12_weeks_share, lower=0, upper=1)
    if s.allocation not in ("random", "exact"):
        p.append(Problem("expected 'random' or 'exact'", column="allocation", value=s.allocation))
    _check_keys(p, "retention", s.retention, _FOLLOW_UPS, lower=0.05, upper=1)
    _check_keys(p, "follow_up_weeks", s.follow_up_weeks, _FOLLOW_UPS, lower=0)
    _check_baseline(p, s)
    if _check_keys(p, "control_change", s.control_change, _OUTCOMES, values="mapping"):
        for outcome, changes in s.control_change.items():
            _check_keys(p, f"control_change[{outcome!r}]", changes, _FOLLOW_UPS,
                        lower=-10, upper=10)
    _check_number(p, "control_change_sd", s.control_change_sd, lower=0)
    _check_range(p, "arm_sd", s.arm_sd, 0.05, 10)
    _check_range(p, "prepost_r", s.prepost_r, -0.95, 0.95)
    _check_number(p, "imputation_r", s.imputation_r, lower=-1, upper=1)
    _check_number(p, "missing_change_sd", s.missing_change_sd, lower=0, upper=1)
    _check_number(p, "form_b_share", s.form_b_share, lower=0, upper=1)
    if (_number(s.missing_change_sd) and _number(s.form_b_share)
            and s.missing_change_sd + s.form_b_share > 1):
        p.append(Problem("missing_change_sd + form_b_share must be <= 1 (they are shares of the "
                         "same reports)", column="form_b_share", value=s.form_b_share))
    if _check_keys(p, "instruments", s.instruments, _OUTCOMES, values="mapping"):
        for outcome, shares in s.instruments.items():
            _check_keys(p, f"instruments[{outcome!r}]", shares, tuple(INSTRUMENT_RANGES),
                        lower=0, nonempty=True)
    _check_number(p, "decimals", s.decimals, lower=0, upper=6, integer=True, what="an integer")
    for name in ("label_prefix", "source"):
        if not isinstance(getattr(s, name), str):
            p.append(Problem("expected text", column=name, value=getattr(s, name)))
    _check_coverage(p, s)
    return p


def _check_baseline(p: list[Problem], s: SimulationSettings) -> None:
    if not isinstance(s.baseline, Mapping):
        p.append(Problem("expected a mapping (dict)", column="baseline",
                         value=type(s.baseline).__name__))
        return
    for outcome, value in s.baseline.items():
        if outcome not in _OUTCOMES:
            p.append(Problem(f"unknown key; allowed: {', '.join(_OUTCOMES)}",
                             column=f"baseline[{outcome!r}]", value=outcome))
        elif (not isinstance(value, tuple) or len(value) != 2 or not all(map(_number, value))
              or not 0 < value[0] < 10 or value[1] < 0):
            p.append(Problem("expected (mean, between-trial SD) with 0 < mean < 10 (VAS) and "
                             "SD >= 0", column=f"baseline[{outcome!r}]", value=value))


def _check_coverage(p: list[Problem], s: SimulationSettings) -> None:
    """Every simulated outcome and follow-up needs its per-outcome / per-follow-up settings."""
    if not (isinstance(s.outcomes, tuple) and isinstance(s.follow_ups, tuple)):
        return
    for name in ("baseline", "control_change", "instruments"):
        mapping = getattr(s, name)
        if isinstance(mapping, Mapping):
            for outcome in s.outcomes:
                if outcome in _OUTCOMES and outcome not in mapping:
                    p.append(Problem(f"no entry for the simulated outcome {outcome!r}",
                                     column=name, show_value=False))
                elif name == "control_change" and isinstance(mapping.get(outcome), Mapping):
                    for follow_up in s.follow_ups:
                        if follow_up in _FOLLOW_UPS and follow_up not in mapping[outcome]:
                            p.append(Problem(f"no entry for the simulated follow-up "
                                             f"{follow_up!r}", column=f"{name}[{outcome!r}]",
                                             show_value=False))
    for name in ("retention", "follow_up_weeks"):
        mapping = getattr(s, name)
        if isinstance(mapping, Mapping):
            for follow_up in s.follow_ups:
                if follow_up in _FOLLOW_UPS and follow_up not in mapping:
                    p.append(Problem(f"no entry for the simulated follow-up {follow_up!r}",
                                     column=name, show_value=False))
    for name, levels in (("outcome_report_probability", s.outcomes),
                         ("follow_up_report_probability", s.follow_ups)):
        mapping = getattr(s, name)
        if isinstance(mapping, Mapping) and all(_number(v) for v in mapping.values()):
            if not any(mapping.get(level, 0) > 0 for level in levels):
                p.append(Problem("no simulated level has a probability > 0", column=name,
                                 show_value=False))
