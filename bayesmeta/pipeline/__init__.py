"""Run an analysis plan (``models/*.toml``) end to end: data, fits, checks, report.

:func:`run_spec` is the entry point (the command line's ``bayesmeta run``);
:func:`one_off_spec` builds the plan of a single pooled analysis (``bayesmeta fit``).
The pipeline alone imports every layer; see ARCHITECTURE.md.
"""

from .oneoff import one_off_spec, parse_prior_option
from .runner import Check, RunResult, run_spec

__all__ = ["Check", "RunResult", "one_off_spec", "parse_prior_option", "run_spec"]
