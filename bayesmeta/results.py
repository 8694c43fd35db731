"""Frozen result types of the Bayesian engines and their one accessor vocabulary.

Every Bayesian fit, whatever its engine, is a :class:`BayesResult`. It answers the same
questions the same way::

    result.mean("mu"); result.sd("tau"); result.quantile("theta_new", [0.025, 0.5, 0.975])
    result.interval("mu", prob=0.95, kind="eti"); result.prob("mu", "<", -0.2)

``param`` is ``"mu"``, ``"tau"``, ``"theta_new"``, a study label (that study's shrunken effect
theta_i), or, for meta-regression, a term name (``"intercept"``, ``"ablat"``). These mirror
bayesmeta's ``pposterior``, ``qposterior`` and ``post.interval`` (Röver 2020,
doi:10.18637/jss.v093.i06).

Two posterior representations implement the :class:`Posterior` protocol: :class:`DrawsPosterior`
(MCMC draws; defined here) and the exact mixture posteriors of :mod:`bayesmeta.bayes.exact` and
:mod:`bayesmeta.bayes.exact_regression`.
This module imports no engine; :func:`load` rebuilds an exact posterior through a closed
registry of known modules (``_POSTERIOR_TYPES``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .config import DEFAULTS
from .errors import InputError, Problem

_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def check_op(op: str) -> None:
    if op not in _OPS:
        raise InputError(Problem(f"the comparison must be one of {', '.join(_OPS)}",
                                 column="op", value=op))


def check_prob(prob: float) -> None:
    if not (isinstance(prob, int | float) and 0 < prob < 1):
        raise InputError(Problem("an interval probability must lie strictly between 0 and 1",
                                 column="prob", value=prob))


def check_kind(kind: str) -> None:
    if kind not in ("eti", "shortest"):
        raise InputError(Problem('the interval kind must be "eti" (equal-tailed) or "shortest"',
                                 column="kind", value=kind))


#: Between-study (tau) and between-subgroup (omega) SDs: P(< 0) is 0 and is not reported.
SD_PARAMS = ("tau", "omega")


def is_tau(param: str) -> bool:
    """Is ``param`` a between-study or between-subgroup SD (``tau``, ``tau[<level>]``,
    ``omega``)?"""
    return param in SD_PARAMS or param.startswith(tuple(f"{p}[" for p in SD_PARAMS))


_MODEL_TITLES = {
    "pooled": "random-effects model (pooled)",
    "subgroup": "subgroup model",
    "meta_regression": "meta-regression",
    "prediction": "meta-regression prediction",
    "reanalysis": "reanalysis of a published pooled estimate",
}


def _describe_rows(extras: Mapping[str, Any]) -> str:
    """``row 1: weeks=12, comparator=passive; ...`` from a prediction's extras."""
    names = list(extras.get("rows", []))
    given = extras.get("newmods")
    parts = []
    for i, name in enumerate(names):
        if given:
            values = ", ".join(f"{col}={vals[i]}" for col, vals in given.items())
        else:
            values = "design row " + canonical_json(extras["design_rows"][i])
        parts.append(values if len(names) == 1 else f"row {name}: {values}")
    return "; ".join(parts)


def _describe_priors(priors: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, one-line description) per prior, coefficients one by one."""
    from .bayes import priors as prior_types  # describe() lives with the prior classes

    def describe(spec: Any) -> str:
        if spec is None:
            return "flat (improper uniform)"
        if isinstance(spec, Mapping) and "family" in spec:
            try:
                return prior_types.from_dict(spec).describe()
            except InputError:
                pass
        return canonical_json(spec)

    out = []
    for name, spec in priors.items():
        if name == "coefficients" and isinstance(spec, Mapping):
            out += [(f"coefficient {term}", describe(c)) for term, c in spec.items()]
        elif isinstance(spec, str):
            out.append((name, spec))
        else:
            out.append((name, describe(spec)))
    return out


@runtime_checkable
class Posterior(Protocol):
    """What an engine's posterior must answer. ``param`` as in the module docstring."""

    params: tuple[str, ...]

    def mean(self, param: str) -> float | None: ...

    def sd(self, param: str) -> float | None: ...

    def quantile(self, param: str, q: float | Sequence[float]) -> float | np.ndarray: ...

    def cdf(self, param: str, x: float | Sequence[float]) -> float | np.ndarray: ...

    def interval(self, param: str, prob: float = ..., kind: str = ...) -> tuple[float, float]: ...

    def prob(self, param: str, op: str, value: float) -> float: ...


