"""Analysis plans as declarative TOML specs (``models/*.toml``), parsed against a closed schema.

A spec names the data, the effect measure, the priors (by a closed registry of families and the
published presets; never a dotted import path), the outcomes with their MCIDs and reference SDs,
the main cells, the sensitivity/subgroup analyses, the meta-regressions and the engine settings.
An unknown key, table or prior family is an error naming the allowed ones; every problem of a
spec is reported together. Nothing here runs an analysis (that is :mod:`bayesmeta.pipeline`).

See ``models/lbp_review.toml`` for the full plan of the driving review, annotated.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
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


# ---------------------------------------------------------------------------------------------
# the schema, as frozen dataclasses


@dataclass(frozen=True)
class EffectSpec:
    measure: str = "SMD"
    prepost_r: float | None = None
    sign: int = 1


@dataclass(frozen=True)
class PriorChoice:
    tau: str
    tau_sensitivity: tuple[str, ...]
    mu: str
    mu_sensitivity: tuple[str, ...]


@dataclass(frozen=True)
class OutcomeSpec:
    name: str
    mcid: float
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


@dataclass(frozen=True)
class MetaRegressionSpec:
    name: str
    label: str
    outcome: str
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
    "effect": "table: measure, prepost_r, sign",
    "priors": "table: tau, tau_sensitivity, mu, mu_sensitivity (names of [prior.*] tables)",
    "prior": "tables [prior.<name>] defining each named prior",
    "outcome": "tables [outcome.<name>]: mcid, sd_ref, sd_ref_grid, direction, rope, label",
    "main": "table: outcomes, comparators, follow_ups, published",
    "sensitivity": "array of tables [[sensitivity]]: re-pooled subsets and subgroup models",
    "meta_regression": "array of tables [[meta_regression]]",
    "engine": "table: primary, sensitivity, draws, tune, chains, target_accept",
}
_EFFECT = {"measure": "escalc measure, e.g. SMD", "prepost_r": "pre-post correlation for "
           "imputing change SDs", "sign": "+1 or -1 (negative = improvement stays negative)"}
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
           "tau": "shared or separate (subgroup models)"}
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


def _subset(raw: Mapping[str, Any], path: str, problems: list[Problem], main: MainSpec,
            keys: dict[str, str]) -> SubsetSpec | None:
    _check_keys(raw, keys, path, problems, required=("name",))
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
    return SubsetSpec(
        name=name, label=_typed(raw, "label", str, path, problems, name),
        outcomes=_str_list(raw, "outcomes", path, problems, main.outcomes),
        comparators=_str_list(raw, "comparators", path, problems, main.comparators),
        follow_ups=_str_list(raw, "follow_ups", path, problems, main.follow_ups),
        where=where, subgroup=_typed(raw, "subgroup", str, path, problems),
        tau=tau)


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
    _check_keys(raw, _TOP, "", problems, required=("name", "data", "priors", "prior",
                                                   "outcome", "main"))
    name = _typed(raw, "name", str, "", problems, "analysis")
    seed = _typed(raw, "seed", int, "", problems, 0)

    eff_raw = raw.get("effect", {})
    _check_keys(eff_raw, _EFFECT, "effect", problems)
    effect = EffectSpec(measure=_typed(eff_raw, "measure", str, "effect", problems, "SMD"),
                        prepost_r=_typed(eff_raw, "prepost_r", float, "effect", problems),
                        sign=_typed(eff_raw, "sign", int, "effect", problems, 1))
    if effect.sign not in (1, -1):
        problems.append(Problem("sign must be 1 or -1", column="effect.sign",
                                value=effect.sign))

    prior_table = _parse_prior_table(raw.get("prior", {}), problems)
    pr = raw.get("priors", {})
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
    for oname, o in (raw.get("outcome") or {}).items():
        p = f"outcome.{oname}"
        _check_keys(o, _OUTCOME, p, problems, required=("mcid",))
        direction = _typed(o, "direction", str, p, problems, "lower")
        if direction not in ("lower", "higher"):
            problems.append(Problem("direction must be 'lower' or 'higher'",
                                    column=f"{p}.direction", value=direction))
        rope = o.get("rope")
        grid = o.get("sd_ref_grid", [])
        outcomes[oname] = OutcomeSpec(
            name=oname, mcid=_typed(o, "mcid", float, p, problems, 1.0),
            sd_ref=_typed(o, "sd_ref", float, p, problems),
            sd_ref_grid=tuple(float(g) for g in grid) if isinstance(grid, list) else (),
            direction=direction, label=_typed(o, "label", str, p, problems, oname),
            rope=tuple(float(r) for r in rope) if isinstance(rope, list) else None)

    m = raw.get("main", {})
    _check_keys(m, _MAIN, "main", problems, required=("outcomes",))
    main = MainSpec(outcomes=_str_list(m, "outcomes", "main", problems),
                    comparators=_str_list(m, "comparators", "main", problems),
                    follow_ups=_str_list(m, "follow_ups", "main", problems),
                    published=_typed(m, "published", str, "main", problems))
    for o in main.outcomes:
        if o not in outcomes:
            problems.append(Problem(f"no [outcome.{o}] table; defined: "
                                    f"{', '.join(outcomes) or 'none'}",
                                    column="main.outcomes", value=o))

    sens = tuple(s for i, r in enumerate(raw.get("sensitivity", []))
                 if (s := _subset(r, f"sensitivity[{i}]", problems, main, _SUBSET)))
    metaregs = []
    for i, r in enumerate(raw.get("meta_regression", [])):
        p = f"meta_regression[{i}]"
        _check_keys(r, _METAREG, p, problems, required=("name", "outcome", "mods"))
        nm = _typed(r, "name", str, p, problems, "")
        metaregs.append(MetaRegressionSpec(
            name=nm, label=_typed(r, "label", str, p, problems, nm),
            outcome=_typed(r, "outcome", str, p, problems, ""),
            comparators=_str_list(r, "comparators", p, problems, main.comparators),
            follow_ups=_str_list(r, "follow_ups", p, problems, main.follow_ups),
            mods=_typed(r, "mods", str, p, problems, "")))
    names = [s.name for s in sens] + [m.name for m in metaregs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("analysis names must be unique", column="name", value=dup))

    e = raw.get("engine", {})
    _check_keys(e, _ENGINE, "engine", problems)
    engine = EngineSpec(
        primary=_typed(e, "primary", str, "engine", problems, "nuts"),
        sensitivity=_typed(e, "sensitivity", str, "engine", problems, "exact"),
        draws=_typed(e, "draws", int, "engine", problems, DEFAULTS.draws),
        tune=_typed(e, "tune", int, "engine", problems, DEFAULTS.tune),
        chains=_typed(e, "chains", int, "engine", problems, DEFAULTS.chains),
        target_accept=_typed(e, "target_accept", float, "engine", problems,
                             DEFAULTS.target_accept))
    for key in ("primary", "sensitivity"):
        if getattr(engine, key) not in ("nuts", "exact"):
            problems.append(Problem("engine must be 'nuts' or 'exact'",
                                    column=f"engine.{key}", value=getattr(engine, key)))
    data_path = base / _typed(raw, "data", str, "", problems, "")
    raise_if(problems, f"spec {path}" if path else "spec")
    published = (base / main.published) if main.published else None
    return Spec(
        name=name, title=_typed(raw, "title", str, "", problems, name), data=data_path,
        seed=seed, effect=effect, priors=choice, prior_table=prior_table, outcomes=outcomes,
        main=main, sensitivity=sens, meta_regression=tuple(metaregs), engine=engine,
        path=path, sha256=hashlib.sha256(text.encode()).hexdigest() if text else "",
        description=_typed(raw, "description", str, "", problems, ""), published=published,
        source_text=text)
