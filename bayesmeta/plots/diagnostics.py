"""MCMC diagnostics plots of a NUTS fit, drawn by arviz: trace plots and rank plots (Vehtari et
al. 2021, doi:10.1214/20-BA1221), titled with the gate's R-hat and ESS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError, Problem
from ..results import BayesResult

DEFAULT_PARAMS = ("mu", "tau")


def _check(result: Any, params: Sequence[str]) -> tuple[Any, list[str]]:
    if not isinstance(result, BayesResult):
        raise InputError(Problem("expected a BayesResult", column="result",
                                 value=type(result).__name__))
    idata = result.idata
    if idata is None or "posterior" not in idata.groups():
        raise InputError(Problem(f"the {result.engine} engine stores no MCMC draws; trace and "
                                 "rank plots need a NUTS fit", column="result",
                                 value=result.engine))
    params = list(params)
    missing = [p for p in params if p not in idata.posterior]
    if missing or not params:
        raise InputError(Problem(f"not in the posterior draws; available: "
                                 f"{', '.join(map(str, idata.posterior.data_vars))}",
                                 column="params", value=", ".join(missing) or "none"))
    return idata, params


def _title(result: BayesResult, param: str) -> str:
    """``param``, with R-hat and ESS read from the diagnostics gate's table when present."""
    diag = result.diagnostics
    table = None if diag is None else diag.table
    if table is None or param not in table.index:
        return param
    row = table.loc[param]
    return (f"{param}: R-hat {row['r_hat']:.3f}, ESS bulk {row['ess_bulk']:.0f}, "
            f"tail {row['ess_tail']:.0f}")


def _axes(ax: Any, shape: tuple[int, ...]) -> Any:
    if ax is None:
        return None
    arr = np.asarray(ax, dtype=object)
    if arr.size != int(np.prod(shape)):
        raise InputError(Problem(f"ax must hold {int(np.prod(shape))} Axes, shaped {shape}",
                                 column="ax", value=f"{arr.size} object(s)"))
    return arr.reshape(shape)


def plot_trace(result: BayesResult, *, params: Sequence[str] = DEFAULT_PARAMS,
               ax: Any = None) -> np.ndarray:
    """Trace plots (density per chain, left; draws, right) of ``params`` (arviz
    ``plot_trace``).

    Parameters
    ----------
    result
        A NUTS fit (``result.idata`` holds the posterior draws).
    params
        Posterior variables to show.
    ax
        ``len(params)`` x 2 Axes, or ``None`` for a new figure.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes, shape (len(params), 2)
    """
    import arviz as az

    idata, params = _check(result, params)
    axes = az.plot_trace(idata, var_names=params, axes=_axes(ax, (len(params), 2)),
                         compact=True, show=False,
                         figsize=None if ax is not None else (9.0, 2.2 * len(params)))
    axes = np.asarray(axes, dtype=object).reshape(len(params), 2)
    if ax is None:
        axes[0, 0].figure.set_layout_engine("constrained")
    for row, p in zip(axes, params, strict=True):
        row[0].set_title(_title(result, p), fontsize="small")
        row[1].set_title(p, fontsize="small")
    return axes


def plot_rank(result: BayesResult, *, params: Sequence[str] = DEFAULT_PARAMS,
              ax: Any = None) -> np.ndarray:
    """Rank plots (arviz ``plot_rank``): with well-mixed chains each chain's ranks are uniform.

    Parameters
    ----------
    result
        A NUTS fit.
    params
        Posterior variables to show, one panel each.
    ax
        ``len(params)`` Axes, or ``None`` for a new figure.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes, shape (len(params),)
    """
    import arviz as az

    idata, params = _check(result, params)
    axes = az.plot_rank(idata, var_names=params, ax=_axes(ax, (len(params),)), show=False,
                        figsize=None if ax is not None else (4.0 * len(params), 3.0))
    axes = np.atleast_1d(np.asarray(axes, dtype=object)).ravel()
    if ax is None:
        axes[0].figure.set_layout_engine("constrained")
    for panel, p in zip(axes, params, strict=True):
        panel.set_title(_title(result, p), fontsize="small")
    return axes
