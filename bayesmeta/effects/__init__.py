"""Effect sizes: arm-level summaries -> (yi, vi), scale normalisation, multi-arm trials.

- :func:`escalc` computes effect sizes as metafor 3.8-1 does, from explicit arrays/columns or
  from a study table that follows the extraction schema (change scores with SD imputation).
- :func:`to_vas` / :func:`table_to_vas` put pain and disability scores on the 0-10 VAS before
  escalc; :func:`from_vas` inverts the map.
- :func:`split_shared_groups` / :func:`check_shared_groups` handle a group used by several
  comparisons of one multi-arm trial.
- :data:`MEASURES` is the closed registry of measures (name -> function with its reference).
"""

from .escalc import ESCALC_ATTR, PREPOST_R_COLUMN, escalc
from .multiarm import SharedGroup, check_shared_groups, find_shared_groups, split_shared_groups
from .registry import MEASURES, Measure, known_measures
from .scales import INSTRUMENTS, Instrument, from_vas, table_to_vas, to_vas

__all__ = [
    "ESCALC_ATTR",
    "INSTRUMENTS",
    "MEASURES",
    "PREPOST_R_COLUMN",
    "Instrument",
    "Measure",
    "SharedGroup",
    "check_shared_groups",
    "escalc",
    "find_shared_groups",
    "from_vas",
    "known_measures",
    "split_shared_groups",
    "table_to_vas",
    "to_vas",
]
