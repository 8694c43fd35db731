"""The plan of a one-off analysis (``bayesmeta fit DATA.csv --measure ... --outcome ...``).

The command line's options become a :class:`~bayesmeta.spec.Spec` with one main cell (and,
when asked, one subgroup model and one meta-regression), so a one-off analysis runs through
exactly the same pipeline and report as a full plan. The data are a study table of the
extraction schema (``--outcome`` selects its rows) or any table whose effects are named by
column: ``--yi`` with ``--vi`` or ``--sei`` (precomputed), or ``--inputs`` (escalc). Priors are
given as ``family`` or ``family:key=value,...`` (e.g. ``HalfNormal:scale=0.5``,
``rhodes:outcome=pain_function``, ``Flat``) or as a JSON object, and are validated against the
same closed registry as spec files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import DEFAULTS
from ..errors import InputError, Problem, raise_if
from ..spec import (
    EffectSpec,
    EngineSpec,
    MainSpec,
    MetaRegressionSpec,
    OutcomeSpec,
    PriorChoice,
    Spec,
    SubsetSpec,
    build_prior,
    effect_problems,
)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_prior_option(text: str, option: str = "--tau-prior") -> dict[str, Any]:
    """``"HalfNormal:scale=0.5"`` (or a JSON object) -> a ``[prior.*]`` table, validated."""
    text = text.strip()
    if text.startswith("{"):
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(Problem(f"not valid JSON: {exc}", column=option,
                                     value=text)) from exc
    else:
        family, _, rest = text.partition(":")
        definition = {"family": family.strip()}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise InputError(Problem("expected family or family:key=value,... (e.g. "
                                         "HalfNormal:scale=0.5, rhodes:outcome=pain_function)",
                                         column=option, value=text))
            definition[key.strip()] = _value(value.strip())
    if not isinstance(definition, Mapping) or "family" not in definition:
        raise InputError(Problem("a prior needs a family", column=option, value=text))
    from ..bayes import priors as P
    from ..spec import PRESETS

    allowed = (*P.FAMILIES, *PRESETS)
    if definition["family"] not in allowed and definition["family"] != "Flat":
        raise InputError(Problem(f"unknown prior family; allowed: {', '.join(allowed)}",
                                 column=option, value=definition["family"]))
    try:
        build_prior(definition)
    except TypeError as exc:
        raise InputError(Problem(f"invalid prior: {exc}", column=option, value=text)) from exc
    return dict(definition)


def one_off_spec(data: str | Path, *, measure: str, outcome: str | None = None,
                 comparator: str | None = None, follow_up: str | None = None,
                 tau_prior: str | None = None, mu_prior: str | None = None,
                 mcid: float | None = None, sd_ref: float | None = None,
                 direction: str = "lower", engine: str = "nuts", seed: int = 0,
                 name: str | None = None, prepost_r: float | None = None,
                 yi: str | None = None, vi: str | None = None, sei: str | None = None,
                 inputs: Mapping[str, str] | None = None, subgroup: str | None = None,
                 mods: str | None = None) -> Spec:
    """A plan with one pooled analysis of ``outcome`` (and the comparator / follow-up, when
    given) in the study table ``data``, plus a subgroup model by the column ``subgroup`` and
    a meta-regression on ``mods`` when given.

    ``yi`` with ``vi`` or ``sei`` (columns of precomputed effects on the scale ``measure``
    names) or ``inputs`` (escalc keyword -> column) read any table; ``outcome`` then only names
    the outcome (it is required for a study table of the extraction schema, whose rows it
    selects). Without ``tau_prior`` / ``mu_prior`` the package defaults for the measure apply
    (HalfNormal(0.5) and Normal(0, 4) for standardised measures; a raw-scale measure needs an
    explicit tau prior). Clinical relevance is computed when ``mcid`` is given (with
    ``sd_ref`` for a standardised measure).
    """
    data = Path(data)
    if not data.exists():
        raise InputError(Problem("no such study table", column="data", value=str(data)))
    effect = EffectSpec(measure=measure, prepost_r=prepost_r, yi=yi, vi=vi, sei=sei,
                        inputs=dict(inputs or {}))
    problems = effect_problems(effect, lambda key: "--" + key.replace("_", "-"))
    if effect.schema_table and outcome is None:
        problems.append(Problem("required for a study table of the extraction schema (it "
                                "selects the rows); for any other table name its effects: "
                                "--yi with --vi or --sei (precomputed), or --inputs "
                                "(escalc keyword=column,...)", column="--outcome",
                                show_value=False))
    if mcid is not None and outcome is None:
        problems.append(Problem("needs --outcome, the name of the outcome it belongs to",
                                column="--mcid", value=mcid))
    for option, value in (("--mcid", mcid), ("--sd-ref", sd_ref)):
        if value is not None and not value > 0:
            problems.append(Problem("must be > 0 (in outcome points)", column=option,
                                    value=value))
    raise_if(problems, "bayesmeta fit options")
    standardised = measure.upper() in DEFAULTS.standardised_measures
    if tau_prior is None:
        if not standardised:
            raise InputError(Problem(
                f"--tau-prior is required for the raw-scale measure {measure}: a default scale "
                "for the between-study SD cannot be chosen without knowing the units (e.g. "
                "--tau-prior HalfNormal:scale=<a plausible SD in your units>)",
                column="--tau-prior", show_value=False))
        tau_def = dict(DEFAULTS.tau_prior_standardised)
    else:
        tau_def = parse_prior_option(tau_prior, "--tau-prior")
    if mu_prior is None:
        mu_def = dict(DEFAULTS.mu_prior_standardised) if standardised else {"family": "Flat"}
    else:
        mu_def = parse_prior_option(mu_prior, "--mu-prior")
    if mcid is not None and standardised and sd_ref is None:
        raise InputError(Problem(f"--mcid on the {measure} scale needs --sd-ref, the reference "
                                 "SD (in outcome points) that converts the MCID",
                                 column="--sd-ref", show_value=False))
    if direction not in ("lower", "higher"):
        raise InputError(Problem("direction must be 'lower' or 'higher'", column="--direction",
                                 value=direction))
    args = {"data": str(data.resolve()), "measure": measure, "outcome": outcome,
            "comparator": comparator, "follow_up": follow_up, "tau": tau_def, "mu": mu_def,
            "mcid": mcid, "sd_ref": sd_ref, "direction": direction, "engine": engine,
            "seed": seed, "prepost_r": prepost_r}
    # keys of the column-named forms only when used: a schema-table run keeps its old digest
    args.update({k: v for k, v in (("yi", yi), ("vi", vi), ("sei", sei),
                                   ("inputs", dict(inputs or {}) or None),
                                   ("subgroup", subgroup), ("mods", mods)) if v is not None})
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
    label = name or (f"{data.stem}_{outcome}" if outcome else data.stem)
    outcomes = () if outcome is None else (outcome,)
    main = MainSpec(outcomes=outcomes, comparators=(comparator,) if comparator else (),
                    follow_ups=(follow_up,) if follow_up else ())
    sensitivity = () if subgroup is None else (SubsetSpec(
        name=f"by_{subgroup}", label=f"Subgroups by {subgroup}", outcomes=outcomes,
        comparators=main.comparators, follow_ups=main.follow_ups, where={},
        subgroup=subgroup),)
    meta_regression = () if mods is None else (MetaRegressionSpec(
        name="metareg", label=f"Meta-regression {mods}", outcome=outcome,
        comparators=main.comparators, follow_ups=main.follow_ups, mods=mods),)
    return Spec(
        name=label, title=f"One-off analysis: {outcome + ' in ' if outcome else ''}{data.name}",
        data=data, seed=seed, effect=effect,
        priors=PriorChoice(tau="tau", tau_sensitivity=(), mu="mu", mu_sensitivity=()),
        prior_table={"tau": tau_def, "mu": mu_def},
        outcomes={} if outcome is None else {outcome: OutcomeSpec(
            name=outcome, mcid=mcid, sd_ref=sd_ref, sd_ref_grid=(), direction=direction,
            label=outcome)},
        main=main, sensitivity=sensitivity, meta_regression=meta_regression,
        engine=EngineSpec(primary=engine, sensitivity="exact"), path=None, sha256=digest,
        description=f"One-off analysis (bayesmeta fit) of {data.name}: "
                    f"{effect.describe_source()}"
                    + (f", outcome {outcome}" if outcome else "")
                    + (f", comparator {comparator}" if comparator else "")
                    + (f", follow-up {follow_up}" if follow_up else "")
                    + (f"; subgroups by {subgroup}" if subgroup else "")
                    + (f"; meta-regression {mods}" if mods else "") + ".")