def shortest_interval_from_draws(x: np.ndarray, prob: float) -> tuple[float, float]:
    """Shortest interval holding ``prob`` of the sorted draws (the empirical HPD for a
    unimodal posterior; arviz.hdi computes the same)."""
    x = np.sort(np.asarray(x, float))
    n = x.size
    m = int(np.floor(prob * n))
    if m >= n:
        return float(x[0]), float(x[-1])
    widths = x[m:] - x[: n - m]
    i = int(np.argmin(widths))
    return float(x[i]), float(x[i + m])


@dataclass(frozen=True)
class DrawsPosterior:
    """A posterior represented by draws: ``draws[param]`` has shape (chain, draw).

    Quantiles are numpy's default (linear interpolation, type 7); tail probabilities are
    proportions of draws. Monte Carlo standard errors come from :meth:`mcse` (arviz).
    """

    draws: Mapping[str, np.ndarray]
    params: tuple[str, ...] = ()

    #: the name under which saved results record this posterior type
    kind: ClassVar[str] = "draws"

    def __post_init__(self) -> None:
        if not self.params:
            object.__setattr__(self, "params", tuple(self.draws))

    def _get(self, param: str) -> np.ndarray:
        try:
            return self.draws[param]
        except KeyError:
            raise InputError(
                Problem(f"unknown parameter; available: {', '.join(self.params)}",
                        column="param", value=param)
            ) from None

    def flat(self, param: str) -> np.ndarray:
        return np.asarray(self._get(param), float).ravel()

    def mean(self, param: str) -> float:
        return float(self.flat(param).mean())

    def sd(self, param: str) -> float:
        return float(self.flat(param).std(ddof=1))

    def quantile(self, param: str, q: float | Sequence[float]) -> float | np.ndarray:
        out = np.quantile(self.flat(param), q)
        return float(out) if np.ndim(out) == 0 else out

    def cdf(self, param: str, x: float | Sequence[float]) -> float | np.ndarray:
        d = np.sort(self.flat(param))
        out = np.searchsorted(d, np.asarray(x, float), side="right") / d.size
        return float(out) if np.ndim(out) == 0 else out

    def interval(self, param: str, prob: float = DEFAULTS.level,
                 kind: str = DEFAULTS.interval_kind) -> tuple[float, float]:
        check_prob(prob)
        check_kind(kind)
        if kind == "shortest":
            return shortest_interval_from_draws(self.flat(param), prob)
        lo, hi = np.quantile(self.flat(param), [(1 - prob) / 2, (1 + prob) / 2])
        return float(lo), float(hi)

    def prob(self, param: str, op: str, value: float) -> float:
        check_op(op)
        return float(_OPS[op](self.flat(param), value).mean())

    def mcse(self, param: str, stat: str = "mean", q: float | None = None) -> float:
        """Monte Carlo standard error of the mean, sd, a quantile or a tail probability.

        ``stat`` is ``"mean"``, ``"sd"``, ``"quantile"`` (with ``q``) or ``"prob"`` (with
        ``q`` the threshold; the MCSE of P(param < q)), computed by arviz from the chains.
        """
        import arviz as az

        x = np.asarray(self._get(param), float)
        if x.ndim == 1:
            x = x[None, :]
        if stat == "prob":
            x = (x < q).astype(float)
        ds = az.convert_to_dataset({"x": x})
        if stat in ("mean", "sd", "prob"):
            return float(az.mcse(ds, method="mean" if stat == "prob" else stat)["x"].values)
        if stat == "quantile":
            return float(az.mcse(ds, method="quantile", prob=q)["x"].values)
        raise InputError(Problem('stat must be "mean", "sd", "quantile" or "prob"',
                                 column="stat", value=stat))


