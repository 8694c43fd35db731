"""The few style constants and Axes helpers shared by every plot.

Plots draw on the Agg backend (no display): importing :mod:`bayesmeta.plots` selects it unless
the caller already chose a backend, so figures render on servers and in CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from ..config import DEFAULTS  # noqa: E402
from ..errors import InputError, Problem  # noqa: E402

# One colour per kind of quantity, the same in every figure, so a reader learns them once.
OBSERVED = "black"
REML = "#1f4e79"
BAYES = "#c0504d"
PREDICTIVE = "#e08a2c"
PRIOR = "0.45"
MCID = "#2e7d32"
NULL_LINE = "0.6"
BAND_ALPHA = 0.15

# Figure geometry: forest-type plots grow with the number of rows so labels never overlap.
WIDTH = 7.5
ROW_HEIGHT = 0.32
MIN_HEIGHT = 2.8
PANEL_HEIGHT = 3.2

# Pareto k above which PSIS-LOO is unreliable for a study (Vehtari et al. 2024,
# doi:10.48550/arXiv.1507.02646); DEFAULTS.pareto_k_max, the threshold bayesmeta.ppc warns at.
PARETO_K_THRESHOLD = DEFAULTS.pareto_k_max


def rows_height(n_rows: int) -> float:
    """Figure height (inches) for a plot with ``n_rows`` labelled rows."""
    return max(MIN_HEIGHT, 1.4 + ROW_HEIGHT * n_rows)


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (WIDTH, PANEL_HEIGHT)) -> Axes:
    """The caller's Axes, or a fresh figure's single Axes."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise InputError(Problem("ax must be a matplotlib Axes (or None for a new figure)",
                                     column="ax", value=type(ax).__name__))
        return ax
    _, created = plt.subplots(figsize=figsize, layout="constrained")
    return created


def new_axes_array(ax: Any, n: int, *, figsize: tuple[float, float] | None = None,
                   sharey: bool = False) -> np.ndarray:
    """The caller's ``n`` Axes (any sequence or array of Axes), or a new row of ``n`` panels."""
    if ax is not None:
        arr = np.asarray(ax, dtype=object).ravel()
        if arr.size != n or not all(isinstance(a, Axes) for a in arr):
            raise InputError(Problem(f"ax must be a sequence of {n} matplotlib Axes for this "
                                     "multi-panel plot (or None for a new figure)", column="ax",
                                     value=f"{arr.size} object(s)"))
        return arr
    size = figsize or (min(4.0 * n, 14.0), PANEL_HEIGHT)
    _, created = plt.subplots(1, n, figsize=size, sharey=sharey, layout="constrained",
                              squeeze=False)
    return created.ravel()


def wrap(text: str, width: int = 70) -> str:
    """Break a long legend entry over lines so the legend stays within the figure."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def interval_name(level: float, kind: str) -> str:
    """``"95% equal-tailed"`` / ``"90% shortest"``: coverage and kind of a credible interval."""
    return f"{100 * level:g}% {'equal-tailed' if kind == 'eti' else 'shortest'}"


def percent(level: float) -> str:
    return f"{100 * level:g}%"


def effect_label(measure: str | None) -> str:
    return "Effect" if measure is None else f"Effect ({measure})"


def check_choice(value: Any, allowed: Sequence[str], column: str) -> str:
    if value not in allowed:
        raise InputError(Problem(f"must be one of {', '.join(map(repr, allowed))}",
                                 column=column, value=value))
    return value


def legend_below(ax: Axes, handles: Sequence[Any] | None = None, ncol: int = 2) -> None:
    """A legend under the x-axis label, at a fixed distance in points whatever the height."""
    below = offset_copy(ax.transAxes, fig=ax.figure, y=-34, units="points")
    kwargs: dict[str, Any] = {} if handles is None else {"handles": list(handles)}
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=ncol,
              fontsize="x-small", frameon=False, **kwargs)
