"""Analysis plans as declarative TOML specs (``models/*.toml``), parsed against a closed schema.

A spec names the data, the effect measure, the priors (by a closed registry of families and the
published presets; never a dotted import path), the outcomes with their MCIDs and reference SDs,
the main cells, the sensitivity/subgroup analyses, the meta-regressions and the engine settings.
An unknown key, table or prior family is an error naming the allowed ones, and so is a value of
the wrong kind or out of range (a scalar where a list is expected, a non-positive MCID, SD or
number of draws, an outcome no ``[outcome.*]`` table defines); every problem of a spec is
reported together. Nothing here runs an analysis (that is :mod:`bayesmeta.pipeline`).

Two kinds of data:

* a study table of the extraction schema (SCHEMA.md), the default: escalc reads its columns and
  every analysis selects its rows by ``outcome``, ``comparator`` and ``follow_up`` (so
  ``[main]`` and an ``[outcome.*]`` table per main outcome are required);
* any other table (e.g. a metafor / metadat dataset), when ``[effect]`` names its columns:
  precomputed effects (``yi`` with ``vi`` or ``sei``, on the scale ``measure`` names) or
  arm-level ``inputs`` for escalc (``{keyword = column}``, metafor's keywords). Such a table
  holds one outcome: ``[outcome.<name>]`` is optional and only names it (label, direction of
  benefit, MCID); ``[main]`` is optional and its single analysis pools every row.

See ``models/lbp_review.toml`` for the full plan of the driving review, annotated, and the
other ``models/*.toml`` for the worked examples on real datasets.
"""

from __future__ import annotations

import hashlib
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DEFAULTS
from .errors import InputError, Problem, raise_if

#: preset constructors usable as ``family`` in a ``[prior.<name>]`` table, besides the
#: distribution families of :data:`bayesmeta.bayes.priors.FAMILIES`
PRESETS = ("rhodes", "turner")


def _check_keys(table: Mapping[str, Any], allowed: dict[str, str], path: str,
                problems: list[Problem], required: tuple[str, ...] = ()) -> None:
    for key in table:
        if key not in allowed:
            problems.append(Problem(f"unknown key; allowed in [{path}]: {', '.join(allowed)}",
                                    column=f"{path}.{key}" if path else key, value=key,
                                    show_value=False))
    for key in required:
        if key not in table:
            problems.append(Problem(f"required key is missing ({allowed[key]})",
                                    column=f"{path}.{key}" if path else key, show_value=False))


def _table(raw: Mapping[str, Any], key: str, path: str, problems: list[Problem]
           ) -> Mapping[str, Any]:
    """``raw[key]`` when it is a TOML table (``{}`` when absent; a problem otherwise)."""
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        problems.append(Problem(f"expected a table [{path}]", column=path, value=value))
        return {}
    return value


def _tables(raw: Mapping[str, Any], key: str, problems: list[Problem]
            ) -> list[tuple[str, Mapping[str, Any]]]:
    """``raw[key]`` when it is an array of tables ``[[key]]``, each with its key path."""
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.append(Problem(f"expected an array of tables [[{key}]]", column=key,
                                value=value))
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            out.append((f"{key}[{i}]", item))
        else:
            problems.append(Problem(f"expected a table [[{key}]]", column=f"{key}[{i}]",
                                    value=item))
    return out