@dataclass(frozen=True)
class Diagnostics:
    """The outcome of the NUTS diagnostics gate (Vehtari et al. 2021, doi:10.1214/20-BA1221).

    ``passed`` is True when every criterion holds: R-hat <= ``DEFAULTS.rhat_max``, bulk and tail
    ESS >= ``DEFAULTS.ess_min``, no divergent transitions, E-BFMI >= ``DEFAULTS.ebfmi_min`` in
    every chain. ``attempts`` records the sampler settings of each try (the gate retries with a
    higher target_accept, longer tuning and the other parametrisation).
    """

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    n_divergent: int
    ebfmi_min: float
    passed: bool
    messages: tuple[str, ...] = ()
    attempts: tuple[Mapping[str, Any], ...] = ()
    table: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rhat_max": self.rhat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "ess_tail_min": self.ess_tail_min,
            "n_divergent": self.n_divergent,
            "ebfmi_min": self.ebfmi_min,
            "passed": self.passed,
            "messages": list(self.messages),
            "attempts": [dict(a) for a in self.attempts],
        }


@dataclass(frozen=True)
class BayesResult:
    """A Bayesian random-effects fit (pooled, subgroup or meta-regression).

    Attributes
    ----------
    posterior
        The engine's :class:`Posterior` (draws or exact mixture); use the accessors below.
    engine
        ``"nuts"`` or ``"exact"``.
    model
        ``"pooled"``, ``"subgroup"`` or ``"meta_regression"``.
    yi, vi, labels, measure
        The data (metafor's yi/vi), the study labels and the effect measure.
    priors
        ``{"tau": <prior dict>, "mu": <prior dict or None>, ...}`` in ``to_dict()`` form.
    frequentist
        The REML fit of the same data and model (``bayesmeta.rma``), its twin for side-by-side
        tables; ``None`` only when it could not be computed (then ``warnings`` says why).
    idata
        ``arviz.InferenceData`` (NUTS: posterior, posterior_predictive, log_likelihood,
        observed_data, constant_data, sample_stats, prior when proper).
    diagnostics
        The NUTS gate outcome; ``None`` for the exact engine.
    settings
        Engine settings (draws, chains, seed, parametrisation, ...), and the defaults used.
    level
        The default interval coverage of ``summary()``.
    """

    posterior: Any
    engine: str
    model: str
    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    measure: str | None
    priors: Mapping[str, Any]
    frequentist: Any = None
    idata: Any = None
    diagnostics: Diagnostics | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    level: float = DEFAULTS.level
    extras: Mapping[str, Any] = field(default_factory=dict)

    # -- the accessor vocabulary -------------------------------------------------------------
    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.posterior.params)

    @property
    def k(self) -> int:
        return int(np.size(self.yi))

    def mean(self, param: str) -> float | None:
        """Posterior mean (``None`` when it does not exist, e.g. a tau posterior with an
        infinite mean under an improper prior)."""
        return self.posterior.mean(param)

    def sd(self, param: str) -> float | None:
        return self.posterior.sd(param)

    def quantile(self, param: str, q: float | Sequence[float]) -> float | np.ndarray:
        return self.posterior.quantile(param, q)

    def median(self, param: str) -> float:
        return float(self.posterior.quantile(param, 0.5))

    def cdf(self, param: str, x: float | Sequence[float]) -> float | np.ndarray:
        return self.posterior.cdf(param, x)

    def interval(self, param: str, prob: float | None = None,
                 kind: str = DEFAULTS.interval_kind) -> tuple[float, float]:
        """Credible interval: equal-tailed (``"eti"``, default) or ``"shortest"``."""
        return self.posterior.interval(param, self.level if prob is None else prob, kind)

    def prob(self, param: str, op: str, value: float) -> float:
        """Posterior probability that ``param`` ``op`` ``value``, e.g. ``prob("mu", "<", 0)``."""
        return self.posterior.prob(param, op, value)

    # -- tables --------------------------------------------------------------------------------
    def summary(self, params: Sequence[str] | None = None, prob: float | None = None,
                kind: str = DEFAULTS.interval_kind) -> pd.DataFrame:
        """One row per parameter: mean, sd, median, interval bounds, and for NUTS the MCSE,
        bulk/tail ESS and R-hat. The interval coverage and kind are in ``df.attrs``."""
        prob = self.level if prob is None else prob
        params = list(self.params if params is None else params)
        rows = []
        for p in params:
            lo, hi = self.interval(p, prob, kind)
            row = {"param": p, "mean": self.mean(p), "sd": self.sd(p), "median": self.median(p),
                   "ci_low": lo, "ci_high": hi}
            rows.append(row)
        df = pd.DataFrame(rows).set_index("param")
        if self.diagnostics is not None and self.diagnostics.table is not None:
            df = df.join(self.diagnostics.table, how="left")
        df.attrs["interval"] = f"{100 * prob:g}% {'equal-tailed' if kind == 'eti' else 'shortest'}"
        df.attrs["engine"] = self.engine
        return df

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with stable keys.

        * ``engine, model, k, measure, level, priors, warnings``;
        * ``defaults_applied``: the package defaults this fit used (``settings``), one line each;
        * one entry per model parameter other than the study effects (``mu``, ``tau``,
          ``theta_new``; coefficients by term name; ``mu[<level>]``, ``theta_new[<level>]``,
          ``"mu[b] - mu[a]"``), each ``{mean, sd, median, ci_low, ci_high}`` plus ``p_lt_0``
          = P(param < 0) for every parameter that is not a tau (coefficients, subgroup means
          and their differences, predictions);
        * ``extras``: the model's extras (``terms`` and ``r2_bayes`` of a meta-regression;
          ``levels``, ``k_per_subgroup``, ``flagged``, ``flag_messages`` of a subgroup model;
          ``rows``, ``newmods`` of a prediction), without the stored design (``twin_design``,
          kept in the saved file);
        * ``diagnostics`` (NUTS).
        """
        out: dict[str, Any] = {
            "engine": self.engine,
            "model": self.model,
            "k": self.k,
            "measure": self.measure,
            "level": self.level,
            "priors": json.loads(json.dumps(self.priors, default=_jsonable)),
            "defaults_applied": list(self.settings.get("defaults_applied", [])),
            "warnings": list(self.warnings),
        }
        for p in self.model_params:
            lo, hi = self.interval(p)
            entry = {"mean": self.mean(p), "sd": self.sd(p), "median": self.median(p),
                     "ci_low": lo, "ci_high": hi}
            if not is_tau(p):
                entry["p_lt_0"] = self.prob(p, "<", 0.0)
            out[p] = entry
        out["extras"] = json.loads(json.dumps(
            {key: value for key, value in self.extras.items() if key != "twin_design"},
            default=_jsonable))
        if self.diagnostics is not None:
            out["diagnostics"] = self.diagnostics.to_dict()
        return out

    @property
    def model_params(self) -> tuple[str, ...]:
        """The parameters other than the study effects (summary of ``str(result)``)."""
        labels = set(self.labels)
        return tuple(p for p in self.params if p not in labels)

    # -- predictions ---------------------------------------------------------------------------
    def predict(self, newmods: Any) -> BayesResult:
        """Mean effect (``"mu"``) and new-study effect (``"theta_new"``) of a meta-regression at
        moderator values, e.g. ``result.predict({"weeks": 12, "comparator": "passive"})`` or a
        DataFrame of several rows (metafor's ``predict(fit, newmods=...)``, bmr()'s
        ``qpredict``). Returns a result with the same accessors; see
        :func:`bayesmeta.bayes.prediction.predict`."""
        # The one call from this layer into an engine module (like load's posterior registry):
        # building design rows needs the formula machinery, evaluating them the engine.
        from .bayes.prediction import predict

        return predict(self, newmods)

    # -- printing ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        n_studies = len(set(self.params) & set(self.labels))
        shown = ", ".join(self.model_params[:8])
        more = f", ... {len(self.model_params) - 8} more" if len(self.model_params) > 8 else ""
        studies = f"; {n_studies} study effects" if n_studies else ""
        return (f"BayesResult(engine={self.engine!r}, model={self.model!r}, k={self.k}, "
                f"measure={self.measure!r}, params=[{shown}{more}]{studies})")

    def __str__(self) -> str:
        what = _MODEL_TITLES.get(self.model, self.model.replace("_", " "))
        lines = [f"Bayesian {what}; engine {self.engine}, k = {self.k}, "
                 f"measure {self.measure or 'not recorded'}"]
        if self.model == "prediction":
            lines.append("At moderator values: " + _describe_rows(self.extras))
        lines.append("Priors:")
        lines += [f"  {name}: {text}" for name, text in _describe_priors(self.priors)]
        defaults = list(self.settings.get("defaults_applied", []))
        lines.append("Defaults applied:" + ("" if defaults else " none"))
        lines += [f"  - {d}" for d in defaults]
        kind = "equal-tailed" if DEFAULTS.interval_kind == "eti" else "shortest"
        lines.append(f"Intervals: {100 * self.level:g}% {kind} (credible)")
        lines.append(f"Diagnostics: {self._diagnostics_line()}")
        lines.append("Warnings:" + ("" if self.warnings else " none"))
        lines += [f"  - {w}" for w in self.warnings]
        table = self.summary(list(self.model_params))
        lines.append(f"Summary ({table.attrs['interval']} intervals):")
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            lines.append(table.to_string(float_format=lambda x: f"{x:.4g}"))
        n_studies = len(set(self.params) & set(self.labels))
        if n_studies:
            lines.append(f"({n_studies} study effects (shrunken theta_i) not shown: "
                         "result.summary() lists them)")
        return "\n".join(lines)

    def _diagnostics_line(self) -> str:
        d = self.diagnostics
        if d is None:
            return ("none needed (no sampling: exact computation)"
                    if self.engine in ("exact", "analytic") else "not recorded")
        verdict = "gate passed" if d.passed else "gate FAILED: " + "; ".join(d.messages)
        return (f"{verdict} (R-hat max {d.rhat_max:.3f}, bulk ESS min {d.ess_bulk_min:.0f}, "
                f"tail ESS min {d.ess_tail_min:.0f}, {d.n_divergent} divergent, "
                f"E-BFMI min {d.ebfmi_min:.2f})")

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write one netCDF file: draws (or the exact engine's tau grid), data, priors,
        settings, package versions and a hash of the inputs. Written atomically."""
        save(self, path)


