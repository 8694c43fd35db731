"""The plan of a one-off pooled analysis (``bayesmeta fit DATA.csv --measure ... --outcome ...``).

The command line's options become a :class:`~bayesmeta.spec.Spec` with one main cell, so a
one-off analysis runs through exactly the same pipeline and report as a full plan. Priors are
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
from ..errors import InputError, Problem
from ..spec import (
    EffectSpec,
    EngineSpec,
    MainSpec,
    OutcomeSpec,
    PriorChoice,
    Spec,
    build_prior,
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


def one_off_spec(data: str | Path, *, measure: str, outcome: str,
                 comparator: str | None = None, follow_up: str | None = None,
                 tau_prior: str | None = None, mu_prior: str | None = None,
                 mcid: float | None = None, sd_ref: float | None = None,
                 direction: str = "lower", engine: str = "nuts", seed: int = 0,
                 name: str | None = None, prepost_r: float | None = None) -> Spec:
    """A plan with one pooled analysis of ``outcome`` (and the comparator / follow-up, when
    given) in the study table ``data``.

    Without ``tau_prior`` / ``mu_prior`` the package defaults for the measure apply
    (HalfNormal(0.5) and Normal(0, 4) for standardised measures; a raw-scale measure needs an
    explicit tau prior). Clinical relevance is computed when ``mcid`` is given (with
    ``sd_ref`` for a standardised measure).
    """
    data = Path(data)
    if not data.exists():
        raise InputError(Problem("no such study table", column="data", value=str(data)))
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
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
    label = name or f"{data.stem}_{outcome}"
    return Spec(
        name=label, title=f"One-off analysis: {outcome} in {data.name}", data=data,
        seed=seed, effect=EffectSpec(measure=measure, prepost_r=prepost_r),
        priors=PriorChoice(tau="tau", tau_sensitivity=(), mu="mu", mu_sensitivity=()),
        prior_table={"tau": tau_def, "mu": mu_def},
        outcomes={outcome: OutcomeSpec(name=outcome, mcid=mcid, sd_ref=sd_ref,  # type: ignore[arg-type]
                                       sd_ref_grid=(), direction=direction, label=outcome)},
        main=MainSpec(outcomes=(outcome,), comparators=(comparator,) if comparator else (),
                      follow_ups=(follow_up,) if follow_up else ()),
        sensitivity=(), meta_regression=(),
        engine=EngineSpec(primary=engine, sensitivity="exact"), path=None, sha256=digest,
        description=f"One-off pooled analysis (bayesmeta fit) of {data.name}: {measure}, "
                    f"outcome {outcome}" + (f", comparator {comparator}" if comparator else "")
                    + (f", follow-up {follow_up}" if follow_up else "") + ".")
