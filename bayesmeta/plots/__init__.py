"""Plots of bayesmeta results: each takes a result object and an optional matplotlib Axes
(``ax=None`` creates a figure), draws what the result already holds, and returns the Axes (an
array of Axes for multi-panel plots). Nothing statistical is computed here.

The Agg backend is selected on import unless a backend was already chosen.
"""

from .clinical import plot_mcid_curve
from .diagnostics import plot_rank, plot_trace
from .forest import plot_forest
from .funnel import plot_funnel
from .posterior import plot_posterior, plot_tau
from .ppc import plot_pareto_k, plot_ppc, plot_q_discrepancy, plot_study_pvalues
from .regression import plot_bubble
from .sensitivity import plot_prior_sensitivity

__all__ = [
    "plot_bubble",
    "plot_forest",
    "plot_funnel",
    "plot_mcid_curve",
    "plot_pareto_k",
    "plot_posterior",
    "plot_ppc",
    "plot_prior_sensitivity",
    "plot_q_discrepancy",
    "plot_rank",
    "plot_study_pvalues",
    "plot_tau",
    "plot_trace",
]