# ---------------------------------------------------------------------------------------------
# save / load


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Canonical serialisation (sorted keys, no whitespace, floats via repr) for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)


def input_hash(yi: np.ndarray, vi: np.ndarray, labels: Sequence[str], priors: Mapping[str, Any],
               settings: Mapping[str, Any], payload: Mapping[str, np.ndarray]) -> str:
    """The hash of format-1 files: SHA-256 over the data, labels, priors, settings and the
    stored posterior arrays (not the InferenceData groups, measure, level, extras or
    warnings; format 2 covers those too, see :func:`content_hash`)."""
    h = hashlib.sha256()
    h.update(canonical_json({"labels": list(labels), "priors": priors,
                             "settings": settings}).encode())
    for arr in (yi, vi):
        h.update(np.ascontiguousarray(np.asarray(arr, "<f8")).tobytes())
    for name in sorted(payload):
        h.update(name.encode())
        h.update(np.ascontiguousarray(np.asarray(payload[name], "<f8")).tobytes())
    return h.hexdigest()


#: The file attributes covered by the format-2 hash (every attribute but the hash itself and
#: the package versions, which describe the writer, not the result).
HASHED_ATTRIBUTES = ("bayesmeta_format", "posterior_kind", "engine", "model", "measure",
                     "labels", "priors", "settings", "warnings", "level", "diagnostics",
                     "diagnostics_table", "extras")


