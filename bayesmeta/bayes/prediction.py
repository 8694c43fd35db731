"""Predictions of a Bayesian meta-regression at chosen moderator values.

For moderator values x0 (one design row, built from the fitted formula as metafor's
``predict(fit, newmods=...)`` builds it), two quantities answer "what effect is expected there":

* ``mu = x0' beta``: the mean effect at x0 (bmr()'s ``qpredict(..., mean=TRUE)``);
* ``theta_new = x0' beta + tau z``: the effect in a new study at x0 (``mean=FALSE``).

Exact engine: both are normal mixtures over the quadrature grid of tau
(:meth:`bayesmeta.bayes.exact_regression.ExactRegressionPosterior.predict`). NUTS: ``mu`` is
x0' beta evaluated at every draw; ``theta_new`` is the posterior-predictive mixture over draws,
``(1/S) sum_s N(x0' beta_s, tau_s^2)``, a Rao-Blackwellised form that carries no extra noise from
drawing z (its Monte Carlo error is that of the draws of beta and tau only).

The prediction is a :class:`~bayesmeta.results.BayesResult` (``model="prediction"``) with the
usual accessors over ``"mu"`` and ``"theta_new"`` (``"mu[<row>]"`` / ``"theta_new[<row>]"`` for
several rows), so :func:`bayesmeta.clinical_relevance` applies to it unchanged. Its
``frequentist`` is the REML twin's prediction at the same values.

The fitted design is stored JSON-serialisably in ``extras["twin_design"]`` by
:func:`design_record` (formula, the moderator columns of the studies used, the categorical
levels in order), so :func:`rebuild_design` restores the exact formulaic spec (including
stateful transforms such as ``center(weeks)``) after save / load.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from ..config import DEFAULTS
from ..design import INTERCEPT, Design, design_matrix
from ..errors import InputError, Problem, raise_if
from ..results import (
    BayesResult,
    DrawsPosterior,
    canonical_json,
    check_kind,
    check_op,
    check_prob,
)
from .mixture import NormalMixture

__all__ = ["FrequentistPrediction", "PredictionPosterior", "design_record", "predict",
           "rebuild_design"]


# ---------------------------------------------------------------------------------------------
# the stored design


def design_record(mods: Any, data: pd.DataFrame | None, terms: Sequence[str],
                  X: np.ndarray) -> dict[str, Any]:
    """What :func:`rebuild_design` needs, as JSON-serialisable values.

    ``mods``/``data`` are those of the fit (``data`` already restricted to the studies used);
    ``terms``/``X`` the fitted design, against which the rebuilt design is checked. Returns
    ``{"formula": None, "unavailable": <why>}`` when the record would not rebuild the fitted
    design (then predictions take design rows only, and say why).
    """
    frame = (mods.set_axis([str(c) for c in mods.columns], axis=1)
             if isinstance(mods, pd.DataFrame) else data)
    if frame is None:
        return {"formula": None, "unavailable": "no moderator table was stored with the fit"}
    design = design_matrix(mods, data, missing="exclude")
    used = sorted(design.spec.variables_by_source.get("data", set()))
    sub = frame.reset_index(drop=True).iloc[design.rows]
    record = {
        "formula": design.formula,
        "moderators": {col: _plain(sub[col].tolist()) for col in used},
        "levels": {col: _plain(list(lv)) for col, lv in design.levels.items()},
    }
    # The record must rebuild the fitted design exactly after a JSON round trip (it would not
    # for moderator values JSON cannot hold, or for options of the fit it does not carry).
    try:
        rebuild_design(json.loads(canonical_json(record)), terms, X)
    except InputError as exc:
        return {"formula": None, "unavailable": f"the moderator design is not restorable ({exc})"}
    return record


def _plain(values: list[Any]) -> list[Any]:
    """numpy scalars -> Python scalars (JSON)."""
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def moderator_frame(record: Mapping[str, Any]) -> pd.DataFrame:
    """The moderator columns of the studies used, categorical levels in the fitted order."""
    levels = record.get("levels", {})
    return pd.DataFrame({
        col: pd.Categorical(values, categories=levels[col]) if col in levels else values
        for col, values in record["moderators"].items()})


def rebuild_design(record: Mapping[str, Any], terms: Sequence[str],
                   X: np.ndarray | None = None) -> Design:
    """The fitted :class:`~bayesmeta.design.Design` (with formulaic's spec, for new rows)."""
    try:
        design = design_matrix(record["formula"], moderator_frame(record))
    except (InputError, KeyError, TypeError, ValueError) as exc:
        raise InputError(Problem(f"the stored moderator design does not rebuild ({exc})",
                                 column="twin_design", value=record.get("formula"))) from exc
    same = list(design.terms) == list(terms) and (X is None or np.allclose(design.matrix, X,
                                                                           rtol=1e-12, atol=0))
    if not same:
        raise InputError(Problem("the stored moderator design does not rebuild the fitted one "
                                 "(edited file?); pass design rows as an array instead",
                                 column="twin_design", value=record.get("formula")))
    return design


# ---------------------------------------------------------------------------------------------
# the posterior of the predictions


# eq=False: components are arrays, compared by identity
@dataclass(frozen=True, eq=False)
class PredictionPosterior:
    """The posterior of ``mu`` and ``theta_new`` at moderator values, one accessor vocabulary.

    Attributes
    ----------
    mixtures
        Parameters represented as normal mixtures: every parameter of an exact prediction,
        ``theta_new`` of a NUTS prediction (one component per draw, equal weights).
    draws
        Parameters represented by draws (chain, draw): ``mu`` of a NUTS prediction.
    draw_shape
        NUTS: (chains, draws per chain), the order of a mixture's components (for MCSEs);
        ``None`` for exact predictions (no Monte Carlo error).
    params
        The parameter names in order.
    """

    mixtures: Mapping[str, NormalMixture]
    draws: Mapping[str, np.ndarray] = field(default_factory=dict)
    draw_shape: tuple[int, int] | None = None
    params: tuple[str, ...] = ()

    kind: ClassVar[str] = "prediction"

    def __post_init__(self) -> None:
        if not self.params:
            object.__setattr__(self, "params", (*self.draws, *self.mixtures))

    @cached_property
    def _draws(self) -> DrawsPosterior:
        return DrawsPosterior(dict(self.draws))

    def _mixture(self, param: str) -> NormalMixture | None:
        if param in self.mixtures:
            return self.mixtures[param]
        if param in self.draws:
            return None
        raise InputError(Problem(f"unknown parameter; available: {', '.join(self.params)}",
                                 column="param", value=param))

    def mean(self, param: str) -> float | None:
        m = self._mixture(param)
        return self._draws.mean(param) if m is None else m.mean()

    def sd(self, param: str) -> float | None:
        m = self._mixture(param)
        return self._draws.sd(param) if m is None else m.sd()

    def quantile(self, param: str, q: float | Sequence[float]) -> float | np.ndarray:
        m = self._mixture(param)
        return self._draws.quantile(param, q) if m is None else m.quantile(q)

    def cdf(self, param: str, x: float | Sequence[float]) -> float | np.ndarray:
        m = self._mixture(param)
        return self._draws.cdf(param, x) if m is None else m.cdf(x)

    def interval(self, param: str, prob: float = DEFAULTS.level,
                 kind: str = DEFAULTS.interval_kind) -> tuple[float, float]:
        check_prob(prob)
        check_kind(kind)
        m = self._mixture(param)
        return self._draws.interval(param, prob, kind) if m is None else m.interval(prob, kind)

    def prob(self, param: str, op: str, value: float) -> float:
        check_op(op)
        m = self._mixture(param)
        return self._draws.prob(param, op, value) if m is None else m.prob(op, value)

    def mcse(self, param: str, stat: str = "mean", q: float | None = None) -> float:
        """Monte Carlo standard error, as :meth:`bayesmeta.results.DrawsPosterior.mcse`
        (0 for an exact prediction).

        For a mixture over draws the estimators are means over draws of per-draw quantities
        (the component mean; Phi((q - m_s) / s_s) for P(theta_new < q)); their MCSE is arviz's
        MCSE of that mean over the chains. A quantile's MCSE is the delta-method
        MCSE(F(x_q)) / f(x_q); the SD's is MCSE(variance) / (2 SD).
        """
        m = self._mixture(param)
        if m is None:
            return self._draws.mcse(param, stat, q)
        if self.draw_shape is None:
            return 0.0
        means = m.means.reshape(self.draw_shape)
        sds = m.sds.reshape(self.draw_shape)
        if stat == "mean":
            return _mcse_of_mean(means)
        if stat == "prob":
            return _mcse_of_mean(stats.norm.cdf((q - means) / sds))
        if stat == "quantile":
            x = float(m.quantile(q))
            return _mcse_of_mean(stats.norm.cdf((x - means) / sds)) / float(m.pdf(x))
        if stat == "sd":
            centre = float(means.mean())
            return _mcse_of_mean(sds**2 + (means - centre) ** 2) / (2.0 * float(m.sd()))
        raise InputError(Problem('stat must be "mean", "sd", "quantile" or "prob"',
                                 column="stat", value=stat))


def _mcse_of_mean(values: np.ndarray) -> float:
    import arviz as az

    ds = az.convert_to_dataset({"x": np.asarray(values, float)})
    return float(az.mcse(ds, method="mean")["x"].values)


@dataclass(frozen=True, eq=False)
class FrequentistPrediction:
    """The REML twin's prediction at the same moderator values (metafor's
    ``predict(fit, newmods=...)``): columns ``pred, se, ci_low, ci_high, pi_low, pi_high`` by
    row name."""

    table: pd.DataFrame
    level: float

    def to_dict(self) -> dict[str, Any]:
        """One row: ``estimate, se, ci_low, ci_high, pi_low, pi_high, level`` as numbers (the
        keys :func:`bayesmeta.clinical_relevance` reads); several rows: each key a
        ``{row: value}`` dict."""
        t = self.table.rename(columns={"pred": "estimate"})
        if len(t) == 1:
            out: dict[str, Any] = {c: float(t[c].iloc[0]) for c in t.columns}
        else:
            out = {c: {str(i): float(v) for i, v in t[c].items()} for c in t.columns}
        out["level"] = self.level
        return out

    def summary(self) -> pd.DataFrame:
        return self.table.copy()


# ---------------------------------------------------------------------------------------------
# building the design rows


def _row_names(index: pd.Index) -> list[str]:
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return [str(i + 1) for i in range(len(index))]
    return [str(i) for i in index]


def _check_levels(frame: pd.DataFrame, levels: Mapping[str, Sequence[Any]],
                  names: Sequence[str]) -> None:
    problems = []
    for col, allowed in levels.items():
        if col not in frame.columns:
            continue
        for name, value in zip(names, frame[col], strict=True):
            if value not in set(allowed):
                problems.append(Problem(
                    f"not a level of {col} in the fitted model; its levels are "
                    f"{', '.join(map(str, allowed))}", study=f"newmods row {name}",
                    column=col, value=value))
    raise_if(problems, "predict")


def _design_rows(result: BayesResult, newmods: Any) -> tuple[np.ndarray, list[str],
                                                              dict[str, list[Any]] | None]:
    """(rows n x p, row names, the moderator values as given or None for design rows)."""
    terms = list(result.extras.get("terms") or [])
    record = result.extras.get("twin_design") or {}
    p = len(terms)
    if isinstance(newmods, Mapping | pd.DataFrame):
        if isinstance(newmods, pd.DataFrame):
            frame = newmods.reset_index(drop=True)
            names = _row_names(newmods.index)
        else:
            try:
                frame = pd.DataFrame({k: np.atleast_1d(np.asarray(v, dtype=object))
                                      for k, v in newmods.items()})
            except ValueError as exc:
                raise InputError(Problem(f"moderator values of unequal lengths ({exc})",
                                         column="newmods")) from exc
            frame = frame.infer_objects()
            names = [str(i + 1) for i in range(len(frame))]
            unknown = [c for c in frame.columns if c not in record.get("moderators", {})]
            if unknown and record.get("formula"):
                raise InputError([Problem(
                    f"not a moderator of the formula {record['formula']}; its moderators: "
                    f"{', '.join(record['moderators'])}", column=str(c), show_value=False)
                    for c in unknown])
        if len(frame) == 0:
            raise InputError(Problem("no moderator values given", column="newmods"))
        if not record.get("formula"):
            why = record.get("unavailable", "saved by an older version")
            raise InputError(Problem(
                f"this result does not store a restorable moderator formula ({why}): pass "
                f"design rows as an array in the order {', '.join(terms)}",
                column="newmods", value=type(newmods).__name__))
        missing = [c for c in record["moderators"] if c not in frame.columns]
        if missing:
            raise InputError([Problem(f"a value is needed for every moderator of the formula "
                                      f"{record['formula']}", column=c, value=None,
                                      show_value=False) for c in missing])
        _check_levels(frame, record.get("levels", {}), names)
        design = rebuild_design(record, terms)
        rows = design.new_rows(frame[list(record["moderators"])])
        given = {c: _plain(frame[c].tolist()) for c in record["moderators"]}
        return rows, names, given
    arr = np.atleast_2d(np.asarray(newmods, dtype=float))
    intercept = bool(terms) and terms[0] == INTERCEPT
    if intercept and arr.shape[1] == p - 1:
        arr = np.column_stack([np.ones(arr.shape[0]), arr])
    if arr.shape[1] != p or not np.all(np.isfinite(arr)):
        raise InputError(Problem(f"a design row needs {p} finite values ({', '.join(terms)})"
                                 + (" or the last p - 1 with the intercept added"
                                    if intercept else ""), column="newmods",
                                 value=arr.tolist()))
    return arr, [str(i + 1) for i in range(arr.shape[0])], None


# ---------------------------------------------------------------------------------------------
# the prediction


def predict(result: BayesResult, newmods: Any) -> BayesResult:
    """Posterior of the mean effect and of a new study's effect at moderator values.

    Parameters
    ----------
    result
        A meta-regression result of ``bayes_rma(..., mods=...)`` (either engine).
    newmods
        Moderator values as the formula names them: a dict (``{"weeks": 12, "comparator":
        "passive"}``; lists for several rows) or a DataFrame with one row per prediction
        (metafor's ``predict(fit, newmods=...)``); or design rows as an array (all p columns,
        or the p - 1 after the intercept).

    Returns
    -------
    BayesResult
        ``model="prediction"``, parameters ``"mu"`` and ``"theta_new"`` (one row) or
        ``"mu[<row>]"`` and ``"theta_new[<row>]"`` (several rows, named by the DataFrame's
        index, or 1, 2, ... ); ``frequentist`` is the REML twin's prediction;
        ``extras`` holds ``rows``, ``newmods`` (as given) and ``design_rows``.

    References
    ----------
    Röver C, Friede T (2023). Using the bayesmeta R package for Bayesian random-effects
    meta-regression. Comput Methods Programs Biomed 229:107303. doi:10.1016/j.cmpb.2022.107303
    """
    if result.model != "meta_regression":
        raise InputError(Problem(
            "predictions at moderator values need a meta-regression result (bayes_rma(..., "
            "mods=...)); a pooled or subgroup result already has 'theta_new' / "
            "'theta_new[<level>]'", column="result.model", value=result.model))
    terms = list(result.extras.get("terms") or [])
    rows, names, given = _design_rows(result, newmods)
    single = rows.shape[0] == 1
    mu_names = ["mu"] if single else [f"mu[{n}]" for n in names]
    new_names = ["theta_new"] if single else [f"theta_new[{n}]" for n in names]
    params = tuple(x for pair in zip(mu_names, new_names, strict=True) for x in pair)
    diagnostics = result.diagnostics
    if isinstance(result.posterior, DrawsPosterior):
        beta = np.stack([np.asarray(result.posterior.draws[t], float) for t in terms], axis=-1)
        tau = np.asarray(result.posterior.draws["tau"], float)
        shape = tau.shape
        lin = np.einsum("cdp,np->ncd", beta, rows)
        mixtures = {name: NormalMixture(means=lin[i].ravel(), sds=tau.ravel(),
                                        weights=np.full(tau.size, 1.0 / tau.size))
                    for i, name in enumerate(new_names)}
        posterior = PredictionPosterior(mixtures=mixtures,
                                        draws={n: lin[i] for i, n in enumerate(mu_names)},
                                        draw_shape=shape, params=params)
        if diagnostics is not None:
            diagnostics = dataclasses.replace(
                diagnostics, table=_prediction_table(lin, tau, mu_names, new_names,
                                                     result.settings.get("seed", 0)))
    else:
        mixtures = {}
        for i in range(rows.shape[0]):
            mixtures[mu_names[i]] = result.posterior.predict(rows[i], new_study=False)
            mixtures[new_names[i]] = result.posterior.predict(rows[i], new_study=True)
        posterior = PredictionPosterior(mixtures=mixtures, params=params)
    frequentist = None
    notes: list[str] = []
    twin = result.frequentist
    if twin is not None:
        try:
            table = twin.predict(rows, level=result.level)
        except InputError as exc:
            notes.append(f"REML prediction not computed: {exc}")
        else:
            table.index = pd.Index(names, name="row")
            frequentist = FrequentistPrediction(table=table, level=result.level)
    extras = {"rows": names, "newmods": given, "design_rows": rows.tolist(), "terms": terms}
    return dataclasses.replace(
        result, posterior=posterior, model="prediction", frequentist=frequentist, idata=None,
        diagnostics=diagnostics, warnings=(*result.warnings, *notes), extras=extras)


def _prediction_table(lin: np.ndarray, tau: np.ndarray, mu_names: Sequence[str],
                      new_names: Sequence[str], seed: Any) -> pd.DataFrame:
    """R-hat, ESS and MCSE of the predictions. For theta_new they are those of draws
    x0' beta_s + tau_s z_s with a seeded z: a conservative account of the mixture's Monte
    Carlo error (the mixture does not add the noise of z)."""
    from .diagnostics import diagnostics_table

    rng = np.random.default_rng([int(seed) if isinstance(seed, int | np.integer) else 0, 3])
    draws = {}
    for i, (m, n) in enumerate(zip(mu_names, new_names, strict=True)):
        draws[m] = lin[i]
        draws[n] = lin[i] + tau * rng.standard_normal(tau.shape)
    return diagnostics_table(draws)