def _typed(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str,
           problems: list[Problem], default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        problems.append(Problem(f"expected {name}", column=f"{path}.{key}", value=value))
        return default
    return value


def _bounded(table: Mapping[str, Any], key: str, kind: type, path: str, problems: list[Problem],
             default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
    """A typed value that must also satisfy ``ok`` (``expected`` says how, e.g. "> 0")."""
    before = len(problems)
    value = _typed(table, key, kind, path, problems, default)
    if key in table and len(problems) == before and not ok(value):
        problems.append(Problem(f"must be {expected}", column=f"{path}.{key}", value=value))
        return default
    return value


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _str_list(table: Mapping[str, Any], key: str, path: str, problems: list[Problem],
              default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(Problem("expected a list of strings", column=f"{path}.{key}",
                                value=value))
        return tuple(default)
    return tuple(value)


def _number_list(table: Mapping[str, Any], key: str, path: str, problems: list[Problem],
                 expected: str, ok: Callable[[list[float]], bool]) -> tuple[float, ...] | None:
    """A list of numbers (``None`` when absent or bad); a scalar is an error, not a list."""
    if key not in table:
        return None
    value = table[key]
    if (not isinstance(value, list)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not ok([float(v) for v in value])):
        problems.append(Problem(f"expected {expected}", column=f"{path}.{key}", value=value))
        return None
    return tuple(float(v) for v in value)


# ---------------------------------------------------------------------------------------------
# the schema, as frozen dataclasses


@dataclass(frozen=True)
class EffectSpec:
    """How the effect sizes are obtained.

    With none of ``yi``, ``inputs`` the data are a study table of the extraction schema and
    escalc reads its columns (form A/B/C, binary). Otherwise the table may have any columns:
    ``yi`` names precomputed effects on the scale of ``measure`` (with ``vi``, their sampling
    variances, or ``sei``, their standard errors), ``inputs`` maps escalc keywords (metafor's
    names: ``ai``, ``m1i``, ...) to columns. ``sign`` multiplies every effect (metafor's
    ``flip``); ``prepost_r`` imputes missing change-score SDs (escalc only).
    """

    measure: str = "SMD"
    prepost_r: float | None = None
    sign: int = 1
    yi: str | None = None
    vi: str | None = None
    sei: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def schema_table(self) -> bool:
        """True when the data are a study table of the extraction schema (rows selected by
        outcome, comparator and follow-up)."""
        return self.yi is None and not self.inputs

    def describe_source(self) -> str:
        """Where the effects come from, in words (for the report and error messages)."""
        if self.yi is not None:
            var = (f"sampling variances in {self.vi}" if self.vi
                   else f"standard errors in {self.sei}")
            return f"{self.measure} given in column {self.yi} ({var}), not recomputed"
        if self.inputs:
            return f"escalc({self.measure}, " + ", ".join(
                f"{k}={v}" for k, v in self.inputs.items()) + ")"
        return f"escalc({self.measure}) of the extraction-schema columns"


def effect_problems(effect: EffectSpec,
                    where: Callable[[str], str] = lambda key: f"effect.{key}"
                    ) -> list[Problem]:
    """Every problem of an effect specification; ``where`` names a key as the caller spells it
    (``effect.yi`` in a spec, ``--yi`` on the command line)."""
    from .effects.registry import FAMILIES, MEASURES
    from .io.schema import MEASURE_NAMES

    problems = []
    if effect.sign not in (1, -1):
        problems.append(Problem("sign must be 1 or -1", column=where("sign"), value=effect.sign))
    if effect.prepost_r is not None and not -1.0 <= effect.prepost_r <= 1.0:
        problems.append(Problem("must be between -1 and 1 (a correlation)",
                                column=where("prepost_r"), value=effect.prepost_r))
    if effect.yi is not None:
        if effect.measure not in MEASURE_NAMES:
            problems.append(Problem(f"unknown effect measure of precomputed effects; allowed "
                                    f"(metafor's names): {', '.join(MEASURE_NAMES)}",
                                    column=where("measure"), value=effect.measure))
        if effect.inputs:
            problems.append(Problem(f"give either precomputed effects ({where('yi')} with "
                                    f"{where('vi')} or {where('sei')}) or escalc inputs, not "
                                    "both", column=where("inputs"), show_value=False))
        if (effect.vi is None) == (effect.sei is None):
            problems.append(Problem(f"{where('yi')} needs exactly one of {where('vi')} "
                                    f"(sampling variances) and {where('sei')} (standard "
                                    "errors)", column=where("vi"),
                                    value=effect.vi or effect.sei,
                                    show_value=effect.vi is not None))
        if effect.prepost_r is not None:
            problems.append(Problem("used only when escalc computes the effects (it imputes "
                                    f"change-score SDs); remove it or {where('yi')}",
                                    column=where("prepost_r"), value=effect.prepost_r))
        return problems
    for key in ("vi", "sei"):
        if getattr(effect, key) is not None:
            problems.append(Problem(f"only used with {where('yi')} (the column of "
                                    "precomputed effects)", column=where(key),
                                    value=getattr(effect, key)))
    if effect.measure not in MEASURES:
        problems.append(Problem(f"unknown effect measure; escalc computes "
                                f"{', '.join(MEASURES)}", column=where("measure"),
                                value=effect.measure))
        return problems
    allowed = [k for k in FAMILIES[MEASURES[effect.measure].family].keywords
               if k != "prepost_r"]
    for key, column in effect.inputs.items():
        if key not in allowed:
            problems.append(Problem(f"not an escalc input of measure {effect.measure}; "
                                    f"allowed: {', '.join(allowed)}",
                                    column=f"{where('inputs')}.{key}", value=column))
    return problems


@dataclass(frozen=True)
class PriorChoice:
    tau: str
    tau_sensitivity: tuple[str, ...]
    mu: str
    mu_sensitivity: tuple[str, ...]


@dataclass(frozen=True)
class OutcomeSpec:
    """An outcome: display name, direction of benefit and (optionally) its MCID.

    Without ``mcid`` no clinical relevance is computed for it (the report says so).
    """

    name: str
    mcid: float | None
    sd_ref: float | None
    sd_ref_grid: tuple[float, ...]
    direction: str = "lower"
    rope: tuple[float, float] | None = None
    label: str | None = None


@dataclass(frozen=True)
class MainSpec:
    outcomes: tuple[str, ...]
    comparators: tuple[str, ...]
    follow_ups: tuple[str, ...]
    published: str | None = None


@dataclass(frozen=True)
class SubsetSpec:
    """A re-pooled analysis on a filtered subset (sensitivity) or a subgroup model."""

    name: str
    label: str
    outcomes: tuple[str, ...]
    comparators: tuple[str, ...]
    follow_ups: tuple[str, ...]
    where: Mapping[str, tuple[Any, ...]]
    subgroup: str | None = None
    tau: str = "shared"
    subgroup_pooling: bool = False


@dataclass(frozen=True)
class MetaRegressionSpec:
    name: str
    label: str
    outcome: str | None
    comparators: tuple[str, ...]
    follow_ups: tuple[str, ...]
    mods: str


@dataclass(frozen=True)
class EngineSpec:
    primary: str = "nuts"
    sensitivity: str = "exact"
    draws: int = DEFAULTS.draws
    tune: int = DEFAULTS.tune
    chains: int = DEFAULTS.chains
    target_accept: float = DEFAULTS.target_accept


@dataclass(frozen=True)
class Spec:
    """A parsed, validated analysis plan."""

    name: str
    title: str
    data: Path
    seed: int
    effect: EffectSpec
    priors: PriorChoice
    prior_table: Mapping[str, Mapping[str, Any]]
    outcomes: Mapping[str, OutcomeSpec]
    main: MainSpec
    sensitivity: tuple[SubsetSpec, ...]
    meta_regression: tuple[MetaRegressionSpec, ...]
    engine: EngineSpec
    path: Path | None = None
    sha256: str = ""
    description: str = ""
    published: Path | None = None
    source_text: str = field(default="", repr=False)

    def prior(self, name: str) -> Any:
        """The prior object a name in the spec refers to (``None`` for a flat mu prior)."""
        return build_prior(self.prior_table[name])


def build_prior(definition: Mapping[str, Any]) -> Any:
    """Turn a ``[prior.<name>]`` table into a prior object (closed registry)."""
    from .bayes import priors as P

    d = dict(definition)
    family = d.pop("family")
    if family == "Flat":
        return None
    if family == "rhodes":
        return P.rhodes(**d)
    if family == "turner":
        return P.turner(**d)
    return P.from_dict({"family": family, **d})


_TOP = {
    "name": "a short identifier (output folder name)",
    "title": "the report title",
    "description": "free text for the report's methods section",
    "data": "path of the study table, relative to the spec file",
    "seed": "integer seed of every random step",
    "effect": "table: measure, prepost_r, sign, yi, vi, sei, inputs",
    "priors": "table: tau, tau_sensitivity, mu, mu_sensitivity (names of [prior.*] tables)",
    "prior": "tables [prior.<name>] defining each named prior",
    "outcome": "tables [outcome.<name>]: mcid, sd_ref, sd_ref_grid, direction, rope, label",
    "main": "table: outcomes, comparators, follow_ups, published",
    "sensitivity": "array of tables [[sensitivity]]: re-pooled subsets and subgroup models",
    "meta_regression": "array of tables [[meta_regression]]",
    "engine": "table: primary, sensitivity, draws, tune, chains, target_accept",
}
_EFFECT = {"measure": "escalc measure, e.g. SMD", "prepost_r": "pre-post correlation for "
           "imputing change SDs", "sign": "+1 or -1 (negative = improvement stays negative)",
           "yi": "column of precomputed effects (any table)",
           "vi": "column of their sampling variances", "sei": "or of their standard errors",
           "inputs": "escalc keyword -> column, e.g. { ai = \"tpos\" } (any table)"}
_PRIORS = {"tau": "primary tau prior", "tau_sensitivity": "sensitivity tau priors",
           "mu": "primary mu prior", "mu_sensitivity": "sensitivity mu priors"}
_OUTCOME = {"mcid": "MCID in outcome points", "sd_ref": "reference SD for SMD<->points",
            "sd_ref_grid": "sensitivity values of sd_ref", "direction": "lower or higher",
            "rope": "[low, high] in points", "label": "display name"}
_MAIN = {"outcomes": "list", "comparators": "list", "follow_ups": "list",
         "published": "CSV of published results, relative to the spec"}
_SUBSET = {"name": "identifier", "label": "display name", "outcomes": "list",
           "comparators": "list", "follow_ups": "list",
           "where": "table column -> allowed values", "subgroup": "column for a subgroup model",
           "tau": "shared or separate (subgroup models)",
           "subgroup_pooling": "true: the subgroup means are partially pooled (NUTS)"}
_METAREG = {"name": "identifier", "label": "display name", "outcome": "outcome",
            "comparators": "list", "follow_ups": "list", "mods": "formula, e.g. ~ weeks"}
_ENGINE = {"primary": "nuts or exact", "sensitivity": "nuts or exact", "draws": "int",
           "tune": "int", "chains": "int", "target_accept": "float"}


def _parse_prior_table(raw: Any, problems: list[Problem]) -> dict[str, dict[str, Any]]:
    from .bayes import priors as P

    out: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, Mapping):
        problems.append(Problem("expected tables [prior.<name>]", column="prior",
                                value=type(raw).__name__))
        return out
    allowed = (*P.FAMILIES, *PRESETS)
    for name, definition in raw.items():
        path = f"prior.{name}"
        if not isinstance(definition, Mapping) or "family" not in definition:
            problems.append(Problem("a prior table needs a 'family' key", column=path,
                                    show_value=False))
            continue
        if definition["family"] not in allowed:
            problems.append(Problem(f"unknown prior family; allowed: {', '.join(allowed)}",
                                    column=f"{path}.family", value=definition["family"]))
            continue
        try:
            build_prior(definition)
        except (InputError, TypeError) as exc:
            problems.append(Problem(f"invalid prior: {exc}", column=path, show_value=False))
            continue
        out[name] = dict(definition)
    return out


def _parse_effect(raw: Mapping[str, Any], problems: list[Problem]) -> EffectSpec:
    e = _table(raw, "effect", "effect", problems)
    _check_keys(e, _EFFECT, "effect", problems)
    inputs_raw = _table(e, "inputs", "effect.inputs", problems)
    inputs = {}
    for key, column in inputs_raw.items():
        if isinstance(column, str):
            inputs[key] = column
        else:
            problems.append(Problem("expected a column name (string)",
                                    column=f"effect.inputs.{key}", value=column))
    effect = EffectSpec(measure=_typed(e, "measure", str, "effect", problems, "SMD"),
                        prepost_r=_typed(e, "prepost_r", float, "effect", problems),
                        sign=_typed(e, "sign", int, "effect", problems, 1),
                        yi=_typed(e, "yi", str, "effect", problems),
                        vi=_typed(e, "vi", str, "effect", problems),
                        sei=_typed(e, "sei", str, "effect", problems), inputs=inputs)
    problems += effect_problems(effect)
    return effect


def _parse_outcome(name: str, o: Any, effect: EffectSpec, problems: list[Problem]
                   ) -> OutcomeSpec | None:
    p = f"outcome.{name}"
    if not isinstance(o, Mapping):
        problems.append(Problem(f"expected a table [{p}]", column=p, value=o))
        return None
    _check_keys(o, _OUTCOME, p, problems)
    direction = _typed(o, "direction", str, p, problems, "lower")
    if direction not in ("lower", "higher"):
        problems.append(Problem("direction must be 'lower' or 'higher'",
                                column=f"{p}.direction", value=direction))
    mcid = _bounded(o, "mcid", float, p, problems, None, _positive,
                    "> 0 (in outcome points; direction says which side is benefit)")
    sd_ref = _bounded(o, "sd_ref", float, p, problems, None, _positive,
                      "> 0 (an SD in outcome points)")
    grid = _number_list(o, "sd_ref_grid", p, problems, "a list of SDs > 0 in outcome "
                        "points, e.g. [1.5, 2.0, 2.5]",
                        lambda v: all(_positive(g) for g in v))
    rope = _number_list(o, "rope", p, problems, "a list of two numbers [low, high] in "
                        "outcome points, low < high",
                        lambda v: len(v) == 2 and v[0] < v[1])
    standardised = effect.measure.upper() in DEFAULTS.standardised_measures
    if standardised and mcid is not None and sd_ref is None and "sd_ref" not in o:
        problems.append(Problem(f"required with mcid on the {effect.measure} scale: the "
                                "reference SD (in outcome points) that converts the MCID",
                                column=f"{p}.sd_ref", show_value=False))
    if not standardised:
        for key in ("sd_ref", "sd_ref_grid"):
            if key in o:
                problems.append(Problem(f"converts standardised effects to points; the "
                                        f"measure {effect.measure} is on the outcome's own "
                                        "scale: remove it", column=f"{p}.{key}", value=o[key]))
    return OutcomeSpec(name=name, mcid=mcid, sd_ref=sd_ref, sd_ref_grid=grid or (),
                       direction=direction, label=_typed(o, "label", str, p, problems, name),
                       rope=rope)  # type: ignore[arg-type]


def _check_outcome_names(names: tuple[str, ...], outcomes: Mapping[str, OutcomeSpec],
                         column: str, problems: list[Problem]) -> None:
    for o in names:
        if o not in outcomes:
            problems.append(Problem(f"no [outcome.{o}] table; defined: "
                                    f"{', '.join(outcomes) or 'none'}", column=column, value=o))


def _subset(raw: Mapping[str, Any], path: str, problems: list[Problem], main: MainSpec,
            outcomes: Mapping[str, OutcomeSpec]) -> SubsetSpec:
    _check_keys(raw, _SUBSET, path, problems, required=("name",))
    where_raw = raw.get("where", {})
    where: dict[str, tuple[Any, ...]] = {}
    if not isinstance(where_raw, Mapping):
        problems.append(Problem("expected a table column -> list of values",
                                column=f"{path}.where", value=where_raw))
    else:
        for col, vals in where_raw.items():
            where[col] = tuple(vals) if isinstance(vals, list) else (vals,)
    tau = _typed(raw, "tau", str, path, problems, "shared")
    if tau not in ("shared", "separate"):
        problems.append(Problem("tau must be 'shared' or 'separate'", column=f"{path}.tau",
                                value=tau))
    name = _typed(raw, "name", str, path, problems, "")
    subset_outcomes = _str_list(raw, "outcomes", path, problems, main.outcomes)
    if "outcomes" in raw:  # inherited ones were checked as main.outcomes
        _check_outcome_names(subset_outcomes, outcomes, f"{path}.outcomes", problems)
    return SubsetSpec(
        name=name, label=_typed(raw, "label", str, path, problems, name),
        outcomes=subset_outcomes,
        comparators=_str_list(raw, "comparators", path, problems, main.comparators),
        follow_ups=_str_list(raw, "follow_ups", path, problems, main.follow_ups),
        where=where, subgroup=_typed(raw, "subgroup", str, path, problems),
        tau=tau, subgroup_pooling=_typed(raw, "subgroup_pooling", bool, path, problems, False))


def parse_spec(source: str | os.PathLike | Mapping[str, Any],
               base_dir: str | os.PathLike | None = None) -> Spec:
    """Parse and validate a spec from a TOML file path or an already-loaded mapping.

    Paths inside the spec are relative to the spec file (or ``base_dir``).
    """
    text = ""
    path: Path | None = None
    if isinstance(source, Mapping):
        raw = dict(source)
        base = Path(base_dir or ".")
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(Problem("no such spec file", column="spec", value=str(path)))
        text = path.read_text(encoding="utf-8")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(Problem(f"not valid TOML: {exc}", column="spec",
                                     value=str(path))) from exc
        base = Path(base_dir) if base_dir else path.parent
    problems: list[Problem] = []
    effect = _parse_effect(raw, problems)
    schema = effect.schema_table
    # a study table of the extraction schema is selected by outcome: [main] and [outcome.*]
    # are what the plan is about; any other table holds one outcome and may leave both out
    required = ("name", "data", "priors", "prior") + (("outcome", "main") if schema else ())
    _check_keys(raw, _TOP, "", problems, required=required)
    name = _typed(raw, "name", str, "", problems, "analysis")
    seed = _typed(raw, "seed", int, "", problems, 0)

    prior_table = _parse_prior_table(raw.get("prior", {}), problems)
    pr = _table(raw, "priors", "priors", problems)
    _check_keys(pr, _PRIORS, "priors", problems, required=("tau", "mu"))
    choice = PriorChoice(
        tau=_typed(pr, "tau", str, "priors", problems, ""),
        tau_sensitivity=_str_list(pr, "tau_sensitivity", "priors", problems),
        mu=_typed(pr, "mu", str, "priors", problems, ""),
        mu_sensitivity=_str_list(pr, "mu_sensitivity", "priors", problems))
    for key, names in (("tau", [choice.tau]), ("tau_sensitivity", choice.tau_sensitivity),
                       ("mu", [choice.mu]), ("mu_sensitivity", choice.mu_sensitivity)):
        for n in names:
            if n and n not in prior_table and "prior" in raw:
                problems.append(Problem(f"no [prior.{n}] table; defined priors: "
                                        f"{', '.join(prior_table) or 'none'}",
                                        column=f"priors.{key}", value=n))

    outcomes: dict[str, OutcomeSpec] = {}
    for oname, o in _table(raw, "outcome", "outcome", problems).items():
        if (parsed := _parse_outcome(oname, o, effect, problems)) is not None:
            outcomes[oname] = parsed

    m = _table(raw, "main", "main", problems)
    _check_keys(m, _MAIN, "main", problems, required=("outcomes",) if schema else ())
    # any other table: its one outcome (when declared) names the main analysis
    default_outcomes = () if schema else tuple(outcomes)
    main = MainSpec(outcomes=_str_list(m, "outcomes", "main", problems, default_outcomes),
                    comparators=_str_list(m, "comparators", "main", problems),
                    follow_ups=_str_list(m, "follow_ups", "main", problems),
                    published=_typed(m, "published", str, "main", problems))
    _check_outcome_names(main.outcomes, outcomes, "main.outcomes", problems)
    if not schema and len(main.outcomes) > 1:
        problems.append(Problem("a table of precomputed effects or escalc inputs holds one "
                                "outcome (rows are not selected by outcome): list at most one",
                                column="main.outcomes", value=", ".join(main.outcomes)))
    if main.published is not None:
        declared = raw.get("outcome") if isinstance(raw.get("outcome"), Mapping) else {}
        for o in main.outcomes:
            # an MCID that is there but invalid was reported already
            if o in outcomes and "mcid" not in declared.get(o, {}):
                problems.append(Problem("the reanalysis of the published results needs an "
                                        "MCID for every main outcome",
                                        column=f"outcome.{o}.mcid", show_value=False))

    sens = tuple(_subset(r, p, problems, main, outcomes)
                 for p, r in _tables(raw, "sensitivity", problems))
    metaregs = []
    for p, r in _tables(raw, "meta_regression", problems):
        _check_keys(r, _METAREG, p, problems,
                    required=("name", "outcome", "mods") if schema else ("name", "mods"))
        nm = _typed(r, "name", str, p, problems, "")
        outcome = _typed(r, "outcome", str, p, problems,
                         main.outcomes[0] if len(main.outcomes) == 1 and not schema else None)
        if "outcome" in r and outcome is not None:
            _check_outcome_names((outcome,), outcomes, f"{p}.outcome", problems)
        metaregs.append(MetaRegressionSpec(
            name=nm, label=_typed(r, "label", str, p, problems, nm), outcome=outcome,
            comparators=_str_list(r, "comparators", p, problems, main.comparators),
            follow_ups=_str_list(r, "follow_ups", p, problems, main.follow_ups),
            mods=_typed(r, "mods", str, p, problems, "")))
    names = [s.name for s in sens] + [m.name for m in metaregs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("analysis names must be unique", column="name", value=dup))

    e = _table(raw, "engine", "engine", problems)
    _check_keys(e, _ENGINE, "engine", problems)
    engine = EngineSpec(
        primary=_typed(e, "primary", str, "engine", problems, "nuts"),
        sensitivity=_typed(e, "sensitivity", str, "engine", problems, "exact"),
        draws=_bounded(e, "draws", int, "engine", problems, DEFAULTS.draws,
                       lambda v: v >= 1, "a whole number >= 1 (draws per chain)"),
        tune=_bounded(e, "tune", int, "engine", problems, DEFAULTS.tune,
                      lambda v: v >= 0, "a whole number >= 0 (tuning steps per chain)"),
        chains=_bounded(e, "chains", int, "engine", problems, DEFAULTS.chains,
                        lambda v: v >= 1, "a whole number >= 1"),
        target_accept=_bounded(e, "target_accept", float, "engine", problems,
                               DEFAULTS.target_accept, lambda v: 0 < v < 1,
                               "between 0 and 1 (exclusive)"))
    for key in ("primary", "sensitivity"):
        if getattr(engine, key) not in ("nuts", "exact"):
            problems.append(Problem("engine must be 'nuts' or 'exact'",
                                    column=f"engine.{key}", value=getattr(engine, key)))
    data_path = base / _typed(raw, "data", str, "", problems, "")
    title = _typed(raw, "title", str, "", problems, name)
    description = _typed(raw, "description", str, "", problems, "")
    raise_if(problems, f"spec {path}" if path else "spec")
    published = (base / main.published) if main.published else None
    return Spec(
        name=name, title=title, data=data_path,
        seed=seed, effect=effect, priors=choice, prior_table=prior_table, outcomes=outcomes,
        main=main, sensitivity=sens, meta_regression=tuple(metaregs), engine=engine,
        path=path, sha256=hashlib.sha256(text.encode()).hexdigest() if text else "",
        description=description, published=published,
        source_text=text)