def _array_digest(h: Any, values: Any) -> None:
    """Feed an array's shape and values to the hash: numbers (bool, int, float) as
    little-endian float64 bytes, anything else (coordinate labels) as canonical JSON text, so
    that a netCDF round trip (bool stored as int8, text as variable-length strings) leaves the
    digest unchanged."""
    arr = np.asarray(values)
    h.update(canonical_json(list(arr.shape)).encode())
    if arr.dtype.kind in "biuf":
        h.update(np.ascontiguousarray(arr, "<f8").tobytes())
    else:
        h.update(canonical_json([str(x) for x in arr.ravel().tolist()]).encode())


def content_hash(attributes: Mapping[str, Any], yi: np.ndarray, vi: np.ndarray,
                 payload: Mapping[str, np.ndarray], groups: Mapping[str, Any]) -> str:
    """SHA-256 of a format-2 file's content: the attributes in :data:`HASHED_ATTRIBUTES`
    (measure, level, priors, settings, warnings, extras, diagnostics ...), the data, the
    posterior arrays, and every variable and coordinate of every InferenceData group (names,
    dims, values; group attributes such as arviz's creation time are not covered).

    An edit of any of these after saving makes :func:`load` refuse the file.
    """
    h = hashlib.sha256()
    head = {key: attributes.get(key) for key in HASHED_ATTRIBUTES}
    head["bayesmeta_format"] = int(head["bayesmeta_format"])
    head["level"] = float(head["level"])
    h.update(canonical_json(head).encode())
    for arr in (yi, vi):
        _array_digest(h, arr)
    for name in sorted(payload):
        h.update(f"payload:{name}".encode())
        _array_digest(h, payload[name])
    h.update(canonical_json(sorted(groups)).encode())
    for group in sorted(groups):
        ds = groups[group]
        for name in sorted(map(str, ds.variables)):
            var = ds.variables[name]
            h.update(canonical_json([group, name, list(map(str, var.dims))]).encode())
            _array_digest(h, var.values)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bayesmeta", "numpy", "scipy", "pandas", "xarray", "arviz", "pymc", "nutpie",
                 "pytensor"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    import platform

    out["python"] = platform.python_version()
    return out


# The only posterior types a file may name; each maps to a known module and class (no dotted
# paths are read from files). A posterior type declares its name as the class attribute
# ``kind`` and implements ``to_arrays()`` / ``from_arrays()`` (float arrays only).
_POSTERIOR_TYPES = {
    "exact": ("bayesmeta.bayes.exact", "ExactPosterior"),
    "exact_regression": ("bayesmeta.bayes.exact_regression", "ExactRegressionPosterior"),
}


def _posterior_payload(result: BayesResult) -> tuple[str, dict[str, np.ndarray]]:
    kind = getattr(type(result.posterior), "kind", None)
    if kind == DrawsPosterior.kind:
        return kind, {p: np.asarray(v, float) for p, v in result.posterior.draws.items()}
    if kind not in _POSTERIOR_TYPES:
        raise InputError(Problem(
            "this posterior type cannot be saved; savable kinds: "
            f"{', '.join([DrawsPosterior.kind, *_POSTERIOR_TYPES])}",
            column="result.posterior", value=type(result.posterior).__name__))
    return kind, dict(result.posterior.to_arrays())


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so readers never see half a file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


#: The file format written by :func:`save`. Format 1 (before the hash covered the
#: InferenceData groups, measure, level, extras and warnings, and before the diagnostics table
#: was stored) is still read, with a warning recorded in the result.
FORMAT = 2


def _table_json(table: pd.DataFrame | None) -> str:
    if table is None:
        return ""
    return canonical_json({"index": [str(i) for i in table.index],
                           "columns": [str(c) for c in table.columns],
                           "data": np.asarray(table, float).tolist()})


def _table_from_json(text: str) -> pd.DataFrame | None:
    if not text:
        return None
    d = json.loads(text)
    return pd.DataFrame(np.asarray(d["data"], float).reshape(len(d["index"]), len(d["columns"])),
                        index=pd.Index(d["index"], name="param"), columns=d["columns"])


def save(result: BayesResult, path: str | os.PathLike) -> None:
    import xarray as xr

    if result.model == "prediction":
        raise InputError(Problem(
            "a prediction is derived from its meta-regression result and is not saved on its "
            "own: save the meta-regression result and call predict() after loading it",
            column="result.model", value=result.model))
    kind, payload = _posterior_payload(result)
    settings = json.loads(canonical_json(result.settings))
    priors = json.loads(canonical_json(result.priors))
    diagnostics = result.diagnostics
    meta = {
        "bayesmeta_format": FORMAT,
        "posterior_kind": kind,
        "engine": result.engine,
        "model": result.model,
        "measure": result.measure or "",
        "labels": canonical_json(list(result.labels)),
        "priors": canonical_json(priors),
        "settings": canonical_json(settings),
        "warnings": canonical_json(list(result.warnings)),
        "level": float(result.level),
        "versions": canonical_json(package_versions()),
        "diagnostics": canonical_json(diagnostics.to_dict()) if diagnostics else "",
        "diagnostics_table": _table_json(diagnostics.table if diagnostics else None),
        "extras": canonical_json(result.extras),
    }
    groups = ({group: result.idata[group] for group in result.idata.groups()}
              if result.idata is not None else {})
    meta["input_hash"] = content_hash(meta, result.yi, result.vi, payload, groups)
    data_vars = {
        "yi": ("study", np.asarray(result.yi, float)),
        "vi": ("study", np.asarray(result.vi, float)),
    }
    for i, (name, arr) in enumerate(payload.items()):
        arr = np.asarray(arr, float)
        dims = tuple(f"p{i}_d{j}" for j in range(arr.ndim))
        data_vars[f"payload_{i}"] = (dims, arr, {"name": name})
    nodes = {"/": xr.Dataset(data_vars, attrs=meta)}
    nodes.update({f"/idata/{group}": ds for group, ds in groups.items()})
    # One DataTree write opens the file once for all groups (about 3x faster than appending
    # group by group); the on-disk layout (root + idata/<group>) is the same either way.
    tree = xr.DataTree.from_dict(nodes)
    atomic_write(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"))


class FileIntegrityError(InputError):
    """A saved result whose content does not match its recorded hash."""


def load(path: str | os.PathLike) -> BayesResult:
    """Read a file written by :meth:`BayesResult.save`.

    Raises :class:`FileIntegrityError` when the stored hash does not match the file's content
    (format 2: data, posterior arrays, InferenceData groups, measure, level, priors, settings,
    warnings, extras, diagnostics; the file was edited or is corrupt). A format-1 file (whose
    hash covered the data, priors, settings and posterior arrays only) is checked against that
    hash and loaded with a warning in ``result.warnings`` saying what was not verified; its
    diagnostics table (MCSE, ESS, R-hat) is recomputed from the draws.
    ``frequentist`` is left ``None`` here; :func:`bayesmeta.load` re-attaches the REML twin,
    recomputed from the stored data (cheap and exact), since this module imports no engine.
    """
    import xarray as xr

    try:
        with xr.open_datatree(path, engine="h5netcdf") as opened:
            tree = opened.load()
    except (OSError, ValueError) as exc:
        raise InputError(Problem(f"not a readable bayesmeta result file ({exc})",
                                 column="path", value=os.fspath(path))) from exc
    ds = tree.to_dataset()
    meta = dict(ds.attrs)
    fmt = meta.get("bayesmeta_format")
    if fmt not in (1, FORMAT):
        raise InputError(Problem(
            "not a bayesmeta result file of a known format (bayesmeta_format 1 or "
            f"{FORMAT}); a newer bayesmeta may have written it", column="path",
            value=os.fspath(path)))
    payload = {}
    for name in ds.data_vars:
        if str(name).startswith("payload_"):
            payload[ds[name].attrs["name"]] = ds[name].values
    labels = tuple(json.loads(meta["labels"]))
    priors = json.loads(meta["priors"])
    settings = json.loads(meta["settings"])
    yi, vi = ds["yi"].values, ds["vi"].values
    groups = ({name: node.to_dataset() for name, node in tree["idata"].children.items()}
              if "idata" in tree.children else {})
    if fmt == 1:
        digest = input_hash(yi, vi, labels, priors, settings, payload)
    else:
        digest = content_hash(meta, yi, vi, payload, groups)
    if digest != meta["input_hash"]:
        raise FileIntegrityError(Problem(
            "the file's content does not match its recorded input hash (edited or corrupt); "
            "refit and save again", column="input_hash", value=os.fspath(path)))
    kind = meta["posterior_kind"]
    if kind == DrawsPosterior.kind:
        posterior: Any = DrawsPosterior(payload)
    elif kind not in _POSTERIOR_TYPES:
        raise InputError(Problem(
            "unknown posterior kind in the file; known kinds: "
            f"{', '.join([DrawsPosterior.kind, *_POSTERIOR_TYPES])}",
            column="posterior_kind", value=kind))
    else:
        module, cls = _POSTERIOR_TYPES[kind]
        posterior = getattr(importlib.import_module(module), cls).from_arrays(payload)
    idata = None
    if groups:
        import arviz as az

        idata = az.InferenceData(**groups)
    warnings = list(json.loads(meta["warnings"]))
    diag = None
    if meta.get("diagnostics"):
        d = json.loads(meta["diagnostics"])
        if fmt == 1:
            table = _recomputed_table(posterior)
        else:
            table = _table_from_json(meta.get("diagnostics_table", ""))
        diag = Diagnostics(
            rhat_max=d["rhat_max"], ess_bulk_min=d["ess_bulk_min"],
            ess_tail_min=d["ess_tail_min"], n_divergent=d["n_divergent"],
            ebfmi_min=d["ebfmi_min"], passed=d["passed"], messages=tuple(d["messages"]),
            attempts=tuple(d["attempts"]), table=table)
    if fmt == 1:
        warnings.append(
            f"loaded from a format-1 file ({os.path.basename(os.fspath(path))}): its hash "
            "covers the data, priors, settings and posterior arrays only; the InferenceData "
            "groups, measure, level, extras and warnings were not verified (save it again to "
            "write format 2)")
    frequentist = None
    measure = meta["measure"] or None
    return BayesResult(
        posterior=posterior, engine=meta["engine"], model=meta["model"], yi=yi, vi=vi,
        labels=labels, measure=measure, priors=priors, frequentist=frequentist, idata=idata,
        diagnostics=diag, settings=settings, warnings=tuple(warnings),
        level=float(meta["level"]), extras=json.loads(meta["extras"]),
    )


def _recomputed_table(posterior: Any) -> pd.DataFrame | None:
    """The diagnostics table of a format-1 NUTS file, from its draws (every parameter)."""
    if not isinstance(posterior, DrawsPosterior):
        return None
    # the same computation as at fit time (bayesmeta.bayes.diagnostics)
    from .bayes.diagnostics import diagnostics_table

    return diagnostics_table({p: np.asarray(posterior.draws[p], float)
                              for p in posterior.params})
